//! `POST /api/v1/hooks/{forge}/{project}`: push webhooks start builds (R5).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use ferry_proto::api::HookAnswer;

use crate::AppState;
use crate::app::build;
use crate::error::AppResult;

#[utoipa::path(
    post,
    path = "/api/v1/hooks/{forge}/{project}",
    tag = "hooks",
    params(("forge" = String, Path), ("project" = String, Path)),
    responses((status = 200, body = HookAnswer), (status = 202, description = "Accepted but ignored: the answer says why", body = HookAnswer)),
)]
pub async fn receive(
    State(state): State<AppState>,
    Path((forge, project)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<(StatusCode, Json<HookAnswer>)> {
    Ok((StatusCode::ACCEPTED, Json(build::push(&state, &forge, &project, &headers, &body).await?)))
}
