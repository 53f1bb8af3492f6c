//! Notification rules and the delivery log (R28).

use axum::Json;
use axum::extract::{Path, Query, State};
use ferry_proto::api::{AddNotificationRule, NotificationInfo, NotificationRuleInfo};

use super::ListQuery;
use crate::AppState;
use crate::app::notification;
use crate::auth::Caller;
use crate::error::AppResult;

/// `POST /api/v1/projects/{project}/notifications`. Everything is checked
/// before anything is stored: a refused rule changes nothing.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/notifications",
    tag = "notify",
    params(("project" = String, Path)),
    request_body = AddNotificationRule,
    responses((status = 200, body = NotificationRuleInfo)),
)]
pub async fn add(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(project): Path<String>,
    Json(req): Json<AddNotificationRule>,
) -> AppResult<Json<NotificationRuleInfo>> {
    Ok(Json(notification::add(&state, &user, &project, req).await?))
}

/// `GET /api/v1/projects/{project}/notifications`.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{project}/notifications",
    tag = "notify",
    params(("project" = String, Path)),
    responses((status = 200, body = Vec<NotificationRuleInfo>)),
)]
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
    Path(project): Path<String>,
) -> AppResult<Json<Vec<NotificationRuleInfo>>> {
    Ok(Json(notification::list(&state, &project).await?))
}

/// `DELETE /api/v1/projects/{project}/notifications/{id}`.
#[utoipa::path(
    delete,
    path = "/api/v1/projects/{project}/notifications/{id}",
    tag = "notify",
    params(("project" = String, Path), ("id" = i64, Path)),
    responses((status = 200, body = Vec<NotificationRuleInfo>)),
)]
pub async fn remove(
    State(state): State<AppState>,
    _caller: Caller,
    Path((project, id)): Path<(String, i64)>,
) -> AppResult<Json<Vec<NotificationRuleInfo>>> {
    Ok(Json(notification::remove(&state, &project, id).await?))
}

/// `GET /api/v1/projects/{project}/notifications/log[?limit=N]`: newest first.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{project}/notifications/log",
    tag = "notify",
    params(("project" = String, Path), ListQuery),
    responses((status = 200, body = Vec<NotificationInfo>)),
)]
pub async fn log(
    State(state): State<AppState>,
    _caller: Caller,
    Path(project): Path<String>,
    Query(q): Query<ListQuery>,
) -> AppResult<Json<Vec<NotificationInfo>>> {
    Ok(Json(notification::log(&state, &project, q.limit()).await?))
}
