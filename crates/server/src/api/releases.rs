//! Uploading content and registering releases.
//!
//! An upload is three requests: ask which blobs are missing, stream those
//! blobs (verified one by one as they arrive), then register the release by
//! its manifest. The release becomes visible only in the last step, after the
//! server has checked the manifest's rules and that every blob is present.
//!
//! All three are the project's (see `app::release`): content counts as
//! present only when its bytes were uploaded to this project (or made by its
//! build), so nobody learns whether other projects hold some content, nor
//! registers a release of content they never had by naming its digest.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use ferry_proto::api::{BlobQuery, BlobQueryAnswer, CreateRelease, MarkBad, ReleaseInfo};

use crate::AppState;
use crate::app::release;
use crate::auth::Caller;
use crate::error::{AppError, AppResult};

/// `POST /api/v1/projects/{project}/blobs/missing`.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/blobs/missing",
    tag = "releases",
    params(("project" = String, Path)),
    request_body = BlobQuery,
    responses((status = 200, body = BlobQueryAnswer)),
)]
pub async fn missing_blobs(
    State(state): State<AppState>,
    _caller: Caller,
    Path(project): Path<String>,
    Json(q): Json<BlobQuery>,
) -> AppResult<Json<BlobQueryAnswer>> {
    Ok(Json(BlobQueryAnswer { missing: release::missing(&state, &project, &q.digests).await? }))
}

/// What an upload stored: blobs and their bytes.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct UploadAnswer {
    stored: u64,
    bytes: u64,
}

/// Receives a body of frames (see `ferry_artifact::frame`); every blob is
/// verified against its digest before it is stored.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/blobs",
    tag = "releases",
    params(("project" = String, Path)),
    request_body(content = Vec<u8>, description = "Frames of digest and content (`ferry_artifact::frame`)", content_type = "application/octet-stream"),
    responses((status = 200, body = UploadAnswer)),
)]
pub async fn upload_blobs(
    State(state): State<AppState>,
    _caller: Caller,
    Path(project): Path<String>,
    body: Body,
) -> AppResult<Json<UploadAnswer>> {
    let up = release::upload(&state, &project, body.into_data_stream()).await?;
    Ok(Json(UploadAnswer { stored: up.stored, bytes: up.bytes }))
}

#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/releases",
    tag = "releases",
    params(("project" = String, Path)),
    request_body = CreateRelease,
    responses((status = 200, body = ReleaseInfo)),
)]
pub async fn create(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(project): Path<String>,
    Json(req): Json<CreateRelease>,
) -> AppResult<Json<ReleaseInfo>> {
    Ok(Json(release::create(&state, &user, &project, req).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/projects/{project}/releases",
    tag = "releases",
    params(("project" = String, Path)),
    responses((status = 200, body = Vec<ReleaseInfo>)),
)]
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
    Path(project): Path<String>,
) -> AppResult<Json<Vec<ReleaseInfo>>> {
    Ok(Json(release::list(&state, &project).await?))
}

/// `POST /api/v1/projects/{project}/releases/{version}/bad`: marks a release
/// bad, replacing an earlier mark. Rollbacks skip it from then on, and
/// deployments of it are refused unless forced; hosts that run it keep it.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/releases/{version}/bad",
    tag = "releases",
    params(("project" = String, Path), ("version" = String, Path)),
    request_body = MarkBad,
    responses((status = 200, body = ReleaseInfo)),
)]
pub async fn mark_bad(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path((project, version)): Path<(String, String)>,
    Json(req): Json<MarkBad>,
) -> AppResult<Json<ReleaseInfo>> {
    Ok(Json(release::mark_bad(&state, &user, &project, &version, req).await?))
}

/// `DELETE /api/v1/projects/{project}/releases/{version}/bad`: clears the
/// mark. A release that is not marked is an error, so that a typo in the
/// version does not pass for success.
#[utoipa::path(
    delete,
    path = "/api/v1/projects/{project}/releases/{version}/bad",
    tag = "releases",
    params(("project" = String, Path), ("version" = String, Path)),
    responses((status = 200, body = ReleaseInfo)),
)]
pub async fn mark_good(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path((project, version)): Path<(String, String)>,
) -> AppResult<Json<ReleaseInfo>> {
    Ok(Json(release::mark_good(&state, &user, &project, &version).await?))
}

/// `GET /api/v1/projects/{project}/releases/{version}/archive`: the release
/// as one deterministic `.tar.zst`, streamed as it is written.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{project}/releases/{version}/archive",
    tag = "releases",
    params(("project" = String, Path), ("version" = String, Path)),
    responses((status = 200, description = "The release's files as a zstd-compressed tar archive", content_type = "application/zstd")),
)]
pub async fn archive(
    State(state): State<AppState>,
    _caller: Caller,
    Path((project, version)): Path<(String, String)>,
) -> AppResult<axum::response::Response> {
    let (file, rx) = release::archive(&state, &project, &version).await?;
    axum::response::Response::builder()
        .header("content-type", "application/zstd")
        .header("content-disposition", format!("attachment; filename=\"{file}\""))
        .body(Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)))
        .map_err(|e| AppError::Internal(e.to_string()))
}
