//! The fleet: every enrolled host.

use axum::Json;
use axum::extract::{Path, State};
use ferry_domain::{Tags, rfc3339_from_millis};
use ferry_proto::api::{CreateJoinToken, HostInfo, JoinTokenInfo, SetHostTags};
use ferry_store::{Host, JoinToken};

use crate::auth::{self, Caller};
use crate::error::{AppError, AppResult};
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
        agent_binary: h.agent_binary,
        agent_digest: h.agent_digest,
    }
}

/// `PUT /api/v1/hosts/{name}/tags`: an administrator re-tags a host. Tags
/// decide which projects' releases and secrets a host receives, so a host
/// never sets its own: its agent's `--tags` count only at enrolment.
#[utoipa::path(
    post,
    path = "/api/v1/hosts/{name}/tags",
    tag = "hosts",
    params(("name" = String, Path)),
    request_body = SetHostTags,
    responses((status = 200, body = HostInfo)),
)]
pub async fn set_tags(
    State(state): State<AppState>,
    _caller: Caller,
    Path(name): Path<String>,
    Json(req): Json<SetHostTags>,
) -> AppResult<Json<HostInfo>> {
    let tags = Tags::parse(&req.tags).map_err(|e| AppError::BadRequest(format!("tags: {e}")))?;
    let host = state.db.set_host_tags(&name, &tags).await?;
    tracing::info!(host = %host.name, tags = %host.tags, "host re-tagged");
    // Environments it now belongs to give it their release; balancers in
    // front of them learn of it; its agent hears at once.
    fleet::adopt(&state, host.id, &host.tags).await?;
    lb::backend_connected(&state, &host.tags).await?;
    state.hub.wake([host.id]);
    Ok(Json(host_info(host)))
}

/// `DELETE /api/v1/hosts/{name}`: an administrator removes a host (wiped,
/// replaced, gone). Its row is retired, not deleted, so the deployments and
/// logs that name it stay readable (as `NAME~ID`); its agent's credential is
/// refused from now on, its open connection closed, and a new host may
/// enrol under the name. Variables set for the name stay and reach the
/// next host of that name.
#[utoipa::path(
    delete,
    path = "/api/v1/hosts/{name}",
    tag = "hosts",
    params(("name" = String, Path)),
    responses((status = 200, body = Object)),
)]
pub async fn remove(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> AppResult<Json<serde_json::Value>> {
    let id = state.db.retire_host(&name, crate::now_ms()).await?;
    state.hub.disconnect(id);
    tracing::info!(host = %name, by = %caller.name, "host removed");
    Ok(Json(serde_json::json!({ "removed": name })))
}

#[utoipa::path(
    get,
    path = "/api/v1/hosts",
    tag = "hosts",
    responses((status = 200, body = Vec<HostInfo>)),
)]
pub async fn list(State(state): State<AppState>, _caller: Caller) -> AppResult<Json<Vec<HostInfo>>> {
    Ok(Json(state.db.hosts().await?.into_iter().map(host_info).collect()))
}

fn join_token_info(t: JoinToken, token: Option<String>) -> JoinTokenInfo {
    JoinTokenInfo {
        id: t.id,
        tags: t.tags,
        created_by: t.created_by,
        created_at: rfc3339_from_millis(t.created_at),
        revoked_at: t.revoked_at.map(rfc3339_from_millis),
        token,
    }
}

/// `POST /api/v1/join-tokens`: a join token whose hosts may only have (some
/// of) these tags, for handing to whoever sets up hosts of one kind without
/// giving them the server's unlimited `join.token`.
#[utoipa::path(
    post,
    path = "/api/v1/join-tokens",
    tag = "hosts",
    request_body = CreateJoinToken,
    responses((status = 200, body = JoinTokenInfo)),
)]
pub async fn create_join_token(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Json(req): Json<CreateJoinToken>,
) -> AppResult<Json<JoinTokenInfo>> {
    let tags = Tags::parse(&req.tags).map_err(|e| AppError::BadRequest(format!("--tags: {e}")))?;
    if tags.0.is_empty() {
        return Err(AppError::BadRequest("--tags: a limited join token needs at least one key=value".into()));
    }
    let token = auth::new_token(auth::JOIN_TOKEN_PREFIX);
    let row = state.db.create_join_token(&auth::token_hash(&token), &tags, &caller.name, crate::now_ms()).await?;
    Ok(Json(join_token_info(row, Some(token))))
}

/// `GET /api/v1/join-tokens`.
#[utoipa::path(
    get,
    path = "/api/v1/join-tokens",
    tag = "hosts",
    responses((status = 200, body = Vec<JoinTokenInfo>)),
)]
pub async fn join_tokens(State(state): State<AppState>, _caller: Caller) -> AppResult<Json<Vec<JoinTokenInfo>>> {
    Ok(Json(state.db.join_tokens().await?.into_iter().map(|t| join_token_info(t, None)).collect()))
}

/// `DELETE /api/v1/join-tokens/{id}`.
#[utoipa::path(
    delete,
    path = "/api/v1/join-tokens/{id}",
    tag = "hosts",
    params(("id" = i64, Path)),
    responses((status = 200, body = Object)),
)]
pub async fn revoke_join_token(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<i64>,
) -> AppResult<Json<serde_json::Value>> {
    state.db.revoke_join_token(id, crate::now_ms()).await?;
    Ok(Json(serde_json::json!({ "revoked": id })))
}
