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
use ferry_domain::Hook;
use ferry_proto::agent::{
    ActiveRelease, Activity, AgentMsg, DesiredRelease, DesiredState, ProjectReport, TransferStats,
};
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

use crate::client::AgentApi;
use crate::deploy_log::DeployLog;
use crate::hooks::Hooks;
use crate::layout::{ProjectLayout, ReleaseMeta};
use crate::lb::{self, LbMemory};
use crate::objects::ObjectStore;
use crate::supervisor::Supervisor;
use crate::{config, fallback, health};

/// Why an install did not finish. A transient failure (the server out of
/// reach mid-download, e.g. while it restarts) is retried on the next pass
/// without failing the host; anything else fails it.
#[derive(Debug)]
enum InstallError {
    Transient(String),
    Failed(String),
}

impl From<String> for InstallError {
    fn from(e: String) -> Self {
        InstallError::Failed(e)
    }
}

impl InstallError {
    fn message(&self) -> &str {
        match self {
            InstallError::Transient(e) | InstallError::Failed(e) => e,
        }
    }
}

/// Transient failures in a row tolerated before the host counts as failed.
const TRANSIENT_RETRIES: u32 = 5;

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
    /// Transient install failures in a row, per project.
    transient: HashMap<String, u32>,
    /// Per project, the release still running when an install was stopped
    /// because the server asked for another release: going back to it
    /// needs no new activation (it never stopped).
    superseded: HashMap<String, String>,
}

/// The last failure to install a project's desired release. A new
/// deployment (a new `desired_since`) tries again at once.
struct Failure {
    release_id: i64,
    desired_since: i64,
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
    pub supervisor: Supervisor,
    pub service_defaults: config::ServiceDefaults,
    /// Upgrade orders from the server, carried out between passes.
    pub upgrade_orders: watch::Receiver<Option<ferry_proto::agent::UpgradeOrder>>,
    pub upgrader: crate::upgrade::Upgrader,
}

pub async fn run(mut c: Converger) {
    let mut memory = Memory::default();
    let mut lb_memory = LbMemory::default();
    let mut last_order = None;
    let mut check = tokio::time::interval(c.check_interval);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            changed = c.desired.changed() => if changed.is_err() { return },
            changed = c.connected.changed() => if changed.is_err() { return },
            changed = c.upgrade_orders.changed() => if changed.is_err() { return },
            _ = check.tick() => {}
        }
        // Between two passes: no install or hook runs while the agent
        // replaces itself.
        // Each order once (the server repeats it with every desired state).
        let order = c.upgrade_orders.borrow_and_update().clone();
        let order = order.filter(|o| last_order.as_ref() != Some(o));
        last_order = order.clone().or(last_order);
        if let Some(order) = order
            && let Err(error) = c.upgrader.perform(&order).await
        {
            tracing::warn!(version = %order.version, "agent upgrade refused: {error}");
            let msg = AgentMsg::UpgradeFailed { sha256: order.sha256, version: order.version, error };
            if c.reports.send(msg).is_err() {
                return;
            }
        }
        let Some(desired) = c.desired.borrow_and_update().clone() else {
            continue;
        };
        let connection = *c.connected.borrow_and_update();
        // Load balancers first: a host waiting to be drained should not wait
        // for an install or a drift check on the load-balancer host.
        lb::converge(&c.root, &desired.load_balancers, &mut lb_memory, connection, &c.reports).await;
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
        desired_since: want.desired_since,
        service: None,
    };
    let is_current =
        current.as_ref().is_some_and(|a| a.release_id == want.release_id && a.release_name == want.release_name);
    // The same release deployed again: activate it again (templates, service).
    // The same release deployed again, or an activation the agent died in:
    // activate it (again).
    let meta = layout.release_meta(&want.release_name);
    let mut redeploy = is_current
        && meta.as_ref().is_some_and(|m| {
            m.pending_from.is_some() || (m.activated_since != 0 && want.desired_since > m.activated_since)
        });
    // Back to the release that kept running while an install of another was
    // stopped (an emergency rollback during a deploy): it is running and
    // proven, so activating it again would only delay the rollback.
    let kept = memory.superseded.remove(&want.project);
    if redeploy
        && kept.as_deref() == Some(want.release_name.as_str())
        && meta.as_ref().is_some_and(|m| m.pending_from.is_none())
        && layout.set_activated_since(&want.release_name, want.desired_since).is_ok()
    {
        redeploy = false;
    }
    if is_current && !redeploy {
        failures.remove(&want.project);
        fallback::clear_pin(&layout);
        let cursor = memory.cursors.entry(want.project.clone()).or_default();
        if let Some(drift) = check_and_repair(c, &layout, want, cursor, DRIFT_HASH_BUDGET).await {
            if !drift.repaired {
                tracing::warn!(project = %want.project, "{}", drift.note);
            }
            memory.notes.insert(want.project.clone(), (drift.note, Instant::now()));
        }
        if let Some(note) = c.supervisor.ensure(&want.project).await {
            tracing::warn!(project = %want.project, "{note}");
            memory.notes.insert(want.project.clone(), (note, Instant::now()));
        }
        let mut r = report(current, Activity::Idle, None);
        r.note = memory.notes.get(&want.project).filter(|(_, at)| at.elapsed() < NOTE_FOR).map(|(n, _)| n.clone());
        r.service = c.supervisor.health(&want.project).await;
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
        && (f.release_id, f.desired_since) == (want.release_id, want.desired_since)
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
    let superseded = superseded_check(c, want);
    let installed = install(c, &layout, want, &log, &superseded).await;
    if installed.is_err() && superseded() {
        // Nobody wants this install any more: no failure to retry, and the
        // next pass (the desired state changed) converges to what is wanted.
        memory.transient.remove(&want.project);
        memory.failures.remove(&want.project);
        log.step(format!("stopped installing {}: the server asked for another release", want.release_name));
        log.flush();
        let now = active(&layout);
        tracing::info!(project = %want.project, release = %want.release_name, "install stopped: superseded");
        return match now.as_ref().filter(|a| a.release_name != want.release_name) {
            Some(running) => {
                memory.superseded.insert(want.project.clone(), running.release_name.clone());
                let mut r = report(now, Activity::Idle, None);
                r.note = Some(format!("stopped installing {}: the server asked for another release", want.version));
                r
            }
            None => report(
                now,
                Activity::Failed {
                    release_id: want.release_id,
                    error: "stopped: the server asked for another release".into(),
                },
                None,
            ),
        };
    }
    let tries = memory.transient.get(&want.project).copied().unwrap_or(0);
    let installed = match installed {
        Err(InstallError::Transient(e)) if tries < TRANSIENT_RETRIES => {
            memory.transient.insert(want.project.clone(), tries + 1);
            tracing::warn!(project = %want.project, "install interrupted, retrying: {e}");
            log.step(format!("interrupted ({}); trying again", e.lines().next().unwrap_or_default()));
            log.flush();
            return report(active(&layout), Activity::Installing { release_id: want.release_id }, None);
        }
        other => other.map_err(|e| e.message().to_string()),
    };
    memory.transient.remove(&want.project);
    let failures = &mut memory.failures;
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
                .filter(|f| (f.release_id, f.desired_since) == (want.release_id, want.desired_since))
                .map_or(1, |f| f.count.saturating_add(1));
            let failure = Failure {
                release_id: want.release_id,
                desired_since: want.desired_since,
                error: error.clone(),
                at: Instant::now(),
                count,
            };
            failures.insert(want.project.clone(), failure);
            report(active(&layout), Activity::Failed { release_id: want.release_id, error }, None)
        }
    }
}

/// Whether the server now wants something other than `want` for its project
/// (a rollback or another deploy arrived while it installs).
fn superseded_check(c: &Converger, want: &DesiredRelease) -> crate::hooks::Superseded {
    let desired = c.desired.clone();
    let (project, release_id) = (want.project.clone(), want.release_id);
    std::sync::Arc::new(move || {
        desired
            .borrow()
            .as_ref()
            .is_some_and(|d| !d.releases.iter().any(|r| r.project == project && r.release_id == release_id))
    })
}

/// Checks the active release against its manifest and repairs what
/// differs (R2): damaged content is dropped and fetched again, the tree is
/// rebuilt and swapped in atomically. Returns what was found and done when
/// anything was found.
async fn check_and_repair(
    c: &Converger,
    layout: &ProjectLayout,
    want: &DesiredRelease,
    cursor: &mut usize,
    hash_budget: u64,
) -> Option<Drifted> {
    let release_dir = layout.release_dir(&want.release_name);
    // A ferry.toml that cannot be read is drift of its own, found below.
    let recipe = config::of_release(&release_dir).ok();
    let (shared, rendered) = recipe.as_ref().map(config::host_owned_paths).unwrap_or_default();
    let host_owned: Vec<String> = shared.iter().chain(&rendered).cloned().collect();
    let (l, name, start) = (layout.clone(), want.release_name.clone(), *cursor);
    let (manifest, problems, next) = tokio::task::spawn_blocking(move || {
        let manifest = l.manifest(&name)?;
        let mut cursor = start;
        let problems = l.check(&name, &manifest, &host_owned, &mut cursor, hash_budget);
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
    // A release file is a link to its object: an edit in place damaged the
    // object too. Every object the release needs is checked once (a stat
    // while sealed); damaged ones are dropped and fetched again, since
    // repairing from them would only copy the damage back.
    let blobs = manifest.distinct_blobs();
    let missing = missing_or_damaged(&c.objects, blobs.keys().copied().collect()).await;
    if !missing.is_empty()
        && let Err(e) = download(c, missing).await
    {
        return Some(Drifted::failed(format!("drift found ({found}); repair failed: {}", e.message())));
    }
    let files: Vec<(String, ferry_domain::Digest)> =
        manifest.files().map(|(path, digest, _, _)| (path.to_string(), digest)).collect();
    let (l, name, objects) = (layout.clone(), want.release_name.clone(), c.objects.clone());
    let rebuilt = tokio::task::spawn_blocking(move || l.rebuild(&name, &manifest, &objects, &shared)).await;
    // The rebuilt tree has the templates, not yet what they render to.
    let rendered = match (&rebuilt, recipe) {
        (Ok(Ok(())), Some(recipe)) => {
            let env =
                config::installed_env(layout, &want.project, &want.release_name, None, &config::load_vars(layout));
            config::run_as(&recipe, &c.service_defaults)
                .and_then(|owner| config::render_templates(&release_dir, &recipe, &env, owner.as_ref()))
        }
        _ => Ok(()),
    };
    match rebuilt.map(|r| r.map_err(|e| e.to_string()).and(rendered)) {
        Ok(Ok(())) => {
            // "Repaired" only once what was wrong now hashes as the manifest says.
            let still = still_wrong(&release_dir, &files, &problems).await;
            if !still.is_empty() {
                let why = format!("{} still differ", still.join(", "));
                return Some(Drifted::failed(format!("drift found ({found}); repair failed: {why}")));
            }
            tracing::info!(project = %want.project, "drift repaired");
            let at = ferry_domain::rfc3339_from_millis(crate::now_ms());
            Some(Drifted { note: format!("drift repaired at {at}: {found}"), repaired: true })
        }
        Ok(Err(e)) => Some(Drifted::failed(format!("drift found ({found}); repair failed: {e}"))),
        Err(e) => Some(Drifted::failed(format!("drift found ({found}); repair failed: {e}"))),
    }
}

/// What a drift check found and did.
struct Drifted {
    /// For the server's status: what differed, and whether it was repaired.
    note: String,
    /// Everything that differed now matches the manifest again.
    repaired: bool,
}

impl Drifted {
    fn failed(note: String) -> Self {
        Drifted { note, repaired: false }
    }
}

/// Which of `digests` must be downloaded: those not here, and those here
/// whose stored bytes no longer match (dropped on the way, see
/// `ObjectStore::intact`). A stat per object when all is well.
async fn missing_or_damaged(
    objects: &crate::objects::ObjectStore,
    digests: Vec<ferry_domain::Digest>,
) -> Vec<ferry_domain::Digest> {
    let objects = objects.clone();
    let all = digests.clone();
    tokio::task::spawn_blocking(move || digests.into_iter().filter(|d| !objects.intact(d)).collect())
        .await
        .unwrap_or(all)
}

/// Of the files a drift check found wrong, those whose bytes still do not
/// match the manifest.
async fn still_wrong(
    release_dir: &std::path::Path,
    files: &[(String, ferry_domain::Digest)],
    problems: &[crate::layout::Drift],
) -> Vec<String> {
    let checks: Vec<(std::path::PathBuf, String, ferry_domain::Digest)> = problems
        .iter()
        .filter_map(|p| files.iter().find(|(path, _)| *path == p.path))
        .map(|(path, digest)| (release_dir.join(path), path.clone(), *digest))
        .collect();
    tokio::task::spawn_blocking(move || {
        checks
            .into_iter()
            .filter(|(full, _, digest)| !crate::objects::matches(full, digest))
            .map(|(_, p, _)| p)
            .collect()
    })
    .await
    .unwrap_or_default()
}

/// Installs (if needed) and activates one release. Returns what it moved.
async fn install(
    c: &Converger,
    layout: &ProjectLayout,
    want: &DesiredRelease,
    log: &DeployLog,
    superseded: &crate::hooks::Superseded,
) -> Result<TransferStats, InstallError> {
    let mut stats = TransferStats { release_id: want.release_id, ..Default::default() };
    let current = layout.current().map(|(name, _)| name);
    // Resuming an interrupted activation: "previous" is what it started from.
    let resumed = layout.release_meta(&want.release_name).and_then(|m| m.pending_from);
    let previous = match resumed {
        Some(from) if current.as_deref() == Some(want.release_name.as_str()) => Some(from).filter(|f| !f.is_empty()),
        _ => current,
    };
    let env = config::desired_env(layout, want, previous.as_deref());
    // Kept on the host so that the service can be restarted, and a manual
    // rollback done, without the server.
    config::save_vars(layout, &want.vars)?;
    if let Some(meta) = layout.release_meta(&want.release_name) {
        // Still on disk (a rollback or a redeploy): only the link changes,
        // once the tree is checked to be what its manifest says (R2).
        stats.bytes_reused = meta.total_size;
        // Metadata and seals only: a file written since it was verified is
        // hashed; the rotating content check is for the periodic pass.
        if let Some(drift) = check_and_repair(c, layout, want, &mut 0, 0).await {
            log.step(drift.note.clone());
            if !drift.repaired {
                return Err(drift.note.into());
            }
        }
        log.step(format!("{} is still on the host: switching back to it", want.release_name));
    } else {
        let manifest = c.api.manifest(want.release_id).await.map_err(InstallError::Transient)?;
        manifest.validate().map_err(|e| format!("the release's manifest is unsafe: {e}"))?;
        let blobs = manifest.distinct_blobs();
        // Content already here is reused only when known intact (R2).
        let missing = missing_or_damaged(&c.objects, blobs.keys().copied().collect()).await;
        stats.bytes_downloaded = missing.iter().map(|d| blobs.get(d).copied().unwrap_or(0)).sum();
        stats.files_downloaded = missing.len() as u64;
        stats.bytes_reused = manifest.total_size().saturating_sub(stats.bytes_downloaded);
        if !missing.is_empty() {
            check_space(&c.objects, &want.release_name, &stats, missing.len())?;
        }
        let fetched = async {
            if !missing.is_empty() {
                let reused = match stats.bytes_reused {
                    0 => String::new(),
                    n => format!("; {} already on the host", ferry_domain::human_size(n)),
                };
                let size = ferry_domain::human_size(stats.bytes_downloaded);
                log.step(format!("downloading {} files ({size}){reused}", stats.files_downloaded));
                download(c, missing.clone()).await?;
            }
            let recipe = config::of_manifest(&manifest, &c.objects)?;
            let recipe_hooks = recipe.hooks.clone().unwrap_or_default();
            let user = config::run_as(&recipe, &c.service_defaults)?;
            let hooks = Hooks {
                recipe: &recipe_hooks,
                env: &env,
                user: user.as_ref(),
                log,
                superseded: Some(superseded.clone()),
            };
            std::fs::create_dir_all(&layout.dir).map_err(|e| format!("{}: {e}", layout.dir.display()))?;
            config::prepare_shared(layout, &recipe, user.as_ref())?;
            hooks.run(Hook::BeforeInstall, &layout.dir).await?;
            let (shared, _) = config::host_owned_paths(&recipe);
            let objects = c.objects.clone();
            let layout2 = layout.clone();
            let name = want.release_name.clone();
            let meta = ReleaseMeta {
                release_id: want.release_id,
                version: want.version.clone(),
                env: want.env.clone(),
                total_size: manifest.total_size(),
                activated_since: 0,
                pending_from: None,
            };
            tokio::task::spawn_blocking(move || layout2.assemble(&name, &manifest, &objects, &meta, &shared))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("assembling the release: {e}"))?;
            log.step(format!("assembled {}", want.release_name));
            hooks.run(Hook::AfterInstall, &layout.release_dir(&want.release_name)).await?;
            Ok::<(), InstallError>(())
        }
        .await;
        if let Err(e @ InstallError::Failed(_)) = &fetched {
            // Leave no half of it behind: on a full disk, what this attempt
            // downloaded would make the next, smaller release fail too. (A
            // transient failure keeps it for the retry.)
            let freed = c.objects.remove_unlinked(&missing);
            let _ = std::fs::remove_dir_all(layout.releases_dir().join(format!(".partial-{}", want.release_name)));
            tracing::info!(release = %want.release_name, freed, "install failed, its downloads removed: {}", e.message());
        }
        fetched?;
    }
    activate(c, layout, want, previous.as_deref(), &env, log, superseded).await?;
    let keep = want.keep_releases;
    let layout2 = layout.clone();
    let objects = c.objects.clone();
    let _ = tokio::task::spawn_blocking(move || match layout2.prune(keep) {
        // Content only becomes garbage when a release goes.
        Ok(removed) if !removed.is_empty() => objects.collect_garbage(GC_MIN_AGE),
        Ok(_) => 0,
        Err(e) => {
            tracing::warn!("pruning old releases: {e}");
            0
        }
    })
    .await;
    Ok(stats)
}

/// Switches `current` to an installed release and proves it works: renders
/// its templates, runs its hooks, (re)starts its service and passes its
/// health check. A failure before the switch leaves the host as it was; a
/// failure after it puts the host back on `previous` (unless the release's
/// `[health] rollback = false` says to stay).
async fn activate(
    c: &Converger,
    layout: &ProjectLayout,
    want: &DesiredRelease,
    previous: Option<&str>,
    env: &[(String, String)],
    log: &DeployLog,
    superseded: &crate::hooks::Superseded,
) -> Result<(), String> {
    let release_dir = layout.release_dir(&want.release_name);
    let recipe = config::of_release(&release_dir)?;
    let recipe_hooks = recipe.hooks.clone().unwrap_or_default();
    let user = config::run_as(&recipe, &c.service_defaults)?;
    let hooks = Hooks { recipe: &recipe_hooks, env, user: user.as_ref(), log, superseded: Some(superseded.clone()) };
    config::render_templates(&release_dir, &recipe, env, user.as_ref())?;
    config::prepare_shared(layout, &recipe, user.as_ref())?;
    // Moving to an older release still on disk is a rollback (R18's rollback hooks).
    let rollback = previous
        .filter(|p| *p != want.release_name)
        .and_then(|p| layout.release_meta(p))
        .is_some_and(|meta| meta.release_id > want.release_id);
    if rollback {
        hooks.run(Hook::BeforeRollback, &release_dir).await?;
    }
    hooks.run(Hook::BeforeActivate, &release_dir).await?;
    layout
        .set_pending_from(&want.release_name, Some(previous.unwrap_or_default()))
        .and_then(|()| layout.activate(&want.release_name))
        .map_err(|e| format!("activating the release: {e}"))?;
    log.step(format!("activated {}", want.release_name));
    let after = async {
        if recipe.service.is_some() {
            log.step("starting the service");
        }
        c.supervisor.deploy(&want.project).await.map_err(|e| (e, true))?;
        hooks.run(Hook::AfterActivate, &release_dir).await.map_err(|e| (e, true))?;
        if rollback {
            hooks.run(Hook::AfterRollback, &release_dir).await.map_err(|e| (e, true))?;
        }
        if let Some(health) = &recipe.health {
            log.step("health check");
            // Retries can take minutes: a superseded install does not wait them out.
            let stopped = async {
                while !superseded() {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            };
            let checked = tokio::select! {
                checked = health::check(health, &release_dir, env, user.as_ref()) => checked,
                () = stopped => Err("health check stopped: the server asked for another release".to_string()),
            };
            checked.map_err(|e| (e, health.rolls_back()))?;
        }
        hooks.run(Hook::Validate, &release_dir).await.map_err(|e| (e, true))
    };
    if let Err((e, put_back)) = after.await {
        return Err(match previous.filter(|p| put_back && *p != want.release_name) {
            Some(prev) => put_back_previous(c, layout, &want.project, &want.release_name, prev, e, log).await,
            None if put_back => e, // nothing to go back to: retried later
            None => {
                // `[health] rollback = false`: the host stays, failed; not retried.
                let _ = layout.set_pending_from(&want.release_name, None);
                e
            }
        });
    }
    layout
        .set_activated_since(&want.release_name, want.desired_since)
        .map_err(|e| format!("recording the activation: {e}"))
}

/// Puts the host back on the release it ran before a failed activation,
/// restarting that release's service. Returns the whole story.
async fn put_back_previous(
    c: &Converger,
    layout: &ProjectLayout,
    project: &str,
    failed: &str,
    prev: &str,
    error: String,
    log: &DeployLog,
) -> String {
    let dir = layout.release_dir(prev);
    let recipe = config::of_release(&dir).ok();
    let recipe_hooks = recipe.as_ref().and_then(|r| r.hooks.clone()).unwrap_or_default();
    let user = recipe.as_ref().and_then(|r| config::run_as(r, &c.service_defaults).ok()).flatten();
    let env = config::installed_env(layout, project, prev, None, &config::load_vars(layout));
    // Putting the host back always finishes, whatever arrives meanwhile.
    let hooks = Hooks { recipe: &recipe_hooks, env: &env, user: user.as_ref(), log, superseded: None };
    let mut story = error;
    if let Err(e) = hooks.run(Hook::BeforeRollback, &dir).await {
        story.push_str(&format!("\n{e}"));
    }
    let _ = layout.set_pending_from(failed, None);
    if let Err(back) = layout.activate(prev) {
        let failed_too = format!("putting back the previous release {prev} failed too: {back}");
        log.step(failed_too.clone());
        return format!("{story}\n{failed_too}");
    }
    log.step(format!("put back on the previous release {prev}"));
    story.push_str(&format!("\nput back on the previous release {prev}"));
    if let Err(e) = c.supervisor.deploy(project).await {
        story.push_str(&format!("; its service did not start either: {e}"));
    }
    if let Err(e) = hooks.run(Hook::AfterRollback, &dir).await {
        story.push_str(&format!("\n{e}"));
    }
    story
}

/// Downloads blobs into the content store, verifying each; a blob whose bytes
/// do not match its digest is never stored, and fails the install.
/// Room kept free beyond what a release's content needs: its directories,
/// rendered templates, and the service's first log lines.
const SPACE_RESERVE: u64 = 16 * 1024 * 1024;

/// Refuses an install that cannot fit before a byte is downloaded, naming
/// what it needs and what there is.
fn check_space(objects: &ObjectStore, release: &str, stats: &TransferStats, files: usize) -> Result<(), InstallError> {
    // Each file takes at least a block of its own.
    let needed = stats.bytes_downloaded + (files as u64) * 4096 + SPACE_RESERVE;
    let available = objects.available_bytes().map_err(|e| format!("checking free disk space: {e}"))?;
    if available < needed {
        return Err(InstallError::Failed(format!(
            "not enough disk space for {release} under {}: it needs about {} ({} to download, plus {} kept \
             free), and {} is available; free some space (or keep fewer releases) and deploy again",
            objects.root().display(),
            ferry_domain::human_size(needed),
            ferry_domain::human_size(stats.bytes_downloaded),
            ferry_domain::human_size(SPACE_RESERVE),
            ferry_domain::human_size(available),
        )));
    }
    Ok(())
}

async fn download(c: &Converger, digests: Vec<ferry_domain::Digest>) -> Result<(), InstallError> {
    use InstallError::Transient;
    let wanted = digests.len();
    let resp = c.api.blobs(digests).await.map_err(Transient)?;
    let mut stream = resp.bytes_stream();
    let mut decoder = Decoder::new();
    let mut current = None;
    let mut stored = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Transient(format!("download interrupted: {e}")))?;
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
                        let path = w.finish().map_err(|e| format!("content from the server rejected: {e}"))?;
                        // Verified against its digest on the way in.
                        let _ = crate::objects::seal(&path);
                        stored += 1;
                    }
                }
            }
        }
    }
    decoder.finish().map_err(|e| Transient(format!("download interrupted: {e}")))?;
    if stored != wanted {
        return Err(Transient(format!("the server sent {stored} of {wanted} requested blobs")));
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
