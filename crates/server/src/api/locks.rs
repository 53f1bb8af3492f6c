//! Environment locks (R19): freezes taken by hand, and the running
//! deployments that hold the lock implicitly.

use axum::Json;
use axum::extract::{Path, Query, State};
use ferry_proto::api::{CreateFreeze, LockInfo};

use crate::AppState;
use crate::app::lock;
use crate::auth::Caller;
use crate::error::AppResult;

/// `POST /api/v1/projects/{project}/environments/{env}/freeze`: no
/// deployment starts in the environment until the freeze ends by itself or is
/// lifted. A freeze already in force is not replaced: whoever took it is
/// asked first.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/environments/{env}/freeze",
    tag = "locks",
    params(("project" = String, Path), ("env" = String, Path)),
    request_body = CreateFreeze,
    responses((status = 200, body = LockInfo)),
)]
pub async fn freeze(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path((project, env)): Path<(String, String)>,
    Json(req): Json<CreateFreeze>,
) -> AppResult<Json<LockInfo>> {
    Ok(Json(lock::freeze(&state, &user, &project, &env, req).await?))
}

/// `DELETE /api/v1/projects/{project}/environments/{env}/freeze`: lifts the
/// freeze in force. None in force is an error, so that a typo in a name does
/// not pass for success.
#[utoipa::path(
    delete,
    path = "/api/v1/projects/{project}/environments/{env}/freeze",
    tag = "locks",
    params(("project" = String, Path), ("env" = String, Path)),
    responses((status = 200, body = LockInfo)),
)]
pub async fn unfreeze(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path((project, env)): Path<(String, String)>,
) -> AppResult<Json<LockInfo>> {
    Ok(Json(lock::unfreeze(&state, &user, &project, &env).await?))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LocksQuery {
    /// Only this project's locks.
    project: Option<String>,
}

/// `GET /api/v1/locks[?project=P]`: every held lock: freezes in force and
/// running deployments, by project and environment.
#[utoipa::path(
    get,
    path = "/api/v1/locks",
    tag = "locks",
    params(LocksQuery),
    responses((status = 200, body = Vec<LockInfo>)),
)]
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
    Query(q): Query<LocksQuery>,
) -> AppResult<Json<Vec<LockInfo>>> {
    Ok(Json(lock::list(&state, q.project.as_deref()).await?))
}
