//! Bringing the host to its desired state, and keeping it there.
//!
//! Triggered by a new desired state, by a (re)connection (which asks for a
//! full report), and by a periodic check. Each project is handled in turn:
//! if `current` is the desired release, report; if the release directory is
//! still on disk (a rollback), relink; otherwise fetch the manifest, download
//! only the content the host lacks, verify it, assemble and relink.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferry_artifact::frame::{Decoder, Event};
use ferry_proto::agent::{
    ActiveRelease, Activity, AgentMsg, DesiredRelease, DesiredState, ProjectReport, TransferStats,
};
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

use crate::client::AgentApi;
use crate::deploy_log::DeployLog;
use crate::layout::{ProjectLayout, ReleaseMeta};
use crate::objects::ObjectStore;
use crate::{fallback, hooks};

/// After a failed install, wait before trying the same release again: 5 s,
/// doubling with each failure, at most 5 minutes.
fn retry_after(failures: u32) -> Duration {
    Duration::from_secs(5).saturating_mul(1 << failures.saturating_sub(1).min(6)).min(Duration::from_secs(300))
}

/// Bytes of file content hashed per project per check, on top of the
/// metadata check of every entry: bounds the cost of drift detection.
const DRIFT_HASH_BUDGET: u64 = 16 * 1024 * 1024;
/// How long a drift repair stays visible in the reports.
const NOTE_FOR: Duration = Duration::from_secs(600);

/// What the converger remembers between passes, per project.
#[derive(Default)]
struct Memory {
    failures: HashMap<String, Failure>,
    /// Where the rotating content check resumes.
    cursors: HashMap<String, usize>,
    /// The last drift repair, shown in reports for a while.
    notes: HashMap<String, (String, Instant)>,
}

/// The last failure to install a project's desired release.
struct Failure {
    release_id: i64,
    error: String,
    at: Instant,
    count: u32,
}
/// Unreferenced content younger than this is kept for a retry.
const GC_MIN_AGE: Duration = Duration::from_secs(600);

pub struct Converger {
    pub root: PathBuf,
    pub objects: ObjectStore,
    pub api: AgentApi,
    pub desired: watch::Receiver<Option<DesiredState>>,
    pub connected: watch::Receiver<u64>,
    pub reports: mpsc::UnboundedSender<AgentMsg>,
    pub check_interval: Duration,
}

pub async fn run(mut c: Converger) {
    let mut memory = Memory::default();
    let mut check = tokio::time::interval(c.check_interval);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            changed = c.desired.changed() => if changed.is_err() { return },
            changed = c.connected.changed() => if changed.is_err() { return },
            _ = check.tick() => {}
        }
        let Some(desired) = c.desired.borrow_and_update().clone() else {
            continue;
        };
        c.connected.borrow_and_update();
        for release in &desired.releases {
            let report = converge_one(&c, release, &mut memory).await;
            if c.reports.send(AgentMsg::Report(report)).is_err() {
                return;
            }
        }
    }
}

fn active(layout: &ProjectLayout) -> Option<ActiveRelease> {
    layout.current().map(|(name, meta)| ActiveRelease {
        release_id: meta.release_id,
        release_name: name,
        version: meta.version,
    })
}

async fn converge_one(c: &Converger, want: &DesiredRelease, memory: &mut Memory) -> ProjectReport {
    let failures = &mut memory.failures;
    let layout = ProjectLayout::new(&c.root, &want.project);
    fallback::remember_desired(&layout, want.release_id, want.desired_since);
    let current = active(&layout);
    let report = |current, activity, transfer| ProjectReport {
        project: want.project.clone(),
        current,
        activity,
        transfer,
        note: None,
    };
    if current.as_ref().is_some_and(|a| a.release_id == want.release_id && a.release_name == want.release_name) {
        failures.remove(&want.project);
        fallback::clear_pin(&layout);
        let cursor = memory.cursors.entry(want.project.clone()).or_default();
        if let Some(note) = check_and_repair(c, &layout, want, cursor).await {
            memory.notes.insert(want.project.clone(), (note, Instant::now()));
        }
        let mut r = report(current, Activity::Idle, None);
        r.note = memory.notes.get(&want.project).filter(|(_, at)| at.elapsed() < NOTE_FOR).map(|(n, _)| n.clone());
        return r;
    }
    // An operator rolled back by hand (R33): leave the host alone until the
    // server asks for something other than what was rolled back from.
    if let Some(pin) = fallback::pin(&layout) {
        if pin.against_desired_since == Some(want.desired_since) {
            let mut r = report(current, Activity::Idle, None);
            r.note = Some(format!("{} at {} to {}; deploy again to resume", pin.reason, pin.at, pin.release_name));
            return r;
        }
        fallback::clear_pin(&layout);
    }
    if let Some(f) = failures.get(&want.project)
        && f.release_id == want.release_id
        && f.at.elapsed() < retry_after(f.count)
    {
        return report(current, Activity::Failed { release_id: f.release_id, error: f.error.clone() }, None);
    }
    let _ = c.reports.send(AgentMsg::Report(report(
        current.clone(),
        Activity::Installing { release_id: want.release_id },
        None,
    )));
    let log = DeployLog::start(&want.project, want.release_id, c.reports.clone());
    let installed = install(c, &layout, want, &log).await;
    if let Err(error) = &installed {
        log.step(format!("install failed: {}", error.lines().next().unwrap_or_default()));
    }
    // Every line goes up before the report that ends the install.
    log.flush();
    match installed {
        Ok(transfer) => {
            failures.remove(&want.project);
            tracing::info!(project = %want.project, release = %want.release_name,
                downloaded = transfer.bytes_downloaded, reused = transfer.bytes_reused, "release active");
            report(active(&layout), Activity::Idle, Some(transfer))
        }
        Err(error) => {
            tracing::error!(project = %want.project, release = %want.release_name, "install failed: {error}");
            let count = failures
                .get(&want.project)
                .filter(|f| f.release_id == want.release_id)
                .map_or(1, |f| f.count.saturating_add(1));
            let failure = Failure { release_id: want.release_id, error: error.clone(), at: Instant::now(), count };
            failures.insert(want.project.clone(), failure);
            report(active(&layout), Activity::Failed { release_id: want.release_id, error }, None)
        }
    }
}

/// Checks the active release against its manifest and repairs what
/// differs (R2): damaged content is dropped and fetched again, the tree is
/// rebuilt and swapped in atomically. Returns a note for the server when
/// anything was found.
async fn check_and_repair(
    c: &Converger,
    layout: &ProjectLayout,
    want: &DesiredRelease,
    cursor: &mut usize,
) -> Option<String> {
    let (l, name, start) = (layout.clone(), want.release_name.clone(), *cursor);
    let (manifest, problems, next) = tokio::task::spawn_blocking(move || {
        let manifest = l.manifest(&name)?;
        let mut cursor = start;
        let problems = l.check(&name, &manifest, &mut cursor, DRIFT_HASH_BUDGET);
        Some((manifest, problems, cursor))
    })
    .await
    .ok()??;
    *cursor = next;
    if problems.is_empty() {
        return None;
    }
    let shown: Vec<String> = problems.iter().take(3).map(|p| format!("{} {}", p.path, p.what)).collect();
    let more = problems.len().saturating_sub(shown.len());
    let found = format!("{}{}", shown.join(", "), if more > 0 { format!(" and {more} more") } else { String::new() });
    tracing::warn!(project = %want.project, release = %want.release_name, "drift found: {found}");
    for p in problems.iter().filter(|p| p.content) {
        if let Some((_, digest, _, _)) = manifest.files().find(|f| f.0 == p.path) {
            c.objects.forget(&digest);
        }
    }
    let blobs = manifest.distinct_blobs();
    let missing: Vec<_> = blobs.keys().filter(|d| !c.objects.has_content(d)).copied().collect();
    if !missing.is_empty()
        && let Err(e) = download(c, missing).await
    {
        return Some(format!("drift found ({found}); repair failed: {e}"));
    }
    let (l, name, objects) = (layout.clone(), want.release_name.clone(), c.objects.clone());
    let rebuilt = tokio::task::spawn_blocking(move || l.rebuild(&name, &manifest, &objects)).await;
    match rebuilt {
        Ok(Ok(())) => {
            tracing::info!(project = %want.project, "drift repaired");
            Some(format!("drift repaired at {}: {found}", ferry_domain::rfc3339_from_millis(crate::now_ms())))
        }
        Ok(Err(e)) => Some(format!("drift found ({found}); repair failed: {e}")),
        Err(e) => Some(format!("drift found ({found}); repair failed: {e}")),
    }
}

/// Installs (if needed) and activates one release. Returns what it moved.
async fn install(
    c: &Converger,
    layout: &ProjectLayout,
    want: &DesiredRelease,
    log: &DeployLog,
) -> Result<TransferStats, String> {
    let mut stats = TransferStats { release_id: want.release_id, ..Default::default() };
    let release_dir = layout.release_dir(&want.release_name);
    let previous = layout.current().map(|(name, _)| name);
    let env = hook_env(layout, want, previous.as_deref());
    if let Some(meta) = layout.release_meta(&want.release_name) {
        // Still on disk (a rollback): only the link changes.
        stats.bytes_reused = meta.total_size;
        log.step(format!("{} is still on the host: switching back to it", want.release_name));
    } else {
        let manifest = c.api.manifest(want.release_id).await?;
        manifest.validate().map_err(|e| format!("the release's manifest is unsafe: {e}"))?;
        let blobs = manifest.distinct_blobs();
        let missing: Vec<_> = blobs.keys().filter(|d| !c.objects.has_content(d)).copied().collect();
        stats.bytes_downloaded = missing.iter().map(|d| blobs.get(d).copied().unwrap_or(0)).sum();
        stats.files_downloaded = missing.len() as u64;
        stats.bytes_reused = manifest.total_size().saturating_sub(stats.bytes_downloaded);
        if !missing.is_empty() {
            let reused = match stats.bytes_reused {
                0 => String::new(),
                n => format!("; {} already on the host", ferry_domain::human_size(n)),
            };
            let size = ferry_domain::human_size(stats.bytes_downloaded);
            log.step(format!("downloading {} files ({size}){reused}", stats.files_downloaded));
            download(c, missing).await?;
        }
        let recipe = hooks::of_manifest(&manifest, &c.objects)?;
        if recipe.before_install.is_some() {
            std::fs::create_dir_all(&layout.dir).map_err(|e| format!("{}: {e}", layout.dir.display()))?;
            hooks::run("before_install", recipe.before_install.as_deref(), &recipe, &layout.dir, &env, log).await?;
        }
        let objects = c.objects.clone();
        let layout2 = layout.clone();
        let name = want.release_name.clone();
        let meta = ReleaseMeta {
            release_id: want.release_id,
            version: want.version.clone(),
            env: want.env.clone(),
            total_size: manifest.total_size(),
        };
        tokio::task::spawn_blocking(move || layout2.assemble(&name, &manifest, &objects, &meta))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("assembling the release: {e}"))?;
        log.step(format!("assembled {}", want.release_name));
        hooks::run("after_install", recipe.after_install.as_deref(), &recipe, &release_dir, &env, log).await?;
    }
    let recipe = hooks::of_release(&release_dir)?;
    // Before the switch a failure leaves `current` where it was.
    hooks::run("before_activate", recipe.before_activate.as_deref(), &recipe, &release_dir, &env, log).await?;
    layout.activate(&want.release_name).map_err(|e| format!("activating the release: {e}"))?;
    log.step(format!("activated {}", want.release_name));
    // After it, a failure puts the host back on its previous release.
    let after = async {
        hooks::run("after_activate", recipe.after_activate.as_deref(), &recipe, &release_dir, &env, log).await?;
        hooks::run("validate", recipe.validate.as_deref(), &recipe, &release_dir, &env, log).await
    };
    if let Err(e) = after.await {
        return Err(match previous.as_deref() {
            Some(prev) if prev != want.release_name => {
                let back = match layout.activate(prev) {
                    Ok(()) => format!("put back on the previous release {prev}"),
                    Err(back) => format!("putting back the previous release {prev} failed too: {back}"),
                };
                log.step(back.clone());
                format!("{e}\n{back}")
            }
            _ => e,
        });
    }
    let keep = want.keep_releases;
    let layout2 = layout.clone();
    let objects = c.objects.clone();
    let _ = tokio::task::spawn_blocking(move || {
        if let Err(e) = layout2.prune(keep) {
            tracing::warn!("pruning old releases: {e}");
        }
        objects.collect_garbage(GC_MIN_AGE)
    })
    .await;
    Ok(stats)
}

/// The variables every hook sees.
fn hook_env(layout: &ProjectLayout, want: &DesiredRelease, previous: Option<&str>) -> Vec<(String, String)> {
    let path = |p: std::path::PathBuf| p.to_string_lossy().into_owned();
    vec![
        ("FERRY_PROJECT".into(), want.project.clone()),
        ("FERRY_ENV".into(), want.env.clone()),
        ("FERRY_VERSION".into(), want.version.clone()),
        ("FERRY_RELEASE".into(), want.release_name.clone()),
        ("FERRY_RELEASE_DIR".into(), path(layout.release_dir(&want.release_name))),
        ("FERRY_SHARED_DIR".into(), path(layout.shared_dir())),
        ("FERRY_CURRENT".into(), path(layout.current_link())),
        ("FERRY_PREVIOUS_RELEASE".into(), previous.unwrap_or_default().to_string()),
    ]
}

/// Downloads blobs into the content store, verifying each; a blob whose bytes
/// do not match its digest is never stored, and fails the install.
async fn download(c: &Converger, digests: Vec<ferry_domain::Digest>) -> Result<(), String> {
    let wanted = digests.len();
    let resp = c.api.blobs(digests).await?;
    let mut stream = resp.bytes_stream();
    let mut decoder = Decoder::new();
    let mut current = None;
    let mut stored = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| format!("download interrupted: {e}"))?;
        let mut input = &chunk[..];
        while let Some(event) = decoder.next(&mut input) {
            match event {
                Event::Begin { digest, len } => {
                    current = Some(c.objects.begin(digest, len).map_err(|e| e.to_string())?);
                }
                Event::Data(data) => {
                    if let Some(w) = current.as_mut() {
                        w.write(data).map_err(|e| e.to_string())?;
                    }
                }
                Event::End => {
                    if let Some(w) = current.take() {
                        w.finish().map_err(|e| format!("content from the server rejected: {e}"))?;
                        stored += 1;
                    }
                }
            }
        }
    }
    decoder.finish().map_err(|e| format!("download interrupted: {e}"))?;
    if stored != wanted {
        return Err(format!("the server sent {stored} of {wanted} requested blobs"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off() {
        assert_eq!(retry_after(1), Duration::from_secs(5));
        assert_eq!(retry_after(2), Duration::from_secs(10));
        assert_eq!(retry_after(4), Duration::from_secs(40));
        assert_eq!(retry_after(30), Duration::from_secs(300));
    }
}
