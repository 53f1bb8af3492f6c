//! Releases (R1, R7, R19): uploading content, registering a release, listing
//! them, marking one bad or good, and a release as one archive. Content
//! counts as present only when its bytes were uploaded to this project (or
//! made by its build); registering itself is `crate::release`'s.

use ferry_artifact::frame::{Decoder, Event};
use ferry_domain::rfc3339_from_millis;
use ferry_proto::api::{CreateRelease, MarkBad, ReleaseInfo};
use ferry_store::{BlobWriter, Release, User};
use futures_util::{Stream, StreamExt};

use crate::error::{AppError, AppResult};
use crate::release::Labels;
use crate::{AppState, guards};

/// The digests among `digests` the project does not hold yet.
pub(crate) async fn missing(
    state: &AppState,
    project: &str,
    digests: &[ferry_domain::Digest],
) -> AppResult<Vec<ferry_domain::Digest>> {
    let project = state.db.project(project).await?;
    crate::release::missing_for(state, &project, digests).await
}

/// What an upload stored: blobs and their bytes.
pub(crate) struct Uploaded {
    pub stored: u64,
    pub bytes: u64,
}

/// Stores the blobs of a body of frames (see `ferry_artifact::frame`), each
/// verified against its digest before it is stored, and records that the
/// project holds them.
pub(crate) async fn upload<S, B, E>(state: &AppState, project: &str, mut stream: S) -> AppResult<Uploaded>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    let project = state.db.project(project).await?;
    let mut verified = Vec::new();
    let mut decoder = Decoder::new();
    let mut current: Option<(ferry_domain::Digest, Box<dyn BlobWriter>)> = None;
    let (mut stored, mut bytes) = (0u64, 0u64);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| AppError::BadRequest(format!("upload interrupted: {e}")))?;
        let mut input = chunk.as_ref();
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
    Ok(Uploaded { stored, bytes })
}

/// A release as the API and the pages show it.
pub(crate) fn release_info(project: &str, r: Release) -> ReleaseInfo {
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

/// Registers a release of content the project holds, by its manifest.
pub(crate) async fn create(state: &AppState, user: &User, project: &str, req: CreateRelease) -> AppResult<ReleaseInfo> {
    let project = state.db.project(project).await?;
    let labels = Labels { version: req.version, branch: req.branch, committer: req.committer };
    let release = crate::release::register(state, &project, &req.manifest, labels, &user.name, None).await?;
    Ok(release_info(&project.name, release))
}

/// A project's releases, deleted projects' included.
pub(crate) async fn list(state: &AppState, project: &str) -> AppResult<Vec<ReleaseInfo>> {
    let project = state.db.project_including_deleted(project).await?;
    let releases = state.db.releases(&project).await?;
    Ok(releases.into_iter().map(|r| release_info(&project.name, r)).collect())
}

/// Marks a release bad, replacing an earlier mark. Rollbacks skip it from
/// then on, and deployments of it are refused unless forced; hosts that run
/// it keep it.
pub(crate) async fn mark_bad(
    state: &AppState,
    user: &User,
    project: &str,
    version: &str,
    req: MarkBad,
) -> AppResult<ReleaseInfo> {
    let project = state.db.project(project).await?;
    let release = state.db.release(&project, version).await?;
    let reason = ferry_domain::guards::validate_reason(&req.reason)?;
    let mark = ferry_domain::BadMark { by: user.name.clone(), reason, at: crate::now_ms() };
    let release = state.db.set_release_mark(release.id, Some(&mark)).await?;
    tracing::info!(project = %project.name, version = %release.version, by = %mark.by, reason = %mark.reason,
        "release marked bad");
    Ok(release_info(&project.name, release))
}

/// Clears a release's bad mark. A release that is not marked is an error, so
/// that a typo in the version does not pass for success.
pub(crate) async fn mark_good(state: &AppState, user: &User, project: &str, version: &str) -> AppResult<ReleaseInfo> {
    let project = state.db.project(project).await?;
    let release = state.db.release(&project, version).await?;
    let Some(mark) = &release.bad else {
        return Err(AppError::Conflict(format!("version {version} of {} is not marked bad", project.name)));
    };
    tracing::info!(project = %project.name, version = %release.version, by = %user.name, was = %mark.reason,
        "bad mark cleared");
    let release = state.db.set_release_mark(release.id, None).await?;
    Ok(release_info(&project.name, release))
}

/// The bytes of a release's archive, as they are written.
pub(crate) type ArchiveStream = tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>;

/// A release as one deterministic `.tar.zst`: its file name and its bytes,
/// written as they are read. Every blob is verified on the way out.
pub(crate) async fn archive(state: &AppState, project: &str, version: &str) -> AppResult<(String, ArchiveStream)> {
    let project = state.db.project(project).await?;
    let release = state.db.release(&project, version).await?;
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
    Ok((format!("{}-{}.tar.zst", project.name, release.version), rx))
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

/// The build a release was made by, if a build made it.
pub(crate) async fn built_by(state: &AppState, release_id: i64) -> Option<ferry_store::Build> {
    let origin = state.db.release_by_id(release_id).await.ok()?.origin?;
    state.db.build(origin.build_id).await.ok()
}

/// A project's releases as stored, newest first.
pub(crate) async fn rows(state: &AppState, project: &ferry_store::Project) -> AppResult<Vec<Release>> {
    Ok(state.db.releases(project).await?)
}
