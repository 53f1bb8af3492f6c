//! The fleet: every enrolled host.

use axum::Json;
use axum::extract::{Path, State};
use ferry_domain::{Tags, rfc3339_from_millis};
use ferry_proto::api::{HostInfo, SetHostTags};
use ferry_store::Host;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::{AppState, fleet, lb};

fn host_info(h: Host) -> HostInfo {
    HostInfo {
        name: h.name,
        tags: h.tags,
        online: h.online,
        last_seen: h.last_seen_at.map(rfc3339_from_millis),
        agent_version: h.agent_version,
        enrolled_at: rfc3339_from_millis(h.enrolled_at),
        address: h.address,
        announced_tags: h.announced_tags,
    }
}

/// `PUT /api/v1/hosts/{name}/tags`: an administrator re-tags a host. Tags
/// decide which projects' releases and secrets a host receives, so a host
/// never sets its own: its agent's `--tags` count only at enrolment.
pub async fn set_tags(
    State(state): State<AppState>,
    _caller: Caller,
    Path(name): Path<String>,
    Json(req): Json<SetHostTags>,
) -> ApiResult<Json<HostInfo>> {
    let tags = Tags::parse(&req.tags).map_err(|e| ApiError::BadRequest(format!("tags: {e}")))?;
    let host = state.db.set_host_tags(&name, &tags).await?;
    tracing::info!(host = %host.name, tags = %host.tags, "host re-tagged");
    // Environments it now belongs to give it their release; balancers in
    // front of them learn of it; its agent hears at once.
    fleet::adopt(&state, host.id, &host.tags).await?;
    lb::backend_connected(&state, &host.tags).await?;
    state.hub.wake([host.id]);
    Ok(Json(host_info(host)))
}

pub async fn list(State(state): State<AppState>, _caller: Caller) -> ApiResult<Json<Vec<HostInfo>>> {
    Ok(Json(state.db.hosts().await?.into_iter().map(host_info).collect()))
}
