//! Dry runs (`ferry deploy|rollback --dry-run`): the plan a deployment would
//! follow, from [`fleet::plan_deployment`] (the code every real deployment
//! passes, so the plan cannot drift from what a deploy does), with what each
//! host would download. Reads only: no deployment row, no lock, no audit
//! entry, no agent hears of it.

use std::collections::{BTreeMap, BTreeSet};

use ferry_domain::guards::{self, Flags, Refusal};
use ferry_domain::{Digest, Manifest};
use ferry_proto::api::{CreateDeployment, DeploymentPlan, PlannedBatch, PlannedHost};
use ferry_store::{Release, StoreError, User};

use crate::AppState;
use crate::error::{AppError, AppResult};
use crate::fleet::{self, Authority, PlannedDeployment};

/// What `req` would do in `project`, or the refusal the real deployment
/// would get, on the caller's own authority.
pub async fn dry_run(
    state: &AppState,
    caller: &User,
    project: &str,
    req: &CreateDeployment,
) -> AppResult<DeploymentPlan> {
    let planned = fleet::plan_deployment(state, caller, project, req, Authority::Caller).await?;
    let PlannedDeployment { project, env, release, new, superseded, hosts } = planned;
    // The store checks the freeze, the bad mark and the lock (R19) when it
    // records the deployment: say now what it would answer, by the same
    // rule (`ferry_domain::guards::check`). An emergency takes over instead.
    let now = crate::now_ms();
    let freeze = state.db.environment_freeze(&env, now).await?;
    let running = state.db.lock_holders(Some(&project)).await?.into_iter().find(|d| d.env == env.name).map(|d| d.id);
    let flags = Flags { ignore_freeze: new.ignore_freeze, forced: new.forced, emergency: new.emergency };
    match guards::check(freeze.as_ref().map(|f| &f.freeze), release.bad.as_ref(), running, flags, now) {
        Ok(_) => {}
        Err(Refusal::Frozen(f)) => {
            let (project, env, freeze) = (project.name.clone(), env.name.clone(), f.clone());
            return Err(StoreError::Frozen { project, env, freeze }.into());
        }
        Err(Refusal::MarkedBad(mark)) => {
            let (project, version, mark) = (project.name.clone(), release.version.clone(), mark.clone());
            return Err(StoreError::MarkedBad { project, version, mark }.into());
        }
        Err(Refusal::Locked { running }) => return Err(StoreError::Locked { running }.into()),
    }
    let past = state.db.hosts_past(&project).await?;
    let mut releases = Releases { state, by_id: BTreeMap::new(), manifests: BTreeMap::new() };
    releases.by_id.insert(release.id, release.clone());
    let keep = usize::try_from(project.keep_releases).unwrap_or(usize::MAX).max(1);

    let mut batches: Vec<PlannedBatch> = Vec::new();
    let mut skipped = Vec::new();
    let (mut download_bytes, mut download_files) = (0u64, 0u64);
    for target in &new.targets {
        let Some(host) = hosts.iter().find(|h| h.id == target.host_id) else { continue };
        // The releases the host keeps: those it ran successfully, newest
        // first, as many as the project keeps (the agent prunes the rest).
        let kept: Vec<i64> = past
            .iter()
            .find(|p| p.host_id == host.id)
            .map(|p| p.ran.iter().take(keep).copied().collect())
            .unwrap_or_default();
        let from = target.from_release_id.or(kept.first().copied());
        let goes_to = releases.release(target.release_id).await?;
        let fetch = releases.download(target.release_id, &kept).await?;
        let from_version = match from {
            Some(id) => Some(releases.release(id).await?.version),
            None => None,
        };
        let planned = PlannedHost {
            host: host.name.clone(),
            online: host.online,
            version: goes_to.version.clone(),
            from_version,
            release_name: target.release_name.clone(),
            download_bytes: fetch.bytes,
            download_files: fetch.files,
            reused_bytes: fetch.total.saturating_sub(fetch.bytes),
        };
        if target.skipped {
            skipped.push(planned);
            continue;
        }
        download_bytes = download_bytes.saturating_add(fetch.bytes);
        download_files = download_files.saturating_add(fetch.files);
        let number = target.batch.saturating_add(1);
        match batches.last_mut() {
            Some(b) if b.batch == number => b.hosts.push(planned),
            _ => batches.push(PlannedBatch { batch: number, hosts: vec![planned] }),
        }
    }
    Ok(DeploymentPlan {
        project: project.name,
        env: env.name,
        kind: new.kind,
        version: release.version,
        rollout: new.policy.describe(),
        emergency: new.emergency,
        forced: new.forced,
        freeze_ignored: new.ignore_freeze,
        takes_over: superseded,
        batches,
        skipped,
        notes: new.notes.iter().map(ToString::to_string).collect(),
        note_codes: new.notes.clone(),
        download_bytes,
        download_files,
    })
}

/// What a host would fetch of a release: the distinct files none of its
/// kept releases has, as its agent counts them.
struct Fetch {
    bytes: u64,
    files: u64,
    /// The release's size, every file counted.
    total: u64,
}

/// Releases and their manifests, each read once per dry run.
struct Releases<'a> {
    state: &'a AppState,
    by_id: BTreeMap<i64, Release>,
    manifests: BTreeMap<i64, Manifest>,
}

impl Releases<'_> {
    async fn release(&mut self, id: i64) -> AppResult<Release> {
        if let Some(r) = self.by_id.get(&id) {
            return Ok(r.clone());
        }
        let r = self.state.db.release_by_id(id).await?;
        self.by_id.insert(id, r.clone());
        Ok(r)
    }

    async fn manifest(&mut self, id: i64) -> AppResult<&Manifest> {
        if !self.manifests.contains_key(&id) {
            let release = self.release(id).await?;
            let bytes = self.state.artifacts.get(&release.manifest_digest).await?;
            let manifest: Manifest = serde_json::from_slice(&bytes)
                .map_err(|e| AppError::Internal(format!("stored manifest of release {id}: {e}")))?;
            self.manifests.insert(id, manifest);
        }
        self.manifests.get(&id).ok_or_else(|| AppError::Internal(format!("manifest of release {id}")))
    }

    /// What a host keeping `kept` would download of release `id`: nothing
    /// when it keeps that release (a relink), else the content its kept
    /// releases lack.
    async fn download(&mut self, id: i64, kept: &[i64]) -> AppResult<Fetch> {
        let total = self.manifest(id).await?.total_size();
        if kept.contains(&id) {
            return Ok(Fetch { bytes: 0, files: 0, total });
        }
        let mut have: BTreeSet<Digest> = BTreeSet::new();
        for k in kept {
            have.extend(self.manifest(*k).await?.distinct_blobs().into_keys());
        }
        let missing: Vec<u64> = self
            .manifest(id)
            .await?
            .distinct_blobs()
            .into_iter()
            .filter(|(d, _)| !have.contains(d))
            .map(|(_, s)| s)
            .collect();
        Ok(Fetch { bytes: missing.iter().copied().fold(0, u64::saturating_add), files: missing.len() as u64, total })
    }
}
