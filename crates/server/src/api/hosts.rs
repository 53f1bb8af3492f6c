//! The fleet: every enrolled host.

use axum::Json;
use axum::extract::{Path, State};
use ferry_proto::api::{CreateJoinToken, HostInfo, JoinTokenInfo, SetHostTags};

use crate::AppState;
use crate::app::host;
use crate::auth::Caller;
use crate::error::AppResult;

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
    Ok(Json(host::set_tags(&state, &name, req).await?))
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
    host::remove(&state, &caller, &name).await?;
    Ok(Json(serde_json::json!({ "removed": name })))
}

#[utoipa::path(
    get,
    path = "/api/v1/hosts",
    tag = "hosts",
    responses((status = 200, body = Vec<HostInfo>)),
)]
pub async fn list(State(state): State<AppState>, _caller: Caller) -> AppResult<Json<Vec<HostInfo>>> {
    Ok(Json(host::list(&state).await?))
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
    Ok(Json(host::create_join_token(&state, &caller, req).await?))
}

/// `GET /api/v1/join-tokens`.
#[utoipa::path(
    get,
    path = "/api/v1/join-tokens",
    tag = "hosts",
    responses((status = 200, body = Vec<JoinTokenInfo>)),
)]
pub async fn join_tokens(State(state): State<AppState>, _caller: Caller) -> AppResult<Json<Vec<JoinTokenInfo>>> {
    Ok(Json(host::join_tokens(&state).await?))
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
    host::revoke_join_token(&state, id).await?;
    Ok(Json(serde_json::json!({ "revoked": id })))
}
