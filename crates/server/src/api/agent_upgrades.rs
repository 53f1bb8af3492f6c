//! Agent binaries and agent upgrades (administrators). The work is
//! `app::agent_upgrade`'s; serving a binary to an agent is
//! `crate::agent_upgrade::download`.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use ferry_proto::api::{AgentBinaryInfo, AgentUpgradeInfo, SetAgentUpgrade};

use crate::AppState;
use crate::app::agent_upgrade;
use crate::auth::Caller;
use crate::error::AppResult;

/// The query of an upload.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// The label the binary is kept under, e.g. 0.2.0.
    version: String,
}

/// `POST /api/v1/agent-binaries?version=V`: the body is the binary.
#[utoipa::path(
    post,
    path = "/api/v1/agent-binaries",
    tag = "agent upgrades",
    params(UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The agent binary"),
    responses((status = 200, body = AgentBinaryInfo)),
)]
pub async fn upload(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(q): Query<UploadQuery>,
    body: Body,
) -> AppResult<Json<AgentBinaryInfo>> {
    if let Err(refusal) = agent_upgrade::check_new_version(&state, &q.version).await {
        // Read the body first, so that the client reads the refusal.
        crate::access::linger(body).await;
        return Err(refusal);
    }
    Ok(Json(agent_upgrade::upload(&state, &caller, &q.version, body.into_data_stream()).await?))
}

/// `GET /api/v1/agent-binaries`.
#[utoipa::path(
    get,
    path = "/api/v1/agent-binaries",
    tag = "agent upgrades",
    responses((status = 200, body = Vec<AgentBinaryInfo>)),
)]
pub async fn list(State(state): State<AppState>, _caller: Caller) -> AppResult<Json<Vec<AgentBinaryInfo>>> {
    Ok(Json(agent_upgrade::list(&state).await?))
}

/// `POST /api/v1/projects/{project}/environments/{env}/agent-upgrade`:
/// upgrades the environment's agents to an uploaded binary, with the
/// environment's rollout strategy.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/environments/{env}/agent-upgrade",
    tag = "agent upgrades",
    params(("project" = String, Path), ("env" = String, Path)),
    request_body = SetAgentUpgrade,
    responses((status = 200, body = AgentUpgradeInfo)),
)]
pub async fn set(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((project, env)): Path<(String, String)>,
    Json(req): Json<SetAgentUpgrade>,
) -> AppResult<Json<AgentUpgradeInfo>> {
    Ok(Json(agent_upgrade::set(&state, &caller, &project, &env, req).await?))
}

/// `GET /api/v1/projects/{project}/environments/{env}/agent-upgrade`: the
/// environment's newest agent upgrade.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{project}/environments/{env}/agent-upgrade",
    tag = "agent upgrades",
    params(("project" = String, Path), ("env" = String, Path)),
    responses((status = 200, body = AgentUpgradeInfo)),
)]
pub async fn status(
    State(state): State<AppState>,
    _caller: Caller,
    Path((project, env)): Path<(String, String)>,
) -> AppResult<Json<AgentUpgradeInfo>> {
    Ok(Json(agent_upgrade::status(&state, &project, &env).await?))
}
