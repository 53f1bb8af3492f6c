//! Registering a release: the one path both uploads and builds take, so the
//! checks (manifest rules, every blob present) cannot differ between them.

use ferry_domain::{Digest, Manifest, validate_version};
use ferry_store::{NewRelease, Project, Release, ReleaseOrigin};

use crate::AppState;
use crate::error::{AppError, AppResult};

/// What a release is called (R16 takes branch and committer from here).
pub struct Labels {
    pub version: String,
    pub branch: String,
    pub committer: String,
}

/// Checks the manifest and that its content is stored, stores the manifest
/// itself, and records the release.
pub async fn register(
    state: &AppState,
    project: &Project,
    manifest: &Manifest,
    labels: Labels,
    created_by: &str,
    origin: Option<ReleaseOrigin>,
) -> AppResult<Release> {
    validate_version(&labels.version)?;
    manifest.validate().map_err(|e| AppError::BadRequest(format!("release refused: {e}")))?;
    let wanted: Vec<_> = manifest.distinct_blobs().into_keys().collect();
    let missing = missing_for(state, project, &wanted).await?;
    if let Some(first) = missing.first() {
        return Err(AppError::BadRequest(format!(
            "release refused: {} blob(s) of the manifest were not uploaded to project '{}', e.g. {first}",
            missing.len(),
            project.name
        )));
    }
    check_sizes(state, manifest).await?;
    check_host_recipe(state, manifest).await?;
    // The manifest is content too: stored by digest beside the files.
    let manifest_json = serde_json::to_vec(manifest).map_err(|e| AppError::Internal(e.to_string()))?;
    let manifest_digest = ferry_artifact::digest_of(&manifest_json);
    state.artifacts.put(manifest_digest, &manifest_json).await?;
    let clean = |s: &str, fallback: &str| if s.trim().is_empty() { fallback.to_string() } else { s.trim().to_string() };
    let release = state
        .db
        .create_release(
            NewRelease {
                project_id: project.id,
                version: labels.version,
                branch: clean(&labels.branch, "unknown"),
                committer: clean(&labels.committer, created_by),
                manifest_digest,
                file_count: manifest.file_count() as u64,
                total_size: manifest.total_size(),
                created_by: created_by.to_string(),
                origin,
            },
            crate::now_ms(),
        )
        .await?;
    tracing::info!(project = %project.name, version = %release.version, files = release.file_count, "release created");
    Ok(release)
}

/// Every file's `size` must be its blob's: hosts trust the manifest for
/// free-space checks and progress, and the drift check compares sizes.
async fn check_sizes(state: &AppState, manifest: &Manifest) -> AppResult<()> {
    let mut stored = std::collections::HashMap::new();
    for (path, digest, size, _) in manifest.files() {
        let len = match stored.get(&digest) {
            Some(len) => *len,
            None => {
                let len = state.artifacts.open(&digest).await?.len;
                stored.insert(digest, len);
                len
            }
        };
        if len != size {
            return Err(AppError::BadRequest(format!(
                "release refused: entry '{path}' says {size} bytes, but its content ({digest}) has {len}"
            )));
        }
    }
    Ok(())
}

/// Those of `digests` the project cannot use: not uploaded to it (or made by
/// its build), or no longer in the store.
pub async fn missing_for(state: &AppState, project: &Project, digests: &[Digest]) -> AppResult<Vec<Digest>> {
    let mut missing = state.db.project_blobs_missing(project.id, digests).await?;
    for d in state.artifacts.missing(digests).await? {
        if !missing.contains(&d) {
            missing.push(d);
        }
    }
    Ok(missing)
}

/// The release's own `ferry.toml` drives every host it goes to: a mistake in
/// its host-side sections is refused here, once, rather than on each host.
async fn check_host_recipe(state: &AppState, manifest: &Manifest) -> AppResult<()> {
    let Some((_, digest, _, _)) = manifest.files().find(|f| f.0 == "ferry.toml") else { return Ok(()) };
    let bytes = state.artifacts.get(&digest).await?;
    let text = String::from_utf8(bytes)
        .map_err(|_| AppError::BadRequest("release refused: ferry.toml is not UTF-8".into()))?;
    let recipe = ferry_domain::Recipe::parse(&text)
        .and_then(|r| r.host_side().map(|()| r))
        .map_err(|e| AppError::BadRequest(format!("release refused: the release's {e}")))?;
    if let Some(deploy) = &recipe.deploy {
        deploy
            .check_templates(manifest)
            .map_err(|e| AppError::BadRequest(format!("release refused: the release's {e}")))?;
    }
    Ok(())
}
