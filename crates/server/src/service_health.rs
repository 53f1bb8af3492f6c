//! What hosts say of their services after a deploy (R21): a crash loop an
//! hour later shows in `ferry status` and on the web pages with the
//! service's last stderr lines, and goes to the project's notification
//! channels once when it starts (`service.failing`) and once when it ends
//! (`service.recovered`).
//!
//! A host may be compromised: what it sends is bounded, masked like its log
//! lines, and recorded only for projects desired on it (the store checks).

use ferry_domain::notify::{EventFacts, SERVICE_FAILING, SERVICE_RECOVERED};
use ferry_domain::service::{bounded_tail, clip};
use ferry_domain::vars::SecretMask;
use ferry_proto::agent::{SERVICE_TAIL_LINES, ServiceHealth};
use ferry_store::{Host, ServiceChange, ServiceState};

use crate::{AppState, now_ms};

/// Characters kept of the reason and of each stderr line.
const MAX_CHARS: usize = 400;

/// Records what `host` reports of `project`'s service and notifies a turn.
pub async fn record(state: &AppState, host: &Host, project: &str, health: &ServiceHealth, mask: &SecretMask) {
    let service = ServiceState {
        failing: health.failing,
        reason: mask.apply(&clip(&health.reason, MAX_CHARS)),
        stderr: bounded_tail(&health.stderr, SERVICE_TAIL_LINES, MAX_CHARS).iter().map(|l| mask.apply(l)).collect(),
        since: 0,
    };
    let change = match state.db.record_service_state(host.id, project, &service, now_ms()).await {
        Ok(Some(change)) => change,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(host = %host.name, project, "recording the service's health: {e}");
            return;
        }
    };
    let (event, what) = match change {
        ServiceChange::Failing => (SERVICE_FAILING, "failing"),
        ServiceChange::Recovered => (SERVICE_RECOVERED, "recovered"),
    };
    tracing::warn!(host = %host.name, project, reason = %service.reason, "service {what}");
    let (env, version) = placement(state, host, project).await;
    let facts = EventFacts {
        host: Some(host.name.clone()),
        env,
        version,
        reason: (!service.reason.is_empty()).then(|| service.reason.clone()),
        stderr: service.failing.then(|| service.stderr.clone()),
        ..EventFacts::default()
    };
    crate::notify::emit(state, project, event, None, facts).await;
}

/// The environment and version the host runs the project for.
async fn placement(state: &AppState, host: &Host, project: &str) -> (Option<String>, Option<String>) {
    let Ok(p) = state.db.project(project).await else { return (None, None) };
    let rows = state.db.project_host_states(&p).await.unwrap_or_default();
    let Some(row) = rows.into_iter().find(|r| r.host_id == host.id) else { return (None, None) };
    let envs = state.db.environments(&p).await.unwrap_or_default();
    let env = row.desired_env_id.and_then(|id| envs.into_iter().find(|e| e.id == id)).map(|e| e.name);
    (env, row.current_version)
}
