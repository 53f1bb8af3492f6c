//! Uploading content and registering releases.
//!
//! An upload is three requests: ask which blobs are missing, stream those
//! blobs (verified one by one as they arrive), then register the release by
//! its manifest. The release becomes visible only in the last step, after the
//! server has checked the manifest's rules and that every blob is present.
//!
//! All three are the project's: content counts as present only when its
//! bytes were uploaded to this project (or made by its build), so nobody
//! learns whether other projects hold some content, nor registers a release
//! of content they never had by naming its digest.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use ferry_artifact::frame::{Decoder, Event};
use ferry_domain::rfc3339_from_millis;
use ferry_proto::api::{BlobQuery, BlobQueryAnswer, CreateRelease, MarkBad, ReleaseInfo};
use ferry_store::{BlobWriter, Release};
use futures_util::StreamExt;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{AppError, AppResult};
use crate::guards;
use crate::release::{self, Labels};

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
    let project = state.db.project(&project).await?;
    Ok(Json(BlobQueryAnswer { missing: release::missing_for(&state, &project, &q.digests).await? }))
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
    let project = state.db.project(&project).await?;
    let mut verified = Vec::new();
    let mut stream = body.into_data_stream();
    let mut decoder = Decoder::new();
    let mut current: Option<(ferry_domain::Digest, Box<dyn BlobWriter>)> = None;
    let (mut stored, mut bytes) = (0u64, 0u64);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| AppError::BadRequest(format!("upload interrupted: {e}")))?;
        let mut input = &chunk[..];
        while let Some(event) = decoder.next(&mut input) {
            match event {
                Event::Begin { digest, len } => {
                    current = Some((digest, state.artifacts.begin(digest, len).await?));
                }
                Event::Data(data) => {
                    if let Some((_, w)) = current.as_mut() {
                        w.write(data).await?;
                        bytes += data.len() as u64;
                    }
                }
                Event::End => {
                    if let Some((digest, w)) = current.take() {
                        w.finish().await.map_err(|e| AppError::BadRequest(format!("upload refused: {e}")))?;
                        verified.push(digest);
                        stored += 1;
                    }
                }
            }
        }
    }
    decoder.finish().map_err(|e| AppError::BadRequest(e.to_string()))?;
    // The project has proven it holds these: their bytes came and matched.
    state.db.add_project_blobs(project.id, &verified).await?;
    Ok(Json(UploadAnswer { stored, bytes }))
}

fn release_info(project: &str, r: Release) -> ReleaseInfo {
    ReleaseInfo {
        project: project.to_string(),
        version: r.version,
        branch: r.branch,
        committer: r.committer,
        created_at: rfc3339_from_millis(r.created_at),
        file_count: r.file_count,
        total_size: r.total_size,
        manifest_digest: r.manifest_digest,
        bad: r.bad.as_ref().map(guards::bad_mark_info),
    }
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
    let project = state.db.project(&project).await?;
    let labels = Labels { version: req.version, branch: req.branch, committer: req.committer };
    let release = release::register(&state, &project, &req.manifest, labels, &user.name, None).await?;
    Ok(Json(release_info(&project.name, release)))
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
    let project = state.db.project_including_deleted(&project).await?;
    let releases = state.db.releases(&project).await?;
    Ok(Json(releases.into_iter().map(|r| release_info(&project.name, r)).collect()))
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
    let project = state.db.project(&project).await?;
    let release = state.db.release(&project, &version).await?;
    let reason = ferry_domain::guards::validate_reason(&req.reason)?;
    let mark = ferry_domain::BadMark { by: user.name.clone(), reason, at: crate::now_ms() };
    let release = state.db.set_release_mark(release.id, Some(&mark)).await?;
    tracing::info!(project = %project.name, version = %release.version, by = %mark.by, reason = %mark.reason,
        "release marked bad");
    Ok(Json(release_info(&project.name, release)))
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
    let project = state.db.project(&project).await?;
    let release = state.db.release(&project, &version).await?;
    let Some(mark) = &release.bad else {
        return Err(AppError::Conflict(format!("version {version} of {} is not marked bad", project.name)));
    };
    tracing::info!(project = %project.name, version = %release.version, by = %user.name, was = %mark.reason,
        "bad mark cleared");
    let release = state.db.set_release_mark(release.id, None).await?;
    Ok(Json(release_info(&project.name, release)))
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
    let project = state.db.project(&project).await?;
    let release = state.db.release(&project, &version).await?;
    let manifest_json = state.artifacts.get(&release.manifest_digest).await?;
    let manifest: ferry_domain::Manifest =
        serde_json::from_slice(&manifest_json).map_err(|e| AppError::Internal(format!("stored manifest: {e}")))?;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(8);
    let artifacts = state.artifacts.clone();
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let out = std::io::BufWriter::with_capacity(256 * 1024, ChannelWriter(tx.clone()));
        // Verified on the way out as on the way in: a blob damaged on the
        // server's disk ends the download with an error, never a bad file.
        let read = |d: &ferry_domain::Digest| {
            let bytes = runtime.block_on(artifacts.get(d)).map_err(|e| std::io::Error::other(e.to_string()))?;
            let actual = ferry_artifact::digest_of(&bytes);
            if actual != *d {
                return Err(std::io::Error::other(format!(
                    "stored blob {d} is damaged (its content hashes to {actual})"
                )));
            }
            Ok(bytes)
        };
        if let Err(e) = ferry_artifact::archive::write_tar_zst(&manifest, read, out) {
            let _ = tx.blocking_send(Err(e));
        }
    });
    let file = format!("{}-{}.tar.zst", project.name, release.version);
    axum::response::Response::builder()
        .header("content-type", "application/zstd")
        .header("content-disposition", format!("attachment; filename=\"{file}\""))
        .body(Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)))
        .map_err(|e| AppError::Internal(e.to_string()))
}

/// A `Write` that sends what it is given down a channel, for streaming a
/// body produced by blocking code.
struct ChannelWriter(tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(bytes::Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
