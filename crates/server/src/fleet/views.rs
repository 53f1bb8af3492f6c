//! Deployments as the API and the pages show them.

use ferry_domain::rfc3339_from_millis;
use ferry_proto::api::{DeploymentEventInfo, DeploymentHostInfo, DeploymentInfo};
use ferry_store::DeploymentRow;

use crate::AppState;
use crate::error::AppResult;

/// A deployment with its per-host rows, as the API shows it.
pub async fn deployment_info(state: &AppState, id: i64) -> AppResult<DeploymentInfo> {
    let row = state.db.deployment(id).await?;
    let hosts = state.db.deployment_hosts(id).await?;
    let mut info = deployment_summary(row);
    info.events = state
        .db
        .deployment_events(id)
        .await?
        .into_iter()
        .map(|e| DeploymentEventInfo { at: rfc3339_from_millis(e.at), what: e.what.to_string(), code: Some(e.what) })
        .collect();
    info.hosts = hosts
        .into_iter()
        .map(|h| DeploymentHostInfo {
            host: h.host,
            batch: h.batch + 1,
            state: h.state,
            release_name: h.release_name,
            version: Some(h.version),
            from_version: h.from_version,
            started_at: h.started_at.map(rfc3339_from_millis),
            finished_at: h.finished_at.map(rfc3339_from_millis),
            error: h.error.as_ref().map(ToString::to_string),
            error_code: h.error,
            bytes_downloaded: h.bytes_downloaded,
            bytes_reused: h.bytes_reused,
        })
        .collect();
    Ok(info)
}

/// A deployment without its hosts, for lists.
pub fn deployment_summary(row: DeploymentRow) -> DeploymentInfo {
    DeploymentInfo {
        id: row.id,
        project: row.project,
        env: row.env,
        version: row.version,
        kind: row.kind,
        status: row.status,
        created_by: row.created_by,
        created_at: rfc3339_from_millis(row.created_at),
        finished_at: row.finished_at.map(rfc3339_from_millis),
        forced: row.forced,
        freeze_ignored: row.freeze_ignored,
        rollout: row.policy.describe(),
        batch_count: row.batch_count,
        current_batch: row.current_batch.map(|b| b + 1),
        hold: row.hold.as_ref().map(ToString::to_string),
        hold_code: row.hold,
        paused: row.paused,
        emergency: row.emergency,
        reason: row.reason.as_ref().map(ToString::to_string),
        reason_code: row.reason,
        request: row.request_id,
        hosts: Vec::new(),
        events: Vec::new(),
    }
}
