//! Deployments and rollbacks (R4, R9-R11, R19), and their per-host logs.

use axum::Json;
use axum::extract::{Path, Query, State};
use ferry_proto::api::{CreateDeployment, DeploymentInfo, DeploymentLog, DeploymentPlan, RetryDeployment};

use super::ListQuery;
use crate::AppState;
use crate::app::deploy;
use crate::auth::Caller;
use crate::error::AppResult;

#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/deployments",
    tag = "deployments",
    params(("project" = String, Path)),
    request_body = CreateDeployment,
    responses((status = 200, body = DeploymentInfo)),
)]
pub async fn create(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(project): Path<String>,
    Json(req): Json<CreateDeployment>,
) -> AppResult<Json<DeploymentInfo>> {
    Ok(Json(deploy::create(&state, &user, &project, req).await?))
}

/// `POST /api/v1/projects/{project}/deployments/plan`: what `create` would
/// do with the same body, recording nothing (a dry run), or its refusal.
///
/// A route of its own rather than a `dry_run` flag in the body: a server
/// that did not know the flag would ignore it (unknown fields are) and
/// deploy for real; this route cannot be mistaken for a deployment, and its
/// answer is a plan, not a deployment.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/deployments/plan",
    tag = "deployments",
    params(("project" = String, Path)),
    request_body = CreateDeployment,
    responses((status = 200, body = ferry_proto::api::DeploymentPlan)),
)]
pub async fn plan(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(project): Path<String>,
    Json(req): Json<CreateDeployment>,
) -> AppResult<Json<DeploymentPlan>> {
    Ok(Json(deploy::plan(&state, &user, &project, &req).await?))
}

/// `POST /api/v1/projects/{project}/promote` (R23).
#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/promote",
    tag = "deployments",
    params(("project" = String, Path)),
    request_body = ferry_proto::api::Promote,
    responses((status = 200, body = DeploymentInfo)),
)]
pub async fn promote(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(project): Path<String>,
    Json(req): Json<ferry_proto::api::Promote>,
) -> AppResult<Json<DeploymentInfo>> {
    Ok(Json(deploy::promote(&state, &user, &project, req).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/projects/{project}/deployments",
    tag = "deployments",
    params(("project" = String, Path), ListQuery),
    responses((status = 200, body = Vec<DeploymentInfo>)),
)]
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
    Path(project): Path<String>,
    Query(q): Query<ListQuery>,
) -> AppResult<Json<Vec<DeploymentInfo>>> {
    Ok(Json(deploy::list(&state, &project, q.limit()).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/deployments/{id}",
    tag = "deployments",
    params(("id" = i64, Path)),
    responses((status = 200, body = DeploymentInfo)),
)]
pub async fn show(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<i64>,
) -> AppResult<Json<DeploymentInfo>> {
    Ok(Json(deploy::show(&state, id).await?))
}

/// `POST /api/v1/deployments/{id}/{pause|resume|cancel|promote}`.
#[utoipa::path(
    post,
    path = "/api/v1/deployments/{id}/{action}",
    tag = "deployments",
    params(("id" = i64, Path), ("action" = String, Path, description = "pause, resume, cancel or promote")),
    responses((status = 200, body = DeploymentInfo)),
)]
pub async fn control(
    State(state): State<AppState>,
    _caller: Caller,
    Path((id, action)): Path<(i64, String)>,
) -> AppResult<Json<DeploymentInfo>> {
    Ok(Json(deploy::control(&state, id, &action).await?))
}

/// `POST /api/v1/deployments/{id}/retry`: the same release again, to the
/// hosts that did not succeed (`failed_only`) or to all of its hosts.
#[utoipa::path(
    post,
    path = "/api/v1/deployments/{id}/retry",
    tag = "deployments",
    params(("id" = i64, Path)),
    request_body = RetryDeployment,
    responses((status = 200, body = DeploymentInfo)),
)]
pub async fn retry(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(id): Path<i64>,
    Json(req): Json<RetryDeployment>,
) -> AppResult<Json<DeploymentInfo>> {
    Ok(Json(deploy::retry(&state, &user, id, req.failed_only).await?))
}

/// Lines a log page holds unless `limit` says otherwise, and at most.
const LOG_PAGE: u32 = 1000;
const LOG_PAGE_MAX: u32 = 5000;

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Only this host's lines.
    host: Option<String>,
    /// Lines after this sequence number (the last `seq` seen).
    after: Option<i64>,
    limit: Option<u32>,
}

/// `GET /api/v1/deployments/{id}/log[?host=H][&after=SEQ][&limit=N]`: one
/// page of the deployment's log, oldest first. Paged, not streamed: a client
/// follows a running deployment by asking again with `after` until the
/// status it gets is no longer `running` and a page comes back short.
#[utoipa::path(
    get,
    path = "/api/v1/deployments/{id}/log",
    tag = "deployments",
    params(("id" = i64, Path), LogQuery),
    responses((status = 200, body = DeploymentLog)),
)]
pub async fn log(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<i64>,
    Query(q): Query<LogQuery>,
) -> AppResult<Json<DeploymentLog>> {
    Ok(Json(
        deploy::log(
            &state,
            id,
            q.host.as_deref(),
            q.after.unwrap_or(0),
            q.limit.unwrap_or(LOG_PAGE).clamp(1, LOG_PAGE_MAX),
        )
        .await?,
    ))
}
