//! Environment locks (R19): freezes taken by hand, and the running
//! deployments that hold the lock implicitly.

use axum::Json;
use axum::extract::{Path, Query, State};
use ferry_domain::Freeze;
use ferry_domain::guards::{parse_freeze_duration, validate_reason};
use ferry_proto::api::{CreateFreeze, LockInfo};
use ferry_store::StoreError;

use crate::auth::Caller;
use crate::error::{AppError, AppResult};
use crate::{AppState, guards, now_ms};

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
    let project = state.db.project(&project).await?;
    let env = state.db.environment(&project, &env).await?;
    let reason = validate_reason(&req.reason)?;
    let duration = parse_freeze_duration(&req.duration)?;
    let now = now_ms();
    let freeze = Freeze::new(&user.name, &reason, now, duration);
    let row = match state.db.freeze_environment(&env, &freeze, now).await {
        Ok(row) => row,
        Err(StoreError::Frozen { project, env, freeze: held }) => {
            return Err(AppError::Conflict(held.already_held(&project, &env)));
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(project = %row.project, env = %row.env, owner = %row.freeze.owner, reason = %row.freeze.reason,
        until = row.freeze.until, "environment frozen");
    Ok(Json(guards::freeze_lock(&row)))
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
    let project = state.db.project(&project).await?;
    let env = state.db.environment(&project, &env).await?;
    let Some(row) = state.db.unfreeze_environment(&env, now_ms()).await? else {
        return Err(AppError::NotFound(format!("environment {}/{} is not frozen", project.name, env.name)));
    };
    tracing::info!(project = %row.project, env = %row.env, by = %user.name, owner = %row.freeze.owner,
        "freeze lifted");
    Ok(Json(guards::freeze_lock(&row)))
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
    let project = match &q.project {
        Some(name) => Some(state.db.project(name).await?),
        None => None,
    };
    let mut locks: Vec<LockInfo> =
        state.db.freezes(project.as_ref(), now_ms()).await?.iter().map(guards::freeze_lock).collect();
    locks.extend(state.db.lock_holders(project.as_ref()).await?.iter().map(guards::deployment_lock));
    locks.sort_by(|a, b| (&a.project, &a.env, a.deployment).cmp(&(&b.project, &b.env, b.deployment)));
    Ok(Json(locks))
}
