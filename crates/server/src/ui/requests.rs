//! The release-request pages (R24): the list with what waits for me, one
//! request with its history and the buttons its state allows, and the form
//! that asks for a release. Every action goes through `app::request`, as
//! the API's handlers do, under the same rules (`ui::routes`).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use ferry_domain::{RequestAction, RequestKind, RequestState};
use ferry_proto::api::{CreateRequest, RequestActionBody};
use ferry_store::RequestRow;
use ferry_web::requests::*;
use ferry_web::views::{Nav, PickRelease, Status};

use super::pages::{deployment_item, when};
use super::{PageError, Viewer, html};
use crate::app::request::{Listing, listed};
use crate::{AppState, app};

type PageResult = Result<Response, PageError>;

pub(super) fn item(row: &RequestRow) -> RequestItem {
    RequestItem {
        id: row.id,
        project: row.project.clone(),
        env: row.env.clone(),
        kind: row.kind.to_string(),
        version: row.version.clone(),
        state: Status::new(row.state.as_str()),
        requester: row.requester.clone(),
        reason: row.reason.clone(),
        updated: when(row.updated_at),
    }
}

/// Requests waiting for the viewer: to test or to approve, or (their own)
/// for a new version or to be released.
pub(super) async fn waiting_for_me(state: &AppState, v: &Viewer) -> Result<Vec<RequestItem>, PageError> {
    let q = Listing { states: awaited_states(), requester: None, waiting: true, limit: 50 };
    Ok(listed(state, &v.user, None, &q).await?.iter().map(|(r, _)| item(r)).collect())
}

/// The states in which a request waits for someone.
fn awaited_states() -> Vec<RequestState> {
    RequestState::ALL.into_iter().filter(|s| !ferry_domain::request::awaited(*s).is_empty()).collect()
}

/// How many requests wait for `user`: the count beside the Requests menu.
pub(super) async fn waiting_count(state: &AppState, user: &ferry_store::User) -> Result<usize, PageError> {
    let q = Listing { states: awaited_states(), requester: None, waiting: true, limit: 1000 };
    Ok(listed(state, user, None, &q).await?.len())
}

/// `GET /requests`: waiting for me, mine, and every open request I may see.
pub async fn requests(State(state): State<AppState>, v: Viewer) -> PageResult {
    let list = |states: Vec<RequestState>, requester: Option<String>, waiting: bool| Listing {
        states,
        requester,
        waiting,
        limit: 200,
    };
    let open: Vec<RequestState> = RequestState::ALL.into_iter().filter(|s| !s.is_final()).collect();
    let items = |rows: Vec<(RequestRow, Option<String>)>| rows.iter().map(|(r, _)| item(r)).collect::<Vec<_>>();
    let waiting = waiting_for_me(&state, &v).await?;
    let mine = items(listed(&state, &v.user, None, &list(Vec::new(), Some(v.user.name.clone()), false)).await?);
    let open = items(listed(&state, &v.user, None, &list(open, None, false)).await?);
    html(&RequestsPage { chrome: v.chrome(v.lang.text().nav_requests, Nav::Requests), waiting, mine, open })
}

/// The catalogue's words for whom a request in `state` waits.
fn waiting_for(t: &'static ferry_web::Text, state: RequestState) -> &'static str {
    match state {
        RequestState::Testing => t.wait_testing,
        RequestState::SentBack => t.wait_sent_back,
        RequestState::AwaitingApproval => t.wait_awaiting_approval,
        RequestState::Approved => t.wait_approved,
        RequestState::Releasing => t.wait_releasing,
        RequestState::Failed => t.wait_failed,
        RequestState::Rejected | RequestState::Done | RequestState::Withdrawn => t.wait_closed,
    }
}

/// The buttons worth showing: the actions the request's state machine and
/// the access rules leave the viewer (`crate::app::request::actions_of`). The
/// server decides on each again when it is pressed.
fn buttons(actions: &[RequestAction]) -> RequestButtons {
    let has = |a: RequestAction| actions.contains(&a);
    RequestButtons {
        pass: has(RequestAction::Pass),
        send_back: has(RequestAction::SendBack),
        resubmit: has(RequestAction::Resubmit),
        approve: has(RequestAction::Approve),
        reject: has(RequestAction::Reject),
        release: has(RequestAction::Release),
        withdraw: has(RequestAction::Withdraw),
    }
}

/// The project's releases newest first, for choosing a version.
async fn releases(
    state: &AppState,
    project: &ferry_store::Project,
    chosen: &str,
) -> Result<Vec<PickRelease>, PageError> {
    Ok(app::release::rows(state, project)
        .await?
        .into_iter()
        .map(|r| PickRelease {
            label: format!("{} · {}", r.version, r.branch),
            selected: r.version == chosen,
            bad: r.bad.is_some(),
            version: r.version,
        })
        .collect())
}

/// `GET /requests/{id}`.
pub async fn request(State(state): State<AppState>, v: Viewer, Path(id): Path<i64>) -> PageResult {
    let (row, events, deployments) = app::request::detail(&state, id).await?;
    let project = app::project::get(&state, &row.project).await?;
    let env = app::environment::get(&state, &project, &row.env).await?;
    let membership = app::project::role_of(&state, &project, &v.user).await?;
    let history = events
        .into_iter()
        .map(|e| RequestEventView {
            at: when(e.at),
            actor: e.actor,
            action: e.action,
            from: e.from.filter(|f| *f != e.to).map(|f| f.as_str().to_string()),
            to: e.to.as_str().to_string(),
            version: e.version.unwrap_or_default(),
            note: e.note.unwrap_or_default(),
            deployment: e.deployment_id,
        })
        .collect();
    let deployments = deployments.iter().map(deployment_item).collect();
    let t = v.lang.text();
    let page = RequestPage {
        chrome: v.chrome(format!("{} #{id}", t.request), Nav::Requests),
        item: item(&row),
        staging: if row.kind == RequestKind::Release { env.staging.clone().unwrap_or_default() } else { String::new() },
        waiting_for: waiting_for(t, row.state),
        history,
        deployments,
        buttons: buttons(&crate::app::request::actions_of(&row, &env, &v.user, membership)),
        releases: releases(&state, &project, &row.version).await?,
    };
    html(&page)
}

#[derive(serde::Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    version: Option<String>,
}

async fn act(state: AppState, v: Viewer, id: i64, action: RequestAction, f: ActionForm) -> PageResult {
    let body = RequestActionBody { note: f.note, build: None, version: f.version.filter(|s| !s.trim().is_empty()) };
    crate::app::request::act(&state, &v.user, id, action, body).await?;
    Ok(Redirect::to(&format!("/requests/{id}")).into_response())
}

/// One handler per action, so that the route table gives each its rule.
macro_rules! action_form {
    ($(#[$doc:meta] $name:ident => $action:ident),+ $(,)?) => {$(
        #[$doc]
        pub async fn $name(
            State(state): State<AppState>,
            v: Viewer,
            Path(id): Path<i64>,
            axum::Form(f): axum::Form<ActionForm>,
        ) -> PageResult {
            act(state, v, id, RequestAction::$action, f).await
        }
    )+};
}

action_form! {
    /// `POST /requests/{id}/pass` (testers).
    pass => Pass,
    /// `POST /requests/{id}/send-back` (testers).
    send_back => SendBack,
    /// `POST /requests/{id}/approve` (approvers).
    approve => Approve,
    /// `POST /requests/{id}/reject` (approvers).
    reject => Reject,
    /// `POST /requests/{id}/resubmit` (the requester).
    resubmit => Resubmit,
    /// `POST /requests/{id}/release` (the requester).
    release => Release,
    /// `POST /requests/{id}/withdraw` (the requester).
    withdraw => Withdraw,
}

/// `GET /projects/{project}/requests/new`: the form asking for a release or
/// a rollback.
pub async fn new_request(State(state): State<AppState>, v: Viewer, Path(name): Path<String>) -> PageResult {
    let project = app::project::get(&state, &name).await?;
    let envs = app::environment::rows(&state, &project).await?;
    // Environments that require an approval first: that is what requests are for.
    let mut envs: Vec<(String, bool, bool)> =
        envs.into_iter().map(|e| (e.name, e.requires_approval, e.production)).collect();
    envs.sort_by_key(|(_, approval, _)| !approval);
    let page = NewRequestPage {
        chrome: v.chrome(format!("{} · {}", project.name, v.lang.text().request_release), Nav::Requests),
        releases: releases(&state, &project, "").await?,
        envs,
        project: project.name,
    };
    html(&page)
}

#[derive(serde::Deserialize)]
pub struct NewRequestForm {
    env: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    rollback: Option<String>,
    #[serde(default)]
    to: Option<String>,
    reason: String,
}

/// `POST /projects/{project}/requests`.
pub async fn create_request(
    State(state): State<AppState>,
    v: Viewer,
    Path(project): Path<String>,
    axum::Form(f): axum::Form<NewRequestForm>,
) -> PageResult {
    let rollback = f.rollback.is_some();
    let version = if rollback { f.to } else { f.version };
    let req = CreateRequest {
        env: f.env,
        build: None,
        version: version.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()),
        rollback,
        reason: f.reason,
        skip_promotion: false,
    };
    let created = crate::app::request::create(&state, &v.user, &project, req).await?;
    Ok(Redirect::to(&format!("/requests/{}", created.id)).into_response())
}
