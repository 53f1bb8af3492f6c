//! One function per subcommand. Each prints its result and returns an error
//! (making `ferry` exit non-zero) when the operation did not succeed.
//!
//! Long file: the subcommands without a module of their own, each short; those
//! that grew (requests, accounts, audit, ...) have moved out.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use ferry_domain::rollout::RolloutOptions;
use ferry_domain::{BuildStatus, DeploymentKind, DeploymentStatus, HostDeployState};
use ferry_proto::api::*;

use crate::exit::{Failed, Kind};
use crate::output::{bytes, table, time};
use crate::upload::{ReleaseLabels, upload_release};
use crate::{Client, Output};

pub async fn project_create(c: &Client, req: CreateProject) -> Result<()> {
    let p: ProjectInfo = c.post("/api/v1/projects", &req).await?;
    let source = match &p.repo {
        Some(repo) => format!(", builds from {repo}"),
        None => String::new(),
    };
    println!("created project {} (keeps {} releases per host{source})", p.name, p.keep_releases);
    Ok(())
}

/// `ferry project hosts P SCOPE|--any`.
pub async fn project_hosts(c: &Client, project: &str, scope: Option<String>) -> Result<()> {
    let p: ProjectInfo = c.post(&format!("/api/v1/projects/{project}/host-scope"), &SetHostScope { scope }).await?;
    match &p.host_scope {
        Some(s) => println!("project {}: environments may select only hosts with {s}", p.name),
        None => println!("project {}: environments may select any host", p.name),
    }
    Ok(())
}

/// `ferry host tag HOST K=V,...`.
pub async fn host_tag(c: &Client, host: &str, tags: String) -> Result<()> {
    let h: HostInfo = c.post(&format!("/api/v1/hosts/{host}/tags"), &SetHostTags { tags }).await?;
    println!("host {} now has tags {}", h.name, h.tags);
    Ok(())
}

/// `ferry host remove NAME`.
pub async fn host_remove(c: &Client, host: &str) -> Result<()> {
    let _: serde_json::Value = c.delete(&format!("/api/v1/hosts/{host}")).await?;
    println!("removed host {host}: its agent is refused from now on, and a new host may enrol as {host}");
    Ok(())
}

/// `ferry join-token create --tags K=V,...`: prints the token once.
pub async fn join_token_create(c: &Client, tags: String) -> Result<()> {
    let t: JoinTokenInfo = c.post("/api/v1/join-tokens", &CreateJoinToken { tags }).await?;
    let Some(token) = t.token else { bail!("the server answered no token") };
    eprintln!(
        "join token {} for hosts with tags within {} (shown once; revoke with `ferry join-token revoke {}`):",
        t.id, t.tags, t.id
    );
    println!("{token}");
    Ok(())
}

/// `ferry join-token list`.
pub async fn join_token_list(c: &Client, out: Output) -> Result<()> {
    let list: Vec<JoinTokenInfo> = c.get("/api/v1/join-tokens").await?;
    out.print(&list, |l| {
        table(
            &["ID", "TAGS", "BY", "CREATED", "REVOKED"],
            l.iter()
                .map(|t| {
                    vec![
                        t.id.to_string(),
                        t.tags.to_string(),
                        t.created_by.clone(),
                        time(&t.created_at),
                        t.revoked_at.as_deref().map(time).unwrap_or("-".into()),
                    ]
                })
                .collect(),
        )
    })
}

/// `ferry join-token revoke ID`.
pub async fn join_token_revoke(c: &Client, id: i64) -> Result<()> {
    let _: serde_json::Value = c.delete(&format!("/api/v1/join-tokens/{id}")).await?;
    println!("join token {id} revoked: no host enrols with it any more");
    Ok(())
}

pub async fn project_list(c: &Client, out: Output) -> Result<()> {
    let list: Vec<ProjectInfo> = c.get("/api/v1/projects").await?;
    out.print(&list, |l| {
        table(
            &["PROJECT", "KEEP", "CREATED"],
            l.iter().map(|p| vec![p.name.clone(), p.keep_releases.to_string(), time(&p.created_at)]).collect(),
        )
    })
}

pub async fn env_create(c: &Client, project: &str, req: CreateEnvironment) -> Result<()> {
    let e: EnvironmentInfo = c.post(&format!("/api/v1/projects/{project}/environments"), &req).await?;
    let follow = match &e.auto_deploy_branch {
        Some(b) => format!("; successful builds of '{b}' deploy here"),
        None => String::new(),
    };
    println!("created environment {}/{} selecting hosts with {}{follow}", e.project, e.name, e.selector);
    println!("rollout: {}", e.rollout);
    println!("offline targets: {}", e.offline_policy);
    Ok(())
}

/// `ferry env update PROJECT ENV --select ... --offline ...`.
pub async fn env_update(c: &Client, project: &str, env: &str, req: UpdateEnvironment, out: Output) -> Result<()> {
    let e: EnvironmentInfo = c.post(&format!("/api/v1/projects/{project}/environments/{env}"), &req).await?;
    out.print(&e, |e| {
        format!("{}/{} selects hosts with {}; offline targets: {}\n", e.project, e.name, e.selector, e.offline_policy)
    })
}

/// `ferry env delete PROJECT ENV`.
pub async fn env_delete(c: &Client, project: &str, env: &str) -> Result<()> {
    let _: serde_json::Value = c.delete(&format!("/api/v1/projects/{project}/environments/{env}")).await?;
    println!("deleted environment {project}/{env}; its deployments stay readable (ferry deployments {project})");
    Ok(())
}

/// `ferry project update PROJECT ...`.
pub async fn project_update(c: &Client, project: &str, req: UpdateProject, out: Output) -> Result<()> {
    let p: ProjectInfo = c.post(&format!("/api/v1/projects/{project}"), &req).await?;
    out.print(&p, |p| {
        format!(
            "project {}: keeps {} releases; repository {}; branches {}; push tags {}; webhook secret {}\n",
            p.name,
            p.keep_releases,
            p.repo.as_deref().unwrap_or("-"),
            if p.branches.is_empty() { "all".to_string() } else { p.branches.join(",") },
            p.push_tags,
            if p.webhook_secret_set { "set" } else { "not set" }
        )
    })
}

/// `ferry project delete PROJECT`.
pub async fn project_delete(c: &Client, project: &str) -> Result<()> {
    let _: ProjectInfo = c.delete(&format!("/api/v1/projects/{project}")).await?;
    println!("deleted project {project}; its history stays readable (ferry deployments {project})");
    Ok(())
}

/// `ferry env set-rollout PROJECT ENV [options]`.
pub async fn env_set_rollout(c: &Client, project: &str, env: &str, options: RolloutOptions, out: Output) -> Result<()> {
    if options.is_empty() {
        bail!("give at least one rollout option (see `ferry env set-rollout --help`)");
    }
    let e: EnvironmentInfo =
        c.post(&format!("/api/v1/projects/{project}/environments/{env}/rollout"), &options).await?;
    out.print(&e, |e| format!("{}/{} rollout: {}\n", e.project, e.name, e.rollout))
}

pub async fn env_list(c: &Client, project: &str, out: Output) -> Result<()> {
    let list: Vec<EnvironmentInfo> = c.get(&format!("/api/v1/projects/{project}/environments")).await?;
    out.print(&list, |l| {
        table(
            &["ENV", "SELECTOR", "AFTER", "DESIRED VERSION", "OFFLINE", "ROLLOUT"],
            l.iter()
                .map(|e| {
                    vec![
                        if e.production { format!("{} (production)", e.name) } else { e.name.clone() },
                        e.selector.clone(),
                        e.after.clone().unwrap_or("-".into()),
                        e.desired_version.clone().unwrap_or("-".into()),
                        e.offline_policy.to_string(),
                        e.rollout.clone(),
                    ]
                })
                .collect(),
        )
    })
}

pub async fn release_upload(c: &Client, project: &str, path: &Path, labels: ReleaseLabels, out: Output) -> Result<()> {
    let r = upload_release(c, project, path, labels).await?;
    out.print(&r, |r| {
        format!(
            "uploaded {}/{}: {} files, {} (manifest {})\n",
            r.project,
            r.version,
            r.file_count,
            bytes(r.total_size),
            &r.manifest_digest.to_hex()[..12]
        )
    })
}

pub async fn release_list(c: &Client, project: &str, out: Output) -> Result<()> {
    let list: Vec<ReleaseInfo> = c.get(&format!("/api/v1/projects/{project}/releases")).await?;
    out.print(&list, |l| {
        table(
            &["VERSION", "BRANCH", "COMMITTER", "FILES", "SIZE", "CREATED", "MARK"],
            l.iter()
                .map(|r| {
                    vec![
                        r.version.clone(),
                        r.branch.clone(),
                        r.committer.clone(),
                        r.file_count.to_string(),
                        bytes(r.total_size),
                        time(&r.created_at),
                        r.bad
                            .as_ref()
                            .map(|m| format!("BAD ({}, {}): {}", m.by, time(&m.at), m.reason))
                            .unwrap_or_default(),
                    ]
                })
                .collect(),
        )
    })
}

/// `ferry deploy` and `ferry rollback`.
pub async fn deploy(c: &Client, project: &str, req: CreateDeployment, wait: bool, out: Output) -> Result<()> {
    let d: DeploymentInfo = c.post(&format!("/api/v1/projects/{project}/deployments"), &req).await?;
    started(c, d, wait, out).await
}

/// `ferry deploy|rollback --dry-run`: the plan the server would follow, and
/// nothing done; refused as the real one would be.
pub async fn dry_run(c: &Client, project: &str, req: CreateDeployment, out: Output) -> Result<()> {
    let plan: DeploymentPlan = c.post(&format!("/api/v1/projects/{project}/deployments/plan"), &req).await?;
    out.print(&plan, plan_text)
}

/// A dry run's plan for people: batches in order, each host with where it
/// goes and what it would download.
fn plan_text(p: &DeploymentPlan) -> String {
    let what = if p.kind == DeploymentKind::Rollback { "rollback" } else { "deployment" };
    let hosts: usize = p.batches.iter().map(|b| b.hosts.len()).sum();
    let mut text = format!(
        "dry run: nothing was changed
{what} of {}/{} to version {} on {hosts} host(s) in {} batch(es)
rollout: {}{}
",
        p.project,
        p.env,
        p.version,
        p.batches.len(),
        if p.emergency { "EMERGENCY, " } else { "" },
        p.rollout
    );
    if p.forced {
        text.push_str(&format!(
            "forced: version {} is marked bad
",
            p.version
        ));
    }
    if p.freeze_ignored {
        text.push_str(
            "would go through the environment's freeze
",
        );
    }
    if let Some(id) = p.takes_over {
        text.push_str(&format!(
            "would take over from deployment {id}, which ends canceled
"
        ));
    }
    let row = |batch: String, h: &PlannedHost| {
        vec![
            batch,
            h.host.clone(),
            format!("{} -> {}", h.from_version.as_deref().unwrap_or("(nothing)"), h.version),
            if h.online { "online".into() } else { "OFFLINE".into() },
            format!("{} in {} file(s)", bytes(h.download_bytes), h.download_files),
            bytes(h.reused_bytes),
        ]
    };
    let mut rows: Vec<Vec<String>> = Vec::new();
    for b in &p.batches {
        for h in &b.hosts {
            rows.push(row(format!("{}/{}", b.batch, p.batches.len()), h));
        }
    }
    for h in &p.skipped {
        rows.push(row("skipped".into(), h));
    }
    text.push_str(&table(&["BATCH", "HOST", "VERSION", "STATE", "DOWNLOAD", "REUSED"], rows));
    text.push_str(&format!(
        "total download: {} in {} file(s)
",
        bytes(p.download_bytes),
        p.download_files
    ));
    if !p.skipped.is_empty() {
        let names: Vec<&str> = p.skipped.iter().map(|h| h.host.as_str()).collect();
        text.push_str(&format!(
            "offline, would be skipped: {}; they get version {} when they return if the deployment succeeds
",
            names.join(", "),
            p.version
        ));
    }
    for n in &p.notes {
        text.push_str(&format!(
            "note: {n}
"
        ));
    }
    text
}

/// `ferry promote P --from A --to B`: the server picks A's version (R23).
pub async fn promote(c: &Client, project: &str, req: ferry_proto::api::Promote, wait: bool, out: Output) -> Result<()> {
    let d: DeploymentInfo = c.post(&format!("/api/v1/projects/{project}/promote"), &req).await?;
    started(c, d, wait, out).await
}

/// Says what a new deployment is, and with `wait` follows it to its end.
pub(crate) async fn started(c: &Client, d: DeploymentInfo, wait: bool, out: Output) -> Result<()> {
    let what = if d.kind == DeploymentKind::Rollback { "rollback" } else { "deployment" };
    if out == Output::Table {
        println!("{what} {} of {}/{} to version {} on {} host(s)", d.id, d.project, d.env, d.version, d.hosts.len());
        if d.forced {
            println!("forced: version {} is marked bad (see `ferry releases {}`)", d.version, d.project);
        }
        if d.freeze_ignored {
            println!("through the freeze of {}/{} (see `ferry locks {}`)", d.project, d.env, d.project);
        }
        if d.batch_count > 1 || d.emergency {
            println!("  rollout: {}{}", if d.emergency { "EMERGENCY, " } else { "" }, d.rollout);
        }
        if d.kind == DeploymentKind::Rollback {
            // Each host goes back to what it ran before: say where, per host.
            for h in &d.hosts {
                println!("  {}", moves_line(h));
            }
            if !wait {
                for e in d.events.iter().map(|e| e.text()).filter(|e| e.starts_with("left as is: ")) {
                    println!("  {e}");
                }
            }
        }
        if let Some(w) = skipped_warning(&d) {
            eprintln!("{w}");
        }
    }
    if !wait {
        if out == Output::Json {
            out.print(&d, |_| String::new())?;
        }
        return Ok(());
    }
    let done = follow(c, d.id, out).await?;
    finish(&done, out)
}

/// How long `--wait` keeps trying when the server does not answer.
const FOLLOW_PATIENCE: Duration = Duration::from_secs(30);

/// Polls a deployment until it ends, printing each host's changes.
async fn follow(c: &Client, id: i64, out: Output) -> Result<DeploymentInfo> {
    let started = Instant::now();
    let mut seen: HashMap<String, HostDeployState> = HashMap::new();
    let mut events_seen = 0usize;
    let mut hold_seen: Option<String> = None;
    let mut unreachable_since: Option<Instant> = None;
    let mut progress = Progress::new();
    // Hosts whose end was printed: each counts once, in the order printed.
    let mut ended: std::collections::HashSet<String> = std::collections::HashSet::new();
    loop {
        // The deployment goes on without us: ride out a server restart.
        let d: DeploymentInfo = match c.get(&format!("/api/v1/deployments/{id}")).await {
            Ok(d) => {
                unreachable_since = None;
                d
            }
            Err(e) => {
                let since = *unreachable_since.get_or_insert_with(Instant::now);
                if since.elapsed() > FOLLOW_PATIENCE {
                    return Err(e.context(format!("lost track of deployment {id}")));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if out == Output::Table {
            let at = started.elapsed().as_secs_f64();
            let mut lines = Vec::new();
            // Batches, gates and the end, as the server recorded them; the
            // creation is already printed.
            for e in d.events.iter().skip(events_seen.max(1)) {
                lines.push(format!("  {at:>6.1}s  -- {}", e.text()));
            }
            events_seen = d.events.len();
            if d.hold != hold_seen {
                if let Some(waiting) = promotion_wait(&d) {
                    lines.push(format!("  {at:>6.1}s  -- {waiting}"));
                }
                hold_seen = d.hold.clone();
            }
            // Hosts in the deployment's order (batch by batch), each change
            // with how many of all the hosts are done.
            // Each end printed counts one more, so hosts that ended between
            // two polls still count 1, 2, 3 rather than all showing the total.
            let total = d.hosts.len();
            let done = d.hosts.iter().filter(|h| h.state.is_terminal()).count();
            for h in &d.hosts {
                if seen.get(&h.host) != Some(&h.state) && h.state != HostDeployState::Queued {
                    seen.insert(h.host.clone(), h.state);
                    let count = if h.state.is_terminal() {
                        // A host that ends twice (updated, then put back) counts once.
                        ended.insert(h.host.clone());
                        format!("[{}/{total}]", ended.len())
                    } else {
                        String::new()
                    };
                    lines.push(format!("  {at:>6.1}s  {count:>7} {:<20} {}", h.host, host_line(h)));
                }
            }
            progress.show(&lines, &format!("  {done}/{total} host(s) done, {at:.0}s"), d.status.is_terminal());
        }
        if d.status.is_terminal() {
            return Ok(d);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A live `n/total` line under the printed lines, on a terminal only: piped
/// output (CI logs, files) gets the plain lines alone.
struct Progress {
    live: bool,
    shown: bool,
}

impl Progress {
    fn new() -> Progress {
        use std::io::IsTerminal;
        Progress { live: std::io::stdout().is_terminal(), shown: false }
    }

    fn show(&mut self, lines: &[String], status: &str, end: bool) {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        if self.live && self.shown && (!lines.is_empty() || end) {
            // Clear the live line before printing above it.
            let _ = write!(stdout, "\r\x1b[K");
            self.shown = false;
        }
        for l in lines {
            let _ = writeln!(stdout, "{l}");
        }
        if self.live && !end {
            let _ = write!(stdout, "\r\x1b[K{status}");
            self.shown = true;
        }
        let _ = stdout.flush();
    }
}

/// A deployment waiting to be promoted (a canary's first batch done), said
/// with the command that promotes it.
pub fn promotion_wait(d: &DeploymentInfo) -> Option<String> {
    let hold = d.hold_text().filter(|h| h.starts_with("waiting for promote"))?;
    (d.status == DeploymentStatus::Running)
        .then(|| format!("waiting for promotion ({hold}); promote with: ferry deployment promote {}", d.id))
}

/// `web-1: v2 -> v1`: where a host goes, from what it ran.
fn moves_line(h: &DeploymentHostInfo) -> String {
    format!(
        "{}: {} -> {}",
        h.host,
        h.from_version.as_deref().unwrap_or("(nothing)"),
        h.version.as_deref().unwrap_or(&h.release_name)
    )
}

fn host_line(h: &DeploymentHostInfo) -> String {
    match h.state {
        HostDeployState::Succeeded => {
            format!("succeeded  ({} downloaded, {} reused)", bytes(h.bytes_downloaded), bytes(h.bytes_reused))
        }
        HostDeployState::Failed => format!("FAILED  {}", h.error_text().unwrap_or_default()),
        HostDeployState::RolledBack | HostDeployState::Canceled | HostDeployState::Skipped => {
            format!("{}  {}", h.state, h.error_text().unwrap_or_default().replace('\n', "; "))
        }
        other => other.to_string(),
    }
}

/// The warning about targets that were offline at the start and skipped.
fn skipped_warning(d: &DeploymentInfo) -> Option<String> {
    let skipped: Vec<&str> =
        d.hosts.iter().filter(|h| h.state == HostDeployState::Skipped).map(|h| h.host.as_str()).collect();
    (!skipped.is_empty()).then(|| {
        format!(
            "warning: {} host(s) offline at the start were skipped: {}; they get version {} when they return if \
             the deployment succeeds",
            skipped.len(),
            skipped.join(", "),
            d.version
        )
    })
}

fn finish(d: &DeploymentInfo, out: Output) -> Result<()> {
    if out == Output::Table
        && let Some(w) = skipped_warning(d)
    {
        eprintln!("{w}");
    }
    let count = |state| d.hosts.iter().filter(|h| h.state == state).count();
    let (succeeded, failed) = (count(HostDeployState::Succeeded), count(HostDeployState::Failed));
    out.print(d, |d| {
        format!(
            "{} {} {}: {} of {} host(s) on version {}{}\n",
            if d.kind == DeploymentKind::Rollback { "rollback" } else { "deployment" },
            d.id,
            d.status,
            succeeded,
            d.hosts.len(),
            d.version,
            d.reason_text().map(|r| format!(" ({r})")).unwrap_or_default()
        )
    })?;
    if d.status != DeploymentStatus::Succeeded {
        let reason = d.reason_text();
        let why = reason.as_deref().unwrap_or("it did not succeed");
        let message = format!(
            "deployment {} {}: {why}; failed on {failed} host(s); see `ferry deployment show {}`",
            d.id, d.status, d.id
        );
        // The exit status says how it ended (see `exit`).
        let kind = Kind::of_deployment(d.status, reason.as_deref()).unwrap_or(Kind::Failed);
        return Err(Failed::error(kind, message));
    }
    Ok(())
}

/// `ferry deployment pause|resume|promote|cancel ID`.
pub async fn deployment_control(c: &Client, id: i64, action: &str, out: Output) -> Result<()> {
    let d: DeploymentInfo = c.post(&format!("/api/v1/deployments/{id}/{action}"), &serde_json::json!({})).await?;
    out.print(&d, |d| {
        format!("deployment {} {}{}\n", d.id, d.status, d.hold_text().map(|h| format!(": {h}")).unwrap_or_default())
    })
}

/// `ferry deployment retry ID [--failed]`.
pub async fn deployment_retry(c: &Client, id: i64, failed_only: bool, wait: bool, out: Output) -> Result<()> {
    let req = ferry_proto::api::RetryDeployment { failed_only };
    let d: DeploymentInfo = c.post(&format!("/api/v1/deployments/{id}/retry"), &req).await?;
    started(c, d, wait, out).await
}

pub async fn status(c: &Client, project: &str, out: Output) -> Result<()> {
    let s: ProjectStatus = c.get(&format!("/api/v1/projects/{project}/status")).await?;
    out.print(&s, |s| {
        let mut text = String::new();
        for env in &s.environments {
            // "v3 (marked bad: memory leak)" wherever a marked version shows.
            let marked = |v: &str| match env.marked_bad.get(v) {
                Some(m) => format!("{v} (marked bad: {})", m.reason),
                None => v.to_string(),
            };
            let counts: Vec<String> = env.version_counts.iter().map(|(v, n)| format!("{}: {n}", marked(v))).collect();
            text.push_str(&format!(
                "{}/{}  selector {}  desired {}  hosts by version: {}\n",
                s.project,
                env.env,
                env.selector,
                env.desired_version.as_deref().map(marked).unwrap_or("-".into()),
                if counts.is_empty() { "no hosts".to_string() } else { counts.join(", ") }
            ));
            if let Some(f) = &env.freeze {
                text.push_str(&format!(
                    "  FROZEN by {} until {}: {}\n",
                    f.owner,
                    f.expires_at.as_deref().map(time).unwrap_or_default(),
                    f.reason
                ));
            }
            let rows = env
                .hosts
                .iter()
                .map(|h| {
                    vec![
                        format!("  {}", h.host),
                        if h.online { "online".into() } else { "OFFLINE".into() },
                        h.current_version.as_deref().map(marked).unwrap_or("-".into()),
                        h.desired_version.as_deref().map(marked).unwrap_or("-".into()),
                        match &h.service {
                            Some(s) if s.failing => format!("{}, SERVICE FAILING", h.activity),
                            _ => h.activity.clone(),
                        },
                        h.error.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            text.push_str(&table(&["  HOST", "STATE", "RUNNING", "DESIRED", "ACTIVITY", "ERROR"], rows));
            // A failing service after its deploy (R21): why, and its stderr.
            for h in &env.hosts {
                let Some(s) = h.service.as_ref().filter(|s| s.failing) else { continue };
                let since = s.since.as_deref().map(|t| format!(" since {}", time(t))).unwrap_or_default();
                text.push_str(&format!("  {}: service FAILING{since}: {}\n", h.host, s.reason));
                for line in &s.stderr {
                    text.push_str(&format!("    | {line}\n"));
                }
            }
        }
        text
    })
}

pub async fn hosts(c: &Client, out: Output) -> Result<()> {
    let list: Vec<HostInfo> = c.get("/api/v1/hosts").await?;
    out.print(&list, |l| {
        table(
            &["HOST", "TAGS", "STATE", "LAST HEARTBEAT", "AGENT", "BINARY", "ADDRESS"],
            l.iter()
                .map(|h| {
                    vec![
                        h.name.clone(),
                        match &h.announced_tags {
                            // Shown, never applied: only `ferry host tag` changes tags.
                            Some(asked) => format!("{} (agent asks for {asked})", h.tags),
                            None => h.tags.to_string(),
                        },
                        if h.online { "online".into() } else { "OFFLINE".into() },
                        h.last_seen.as_deref().map(time).unwrap_or("-".into()),
                        h.agent_version.clone().unwrap_or("-".into()),
                        // The uploaded binary's label and short digest.
                        match (&h.agent_binary, &h.agent_digest) {
                            (v, Some(d)) => {
                                format!("{} ({})", v.as_deref().unwrap_or("-"), crate::agent_upgrade::short(d))
                            }
                            _ => "-".into(),
                        },
                        h.address.clone().unwrap_or("-".into()),
                    ]
                })
                .collect(),
        )
    })
}

pub async fn deployments(c: &Client, project: &str, limit: u32, out: Output) -> Result<()> {
    let list: Vec<DeploymentInfo> = c.get(&format!("/api/v1/projects/{project}/deployments?limit={limit}")).await?;
    out.print(&list, |l| {
        table(
            &["ID", "ENV", "VERSION", "KIND", "STATUS", "BY", "STARTED", "FINISHED"],
            l.iter()
                .map(|d| {
                    vec![
                        d.id.to_string(),
                        d.env.clone(),
                        d.version.clone(),
                        kind_text(d),
                        d.status.to_string(),
                        d.created_by.clone(),
                        time(&d.created_at),
                        d.finished_at.as_deref().map(time).unwrap_or("-".into()),
                    ]
                })
                .collect(),
        )
    })
}

/// The kind of a deployment, with what it overrode.
fn kind_text(d: &DeploymentInfo) -> String {
    let mut text = d.kind.to_string();
    if d.forced {
        text.push_str(" (forced)");
    }
    if d.freeze_ignored {
        text.push_str(" (through freeze)");
    }
    text
}

pub async fn deployment_show(c: &Client, id: i64, follow_it: bool, out: Output) -> Result<()> {
    if follow_it {
        let d = follow(c, id, out).await?;
        return finish(&d, out);
    }
    let d: DeploymentInfo = c.get(&format!("/api/v1/deployments/{id}")).await?;
    out.print(&d, |d| {
        let mut text = format!(
            "deployment {} ({}{}) of {}/{} version {}: {}{}\nstarted {} by {}, finished {}\nrollout: {}\n",
            d.id,
            d.kind,
            if d.emergency { ", emergency" } else { "" },
            d.project,
            d.env,
            d.version,
            d.status,
            d.hold_text().or(d.reason_text()).map(|h| format!(" ({h})")).unwrap_or_default(),
            time(&d.created_at),
            d.created_by,
            d.finished_at.as_deref().map(time).unwrap_or("-".into()),
            d.rollout,
        );
        if d.forced {
            text.push_str(&format!("forced: version {} was marked bad when it was deployed\n", d.version));
        }
        if d.freeze_ignored {
            text.push_str("went through a freeze of the environment\n");
        }
        if let Some(w) = skipped_warning(d) {
            text.push_str(&w);
            text.push('\n');
        }
        if let Some(waiting) = promotion_wait(d) {
            text.push_str(&format!("{waiting}\n"));
        }
        let rows = d
            .hosts
            .iter()
            .map(|h| {
                vec![
                    format!("{}/{}", h.batch, d.batch_count),
                    h.host.clone(),
                    match &h.from_version {
                        Some(from) => format!("{from} -> {}", h.version.as_deref().unwrap_or("?")),
                        None => h.version.clone().unwrap_or_default(),
                    },
                    h.state.to_string(),
                    h.started_at.as_deref().map(time).unwrap_or("-".into()),
                    h.finished_at.as_deref().map(time).unwrap_or("-".into()),
                    bytes(h.bytes_downloaded),
                    bytes(h.bytes_reused),
                    h.error_text().unwrap_or_default(),
                ]
            })
            .collect();
        text.push_str(&table(
            &["BATCH", "HOST", "VERSION", "STATE", "STARTED", "FINISHED", "DOWNLOADED", "REUSED", "ERROR"],
            rows,
        ));
        if !d.events.is_empty() {
            text.push_str("\nhistory:\n");
            for e in &d.events {
                text.push_str(&format!("  {}  {}\n", time(&e.at), e.text()));
            }
        }
        text
    })
}

/// Lines asked for per request of a deployment's log.
const LOG_PAGE: usize = 1000;
/// How often `deployment log --follow` asks for new lines.
const LOG_POLL: Duration = Duration::from_millis(300);

/// `ferry deployment log ID`: the deployment's log as `HOST | LINE`, of one
/// host if `host` is given; with `follow`, until the deployment ends, failing
/// unless it succeeded.
pub async fn deployment_log(c: &Client, id: i64, host: Option<&str>, follow: bool, out: Output) -> Result<()> {
    if let Some(h) = host {
        ferry_domain::validate_name("host name", h)?;
    }
    // The hosts' names set the width of the first column.
    let d: DeploymentInfo = c.get(&format!("/api/v1/deployments/{id}")).await?;
    let width = d.hosts.iter().map(|h| h.host.chars().count()).max().unwrap_or(0);
    let host_query = host.map(|h| format!("&host={h}")).unwrap_or_default();
    let mut after = 0;
    let mut asked = false;
    let mut unreachable_since: Option<Instant> = None;
    let status = loop {
        let path = format!("/api/v1/deployments/{id}/log?after={after}&limit={LOG_PAGE}{host_query}");
        let page: DeploymentLog = match c.get(&path).await {
            Ok(page) => page,
            // Following rides out a server restart, as `deploy --wait` does;
            // a first answer that is an error (no such host) is final.
            Err(e) if follow && asked => {
                let since = *unreachable_since.get_or_insert_with(Instant::now);
                if since.elapsed() > FOLLOW_PATIENCE {
                    return Err(e.context(format!("lost track of deployment {id}")));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        (asked, unreachable_since) = (true, None);
        for l in &page.lines {
            after = l.seq;
            print_deployment_line(l, width, out);
        }
        if page.lines.len() >= LOG_PAGE {
            continue;
        }
        // The status was read before the lines: ended means nothing is missing.
        if !follow || page.status.is_terminal() {
            break page.status;
        }
        tokio::time::sleep(LOG_POLL).await;
    };
    if follow {
        if out == Output::Table {
            println!("deployment {id} {status}");
        }
        if status != DeploymentStatus::Succeeded {
            // The log's page carries no reason: ask for it, to tell an
            // emergency's takeover from a cancel.
            let reason = match c.get::<DeploymentInfo>(&format!("/api/v1/deployments/{id}")).await {
                Ok(d) => d.reason_text(),
                Err(_) => None,
            };
            let kind = Kind::of_deployment(status, reason.as_deref()).unwrap_or(Kind::Failed);
            return Err(Failed::error(kind, format!("deployment {id} {status}; see `ferry deployment show {id}`")));
        }
    }
    Ok(())
}

fn print_deployment_line(l: &DeploymentLogLineInfo, width: usize, out: Output) {
    match out {
        Output::Json => println!("{}", serde_json::to_string(l).unwrap_or_default()),
        Output::Table => {
            let text = match l.stream.as_str() {
                "ferry" => format!("==> {}", l.line),
                "stderr" => format!("stderr: {}", l.line),
                _ => l.line.clone(),
            };
            println!("{} {:<width$} | {text}", clock(&l.at), l.host);
        }
    }
}

/// `ferry build PROJECT`: queue a build, and with `follow` stream its log
/// and exit with its outcome.
pub async fn build(c: &Client, project: &str, git_ref: Option<String>, follow: bool, out: Output) -> Result<()> {
    let b: BuildInfo = c.post(&format!("/api/v1/projects/{project}/builds"), &CreateBuild { git_ref }).await?;
    if out == Output::Table {
        println!("build {} (#{} of {}) of '{}' queued", b.id, b.number, b.project, b.git_ref);
    }
    if !follow {
        if out == Output::Json {
            out.print(&b, |_| String::new())?;
        }
        return Ok(());
    }
    build_log(c, b.id, true, out).await
}

/// Streams a build's log (Server-Sent Events) to stdout; with `follow`, until
/// the build ends, failing unless it succeeded.
pub async fn build_log(c: &Client, id: i64, follow: bool, out: Output) -> Result<()> {
    use futures_util::StreamExt;
    let path = format!("/api/v1/builds/{id}/log?follow={}", if follow { 1 } else { 0 });
    let resp = c.get_stream(&path).await?;
    let mut stream = resp.bytes_stream();
    let mut buf = Vec::new();
    let (mut event, mut data) = (String::new(), String::new());
    let mut end: Option<BuildInfo> = None;
    while let Some(chunk) = stream.next().await {
        buf.extend_from_slice(&chunk?);
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line = String::from_utf8_lossy(&buf[..pos]).trim_end_matches('\r').to_string();
            buf.drain(..=pos);
            if line.is_empty() {
                match event.as_str() {
                    "line" => {
                        if let Ok(l) = serde_json::from_str::<LogLineInfo>(&data) {
                            print_log_line(&l, out);
                        }
                    }
                    "end" => end = serde_json::from_str(&data).ok(),
                    _ => {}
                }
                event.clear();
                data.clear();
            } else if let Some(v) = line.strip_prefix("event:") {
                event = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(v.strip_prefix(' ').unwrap_or(v));
            }
        }
        if end.is_some() {
            break;
        }
    }
    let Some(b) = end else { bail!("the log of build {id} ended early; see `ferry build show {id}`") };
    if follow {
        if out == Output::Table {
            let version = b.version.as_deref().map(|v| format!(": version {v}")).unwrap_or_default();
            println!("build {} (#{}) {}{version}", b.id, b.number, b.status);
        }
        if b.status != BuildStatus::Succeeded {
            let message = format!("build {} {}: {}", b.id, b.status, b.error.as_deref().unwrap_or("see its log"));
            return Err(Failed::error(Kind::Failed, message));
        }
    }
    Ok(())
}

fn print_log_line(l: &LogLineInfo, out: Output) {
    match out {
        Output::Json => println!("{}", serde_json::to_string(l).unwrap_or_default()),
        Output::Table if l.stream == "ferry" => println!("{} ==> {}", clock(&l.at), l.line),
        Output::Table => println!("{} {}", clock(&l.at), l.line),
    }
}

/// The time of day of an RFC 3339 time (`14:03:07` of
/// `2026-12-04T14:03:07.120Z`, in the timezone it is written in) for log
/// lines; `-o json` keeps the whole time.
fn clock(at: &str) -> &str {
    at.split_once('T').map(|(_, t)| t.get(..8).unwrap_or(t)).unwrap_or(at)
}

pub async fn builds(c: &Client, project: &str, limit: u32, out: Output) -> Result<()> {
    let list: Vec<BuildInfo> = c.get(&format!("/api/v1/projects/{project}/builds?limit={limit}")).await?;
    out.print(&list, |l| {
        table(
            &["ID", "#", "REF", "COMMIT", "AUTHOR", "MESSAGE", "STATUS", "DURATION", "VERSION"],
            l.iter()
                .map(|b| {
                    vec![
                        b.id.to_string(),
                        b.number.to_string(),
                        b.git_ref.clone(),
                        b.commit.as_deref().map(|c| c[..c.len().min(10)].to_string()).unwrap_or("-".into()),
                        b.author.clone().unwrap_or("-".into()),
                        b.message.as_deref().map(|m| m.chars().take(40).collect()).unwrap_or("-".into()),
                        b.status.to_string(),
                        b.duration_secs.map(|d| format!("{d:.1}s")).unwrap_or("-".into()),
                        b.version.clone().unwrap_or("-".into()),
                    ]
                })
                .collect(),
        )
    })
}

pub async fn build_show(c: &Client, id: i64, out: Output) -> Result<()> {
    let b: BuildInfo = c.get(&format!("/api/v1/builds/{id}")).await?;
    out.print(&b, build_text)
}

fn build_text(b: &BuildInfo) -> String {
    format!(
        "build {} (#{} of {}): {}\nref {}  commit {}  author {}\nmessage {}\nversion {}  trigger {} by {}\nqueued {}  started {}  finished {}\n{}",
        b.id,
        b.number,
        b.project,
        b.status,
        b.git_ref,
        b.commit.as_deref().unwrap_or("-"),
        b.author.as_deref().unwrap_or("-"),
        b.message.as_deref().unwrap_or("-"),
        b.version.as_deref().unwrap_or("-"),
        b.trigger,
        b.requested_by,
        time(&b.created_at),
        b.started_at.as_deref().map(time).unwrap_or("-".into()),
        b.finished_at.as_deref().map(time).unwrap_or("-".into()),
        b.error.as_deref().map(|e| format!("error: {e}\n")).unwrap_or_default()
    )
}

pub async fn build_cancel(c: &Client, id: i64) -> Result<()> {
    let b: BuildInfo = c.post(&format!("/api/v1/builds/{id}/cancel"), &serde_json::json!({})).await?;
    let what = if b.status == BuildStatus::Canceled { "canceled" } else { "asked to stop" };
    println!("build {id} {what}");
    Ok(())
}

pub async fn build_retry(c: &Client, id: i64, follow: bool, out: Output) -> Result<()> {
    let b: BuildInfo = c.post(&format!("/api/v1/builds/{id}/retry"), &serde_json::json!({})).await?;
    println!("build {} (#{}) queued to retry build {id}", b.id, b.number);
    if follow {
        return build_log(c, b.id, true, out).await;
    }
    Ok(())
}

/// `ferry release download`: the release as one `.tar.zst` file.
pub async fn release_download(c: &Client, project: &str, version: &str, out: Option<&Path>) -> Result<()> {
    use futures_util::StreamExt;
    use std::io::Write;
    let path = format!("/api/v1/projects/{project}/releases/{version}/archive");
    let resp = c.get_stream(&path).await?;
    let dest = out.map(Path::to_path_buf).unwrap_or_else(|| format!("{project}-{version}.tar.zst").into());
    let tmp = dest.with_extension("part");
    let mut file = std::fs::File::create(&tmp).map_err(|e| anyhow::anyhow!("{}: {e}", tmp.display()))?;
    let mut stream = resp.bytes_stream();
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| anyhow::anyhow!("download interrupted: {e}"))?;
        file.write_all(&chunk)?;
        total += chunk.len() as u64;
    }
    file.sync_all()?;
    std::fs::rename(&tmp, &dest)?;
    println!("wrote {} ({})", dest.display(), bytes(total));
    Ok(())
}
