//! Release requests (R24): creating them, acting on them, listing them as
//! a user may see them, and following their deployments. Which action moves a request where, by whom, is
//! `ferry_domain::request::apply`; whether a user may test or approve in a
//! project at all is the route table's rule (`api::routes`). This module
//! joins the two to the store and the fleet: it updates the staging
//! environment, starts the release's deployment on the approval's
//! authority, and records how that deployment ended.

use std::collections::HashMap;

use ferry_domain::access::{Action, allowed};
use ferry_domain::notify::{EventFacts, REQUEST_APPROVAL_NEEDED, REQUEST_APPROVED};
use ferry_domain::request::{self, Actor, RequestFacts};
use ferry_domain::{DeploymentKind, DeploymentStatus, RequestAction, RequestKind, RequestState};
use ferry_proto::api::{CreateDeployment, CreateRequest, RequestActionBody, RequestEventInfo, RequestInfo};
use ferry_store::{
    Environment, NewRequest, Project, Release, RequestChange, RequestFilter, RequestNote, RequestRow, User,
};

use crate::error::{AppError, AppResult};
use crate::fleet::{self, Authority};
use crate::{AppState, guards, notify, now_ms};

/// What the server writes as the actor of the entries it makes itself.
const SERVER: &str = "ferry";

/// How long a request may stay `releasing` with no deployment before the
/// server decides it never started (the server stopped in between).
const START_GRACE_MS: i64 = 30_000;

/// Creates a request: checks the version (and that the requester may update
/// the staging environment), records the request, and updates staging.
pub async fn create(state: &AppState, caller: &User, project_name: &str, req: CreateRequest) -> AppResult<RequestInfo> {
    let db = &state.db;
    let reason = req.reason.trim();
    if reason.is_empty() {
        return Err(AppError::BadRequest("give a reason (--reason): what the change is and why".into()));
    }
    let project = db.project(project_name).await?;
    let env = db.environment(&project, &req.env).await?;
    let kind = if req.rollback { RequestKind::Rollback } else { RequestKind::Release };
    let (release, build) = match kind {
        RequestKind::Release => version_asked(state, &project, req.build.as_deref(), req.version.as_deref()).await?,
        RequestKind::Rollback => {
            if req.build.is_some() {
                return Err(AppError::BadRequest("a rollback request takes --to VERSION, not --build".into()));
            }
            (rollback_version(state, &project, &env, req.version.as_deref()).await?, None)
        }
    };
    guards::check_release(&project.name, &release, false)?;
    let staging = staging_of(state, &project, &env, kind).await?;
    // The order of environments (R23): a request whose staging is the
    // environment ENV comes after puts the version there itself, so it is
    // checked when it is released; any other is refused now. A request may
    // skip it (production right), its reason saying why.
    if req.skip_promotion {
        crate::promotion::check_skip(state, caller, &project, &env).await?;
    } else if staging.as_ref().map(|s| &s.name) != env.after.as_ref() {
        crate::promotion::check_gate(state, &project, &env, &release).await?;
    }
    if let Some(staging) = &staging {
        crate::access::check_deploy(state, caller, &project, staging).await?;
    }
    let initial = request::initial_state(kind, staging.is_some(), env.requires_approval);
    let new = NewRequest {
        project_id: project.id,
        env_id: env.id,
        kind,
        state: initial,
        release_id: release.id,
        build_number: build,
        reason: reason.to_string(),
        requester: caller.name.clone(),
    };
    let row = db.create_request(&new, now_ms()).await?;
    if req.skip_promotion {
        db.set_request_skip_promotion(row.id).await?;
        let text = format!("skips the promotion order (after '{}')", env.after.as_deref().unwrap_or_default());
        let note = RequestNote { actor: &caller.name, what: "skip-promotion", note: Some(&text), deployment_id: None };
        db.note_request(row.id, &note, now_ms()).await?;
    }
    tracing::info!(id = row.id, project = %project.name, env = %env.name, version = %row.version, %kind,
        state = %row.state, "release request created");
    if let Some(staging) = &staging {
        update_staging(state, caller, &row, staging).await;
    }
    announce(state, &row, None).await;
    info(state, row.id).await
}

/// What the request's state machine decides `caller`'s actions on `row`
/// (of environment `env`) from.
pub fn facts_and_actor(row: &RequestRow, env: &Environment, caller: &User) -> (RequestFacts, Actor) {
    let facts = RequestFacts {
        kind: row.kind,
        state: row.state,
        has_staging: row.kind == RequestKind::Release && env.staging.is_some(),
        needs_approval: env.requires_approval,
        self_test: env.self_test,
    };
    let actor = match () {
        _ if caller.name == row.requester => Actor::Requester,
        _ if caller.is_admin => Actor::Admin,
        _ => Actor::Other,
    };
    (facts, actor)
}

/// The actions `caller` may take on `row` now: the request's own rules and
/// the access rules (`membership` is the caller's role in its project).
/// The pages show these buttons; the server decides on each again.
pub fn actions_of(
    row: &RequestRow,
    env: &Environment,
    caller: &User,
    membership: Option<ferry_domain::Role>,
) -> Vec<RequestAction> {
    let (facts, actor) = facts_and_actor(row, env, caller);
    let may = |a: RequestAction| {
        ferry_domain::access::allowed(&caller.subject(), membership, a.right(), env.production).is_ok()
    };
    request::actions_for(&facts, actor).into_iter().filter(|a| may(*a)).collect()
}

/// Whether `row` waits for `caller` (see `ferry_domain::request::waits_for`).
pub fn waits_for(row: &RequestRow, env: &Environment, caller: &User, membership: Option<ferry_domain::Role>) -> bool {
    let (facts, actor) = facts_and_actor(row, env, caller);
    let may = |a: RequestAction| {
        ferry_domain::access::allowed(&caller.subject(), membership, a.right(), env.production).is_ok()
    };
    request::waits_for(&facts, actor, may)
}

/// Applies a user's action to a request.
pub async fn act(
    state: &AppState,
    caller: &User,
    id: i64,
    action: RequestAction,
    body: RequestActionBody,
) -> AppResult<RequestInfo> {
    let db = &state.db;
    let row = db.request(id).await?;
    let project = db.project(&row.project).await?;
    let env = db.environment(&project, &row.env).await?;
    let staging = staging_of(state, &project, &env, row.kind).await?;
    let (facts, actor) = facts_and_actor(&row, &env, caller);
    debug_assert_eq!(facts.has_staging, staging.is_some());
    let note = body.note.as_deref().map(str::trim).filter(|n| !n.is_empty());
    let to =
        request::apply(&facts, actor, action, note).map_err(|e| AppError::Conflict(format!("request {id}: {e}")))?;
    let new_release = match action {
        RequestAction::Resubmit => {
            let (release, build) =
                version_asked(state, &project, body.build.as_deref(), body.version.as_deref()).await?;
            guards::check_release(&project.name, &release, false)?;
            Some((release.id, build))
        }
        _ if body.build.is_some() || body.version.is_some() => {
            return Err(AppError::BadRequest(format!(
                "only a resubmission takes a new version; to {action} request {id}, give no --build or --version"
            )));
        }
        _ => None,
    };
    if action == RequestAction::Release {
        // Refusals that change nothing come before the request moves.
        guards::check_freeze(state, &env, false).await?;
        if !db.request_skips_promotion(id).await? {
            let release = db.release(&project, &row.version).await?;
            crate::promotion::check_gate(state, &project, &env, &release).await?;
        }
    }
    let change = RequestChange {
        from: row.state,
        to,
        action,
        actor: caller.name.clone(),
        note: note.map(str::to_string),
        release: new_release,
        deployment_id: None,
    };
    let row = db.change_request(id, &change, now_ms()).await?;
    tracing::info!(id, %action, by = %caller.name, state = %row.state, "release request changed");
    match action {
        RequestAction::Resubmit => {
            if let Some(staging) = &staging {
                update_staging(state, caller, &row, staging).await;
            }
        }
        RequestAction::Release => start_release(state, caller, &row).await?,
        _ => {}
    }
    announce(state, &row, (action == RequestAction::Approve).then_some(caller.name.as_str())).await;
    info(state, id).await
}

/// The kind of deployment a request of `kind` makes.
fn deployment_kind(kind: RequestKind) -> DeploymentKind {
    match kind {
        RequestKind::Release => DeploymentKind::Deploy,
        RequestKind::Rollback => DeploymentKind::Rollback,
    }
}

/// Starts the deployment of a request that just moved to `releasing`. If it
/// cannot start, the request fails with the reason, and the error is the
/// caller's answer.
async fn start_release(state: &AppState, caller: &User, row: &RequestRow) -> AppResult<()> {
    let mut req = CreateDeployment::of(&row.env, Some(row.version.clone()), deployment_kind(row.kind));
    if state.db.request_skips_promotion(row.id).await? {
        // Recorded on the deployment as any skip is, with the request's reason.
        // One line, within what a reason may be.
        let why: String = row.reason.lines().next().unwrap_or_default().chars().take(400).collect();
        req.skip_promotion = Some(format!("request {}: {why}", row.id));
    }
    match fleet::create_deployment_as(state, caller, &row.project, req, Authority::Approved { request: row.id }).await {
        Ok(d) => {
            let note = RequestNote { actor: SERVER, what: "deployment", note: None, deployment_id: Some(d.id) };
            state.db.note_request(row.id, &note, now_ms()).await?;
            Ok(())
        }
        Err(e) => {
            record_outcome(state, row, RequestAction::Fail, format!("not started: {e}"), None).await?;
            Err(e)
        }
    }
}

/// Deploys the request's version to its staging environment, as the
/// requester. Failing to start is recorded on the request, not returned: the
/// request stands, and its requester can resubmit to try again.
async fn update_staging(state: &AppState, caller: &User, row: &RequestRow, staging: &Environment) {
    let req = CreateDeployment::of(&staging.name, Some(row.version.clone()), DeploymentKind::Deploy);
    let started = fleet::create_deployment_as(state, caller, &row.project, req, Authority::Staging { request: row.id });
    let (text, deployment_id) = match started.await {
        Ok(d) => (format!("{} is deploying {} (deployment {})", staging.name, row.version, d.id), Some(d.id)),
        Err(e) => (format!("{} not updated: {e}; resubmit to try again", staging.name), None),
    };
    let note = RequestNote { actor: SERVER, what: "staging", note: Some(&text), deployment_id };
    if let Err(e) = state.db.note_request(row.id, &note, now_ms()).await {
        tracing::error!(request = row.id, "recording the staging update: {e}");
    }
}

/// Records what became of a releasing request's deployment (`Succeed` or
/// `Fail`), through the state machine like every change of a request. A
/// request no longer releasing is a `Conflict`.
async fn record_outcome(
    state: &AppState,
    row: &RequestRow,
    action: RequestAction,
    note: String,
    deployment_id: Option<i64>,
) -> AppResult<RequestRow> {
    // Only the kind and the state matter to the server's own actions.
    let facts =
        RequestFacts { kind: row.kind, state: row.state, has_staging: false, needs_approval: false, self_test: false };
    let to = request::apply(&facts, Actor::Server, action, Some(&note))
        .map_err(|e| AppError::Conflict(format!("request {}: {e}", row.id)))?;
    let change = RequestChange {
        from: row.state,
        to,
        action,
        actor: SERVER.into(),
        note: Some(note),
        release: None,
        deployment_id,
    };
    Ok(state.db.change_request(row.id, &change, now_ms()).await?)
}

/// Records how a request's release deployment ended, if `deployment` is one
/// and its request still waits for it. Called when a deployment ends, and by
/// the sweep; doing it twice does nothing.
pub async fn deployment_ended(state: &AppState, deployment: i64) {
    let result = async {
        let d = state.db.deployment(deployment).await?;
        let Some(id) = d.request_id else { return Ok(()) };
        let row = state.db.request(id).await?;
        if row.state != RequestState::Releasing || d.env != row.env || !d.status.is_terminal() {
            return Ok(());
        }
        let action = match d.status {
            DeploymentStatus::Succeeded => RequestAction::Succeed,
            _ => RequestAction::Fail,
        };
        let note =
            format!("deployment {} {}{}", d.id, d.status, d.reason.map(|r| format!(": {r}")).unwrap_or_default());
        match record_outcome(state, &row, action, note, Some(d.id)).await {
            // Someone else recorded it first: nothing to do.
            Err(AppError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
            Ok(row) => {
                tracing::info!(id, deployment, state = %row.state, "release request's deployment ended");
                Ok(())
            }
        }
    }
    .await;
    if let Err(e) = result {
        tracing::error!(deployment, "recording a request's deployment end: {e}");
    }
}

/// Requests left `releasing` by a server that stopped: the end of a
/// deployment it missed is recorded, and a request whose deployment never
/// started fails.
pub async fn sweep(state: &AppState) {
    let filter =
        ferry_store::RequestFilter { states: vec![RequestState::Releasing], limit: 1000, ..Default::default() };
    let rows = match state.db.requests(&filter).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!("reading releasing requests: {e}");
            return;
        }
    };
    for row in rows {
        let deployments = match state.db.request_deployments(row.id).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(request = row.id, "reading a request's deployments: {e}");
                continue;
            }
        };
        match deployments.iter().find(|d| d.env == row.env && d.created_at >= row.updated_at) {
            Some(d) if d.status.is_terminal() => deployment_ended(state, d.id).await,
            Some(_) => {}
            None if now_ms() - row.updated_at > START_GRACE_MS => {
                let note = "not started: the server stopped before its deployment was created".to_string();
                if let Err(e) = record_outcome(state, &row, RequestAction::Fail, note, None).await {
                    tracing::error!(request = row.id, "failing a request that never started: {e}");
                }
            }
            None => {}
        }
    }
}

/// Tells the project's notification rules where a request now waits;
/// `approver` is who approved it, if someone just did.
async fn announce(state: &AppState, row: &RequestRow, approver: Option<&str>) {
    let event = match row.state {
        RequestState::AwaitingApproval => REQUEST_APPROVAL_NEEDED,
        RequestState::Approved => REQUEST_APPROVED,
        _ => return,
    };
    let approved_by = approver.map(str::to_string);
    let facts = EventFacts {
        request: Some(row.id),
        env: Some(row.env.clone()),
        version: Some(row.version.clone()),
        kind: Some(row.kind.to_string()),
        status: Some(row.state.to_string()),
        reason: Some(row.reason.clone()),
        created_by: Some(row.requester.clone()),
        approved_by,
        ..EventFacts::default()
    };
    notify::emit(state, &row.project, event, Some(&row.requester), facts).await;
}

/// The release a request asks for: a build's (`latest` or a number) or a
/// version's, and the build number when asked by build.
async fn version_asked(
    state: &AppState,
    project: &Project,
    build: Option<&str>,
    version: Option<&str>,
) -> AppResult<(Release, Option<i64>)> {
    match (build, version) {
        (Some(_), Some(_)) => Err(AppError::BadRequest("give either --build or --version, not both".into())),
        (Some(which), None) => {
            let release = fleet::release_of_build(state, project, which).await?;
            let build = state.db.builds(project, 1000).await?.into_iter().find(|b| b.release_id == Some(release.id));
            Ok((release, build.map(|b| b.number)))
        }
        (None, Some(v)) => {
            ferry_domain::validate_version(v)?;
            Ok((state.db.release(project, v).await?, None))
        }
        (None, None) => Err(AppError::BadRequest("name what to release: --build N|latest or --version V".into())),
    }
}

/// The version a rollback request goes back to: the one named, or the
/// previous good one, as `ferry rollback` would choose it.
async fn rollback_version(
    state: &AppState,
    project: &Project,
    env: &Environment,
    version: Option<&str>,
) -> AppResult<Release> {
    if let Some(v) = version {
        ferry_domain::validate_version(v)?;
        return Ok(state.db.release(project, v).await?);
    }
    // Per host, as `ferry rollback` would choose; the request names the
    // version most of the environment's hosts would go back to.
    let hosts = fleet::env_hosts(state, env).await?;
    let targets: Vec<&ferry_store::Host> = hosts.iter().collect();
    let plan = fleet::rollback_plan(state, project, env, &targets, None, false).await?;
    match fleet::most_common_target(&plan) {
        Some(id) => Ok(state.db.release_by_id(id).await?),
        None => Err(AppError::Conflict(format!(
            "no host of environment '{}' has an earlier successfully deployed version to roll back to; name one \
             with --to VERSION",
            env.name
        ))),
    }
}

/// The environment a request for `env` is tested on, if any (release
/// requests only).
async fn staging_of(
    state: &AppState,
    project: &Project,
    env: &Environment,
    kind: RequestKind,
) -> AppResult<Option<Environment>> {
    match (&env.staging, kind) {
        (Some(name), RequestKind::Release) => Ok(Some(state.db.environment(project, name).await?)),
        _ => Ok(None),
    }
}

/// Who or what a request in `state` waits for, in words.
fn waiting_for(row: &RequestRow, staging: Option<&str>) -> String {
    let id = row.id;
    match row.state {
        RequestState::Testing => format!(
            "a tester to check {} on {}: ferry request pass {id} | send-back {id} --reason TEXT",
            row.version,
            staging.unwrap_or("staging")
        ),
        RequestState::SentBack => {
            format!("{} to submit a fixed version: ferry request resubmit {id} --build N", row.requester)
        }
        RequestState::AwaitingApproval => {
            format!("an approver other than {}: ferry request approve {id} | reject {id} --reason TEXT", row.requester)
        }
        RequestState::Approved => format!("{} to release it: ferry request release {id}", row.requester),
        RequestState::Releasing => "its deployment to finish".into(),
        RequestState::Failed => format!("{} to release it again or withdraw it", row.requester),
        RequestState::Rejected | RequestState::Done | RequestState::Withdrawn => "nothing: it is closed".into(),
    }
}

/// A request as the API shows it in lists: no history or deployments.
pub fn summary(row: RequestRow, staging: Option<String>) -> RequestInfo {
    let waiting = waiting_for(&row, staging.as_deref());
    RequestInfo {
        id: row.id,
        project: row.project,
        env: row.env,
        kind: row.kind,
        state: row.state,
        version: row.version,
        build: row.build_number,
        reason: row.reason,
        requester: row.requester,
        created_at: ferry_domain::rfc3339_from_millis(row.created_at),
        updated_at: ferry_domain::rfc3339_from_millis(row.updated_at),
        staging,
        waiting_for: waiting,
        history: Vec::new(),
        deployments: Vec::new(),
    }
}

/// A request with its history and deployments.
pub async fn info(state: &AppState, id: i64) -> AppResult<RequestInfo> {
    let row = state.db.request(id).await?;
    let project = state.db.project(&row.project).await?;
    let env = state.db.environment(&project, &row.env).await?;
    let staging = if row.kind == RequestKind::Release { env.staging } else { None };
    let mut info = summary(row, staging);
    info.history = state
        .db
        .request_events(id)
        .await?
        .into_iter()
        .map(|e| RequestEventInfo {
            at: ferry_domain::rfc3339_from_millis(e.at),
            actor: e.actor,
            action: e.action,
            from: e.from,
            to: e.to,
            version: e.version,
            note: e.note,
            deployment: e.deployment_id,
        })
        .collect();
    info.deployments = state.db.request_deployments(id).await?.into_iter().map(fleet::deployment_summary).collect();
    Ok(info)
}

/// Which requests to list, for [`listed`].
pub(crate) struct Listing {
    pub states: Vec<RequestState>,
    /// Only this requester's.
    pub requester: Option<String>,
    /// Only those waiting for the caller (see `ferry_domain::request::waits_for`).
    pub waiting: bool,
    pub limit: u32,
}

/// Requests of one project (by name) or of all that `user` may read, newest first,
/// each with the environment it is tested on: the API's lists and the web
/// interface's.
pub(crate) async fn listed(
    state: &AppState,
    user: &ferry_store::User,
    project: Option<&str>,
    q: &Listing,
) -> AppResult<Vec<(RequestRow, Option<String>)>> {
    let limit = q.limit;
    let project_id = match project {
        Some(name) => Some(state.db.project(name).await?.id),
        None => None,
    };
    let filter = RequestFilter {
        project_id,
        states: q.states.clone(),
        requester: q.requester.clone(),
        // Rows the caller may not see are dropped after reading.
        limit: if project_id.is_some() && !q.waiting { limit } else { 1000 },
    };
    let mut out = Vec::new();
    // Each project's role and environments, read once for all its requests.
    let mut projects: HashMap<String, (Option<ferry_domain::Role>, Vec<ferry_store::Environment>)> = HashMap::new();
    for row in state.db.requests(&filter).await? {
        if out.len() >= limit as usize {
            break;
        }
        if !projects.contains_key(&row.project) {
            let project = state.db.project(&row.project).await?;
            let membership = state.db.membership(project.id, user.id).await?;
            let envs = state.db.environments(&project).await?;
            projects.insert(row.project.clone(), (membership, envs));
        }
        let Some((membership, envs)) = projects.get(&row.project) else { continue };
        if allowed(&user.subject(), *membership, Action::ReadProject, false).is_err() {
            continue;
        }
        let Some(env) = envs.iter().find(|e| e.name == row.env) else { continue };
        if q.waiting && !waits_for(&row, env, user, *membership) {
            continue;
        }
        let staging = if row.kind == ferry_domain::RequestKind::Release { env.staging.clone() } else { None };
        out.push((row, staging));
    }
    Ok(out)
}

/// One request as stored, with its history and its deployments.
pub(crate) async fn detail(
    state: &AppState,
    id: i64,
) -> AppResult<(RequestRow, Vec<ferry_store::RequestEvent>, Vec<ferry_store::DeploymentRow>)> {
    let row = state.db.request(id).await?;
    let events = state.db.request_events(id).await?;
    let deployments = state.db.request_deployments(id).await?;
    Ok((row, events, deployments))
}

/// The project a request belongs to.
pub(crate) async fn project_of(state: &AppState, id: i64) -> AppResult<String> {
    Ok(state.db.request(id).await?.project)
}

/// A project's requests waiting for an approval, newest first, at most 200.
pub(crate) async fn awaiting_approval(state: &AppState, project: &Project) -> AppResult<Vec<RequestRow>> {
    let filter = RequestFilter {
        project_id: Some(project.id),
        states: vec![RequestState::AwaitingApproval],
        requester: None,
        limit: 200,
    };
    Ok(state.db.requests(&filter).await?)
}
