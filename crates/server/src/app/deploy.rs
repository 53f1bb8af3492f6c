//! Deployments (R4, R9-R11, R13, R19, R23): starting one, promoting a
//! version to the next environment, an operator's pause, resume, cancel or
//! promote, a retry, and reading deployments and their logs. The API and the web pages both come through here;
//! the planning itself is `fleet`'s, the orchestration `rollout`'s.

use ferry_domain::rfc3339_from_millis;
use ferry_domain::{DeploymentKind, HostDeployState, validate_version};
use ferry_proto::api::{
    CreateDeployment, DeploymentInfo, DeploymentLog, DeploymentLogLineInfo, DeploymentPlan, Promote,
};
use std::collections::HashMap;

use ferry_domain::rollback::HostRollback;
use ferry_domain::rollout::Step;
use ferry_store::{
    DeploymentEvent, DeploymentHostRow, DeploymentLogLine, DeploymentRow, Environment, Host, Project, RolloutControl,
    User,
};

use crate::error::{AppError, AppResult};
use crate::{AppState, fleet};

/// Starts a deployment (or a rollback) of a project as `by` asked.
pub(crate) async fn create(
    state: &AppState,
    by: &User,
    project: &str,
    req: CreateDeployment,
) -> AppResult<DeploymentInfo> {
    if let Some(v) = &req.version {
        validate_version(v)?;
    }
    fleet::create_deployment(state, by, project, req).await
}

/// One deployment, with its hosts and what the orchestrator waits for.
pub(crate) async fn show(state: &AppState, id: i64) -> AppResult<DeploymentInfo> {
    fleet::deployment_info(state, id).await
}

/// What a deployment would do, without doing it (a dry run: `crate::plan`).
pub(crate) async fn plan(
    state: &AppState,
    by: &User,
    project: &str,
    req: &CreateDeployment,
) -> AppResult<DeploymentPlan> {
    if let Some(v) = &req.version {
        validate_version(v)?;
    }
    crate::plan::dry_run(state, by, project, req).await
}

/// Deploys what runs in one environment to the one after it (R23):
/// `ferry promote P --from A --to B` deploys the version every host of `A`
/// runs to `B`, as a deploy by the caller (so with `B`'s rollout, approval,
/// freezes and order).
pub(crate) async fn promote(state: &AppState, by: &User, project: &str, req: Promote) -> AppResult<DeploymentInfo> {
    let project = state.db.project(project).await?;
    let (from, to) = (req.from.trim(), req.to.trim());
    if from == to {
        return Err(AppError::BadRequest(format!(
            "--from and --to both name '{from}': promote to another environment"
        )));
    }
    let from = state.db.environment(&project, from).await?;
    // Named before anything is deployed, so a typo changes nothing.
    let to = state.db.environment(&project, to).await?;
    let version = crate::promotion::version_to_promote(state, &project, &from, &to).await?;
    let deploy = CreateDeployment::of(&to.name, Some(version), DeploymentKind::Deploy);
    fleet::create_deployment(state, by, &project.name, deploy).await
}

/// An operator's `pause`, `resume`, `cancel` or `promote` of a running
/// deployment; the orchestrator acts on it at once.
pub(crate) async fn control(state: &AppState, id: i64, action: &str) -> AppResult<DeploymentInfo> {
    let control = match action {
        "pause" => RolloutControl::Pause,
        "resume" => RolloutControl::Resume,
        "cancel" => RolloutControl::Cancel,
        "promote" => RolloutControl::Promote,
        other => {
            return Err(AppError::NotFound(format!(
                "no action '{other}' on a deployment; use pause, resume, cancel or promote"
            )));
        }
    };
    state.db.control_deployment(id, control, crate::now_ms()).await?;
    crate::rollout::drive(state, id).await?;
    fleet::deployment_info(state, id).await
}

/// The same release again, to the hosts that did not succeed
/// (`failed_only`) or to all of an ended deployment's hosts.
pub(crate) async fn retry(state: &AppState, by: &User, id: i64, failed_only: bool) -> AppResult<DeploymentInfo> {
    let d = state.db.deployment(id).await?;
    if !d.status.is_terminal() {
        return Err(AppError::Conflict(format!("deployment {id} is still running; it can be retried once it ends")));
    }
    let hosts: Vec<String> = state
        .db
        .deployment_hosts(id)
        .await?
        .into_iter()
        .filter(|h| !failed_only || h.state != HostDeployState::Succeeded)
        .map(|h| h.host)
        .collect();
    if hosts.is_empty() {
        return Err(AppError::Conflict(format!("every host of deployment {id} succeeded; nothing to retry")));
    }
    let again = CreateDeployment {
        hosts: Some(hosts),
        // A retry carries on the original decision to deploy a release
        // marked bad; a release marked since is refused as usual.
        force: d.forced,
        ..CreateDeployment::of(d.env, Some(d.version), d.kind)
    };
    fleet::create_deployment(state, by, &d.project, again).await
}

/// A project's deployments, newest first; a deleted project's stay
/// readable by its name.
pub(crate) async fn list(state: &AppState, project: &str, limit: u32) -> AppResult<Vec<DeploymentInfo>> {
    Ok(rows(state, project, limit).await?.into_iter().map(fleet::deployment_summary).collect())
}

/// A project's deployments as stored, newest first; a deleted project's
/// stay readable by its name.
pub(crate) async fn rows(state: &AppState, project: &str, limit: u32) -> AppResult<Vec<DeploymentRow>> {
    let project = state.db.project_including_deleted(project).await?;
    Ok(state.db.deployments(&project, limit).await?)
}

/// One deployment as stored, with its hosts and its history.
pub(crate) async fn detail(
    state: &AppState,
    id: i64,
) -> AppResult<(DeploymentRow, Vec<DeploymentHostRow>, Vec<DeploymentEvent>)> {
    let row = state.db.deployment(id).await?;
    let hosts = state.db.deployment_hosts(id).await?;
    let events = state.db.deployment_events(id).await?;
    Ok((row, hosts, events))
}

/// One deployment as stored.
pub(crate) async fn row(state: &AppState, id: i64) -> AppResult<DeploymentRow> {
    Ok(state.db.deployment(id).await?)
}

/// What the orchestrator would do next with a running deployment, without
/// doing it; `None` once it has ended.
pub(crate) async fn next_step(state: &AppState, id: i64) -> AppResult<Option<Step>> {
    Ok(state.db.peek_deployment(id, crate::now_ms()).await?.map(|(step, _)| step))
}

/// Up to `limit` lines of a deployment's log after `after`, of one host or
/// all, as stored.
pub(crate) async fn log_rows(
    state: &AppState,
    id: i64,
    host: Option<&str>,
    after: i64,
    limit: u32,
) -> AppResult<Vec<DeploymentLogLine>> {
    Ok(state.db.deployment_log(id, host, after, limit).await?)
}

/// Where a rollback of an environment would take each of its hosts now, as
/// `ferry rollback` would do it: each host with its outcome, and the
/// versions needed to name them (of the project's releases, and what each
/// host runs).
pub(crate) async fn rollback_preview(
    state: &AppState,
    project: &Project,
    env: &Environment,
    emergency: bool,
) -> AppResult<RollbackPreview> {
    let hosts = fleet::env_hosts(state, env).await?;
    let refs: Vec<&Host> = hosts.iter().collect();
    let outcomes = fleet::rollback_plan(state, project, env, &refs, None, emergency).await?;
    let versions = state.db.releases(project).await?.into_iter().map(|r| (r.id, r.version)).collect();
    let running = state
        .db
        .project_host_states(project)
        .await?
        .into_iter()
        .filter_map(|s| Some((s.host_id, s.current_version?)))
        .collect();
    Ok(RollbackPreview { hosts: hosts.into_iter().zip(outcomes).collect(), versions, running })
}

/// What [`rollback_preview`] found.
pub(crate) struct RollbackPreview {
    /// Each host of the environment with where the rollback takes it.
    pub hosts: Vec<(Host, HostRollback<i64>)>,
    /// Release id -> version, of the project's releases.
    pub versions: HashMap<i64, String>,
    /// Host id -> the version it runs now.
    pub running: HashMap<i64, String>,
}

/// One page of a deployment's log, oldest first, of one host or all. The
/// status is read before the lines, so that "ended" means every line is in.
pub(crate) async fn log(
    state: &AppState,
    id: i64,
    host: Option<&str>,
    after: i64,
    limit: u32,
) -> AppResult<DeploymentLog> {
    // The status before the lines, so that "ended" means every line is in.
    let deployment = row(state, id).await?;
    if let Some(host) = host
        && !state.db.deployment_hosts(id).await?.iter().any(|h| h.host == host)
    {
        return Err(AppError::NotFound(format!("host '{host}' is not a target of deployment {id}")));
    }
    let lines = log_rows(state, id, host, after, limit).await?;
    Ok(DeploymentLog {
        deployment: id,
        status: deployment.status,
        lines: lines
            .into_iter()
            .map(|l| DeploymentLogLineInfo {
                host: l.host,
                seq: l.seq,
                at: rfc3339_from_millis(l.at),
                stream: l.stream,
                line: l.line,
            })
            .collect(),
    })
}
