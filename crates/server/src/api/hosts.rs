//! The fleet: every enrolled host.

use axum::Json;
use axum::extract::State;
use ferry_domain::rfc3339_from_millis;
use ferry_proto::api::HostInfo;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;

pub async fn list(State(state): State<AppState>, _caller: Caller) -> ApiResult<Json<Vec<HostInfo>>> {
    Ok(Json(
        state
            .db
            .hosts()
            .await?
            .into_iter()
            .map(|h| HostInfo {
                name: h.name,
                tags: h.tags,
                online: h.online,
                last_seen: h.last_seen_at.map(rfc3339_from_millis),
                agent_version: h.agent_version,
                enrolled_at: rfc3339_from_millis(h.enrolled_at),
                address: h.address,
            })
            .collect(),
    ))
}
