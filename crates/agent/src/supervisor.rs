//! The built-in supervisor (R21, R22): runs each project's `[service]`,
//! restarts it by its policy, notices crash loops, rotates its logs, and
//! outlives nothing it should not.
//!
//! One task per project owns that project's process; the [`Supervisor`]
//! handle only routes requests to it, so a slow stop of one service never
//! delays another.
//!
//! Invariants:
//! - A service runs in its own process group with its output in files under
//!   `shared/log/`, never in pipes to the agent: the agent can die and come
//!   back without the service noticing.
//! - Every start and exit is written to `<root>/.ferry/services/<project>.json`
//!   before anything else happens, so a restarted agent *adopts* the running
//!   process (same pid and kernel start time) instead of starting a second one.
//!   A start is written twice: before the process exists (a token the process
//!   carries in its environment, [`START_ENV`]) and once its pid is known. An
//!   agent killed between the two finds the process by its token and adopts
//!   it too.
//! - Stopping is always the stop signal to the whole group, then SIGKILL after
//!   `stop_timeout`: no stop script of an old release can block a deploy.
//!
//! Long file: one state machine (start, watch, restart, adopt, stop, rotate
//! logs) whose parts share the service record; split, its invariants would span
//! files.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::beneath::{Beneath, Links};
use ferry_domain::service::{AfterExit, CrashWatch};
use ferry_domain::{RestartPolicy, StopSignal};
use ferry_proto::agent::{SERVICE_TAIL_LINES, ServiceHealth};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use rand::RngExt;
use tokio::sync::{mpsc, oneshot};

/// Where a service's output goes, under the project's `shared/` directory.
pub const LOG_DIR: &str = "log";
pub const STDOUT_LOG: &str = "service.stdout.log";
pub const STDERR_LOG: &str = "service.stderr.log";
/// A log file is rotated beyond this size, by default.
pub const DEFAULT_LOG_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// Rotated generations kept (`.1` newest).
const LOG_KEEP: u32 = 5;
/// How often logs are checked for rotation and adopted processes for life.
const TICK: Duration = Duration::from_millis(500);
/// The environment variable that carries a start's token into the service's
/// process, so that a restarted agent can find a process whose pid it never
/// recorded.
pub const START_ENV: &str = "FERRY_SERVICE_START";
/// Lines of stderr quoted when a start fails.
const TAIL_LINES: usize = 10;

/// Everything needed to start one project's service, resolved on the host
/// from the active release's `ferry.toml` and the project's variables.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    pub project: String,
    /// The release directory name the service runs from.
    pub release: String,
    /// Already `${VAR}`-expanded; run with `sh -c`.
    pub command: String,
    pub dir: PathBuf,
    pub env: Vec<(String, String)>,
    /// Who it runs as, when that is not the agent's own user.
    pub run_as: Option<RunAs>,
    pub stop_signal: StopSignal,
    pub stop_timeout: Duration,
    pub start_period: Duration,
    pub restart: RestartPolicy,
    /// `<project>/shared/log`.
    pub log_dir: PathBuf,
    pub log_max_bytes: u64,
}

/// A user to run a service (and its hooks) as.
pub use ferry_process::RunAs;

/// Reads the spec of a project's active release from disk; `Ok(None)` when
/// the release has no `[service]`.
pub type SpecLoader = Arc<dyn Fn(&str) -> Result<Option<ServiceSpec>, String> + Send + Sync>;

/// What `ferry svc status` shows of one service.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ServiceStatus {
    pub project: String,
    /// `running`, `stopped`, `crash-loop`, `restarting` or `stopped by operator`.
    pub state: String,
    pub release: Option<String>,
    pub pid: Option<i32>,
    pub uptime_secs: Option<u64>,
    /// Restarts by the supervisor since the last deliberate start.
    pub restarts: u32,
    pub last_exit: Option<String>,
    pub user: Option<String>,
}

/// What an operator asks of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Start,
    Stop,
    Restart,
}

/// The persisted record of a service, for adoption after an agent restart.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Record {
    pid: Option<i32>,
    /// The process's start time in clock ticks since boot (`/proc/PID/stat`
    /// field 22): a recycled pid has another.
    start_ticks: Option<u64>,
    started_at_ms: Option<i64>,
    release: Option<String>,
    restarts: u32,
    last_exit: Option<String>,
    /// Stopped with `ferry svc stop`: not restarted until started again.
    held: bool,
    /// Quick exits in a row (the crash watch), so that an agent restarted
    /// during a crash loop still reports it failing rather than recovered.
    #[serde(default)]
    quick_exits: u32,
    user: Option<String>,
    /// A start whose process may exist but whose pid is not recorded yet.
    #[serde(default)]
    starting: Option<Starting>,
}

/// A start written down before its process is started.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Starting {
    /// Random per start; the process has it in its environment ([`START_ENV`]).
    token: String,
    release: String,
    at_ms: i64,
    user: Option<String>,
}

enum Cmd {
    /// Start (or restart) the service of the active release and wait until it
    /// has stayed up for its start period; stop it if the release has none.
    Deploy(oneshot::Sender<Result<(), String>>),
    /// The periodic check: start it if it should run and does not.
    Ensure(oneshot::Sender<Option<String>>),
    Control(Action, oneshot::Sender<Result<ServiceStatus, String>>),
    Status(oneshot::Sender<ServiceStatus>),
    /// How it fares, for the server (R21); `None` without a `[service]`.
    Health(oneshot::Sender<Option<ServiceHealth>>),
}

/// The handle the rest of the agent uses.
#[derive(Clone)]
pub struct Supervisor {
    services: Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Cmd>>>>,
    records: PathBuf,
    loader: SpecLoader,
}

impl Supervisor {
    /// Starts the supervisor, adopting every service a previous agent left
    /// running under `root`.
    pub fn start(root: &Path, loader: SpecLoader) -> Supervisor {
        let records = root.join(".ferry").join("services");
        let s = Supervisor { services: Arc::default(), records, loader };
        if let Ok(entries) = fs::read_dir(&s.records) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(project) = name.strip_suffix(".json") {
                    s.task(project);
                }
            }
        }
        s
    }

    fn task(&self, project: &str) -> mpsc::UnboundedSender<Cmd> {
        let Ok(mut map) = self.services.lock() else {
            // A poisoned map: hand out a sender whose task is gone; callers see "stopped".
            return mpsc::unbounded_channel().0;
        };
        if let Some(tx) = map.get(project).filter(|tx| !tx.is_closed()) {
            return tx.clone();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let record_path = self.records.join(format!("{project}.json"));
        let service = Service::load(project, record_path, self.loader.clone());
        tokio::spawn(service.run(rx));
        map.insert(project.to_string(), tx.clone());
        tx
    }

    async fn ask<T>(&self, project: &str, make: impl FnOnce(oneshot::Sender<T>) -> Cmd) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.task(project).send(make(tx)).ok()?;
        rx.await.ok()
    }

    /// (Re)starts `project`'s service as its active release describes it, and
    /// waits until it has stayed up for its start period (R21). Fails with
    /// the reason and the last lines of its stderr when it does not.
    pub async fn deploy(&self, project: &str) -> Result<(), String> {
        self.ask(project, Cmd::Deploy).await.unwrap_or_else(|| Err("the supervisor stopped".into()))
    }

    /// Starts the service if it should be running and is not (R2). Returns a
    /// note when it had to act.
    pub async fn ensure(&self, project: &str) -> Option<String> {
        self.ask(project, Cmd::Ensure).await.flatten()
    }

    /// How the project's service fares, for the report to the server (R21):
    /// `None` when its release has no `[service]`.
    pub async fn health(&self, project: &str) -> Option<ServiceHealth> {
        self.ask(project, Cmd::Health).await.flatten()
    }

    /// `ferry svc start|stop|restart`.
    pub async fn control(&self, project: &str, action: Action) -> Result<ServiceStatus, String> {
        self.ask(project, |tx| Cmd::Control(action, tx)).await.unwrap_or_else(|| Err("the supervisor stopped".into()))
    }

    /// The status of one project's service, or of all known ones.
    pub async fn status(&self, project: Option<&str>) -> Vec<ServiceStatus> {
        let projects: Vec<String> = match project {
            Some(p) => vec![p.to_string()],
            None => {
                let mut all: Vec<String> =
                    self.services.lock().map(|m| m.keys().cloned().collect()).unwrap_or_default();
                all.sort();
                all
            }
        };
        let mut out = Vec::new();
        for p in projects {
            if let Some(s) = self.ask(&p, Cmd::Status).await {
                out.push(s);
            }
        }
        out
    }
}

/// A process the supervisor watches: its own child, or one adopted from an
/// earlier agent (which it can signal but not wait for).
struct Proc {
    pid: i32,
    child: Option<tokio::process::Child>,
    started: Instant,
    started_at_ms: i64,
    start_ticks: Option<u64>,
    release: String,
}

/// How a run ended.
#[derive(Debug, Clone)]
struct Exit {
    success: bool,
    /// `exit code 3`, `killed by signal 9 (SIGKILL)`, or unknown for an
    /// adopted process.
    what: String,
    code: Option<i32>,
}

struct Service {
    project: String,
    record_path: PathBuf,
    record: Record,
    loader: SpecLoader,
    spec: Option<ServiceSpec>,
    proc: Option<Proc>,
    watch: CrashWatch,
    restart_at: Option<tokio::time::Instant>,
}

impl Service {
    fn load(project: &str, record_path: PathBuf, loader: SpecLoader) -> Service {
        let record: Record =
            fs::read(&record_path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        let mut s = Service {
            project: project.to_string(),
            record_path,
            record,
            loader,
            spec: None,
            proc: None,
            watch: CrashWatch::default(),
            restart_at: None,
        };
        s.watch = CrashWatch::resumed(s.record.quick_exits);
        // Adoption: the same pid with the same kernel start time is the very
        // process the earlier agent started.
        if let (Some(pid), Some(ticks)) = (s.record.pid, s.record.start_ticks)
            && proc_start_ticks(pid) == Some(ticks)
        {
            tracing::info!(project, pid, "adopted the running service");
            s.adopt_recorded();
        } else if let Some((pid, st)) = s.record.starting.clone().and_then(|st| Some((started_with(&st.token)?, st))) {
            // The earlier agent started it and died before recording its pid.
            tracing::info!(project, pid, "adopted the service an interrupted start left running");
            s.record.pid = Some(pid);
            s.record.start_ticks = proc_start_ticks(pid);
            s.record.started_at_ms = Some(st.at_ms);
            s.record.release = Some(st.release);
            s.record.user = st.user;
            s.record.starting = None;
            s.adopt_recorded();
            s.save();
        } else if s.record.pid.is_some() || s.record.starting.is_some() {
            s.record.pid = None;
            s.record.starting = None;
            s.record.last_exit.get_or_insert_with(|| "exited while the agent was away".into());
            s.save();
        }
        s
    }

    /// Watches the process the record names, started by an earlier agent.
    fn adopt_recorded(&mut self) {
        let Some(pid) = self.record.pid else { return };
        let started_at_ms = self.record.started_at_ms.unwrap_or(0);
        let age_ms = crate::now_ms().saturating_sub(started_at_ms).max(0);
        let started = Instant::now().checked_sub(Duration::from_millis(age_ms as u64)).unwrap_or_else(Instant::now);
        self.proc = Some(Proc {
            pid,
            child: None,
            started,
            started_at_ms,
            start_ticks: self.record.start_ticks,
            release: self.record.release.clone().unwrap_or_default(),
        });
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Cmd>) {
        let mut tick = tokio::time::interval(TICK);
        loop {
            let restart_at = self.restart_at;
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd).await,
                    None => return,
                },
                exit = wait_exit(&mut self.proc) => {
                    self.on_exit(exit);
                }
                _ = sleep_until(restart_at) => {
                    self.restart_at = None;
                    if let Err(e) = self.spawn() {
                        tracing::error!(project = %self.project, "restarting the service: {e}");
                        self.restart_at = Some(tokio::time::Instant::now() + ferry_domain::service::CRASH_LOOP_RETRY);
                    }
                }
                _ = tick.tick() => self.rotate_logs(),
            }
        }
    }

    async fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Deploy(reply) => {
                let result = self.deploy().await;
                let _ = reply.send(result);
            }
            Cmd::Ensure(reply) => {
                let _ = reply.send(self.ensure());
            }
            Cmd::Control(action, reply) => {
                let result = self.control(action).await;
                let _ = reply.send(result.map(|()| self.status()));
            }
            Cmd::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Cmd::Health(reply) => {
                let _ = reply.send(self.health());
            }
        }
    }

    /// Reads the spec of the active release afresh.
    fn reload(&mut self) -> Result<Option<&ServiceSpec>, String> {
        self.spec = (self.loader)(&self.project)?;
        Ok(self.spec.as_ref())
    }

    async fn deploy(&mut self) -> Result<(), String> {
        self.stop().await;
        self.record.held = false;
        self.watch.reset();
        self.record.quick_exits = 0;
        self.record.restarts = 0;
        if self.reload()?.is_none() {
            self.save();
            return Ok(());
        }
        self.start_and_settle().await
    }

    async fn control(&mut self, action: Action) -> Result<(), String> {
        match action {
            Action::Stop => {
                self.stop().await;
                self.record.held = true;
                self.save();
                Ok(())
            }
            Action::Start | Action::Restart => {
                if action == Action::Start && self.proc.is_some() {
                    return Ok(());
                }
                self.stop().await;
                self.record.held = false;
                self.watch.reset();
                self.record.quick_exits = 0;
                if self.reload()?.is_none() {
                    return Err(format!("the active release of '{}' has no [service]", self.project));
                }
                self.start_and_settle().await
            }
        }
    }

    fn ensure(&mut self) -> Option<String> {
        let spec = match self.reload() {
            Ok(Some(spec)) => spec.clone(),
            Ok(None) => return None,
            Err(e) => return Some(format!("service: {e}")),
        };
        if self.record.held || self.restart_at.is_some() {
            return None;
        }
        match &self.proc {
            Some(p) if p.release == spec.release => None,
            Some(p) => {
                // Running another release than `current` (e.g. a manual
                // relink while the agent was away): restart on the active one.
                let was = p.release.clone();
                self.restart_at = Some(tokio::time::Instant::now());
                if let Some(p) = self.proc.as_mut() {
                    signal_group(p.pid, Signal::SIGKILL);
                }
                Some(format!("service was running release {was}; restarted on {}", spec.release))
            }
            None => {
                let after_failure = self.record.last_exit.as_deref().is_some_and(|e| e != "exit code 0");
                let should_run = match spec.restart {
                    RestartPolicy::Always => true,
                    RestartPolicy::OnFailure => after_failure || self.record.last_exit.is_none(),
                    RestartPolicy::Never => self.record.last_exit.is_none(),
                };
                if !should_run || self.watch.crash_looping() {
                    return None;
                }
                match self.spawn() {
                    Ok(()) => Some("service was not running; started".into()),
                    Err(e) => Some(format!("service was not running and could not start: {e}")),
                }
            }
        }
    }

    /// Starts the process and waits out its start period, restarting it by
    /// its policy; a crash loop or a failed start is an error carrying the
    /// tail of its stderr.
    async fn start_and_settle(&mut self) -> Result<(), String> {
        self.restart_at = None;
        let Some(spec) = self.spec.clone() else { return Ok(()) };
        let first_stderr = stderr_len(&spec);
        loop {
            self.spawn()?;
            let started = tokio::time::Instant::now();
            let settled = tokio::time::sleep_until(started + spec.start_period);
            tokio::select! {
                exit = wait_exit(&mut self.proc) => {
                    match self.on_exit(exit.clone()) {
                        AfterExit::Restart(_) => {
                            // `on_exit` scheduled it; here the wait is inline.
                            if let Some(at) = self.restart_at.take() {
                                tokio::time::sleep_until(at).await;
                            }
                        }
                        AfterExit::Stay if exit.success => return Ok(()),
                        AfterExit::Stay => return Err(self.failure(&spec, &exit, first_stderr, "exited during its start period")),
                        AfterExit::CrashLoop(_) => return Err(self.failure(&spec, &exit, first_stderr, &format!(
                            "keeps exiting right after it starts ({} times in a row); it is retried every {} s",
                            self.watch.quick_exits(),
                            ferry_domain::service::CRASH_LOOP_RETRY.as_secs()
                        ))),
                    }
                }
                _ = settled => return Ok(()),
            }
        }
    }

    fn failure(&self, spec: &ServiceSpec, exit: &Exit, stderr_from: u64, what: &str) -> String {
        let hint = match exit.code {
            Some(126) => "; its start command is not executable".to_string(),
            Some(127) => "; its start command was not found".to_string(),
            _ => String::new(),
        };
        let tail = open_log_dir(&spec.log_dir, false)
            .map(|dir| tail_lines(&dir, STDERR_LOG, stderr_from, TAIL_LINES))
            .unwrap_or_default();
        let tail = if tail.is_empty() { "(nothing on stderr)".to_string() } else { tail.join("\n") };
        format!("service `{}` {what} (last: {}){hint}; last lines of its stderr:\n{tail}", spec.command, exit.what)
    }

    /// Records an exit and decides what follows.
    fn on_exit(&mut self, exit: Exit) -> AfterExit {
        let Some(p) = self.proc.take() else { return AfterExit::Stay };
        signal_group(p.pid, Signal::SIGKILL); // whatever it left behind in its group
        let uptime = p.started.elapsed();
        tracing::warn!(project = %self.project, pid = p.pid, "service exited: {} after {} s", exit.what, uptime.as_secs());
        self.record.pid = None;
        self.record.start_ticks = None;
        self.record.last_exit = Some(exit.what.clone());
        let (policy, period) = match &self.spec {
            Some(s) => (s.restart, s.start_period),
            // Adopted, and the agent has not yet read the spec: assume the default.
            None => (RestartPolicy::Always, ferry_domain::service::DEFAULT_START_PERIOD),
        };
        let decision =
            if self.record.held { AfterExit::Stay } else { self.watch.on_exit(policy, exit.success, uptime, period) };
        self.record.quick_exits = self.watch.quick_exits();
        match decision {
            AfterExit::Restart(after) | AfterExit::CrashLoop(after) => {
                self.record.restarts = self.record.restarts.saturating_add(1);
                self.restart_at = Some(tokio::time::Instant::now() + after);
                if self.spec.is_none() {
                    // Needs the spec: read it when the restart is due.
                    let _ = self.reload();
                }
            }
            AfterExit::Stay => {}
        }
        self.save();
        decision
    }

    fn spawn(&mut self) -> Result<(), String> {
        if self.spec.is_none() {
            self.reload()?;
        }
        let Some(spec) = self.spec.clone() else { return Ok(()) };
        // No exec of an upgrade between starting a service and saving its
        // record: the new agent would not know of it and start another.
        let _handover = HANDOVER.lock().unwrap_or_else(|e| e.into_inner());
        // Written before the process exists: an agent killed before the pid is
        // recorded still finds it (`Service::load`).
        let token = hex::encode(rand::rng().random::<[u8; 16]>());
        self.record.starting = Some(Starting {
            token: token.clone(),
            release: spec.release.clone(),
            at_ms: crate::now_ms(),
            user: spec.run_as.as_ref().map(|u| u.name.clone()),
        });
        self.save();
        let started = start_process(&spec, &token).inspect_err(|e| {
            self.record.starting = None;
            self.record.last_exit = Some(format!("could not start: {e}"));
            self.save();
        })?;
        tracing::info!(project = %self.project, pid = started.pid, release = %spec.release, "service started");
        self.record.pid = Some(started.pid);
        self.record.start_ticks = started.start_ticks;
        self.record.started_at_ms = Some(started.started_at_ms);
        self.record.release = Some(spec.release.clone());
        self.record.user = spec.run_as.as_ref().map(|u| u.name.clone());
        self.record.starting = None;
        self.proc = Some(started);
        self.save();
        Ok(())
    }

    /// The stop signal to the group, SIGKILL after the timeout.
    async fn stop(&mut self) {
        self.restart_at = None;
        let Some(p) = self.proc.as_mut() else { return };
        let (signal, timeout) = match &self.spec {
            Some(s) => (s.stop_signal, s.stop_timeout),
            None => (StopSignal::Term, ferry_domain::service::DEFAULT_STOP_TIMEOUT),
        };
        let pid = p.pid;
        let deadline = tokio::time::Instant::now() + timeout;
        signal_group(pid, nix_signal(signal));
        let exit = tokio::time::timeout(timeout, wait_exit(&mut self.proc)).await.ok();
        // The leader may be a shell that died of the signal while what it
        // started ignores it: the group gets the rest of the timeout too.
        while group_alive(pid) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let forced = group_alive(pid);
        if forced {
            tracing::warn!(project = %self.project, pid, "service ignored its stop signal for {} s; killing it", timeout.as_secs());
            signal_group(pid, Signal::SIGKILL);
        }
        let exit = match exit {
            Some(exit) => exit,
            None => wait_exit(&mut self.proc).await,
        };
        self.proc = None;
        self.record.pid = None;
        self.record.start_ticks = None;
        self.record.last_exit = Some(if forced {
            format!("stopped: still running {} s after {signal:?}, killed by signal 9 (SIGKILL)", timeout.as_secs())
        } else {
            format!("stopped ({})", exit.what)
        });
        self.save();
    }

    /// Failing means a crash loop the supervisor gave up on for now, or a
    /// retry that has not yet outlived its start period (so a report taken
    /// during the retry does not count as a recovery).
    fn health(&self) -> Option<ServiceHealth> {
        let spec = self.spec.as_ref()?;
        let settled = self.proc.as_ref().is_some_and(|p| p.started.elapsed() >= spec.start_period);
        if self.record.held || settled || !self.watch.crash_looping() {
            return Some(ServiceHealth::default());
        }
        let last = self.record.last_exit.as_deref().unwrap_or("unknown");
        let reason = format!(
            "crash loop: it exited {} times in a row within its start period of {} s (last: {last}); \
             restarted {} times since its deploy",
            self.watch.quick_exits(),
            spec.start_period.as_secs_f32(),
            self.record.restarts
        );
        let stderr = open_log_dir(&spec.log_dir, false)
            .map(|dir| tail_lines(&dir, STDERR_LOG, 0, SERVICE_TAIL_LINES))
            .unwrap_or_default();
        Some(ServiceHealth { failing: true, reason, stderr })
    }

    fn status(&self) -> ServiceStatus {
        let state = if self.proc.is_some() {
            "running"
        } else if self.record.held {
            "stopped by operator"
        } else if self.watch.crash_looping() {
            "crash-loop"
        } else if self.restart_at.is_some() {
            "restarting"
        } else {
            "stopped"
        };
        ServiceStatus {
            project: self.project.clone(),
            state: state.to_string(),
            release: self.proc.as_ref().map(|p| p.release.clone()).or_else(|| self.record.release.clone()),
            pid: self.proc.as_ref().map(|p| p.pid),
            uptime_secs: self.proc.as_ref().map(|p| p.started.elapsed().as_secs()),
            restarts: self.record.restarts,
            last_exit: self.record.last_exit.clone(),
            user: self.record.user.clone(),
        }
    }

    fn save(&self) {
        if let Some(dir) = self.record_path.parent() {
            let _ = fs::create_dir_all(dir);
        }
        let tmp = self.record_path.with_extension("json.tmp");
        let written = serde_json::to_vec_pretty(&self.record)
            .map_err(std::io::Error::other)
            .and_then(|json| fs::write(&tmp, json))
            .and_then(|()| fs::rename(&tmp, &self.record_path));
        if let Err(e) = written {
            tracing::error!(project = %self.project, "recording the service's state: {e}");
        }
    }

    fn rotate_logs(&self) {
        let (dir, max) = match &self.spec {
            Some(s) => (s.log_dir.clone(), s.log_max_bytes),
            None => return,
        };
        let dir = match open_log_dir(&dir, false) {
            Ok(dir) => dir,
            Err(e) => return tracing::warn!(project = %self.project, "rotating the service's logs: {e}"),
        };
        for name in [STDOUT_LOG, STDERR_LOG] {
            if let Err(e) = rotate(&dir, name, max) {
                tracing::warn!(project = %self.project, "rotating {name}: {e}");
            }
        }
    }
}

/// Starts the service's process, detached from the agent: its own process
/// group, output appended to the log files.
fn start_process(spec: &ServiceSpec, token: &str) -> Result<Proc, String> {
    check_command(spec)?;
    let dir = open_log_dir(&spec.log_dir, true).map_err(|e| format!("opening the service's log directory: {e}"))?;
    let open = |name: &str| dir.open_append(Path::new(name)).map_err(|e| format!("opening a log file: {e}"));
    let (stdout, stderr) = (open(STDOUT_LOG)?, open(STDERR_LOG)?);
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(&spec.command)
        .current_dir(&spec.dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()))
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env(START_ENV, token)
        .stdin(std::process::Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(false);
    if let Some(u) = &spec.run_as {
        cmd.uid(u.uid).gid(u.gid).env("USER", &u.name).env("LOGNAME", &u.name).env("HOME", &u.home);
    }
    let child = cmd.spawn().map_err(|e| {
        let who = spec.run_as.as_ref().map(|u| format!(" as user {}", u.name)).unwrap_or_default();
        format!("cannot start `{}`{who} in {}: {e}", spec.command, spec.dir.display())
    })?;
    let pid = child.id().and_then(|p| i32::try_from(p).ok()).ok_or("the service exited at once")?;
    Ok(Proc {
        pid,
        child: Some(child),
        started: Instant::now(),
        started_at_ms: crate::now_ms(),
        start_ticks: proc_start_ticks(pid),
        release: spec.release.clone(),
    })
}

/// Refuses, with exactly that message, a start command naming a program in
/// the release that is missing or not executable.
fn check_command(spec: &ServiceSpec) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let Some(program) = spec.command.split_whitespace().next() else {
        return Err("the service's command is empty".into());
    };
    if !program.contains('/') || program.contains(['$', '`', '\'', '"']) {
        return Ok(()); // found on PATH, or computed by the shell
    }
    let path = spec.dir.join(program);
    match fs::metadata(&path) {
        Err(_) => Err(format!("the service's start command {program} does not exist in release {}", spec.release)),
        Ok(m) if m.is_dir() => Err(format!("the service's start command {program} is a directory")),
        Ok(m) if m.permissions().mode() & 0o111 == 0 => Err(format!(
            "the service's start command {program} is not executable (mode {:o}); mark it executable in the build",
            m.permissions().mode() & 0o777
        )),
        Ok(_) => Ok(()),
    }
}

/// Waits for the watched process to end; never resolves when there is none.
async fn wait_exit(proc: &mut Option<Proc>) -> Exit {
    let Some(p) = proc.as_mut() else { return std::future::pending().await };
    match p.child.as_mut() {
        Some(child) => match child.wait().await {
            Ok(status) => {
                use std::os::unix::process::ExitStatusExt;
                let what = match (status.code(), status.signal()) {
                    (Some(c), _) => format!("exit code {c}"),
                    (None, Some(s)) => format!(
                        "killed by signal {s}{}",
                        Signal::try_from(s).map(|s| format!(" ({})", s.as_str())).unwrap_or_default()
                    ),
                    _ => "ended".into(),
                };
                Exit { success: status.success(), what, code: status.code() }
            }
            Err(e) => Exit { success: false, what: format!("lost track of it: {e}"), code: None },
        },
        None => loop {
            // Adopted: watch /proc. After an upgrade (exec keeps the pid)
            // the service is still this process's child: reap it, or its
            // zombie would stay.
            if proc_start_ticks(p.pid) != p.start_ticks {
                let _ = nix::sys::wait::waitpid(
                    nix::unistd::Pid::from_raw(p.pid),
                    Some(nix::sys::wait::WaitPidFlag::WNOHANG),
                );
                return Exit {
                    success: false,
                    what: "exited (code unknown: started by an earlier agent)".into(),
                    code: None,
                };
            }
            tokio::time::sleep(TICK).await;
        },
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn nix_signal(s: StopSignal) -> Signal {
    match s {
        StopSignal::Term => Signal::SIGTERM,
        StopSignal::Int => Signal::SIGINT,
        StopSignal::Quit => Signal::SIGQUIT,
        StopSignal::Hup => Signal::SIGHUP,
        StopSignal::Usr1 => Signal::SIGUSR1,
        StopSignal::Usr2 => Signal::SIGUSR2,
    }
}

/// Whether any process of the group is left.
fn group_alive(pgid: i32) -> bool {
    pgid > 1 && killpg(Pid::from_raw(pgid), None).is_ok()
}

fn signal_group(pid: i32, signal: Signal) {
    if pid > 1 {
        let _ = killpg(Pid::from_raw(pid), signal);
    }
}

/// The kernel's start time of a live (not zombie) process, in clock ticks
/// since boot.
/// Held while a service is started and its record saved, and by an agent
/// upgrade for its exec (which never gives it back: the process becomes the
/// new agent), so the new agent finds a record for every running service.
pub static HANDOVER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The live process-group leader started with start token `token` in its
/// environment: the service's own process (its children share the token but
/// lead no group). `None` when there is none, or its environment cannot be
/// read.
fn started_with(token: &str) -> Option<i32> {
    let wanted = format!("{START_ENV}={token}");
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        let Ok(environ) = fs::read(format!("/proc/{pid}/environ")) else { continue };
        if !environ.split(|b| *b == 0).any(|var| var == wanted.as_bytes()) {
            continue;
        }
        if proc_group(pid) == Some(pid) && proc_start_ticks(pid).is_some() {
            return Some(pid);
        }
    }
    None
}

/// The process group of a process (`/proc/PID/stat` field 5).
fn proc_group(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields are
    // counted after its last `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(2)?.parse().ok()
}

/// The kernel start time of a live process (not a zombie): with the pid, it
/// names one process for good.
pub fn start_ticks(pid: i32) -> Option<u64> {
    proc_start_ticks(pid)
}

fn proc_start_ticks(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields resume after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    if fields.first().is_some_and(|state| *state == "Z" || *state == "X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

fn stderr_len(spec: &ServiceSpec) -> u64 {
    let dir = open_log_dir(&spec.log_dir, false);
    dir.and_then(|d| d.open_read(Path::new(STDERR_LOG))).and_then(|f| f.metadata()).map(|m| m.len()).unwrap_or(0)
}

/// Opens the service's log directory (`shared/log`), creating it when asked.
/// The service's user owns `shared/` and may have swapped any of it for a
/// link: the agent, often root, appends to, truncates and reads these files,
/// so no link is followed on the way (see [`Beneath`]).
pub fn open_log_dir(log_dir: &Path, create: bool) -> std::io::Result<Beneath> {
    let (Some(shared), Some(name)) = (log_dir.parent(), log_dir.file_name()) else {
        return Err(std::io::Error::other(format!("{}: not a log directory", log_dir.display())));
    };
    let shared = Beneath::open(shared, Links::Refused)?;
    if create {
        shared.create_dir_all(Path::new(name))?;
    }
    shared.open_dir(Path::new(name))
}

/// The last `n` lines of the log file `name` from byte `from` on.
pub fn tail_lines(dir: &Beneath, name: &str, from: u64, n: usize) -> Vec<String> {
    let Ok(mut f) = dir.open_read(Path::new(name)) else { return Vec::new() };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    // Reading at most the last 64 KiB bounds the cost for huge logs.
    let start = from.min(len).max(len.saturating_sub(64 * 1024));
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(start)).is_err() || f.read_to_end(&mut buf).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].iter().map(|l| l.to_string()).collect()
}

/// Size-based rotation: `name` → `name.1` → ... → `name.5`. The service keeps
/// its file open in append mode, so the file is copied and then truncated in
/// place (the lines written between the two steps can be lost; a pipe
/// through the agent would lose everything when the agent restarts).
///
/// Every step goes through `dir` ([`open_log_dir`]): renames move links as
/// links, the copy is made as a new file, and a log that is a link or has a
/// second hard link is refused rather than read or truncated.
fn rotate(dir: &Beneath, name: &str, max: u64) -> std::io::Result<()> {
    let mut current = match dir.open_read(Path::new(name)) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if current.metadata()?.len() <= max {
        return Ok(());
    }
    let generation = |n: u32| PathBuf::from(format!("{name}.{n}"));
    dir.remove_file(&generation(LOG_KEEP))?;
    for n in (1..LOG_KEEP).rev() {
        if dir.exists(&generation(n))? {
            dir.rename(&generation(n), &generation(n + 1))?;
        }
    }
    dir.remove_file(&generation(1))?;
    let mut copy = dir.create_new(&generation(1), 0o644)?;
    std::io::copy(&mut current, &mut copy)?;
    dir.open_write(Path::new(name))?.set_len(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process started as the supervisor starts one, with `token`, that
    /// forks a child sharing its environment.
    fn service_process(token: &str) -> std::process::Child {
        use std::os::unix::process::CommandExt;
        std::process::Command::new("sh")
            .arg("-c")
            .arg("sleep 30 & exec sleep 30")
            .env(START_ENV, token)
            .process_group(0)
            .spawn()
            .unwrap()
    }

    fn record_with_start(dir: &Path, token: &str) -> PathBuf {
        let record = Record {
            starting: Some(Starting {
                token: token.into(),
                release: "v2-1".into(),
                at_ms: crate::now_ms(),
                user: None,
            }),
            ..Record::default()
        };
        let path = dir.join("app.json");
        fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();
        path
    }

    #[test]
    fn an_agent_killed_between_a_start_and_its_record_adopts_the_process_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let token = hex::encode(rand::rng().random::<[u8; 16]>());
        let mut child = service_process(&token);
        let pid = i32::try_from(child.id()).unwrap();
        // Another start's process is never taken for this one.
        let mut other = service_process("another-start");
        std::thread::sleep(Duration::from_millis(200));
        let loader: SpecLoader = Arc::new(|_| Ok(None));

        let service = Service::load("app", record_with_start(dir.path(), &token), loader.clone());
        let adopted = service.proc.as_ref().map(|p| p.pid);
        let saved: Record = serde_json::from_slice(&fs::read(dir.path().join("app.json")).unwrap()).unwrap();
        signal_group(pid, Signal::SIGKILL);
        signal_group(i32::try_from(other.id()).unwrap(), Signal::SIGKILL);
        let _ = (child.wait(), other.wait());
        assert_eq!(adopted, Some(pid), "the group leader with the token, not its child nor another start");
        assert_eq!((saved.pid, saved.starting, saved.release.as_deref()), (Some(pid), None, Some("v2-1")));
        assert_eq!(saved.start_ticks, service.record.start_ticks);

        // Its process gone, the interrupted start is forgotten, not adopted.
        let service = Service::load("app", record_with_start(dir.path(), &token), loader);
        assert!(service.proc.is_none());
        assert_eq!((service.record.pid, &service.record.starting), (None, &None));
    }

    fn open(dir: &Path) -> Beneath {
        Beneath::open(dir, Links::Refused).unwrap()
    }

    #[test]
    fn rotation_never_truncates_or_copies_through_a_link() {
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("shadow");
        fs::write(&secret, vec![b's'; 100]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(&secret, dir.path().join("service.stdout.log")).unwrap();
        assert!(rotate(&open(dir.path()), "service.stdout.log", 50).is_err());
        assert_eq!(fs::read(&secret).unwrap().len(), 100);
        // A planted generation is moved as a link, never written through.
        fs::remove_file(dir.path().join("service.stdout.log")).unwrap();
        fs::write(dir.path().join("service.stdout.log"), vec![b'a'; 100]).unwrap();
        std::os::unix::fs::symlink(&secret, dir.path().join("service.stdout.log.1")).unwrap();
        rotate(&open(dir.path()), "service.stdout.log", 50).unwrap();
        assert_eq!(fs::read(&secret).unwrap(), vec![b's'; 100]);
        assert_eq!(fs::read(dir.path().join("service.stdout.log.1")).unwrap(), vec![b'a'; 100]);
        // And the stderr tail that goes into a failure message reads no link.
        std::os::unix::fs::symlink(&secret, dir.path().join("service.stderr.log")).unwrap();
        assert!(tail_lines(&open(dir.path()), "service.stderr.log", 0, 10).is_empty());
    }

    #[test]
    fn rotation_keeps_generations() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("service.stdout.log");
        for round in 0..7u8 {
            fs::write(&log, vec![b'a' + round; 100]).unwrap();
            rotate(&open(dir.path()), "service.stdout.log", 50).unwrap();
            assert_eq!(fs::metadata(&log).unwrap().len(), 0);
        }
        // Newest first: .1 holds the last round; only five generations remain.
        assert_eq!(fs::read(dir.path().join("service.stdout.log.1")).unwrap()[0], b'a' + 6);
        assert_eq!(fs::read(dir.path().join("service.stdout.log.5")).unwrap()[0], b'a' + 2);
        assert!(!dir.path().join("service.stdout.log.6").exists());
        fs::write(&log, b"small").unwrap();
        rotate(&open(dir.path()), "service.stdout.log", 50).unwrap();
        assert_eq!(fs::read(&log).unwrap(), b"small");
    }

    #[test]
    fn tails_start_where_asked() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("err");
        fs::write(&f, "old 1\nold 2\nnew 1\nnew 2\nnew 3\n").unwrap();
        let logs = open(dir.path());
        assert_eq!(tail_lines(&logs, "err", 12, 10), ["new 1", "new 2", "new 3"]);
        assert_eq!(tail_lines(&logs, "err", 0, 2), ["new 2", "new 3"]);
        assert!(tail_lines(&logs, "none", 0, 2).is_empty());
    }

    #[test]
    fn start_ticks_identify_a_live_process() {
        let me = std::process::id() as i32;
        assert!(proc_start_ticks(me).is_some());
        assert_eq!(proc_start_ticks(me), proc_start_ticks(me));
        assert_eq!(proc_start_ticks(i32::MAX), None);
    }
}
