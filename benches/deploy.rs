//! Deploy benchmark: the real `ferry` binary, a real server and N real agent
//! processes on this machine, on the reference workload of
//! `../shared/bench/make-artifact.sh` (3,001 files, 41 MB, and a 2 % update).
//!
//! For every N in `FERRY_BENCH_HOSTS` (default `10,50`) and every repeat
//! (`FERRY_BENCH_RUNS`, default 3) it starts a fresh server and N agents in a
//! fresh directory, uploads v1 and v2, and times, from issuing the command
//! until it returns:
//!
//! - `ferry deploy app prod --version v1 --wait`   (first deploy)
//! - `ferry deploy app prod --version v2 --wait`   (2 % update)
//! - `ferry rollback app prod --wait`              (back to v1: a relink)
//!
//! In the same repeat, on the same filesystem, it measures the local floor:
//! `tar xzf` of the v1 tarball into N fresh directories, `cp -a` of the v1
//! tree into N directories, `cp -al` of that tree plus the changed files for
//! the update, and one `ln -sfn` per directory for the relink. It prints a
//! markdown table of medians and ratios.
//!
//! Knobs (environment variables):
//! - `FERRY_BENCH_HOSTS`       host counts, comma-separated (default `10,50`)
//! - `FERRY_BENCH_RUNS`        repeats per host count (default 3)
//! - `FERRY_BENCH_FLOOR_JOBS`  parallel workers for the floor commands (default 1: sequential)
//! - `FERRY_BENCH_DIR`         where the temporary directory goes (default /dev/shm when it
//!   has room, else the system temp dir)
//! - `FERRY_BENCH_KEEP=1`      keep the temporary directory (logs of every process) for inspection
//! - `FERRY_BENCH_QUIET_WAIT`  seconds to wait, before each measurement, for other jobs on the
//!   machine to finish (default 300; 0 = do not wait)
//!
//! Run with `cargo bench --bench deploy`. Every process it starts is killed
//! by its PID when the benchmark ends, fails or panics.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");
const PROJECT: &str = "app";
const ENV: &str = "prod";

// --------------------------------------------------------------------------
// Configuration

struct Config {
    hosts: Vec<usize>,
    runs: usize,
    floor_jobs: usize,
    keep: bool,
    /// Longest wait for a quiet machine before each measurement.
    quiet_wait: Duration,
}

impl Config {
    fn from_env() -> Result<Config> {
        let hosts = std::env::var("FERRY_BENCH_HOSTS").unwrap_or_else(|_| "10,50".into());
        let hosts = hosts
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<usize>().with_context(|| format!("FERRY_BENCH_HOSTS: '{s}'")))
            .collect::<Result<Vec<_>>>()?;
        if hosts.is_empty() || hosts.contains(&0) {
            bail!("FERRY_BENCH_HOSTS needs positive host counts");
        }
        let num = |name: &str, default: usize| -> Result<usize> {
            match std::env::var(name) {
                Ok(v) => {
                    let n: usize = v.trim().parse().with_context(|| format!("{name}: '{v}'"))?;
                    if n == 0 {
                        bail!("{name} must be at least 1");
                    }
                    Ok(n)
                }
                Err(_) => Ok(default),
            }
        };
        Ok(Config {
            hosts,
            runs: num("FERRY_BENCH_RUNS", 3)?,
            floor_jobs: num("FERRY_BENCH_FLOOR_JOBS", 1)?,
            keep: std::env::var("FERRY_BENCH_KEEP").is_ok_and(|v| v == "1"),
            quiet_wait: Duration::from_secs(match std::env::var("FERRY_BENCH_QUIET_WAIT") {
                Ok(v) => v.trim().parse().with_context(|| format!("FERRY_BENCH_QUIET_WAIT: '{v}'"))?,
                Err(_) => 300,
            }),
        })
    }
}

// --------------------------------------------------------------------------
// Processes: every child is killed by its PID when the guard is dropped,
// including while a panic unwinds.

struct Procs {
    children: Vec<(String, Child)>,
}

impl Procs {
    fn new() -> Self {
        Procs { children: Vec::new() }
    }

    fn spawn(&mut self, name: &str, cmd: &mut Command, log: &Path) -> Result<u32> {
        let out = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let pid = child.id();
        self.children.push((name.to_string(), child));
        Ok(pid)
    }

    /// Fails if any child has already exited.
    fn check_alive(&mut self) -> Result<()> {
        for (name, child) in &mut self.children {
            if let Some(status) = child.try_wait()? {
                bail!("{name} (pid {}) exited early: {status}", child.id());
            }
        }
        Ok(())
    }

    fn pids(&self) -> Vec<u32> {
        self.children.iter().map(|(_, c)| c.id()).collect()
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            // Child::kill signals exactly this PID.
            let _ = child.kill();
        }
        for (_, child) in &mut self.children {
            let _ = child.wait();
        }
    }
}

/// CPU seconds (user + system) and bytes written (`wchar`: files and sockets)
/// of a process so far, from /proc.
#[derive(Clone, Copy, Default)]
struct Usage {
    cpu: f64,
    wchar: u64,
}

impl std::ops::Sub for Usage {
    type Output = Usage;
    fn sub(self, o: Usage) -> Usage {
        Usage { cpu: self.cpu - o.cpu, wchar: self.wchar.saturating_sub(o.wchar) }
    }
}

fn usage(pid: u32, ticks: f64) -> Usage {
    let cpu = fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 1..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            // After the command name: field 3 (state) is f[0]; utime is
            // field 14, stime field 15.
            let ut: f64 = f.get(11)?.parse().ok()?;
            let st: f64 = f.get(12)?.parse().ok()?;
            Some((ut + st) / ticks)
        })
        .unwrap_or(0.0);
    let wchar = fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("wchar:").and_then(|v| v.trim().parse().ok())))
        .unwrap_or(0);
    Usage { cpu, wchar }
}

fn usage_sum(pids: &[u32], ticks: f64) -> Usage {
    pids.iter().fold(Usage::default(), |acc, &p| {
        let u = usage(p, ticks);
        Usage { cpu: acc.cpu + u.cpu, wchar: acc.wchar + u.wchar }
    })
}

/// Busy CPU seconds of the whole machine since boot, from /proc/stat.
fn machine_busy(ticks: f64) -> f64 {
    fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let line = s.lines().next()?;
            let f: Vec<f64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
            // user nice system idle iowait irq softirq steal ...
            let total: f64 = f.iter().take(8).sum();
            let idle = f.get(3)? + f.get(4)?;
            Some((total - idle) / ticks)
        })
        .unwrap_or(0.0)
}

/// CPU seconds of this process's waited-for children (the CLI runs, the
/// floor's commands), from /proc/self/stat.
fn children_cpu(ticks: f64) -> f64 {
    fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 1..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            // cutime is field 16, cstime field 17.
            let cu: f64 = f.get(13)?.parse().ok()?;
            let cs: f64 = f.get(14)?.parse().ok()?;
            Some((cu + cs) / ticks)
        })
        .unwrap_or(0.0)
}

/// Waits until the machine is quiet (other users' jobs would distort the
/// figures): less than 10 % of one CPU busy over 2 s. Gives up after `max`
/// and says so.
fn wait_quiet(ticks: f64, max: Duration) {
    if max.is_zero() {
        return;
    }
    let start = Instant::now();
    let mut said = false;
    loop {
        let b0 = machine_busy(ticks);
        std::thread::sleep(Duration::from_secs(2));
        let busy = (machine_busy(ticks) - b0) / 2.0;
        if busy < 0.1 {
            return;
        }
        if start.elapsed() > max {
            eprintln!("  the machine is still busy ({busy:.2} CPUs) after {max:?}: measuring anyway");
            return;
        }
        if !said {
            eprintln!("  waiting for a quiet machine ({busy:.2} CPUs busy) ...");
            said = true;
        }
    }
}

/// The 1-minute load average.
fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(String::from))
        .unwrap_or_default()
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

// --------------------------------------------------------------------------
// Running commands

/// Runs a command to completion; returns its wall time and stdout, or an
/// error carrying its stderr.
fn timed(cmd: &mut Command) -> Result<(Duration, String)> {
    let start = Instant::now();
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("running {cmd:?}"))?;
    let took = start.elapsed();
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok((took, String::from_utf8_lossy(&out.stdout).into_owned()))
}

struct Cli {
    server: String,
    token: String,
}

impl Cli {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(FERRY);
        c.args(args).env("FERRY_SERVER", &self.server).env("FERRY_TOKEN", &self.token).env_remove("FERRY_LOG");
        c
    }

    fn run(&self, args: &[&str]) -> Result<(Duration, String)> {
        timed(&mut self.cmd(args))
    }

    fn json(&self, args: &[&str]) -> Result<(Duration, Value)> {
        let (took, out) = self.run(args)?;
        let v = serde_json::from_str(&out).with_context(|| format!("ferry {args:?} printed no JSON: {out}"))?;
        Ok((took, v))
    }
}

fn wait_for_file(path: &Path, procs: &mut Procs, limit: Duration) -> Result<String> {
    let start = Instant::now();
    loop {
        if let Ok(s) = fs::read_to_string(path)
            && !s.trim().is_empty()
        {
            return Ok(s.trim().to_string());
        }
        procs.check_alive()?;
        if start.elapsed() > limit {
            bail!("{} did not appear within {limit:?}", path.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let s = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// --------------------------------------------------------------------------
// Statistics and small helpers

fn median(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 { v[m] } else { (v[m - 1] + v[m]) / 2.0 }
}

fn range(xs: &[f64]) -> String {
    let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{lo:.2}-{hi:.2}")
}

fn mb(bytes: f64) -> String {
    format!("{:.2} MB", bytes / 1e6)
}

/// Seconds since the epoch of an RFC 3339 UTC time such as
/// `2026-01-02T03:04:05.678Z`, as the API prints them.
fn rfc3339_secs(s: &str) -> Option<f64> {
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let time = time.trim_end_matches('Z');
    let time = time.split(['+']).next()?;
    let mut t = time.split(':');
    let (h, mi, sec) = (t.next()?.parse::<f64>().ok()?, t.next()?.parse::<f64>().ok()?, t.next()?.parse::<f64>().ok()?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as f64 * 86_400.0 + h * 3600.0 + mi * 60.0 + sec)
}

fn free_bytes(dir: &Path) -> Option<u64> {
    let out = Command::new("df").arg("-Pk").arg(dir).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let line = text.lines().nth(1)?;
    let kb: u64 = line.split_whitespace().nth(3)?.parse().ok()?;
    Some(kb * 1024)
}

fn fs_type(dir: &Path) -> String {
    Command::new("df")
        .arg("-PT")
        .arg(dir)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|t| {
            let l = t.lines().nth(1)?.to_string();
            let f: Vec<&str> = l.split_whitespace().collect();
            Some(format!("{} ({} mounted on {})", f.get(1)?, f.first()?, f.last()?))
        })
        .unwrap_or_else(|| "unknown".into())
}

fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn sh(cmd: &str) -> String {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

// --------------------------------------------------------------------------
// The workload

struct Artifacts {
    v1_tar: PathBuf,
    v2_tar: PathBuf,
    v1_tree: PathBuf,
    v2_tree: PathBuf,
    changed: Vec<String>,
}

fn make_artifacts(script: &Path, base: &Path) -> Result<Artifacts> {
    let dir = base.join("artifacts");
    let out = Command::new("bash").arg(script).arg(&dir).output().context("running make-artifact.sh")?;
    if !out.status.success() {
        bail!("make-artifact.sh failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    eprint!("{}", String::from_utf8_lossy(&out.stdout));
    let changed = fs::read_to_string(dir.join("v2-changed.txt"))?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect();
    Ok(Artifacts {
        v1_tar: dir.join("app-v1.tar.gz"),
        v2_tar: dir.join("app-v2.tar.gz"),
        v1_tree: dir.join("app-v1"),
        v2_tree: dir.join("app-v2"),
        changed,
    })
}

// --------------------------------------------------------------------------
// One repeat of Ferry

#[derive(Default, Clone)]
struct StepResult {
    wall: f64,
    /// Deployment created -> last host finished, from the server's own times.
    server_span: f64,
    server: Usage,
    agents: Usage,
    /// Busy CPU seconds of the whole machine (all processes and the kernel).
    machine: f64,
    /// CPU seconds of the CLI process.
    cli: f64,
    downloaded: Vec<u64>,
    reused: Vec<u64>,
}

impl StepResult {
    /// Busy CPU of the machine not spent by Ferry's processes.
    fn rest(&self) -> f64 {
        self.machine - self.server.cpu - self.agents.cpu - self.cli
    }
}

#[derive(Default)]
struct FerryRun {
    enrol: f64,
    upload_v1: f64,
    upload_v2: f64,
    size_v1: u64,
    size_v2: u64,
    files_v1: u64,
    steps: BTreeMap<&'static str, StepResult>,
}

const STEPS: [&str; 3] = ["first deploy", "2% update", "rollback"];

fn check_versions(hosts: &Path, n: usize, want: &str) -> Result<()> {
    for k in 1..=n {
        let f = hosts.join(format!("h{k}")).join(PROJECT).join("current").join("VERSION");
        let got = fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
        if got.trim() != want {
            bail!("{} says {}, expected {want}", f.display(), got.trim());
        }
    }
    Ok(())
}

fn ferry_run(n: usize, art: &Artifacts, dir: &Path, ticks: f64) -> Result<FerryRun> {
    let data = dir.join("server");
    let hosts = dir.join("hosts");
    let logs = dir.join("logs");
    for d in [&data, &hosts, &logs] {
        fs::create_dir_all(d)?;
    }
    let mut procs = Procs::new();
    let server_log = logs.join("server.log");
    let server_pid = procs.spawn(
        "server",
        Command::new(FERRY).args(["server", "--listen", "127.0.0.1:0", "--data"]).arg(&data).env_remove("FERRY_LOG"),
        &server_log,
    )?;
    let result = (|| -> Result<FerryRun> {
        let url = wait_for_file(&data.join("server.url"), &mut procs, Duration::from_secs(60))?;
        let token = wait_for_file(&data.join("admin.token"), &mut procs, Duration::from_secs(10))?;
        let join = wait_for_file(&data.join("join.token"), &mut procs, Duration::from_secs(10))?;
        let cli = Cli { server: url.clone(), token };

        let started = Instant::now();
        for k in 1..=n {
            let name = format!("h{k}");
            let mut cmd = Command::new(FERRY);
            cmd.args(["agent", "--server", &url, "--join-token", &join, "--name", &name])
                .args(["--tags", "role=web", "--root"])
                .arg(hosts.join(&name))
                .env_remove("FERRY_LOG")
                .env_remove("FERRY_SERVER")
                .env_remove("FERRY_JOIN_TOKEN");
            procs.spawn(&name, &mut cmd, &logs.join(format!("{name}.log")))?;
        }
        let agent_pids: Vec<u32> = procs.pids().into_iter().filter(|p| *p != server_pid).collect();
        loop {
            procs.check_alive()?;
            let (_, list) = cli.json(&["hosts", "-o", "json"])?;
            let online =
                list.as_array().map(|a| a.iter().filter(|h| h["online"] == Value::Bool(true)).count()).unwrap_or(0);
            if online >= n {
                break;
            }
            if started.elapsed() > Duration::from_secs(120) {
                bail!("only {online} of {n} agents online after 120 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut run = FerryRun { enrol: started.elapsed().as_secs_f64(), ..Default::default() };

        cli.run(&["project", "create", PROJECT])?;
        cli.run(&["env", "create", PROJECT, ENV, "--select", "role=web"])?;
        let v1 = art.v1_tar.to_string_lossy().into_owned();
        let v2 = art.v2_tar.to_string_lossy().into_owned();
        let (t, r1) = cli.json(&["release", "upload", PROJECT, &v1, "--version", "v1", "-o", "json"])?;
        run.upload_v1 = t.as_secs_f64();
        run.size_v1 = r1["total_size"].as_u64().unwrap_or(0);
        run.files_v1 = r1["file_count"].as_u64().unwrap_or(0);
        let (t, r2) = cli.json(&["release", "upload", PROJECT, &v2, "--version", "v2", "-o", "json"])?;
        run.upload_v2 = t.as_secs_f64();
        run.size_v2 = r2["total_size"].as_u64().unwrap_or(0);

        let steps: [(&'static str, Vec<&str>, &str); 3] = [
            (STEPS[0], vec!["deploy", PROJECT, ENV, "--version", "v1", "--wait", "-o", "json"], "v1"),
            (STEPS[1], vec!["deploy", PROJECT, ENV, "--version", "v2", "--wait", "-o", "json"], "v2"),
            (STEPS[2], vec!["rollback", PROJECT, ENV, "--wait", "-o", "json"], "v1"),
        ];
        for (step, args, want) in steps {
            let m0 = machine_busy(ticks);
            let c0 = children_cpu(ticks);
            let s0 = usage(server_pid, ticks);
            let a0 = usage_sum(&agent_pids, ticks);
            let (took, done) = cli.json(&args)?;
            let s1 = usage(server_pid, ticks);
            let a1 = usage_sum(&agent_pids, ticks);
            let m1 = machine_busy(ticks);
            let c1 = children_cpu(ticks);
            if done["status"] != "succeeded" {
                bail!("{step}: deployment ended {}: {done}", done["status"]);
            }
            check_versions(&hosts, n, want).with_context(|| format!("after the {step}"))?;
            let id = done["id"].as_i64().ok_or_else(|| anyhow!("{step}: no deployment id in {done}"))?;
            let (_, shown) = cli.json(&["deployment", "show", &id.to_string(), "-o", "json"])?;
            let host_rows = shown["hosts"].as_array().cloned().unwrap_or_default();
            if host_rows.len() != n {
                bail!("{step}: deployment {id} has {} hosts, expected {n}", host_rows.len());
            }
            let created = shown["created_at"].as_str().and_then(rfc3339_secs);
            let last = host_rows
                .iter()
                .filter_map(|h| h["finished_at"].as_str().and_then(rfc3339_secs))
                .fold(f64::NAN, f64::max);
            run.steps.insert(
                step,
                StepResult {
                    wall: took.as_secs_f64(),
                    server_span: created.map(|c| last - c).unwrap_or(f64::NAN),
                    server: s1 - s0,
                    machine: m1 - m0,
                    cli: c1 - c0,
                    agents: a1 - a0,
                    downloaded: host_rows.iter().map(|h| h["bytes_downloaded"].as_u64().unwrap_or(0)).collect(),
                    reused: host_rows.iter().map(|h| h["bytes_reused"].as_u64().unwrap_or(0)).collect(),
                },
            );
        }
        procs.check_alive()?;
        Ok(run)
    })();
    if result.is_err() {
        eprintln!("--- last lines of {}:\n{}", server_log.display(), tail(&server_log, 30));
        let a1 = logs.join("h1.log");
        eprintln!("--- last lines of {}:\n{}", a1.display(), tail(&a1, 30));
    }
    drop(procs);
    result
}

// --------------------------------------------------------------------------
// One repeat of the local floor

/// Picks one floor measurement out of a repeat.
type FloorPick = fn(&FloorRun) -> f64;

#[derive(Default, Clone, Copy)]
struct FloorRun {
    tar: f64,
    cp: f64,
    cp_al: f64,
    relink: f64,
    /// CPU seconds of the `tar xzf` commands, and of the rest of the machine meanwhile.
    tar_cpu: f64,
    tar_rest: f64,
}

/// Wall seconds of some floor commands, the CPU seconds they used, and the
/// busy CPU seconds of the whole machine meanwhile.
struct Measured {
    wall: f64,
    own_cpu: f64,
    machine_cpu: f64,
}

/// Runs `job(i)` for i in 0..n on `jobs` threads (1 = sequentially) and
/// measures it.
fn timed_jobs(n: usize, jobs: usize, ticks: f64, job: impl Fn(usize) -> Result<()> + Sync) -> Result<Measured> {
    let m0 = machine_busy(ticks);
    let c0 = children_cpu(ticks);
    let start = Instant::now();
    if jobs <= 1 {
        for i in 0..n {
            job(i)?;
        }
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..jobs)
                .map(|t| {
                    let job = &job;
                    s.spawn(move || (t..n).step_by(jobs).try_for_each(job))
                })
                .collect();
            handles.into_iter().try_for_each(|h| h.join().map_err(|_| anyhow!("floor worker panicked"))?)
        })?;
    }
    let wall = start.elapsed().as_secs_f64();
    Ok(Measured { wall, own_cpu: children_cpu(ticks) - c0, machine_cpu: machine_busy(ticks) - m0 })
}

fn quiet(cmd: &mut Command) -> Result<()> {
    timed(cmd).map(|_| ())
}

fn floor_run(n: usize, jobs: usize, art: &Artifacts, dir: &Path, ticks: f64) -> Result<FloorRun> {
    let hd = |kind: &str, i: usize| dir.join(kind).join(format!("h{}", i + 1));
    // (a) tar xzf into N fresh directories.
    for i in 0..n {
        fs::create_dir_all(hd("tar", i))?;
    }
    let tar = timed_jobs(n, jobs, ticks, |i| {
        quiet(Command::new("tar").arg("xzf").arg(&art.v1_tar).arg("-C").arg(hd("tar", i)))
    })?;
    if fs::read_to_string(hd("tar", n - 1).join("VERSION"))?.trim() != "v1" {
        bail!("tar floor: wrong content");
    }
    fs::remove_dir_all(dir.join("tar"))?;

    // (b) cp -a of the v1 tree into N directories.
    for i in 0..n {
        fs::create_dir_all(hd("cp", i))?;
    }
    let cp = timed_jobs(n, jobs, ticks, |i| {
        quiet(Command::new("cp").arg("-a").arg(&art.v1_tree).arg(hd("cp", i).join("v1")))
    })?;

    // The update: hard-link the v1 tree, then copy the changed files over,
    // replacing (not writing through) the links.
    let cp_al = timed_jobs(n, jobs, ticks, |i| {
        let h = hd("cp", i);
        quiet(Command::new("cp").arg("-al").arg(h.join("v1")).arg(h.join("v2")))?;
        quiet(
            Command::new("cp")
                .current_dir(&art.v2_tree)
                .args(["-a", "--remove-destination", "--parents", "-t"])
                .arg(h.join("v2"))
                .args(&art.changed),
        )
    })?;
    for i in [0, n - 1] {
        let h = hd("cp", i);
        let v1 = fs::read_to_string(h.join("v1/VERSION"))?;
        let v2 = fs::read_to_string(h.join("v2/VERSION"))?;
        let blob = "vendor/blobs/blob_09.bin";
        if v1.trim() != "v1"
            || v2.trim() != "v2"
            || fs::read(h.join("v1").join(blob))? != fs::read(art.v1_tree.join(blob))?
            || fs::read(h.join("v2").join(blob))? != fs::read(art.v2_tree.join(blob))?
        {
            bail!("cp -al floor: wrong content in {}", h.display());
        }
    }

    // The relink: point `current` at v2, then time pointing it back at v1.
    for i in 0..n {
        std::os::unix::fs::symlink("v2", hd("cp", i).join("current"))?;
    }
    let relink = timed_jobs(n, jobs, ticks, |i| {
        quiet(Command::new("ln").args(["-sfn", "v1"]).arg(hd("cp", i).join("current")))
    })?;
    fs::remove_dir_all(dir.join("cp"))?;
    Ok(FloorRun {
        tar: tar.wall,
        cp: cp.wall,
        cp_al: cp_al.wall,
        relink: relink.wall,
        tar_cpu: tar.own_cpu,
        tar_rest: tar.machine_cpu - tar.own_cpu,
    })
}

// --------------------------------------------------------------------------

fn pick_base(needed: u64) -> Result<(tempfile::TempDir, String)> {
    let (parent, why) = if let Ok(d) = std::env::var("FERRY_BENCH_DIR") {
        (PathBuf::from(d), "FERRY_BENCH_DIR".to_string())
    } else {
        let shm = Path::new("/dev/shm");
        match free_bytes(shm) {
            Some(free) if shm.is_dir() && free >= needed => (shm.to_path_buf(), "tmpfs, like the reference".into()),
            Some(free) if shm.is_dir() => (
                std::env::temp_dir(),
                format!("/dev/shm has only {} free, {} needed", mb(free as f64), mb(needed as f64)),
            ),
            _ => (std::env::temp_dir(), "no /dev/shm".into()),
        }
    };
    let t = tempfile::Builder::new()
        .prefix("ferry-bench-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a temporary directory in {}", parent.display()))?;
    Ok((t, why))
}

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let cfg = Config::from_env()?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/bench/make-artifact.sh");
    if !script.is_file() {
        println!("deploy benchmark skipped: the reference workload generator {} is absent", script.display());
        return Ok(());
    }
    let max_n = *cfg.hosts.iter().max().unwrap_or(&1) as u64;
    // Artifacts (~170 MB) plus, at the largest N, the agents' trees (v1 and
    // the v2 delta) or the floor's trees, with room to spare.
    let needed = 400_000_000 + max_n * 2 * 45_000_000;
    let (base, why) = pick_base(needed)?;
    let base_path = base.path().to_path_buf();
    let ticks = clock_ticks();

    let nproc = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mem = sh("free -g | awk '/^Mem:/ {print $2}'");
    println!("# Ferry deploy benchmark\n");
    println!("- machine: {nproc} CPUs ({}), {mem} GB RAM, kernel {}", cpu_model(), sh("uname -r"));
    println!("- filesystem of every tree: {} [{why}]", fs_type(&base_path));
    println!(
        "- hosts: {:?}, repeats: {} (medians reported), floor commands: {}",
        cfg.hosts,
        cfg.runs,
        if cfg.floor_jobs == 1 { "sequential".to_string() } else { format!("{} parallel workers", cfg.floor_jobs) }
    );
    let manifest_dir = env!("CARGO_MANIFEST_DIR");
    let commit = sh(&format!("git -C '{manifest_dir}' rev-parse --short HEAD 2>/dev/null"));
    let dirty = sh(&format!(
        "git -C '{manifest_dir}' status --porcelain --untracked-files=no 2>/dev/null | cut -c4- | paste -sd ' '"
    ));
    println!(
        "- binary: {FERRY} (commit {}{})\n",
        if commit.is_empty() { "unknown" } else { &commit },
        if dirty.is_empty() { String::new() } else { format!(", uncommitted changes in: {dirty}") }
    );

    eprintln!("generating the workload in {} ...", base_path.display());
    let art = make_artifacts(&script, &base_path)?;

    let mut ferry: BTreeMap<usize, Vec<FerryRun>> = BTreeMap::new();
    let mut floor: BTreeMap<usize, Vec<FloorRun>> = BTreeMap::new();
    for &n in &cfg.hosts {
        for r in 1..=cfg.runs {
            let dir = base_path.join(format!("ferry-n{n}-r{r}"));
            wait_quiet(ticks, cfg.quiet_wait);
            eprintln!("N={n} repeat {r}/{}: ferry ... (load average {})", cfg.runs, load_average());
            let run = ferry_run(n, &art, &dir, ticks).with_context(|| format!("N={n} repeat {r}"))?;
            eprintln!(
                "  agents online {:.2}s, upload v1 {:.2}s v2 {:.2}s, {}",
                run.enrol,
                run.upload_v1,
                run.upload_v2,
                STEPS.iter().map(|s| format!("{s} {:.2}s", run.steps[s].wall)).collect::<Vec<_>>().join(", ")
            );
            if !cfg.keep {
                fs::remove_dir_all(&dir)?;
            }
            ferry.entry(n).or_default().push(run);

            let fdir = base_path.join(format!("floor-n{n}-r{r}"));
            wait_quiet(ticks, cfg.quiet_wait);
            eprintln!("N={n} repeat {r}/{}: floor ...", cfg.runs);
            let f = floor_run(n, cfg.floor_jobs, &art, &fdir, ticks)?;
            eprintln!(
                "  tar xzf {:.2}s, cp -a {:.2}s, cp -al+changed {:.2}s, ln -sfn {:.2}s",
                f.tar, f.cp, f.cp_al, f.relink
            );
            let _ = fs::remove_dir_all(&fdir);
            floor.entry(n).or_default().push(f);
        }
    }

    report(&cfg, &ferry, &floor);
    if cfg.keep {
        let kept = base.keep();
        println!("\n(kept {} for inspection)", kept.display());
    } else {
        drop(base);
    }
    Ok(())
}

fn report(cfg: &Config, ferry: &BTreeMap<usize, Vec<FerryRun>>, floor: &BTreeMap<usize, Vec<FloorRun>>) {
    let size_v1 = ferry.values().flatten().map(|r| r.size_v1).max().unwrap_or(0);
    let size_v2 = ferry.values().flatten().map(|r| r.size_v2).max().unwrap_or(0);
    let files_v1 = ferry.values().flatten().map(|r| r.files_v1).max().unwrap_or(0);
    println!(
        "Release v1: {files_v1} files, {} (as Ferry counts it); v2: {}.\n",
        mb(size_v1 as f64),
        mb(size_v2 as f64)
    );

    println!("## Wall time, median of {} repeat(s), seconds\n", cfg.runs);
    println!("| N | step | ferry s | ferry min-max | floor | floor s | floor min-max | ferry / floor |");
    println!("|---:|---|---:|---:|---|---:|---:|---:|");
    for (&n, runs) in ferry {
        let fl = &floor[&n];
        let rows: [(&str, &str, FloorPick); 4] = [
            (STEPS[0], "`tar xzf` into N dirs", |f| f.tar),
            (STEPS[0], "`cp -a` into N dirs", |f| f.cp),
            (STEPS[1], "`cp -al` + changed files", |f| f.cp_al),
            (STEPS[2], "`ln -sfn` per dir", |f| f.relink),
        ];
        for (step, what, pick) in rows {
            let fs: Vec<f64> = fl.iter().map(pick).collect();
            let ms: Vec<f64> = runs.iter().map(|r| r.steps[step].wall).collect();
            println!(
                "| {n} | {step} | {:.2} | {} | {what} | {:.2} | {} | {:.2}x |",
                median(&ms),
                range(&ms),
                median(&fs),
                range(&fs),
                median(&ms) / median(&fs)
            );
        }
    }

    println!("\n## Bytes moved per host (from `ferry deployment show`), median over repeats\n");
    println!("| N | step | downloaded / host (median, max) | reused / host | downloaded % of release |");
    println!("|---:|---|---:|---:|---:|");
    for (&n, runs) in ferry {
        for step in STEPS {
            let size = if step == STEPS[1] { size_v2 } else { size_v1 } as f64;
            let med_dl = median(
                &runs
                    .iter()
                    .map(|r| median(&r.steps[step].downloaded.iter().map(|&b| b as f64).collect::<Vec<_>>()))
                    .collect::<Vec<_>>(),
            );
            let max_dl = runs.iter().flat_map(|r| r.steps[step].downloaded.iter().copied()).max().unwrap_or(0) as f64;
            let med_ru = median(
                &runs
                    .iter()
                    .map(|r| median(&r.steps[step].reused.iter().map(|&b| b as f64).collect::<Vec<_>>()))
                    .collect::<Vec<_>>(),
            );
            println!(
                "| {n} | {step} | {}, {} | {} | {:.2} % |",
                mb(med_dl),
                mb(max_dl),
                mb(med_ru),
                100.0 * max_dl / size
            );
        }
    }

    println!("\n## Where the time goes (medians)\n");
    println!(
        "| N | step | ferry wall s | server span s | server CPU s | agents CPU s (all) | CLI CPU s | rest of machine CPU s | server wrote / host |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for (&n, runs) in ferry {
        for step in STEPS {
            let m =
                |f: &dyn Fn(&StepResult) -> f64| median(&runs.iter().map(|r| f(&r.steps[step])).collect::<Vec<_>>());
            println!(
                "| {n} | {step} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
                m(&|s| s.wall),
                m(&|s| s.server_span),
                m(&|s| s.server.cpu),
                m(&|s| s.agents.cpu),
                m(&|s| s.cli),
                m(&|s| s.rest()),
                mb(m(&|s| s.server.wchar as f64) / n as f64)
            );
        }
    }
    println!(
        "\nserver span = deployment created -> last host finished, from the server's own timestamps; \
         the rest of the wall time is the CLI (process start, request, polling every 100 ms). \
         rest of machine = busy CPU of the whole machine (/proc/stat) minus server, agents and CLI: kernel work \
         not charged to a process (softirq) and anything else running on the machine. \
         server wrote = the server process's write()/send() bytes (/proc/PID/io wchar) during the step, \
         per host: the wire bytes plus SQLite writes."
    );

    println!("\n## Setup (not part of the deploy figures), medians\n");
    println!("| N | agents started -> all online s | upload v1 s | upload v2 s |");
    println!("|---:|---:|---:|---:|");
    for (&n, runs) in ferry {
        let m = |f: fn(&FerryRun) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
        println!("| {n} | {:.2} | {:.2} | {:.2} |", m(|r| r.enrol), m(|r| r.upload_v1), m(|r| r.upload_v2));
    }

    println!("\n## Against the targets\n");
    for (&n, runs) in ferry {
        let fl = &floor[&n];
        let sm = |s: &str| median(&runs.iter().map(|r| r.steps[s].wall).collect::<Vec<_>>());
        let tar = median(&fl.iter().map(|f| f.tar).collect::<Vec<_>>());
        let cpal = median(&fl.iter().map(|f| f.cp_al).collect::<Vec<_>>());
        let max_pct = runs.iter().flat_map(|r| r.steps[STEPS[1]].downloaded.iter().copied()).max().unwrap_or(0) as f64
            * 100.0
            / size_v2 as f64;
        let ok = |b: bool| if b { "met" } else { "MISSED" };
        let first = sm(STEPS[0]) / tar;
        let upd = sm(STEPS[1]) / cpal;
        let rb = sm(STEPS[2]);
        println!(
            "- N={n}: first deploy {first:.2}x `tar xzf` floor: {} (issue: <= 2x), {} (README: <= 1.5x)",
            ok(first <= 2.0),
            ok(first <= 1.5)
        );
        println!("- N={n}: 2% update {upd:.2}x `cp -al` floor: {} (README: <= 2x)", ok(upd <= 2.0));
        println!(
            "- N={n}: 2% update moved at most {max_pct:.2} % of the release per host: {} (<= 5 %)",
            ok(max_pct <= 5.0)
        );
        let speedup = sm(STEPS[0]) / sm(STEPS[1]);
        println!(
            "- N={n}: 2% update {speedup:.1}x faster than the first deploy: {} (issue: >= 5x)",
            ok(speedup >= 5.0)
        );
        println!("- N={n}: rollback {rb:.2} s: {} (< 1 s)", ok(rb < 1.0));
    }

    println!("\n## Every repeat, seconds\n");
    println!(
        "| N | repeat | first deploy | 2% update | rollback | tar xzf | cp -a | cp -al+changed | ln -sfn | \
         first deploy: Ferry CPU / rest | tar xzf: CPU / rest |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (&n, runs) in ferry {
        for (i, (r, f)) in runs.iter().zip(&floor[&n]).enumerate() {
            let first = &r.steps[STEPS[0]];
            println!(
                "| {n} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} / {:.1} | {:.1} / {:.1} |",
                i + 1,
                first.wall,
                r.steps[STEPS[1]].wall,
                r.steps[STEPS[2]].wall,
                f.tar,
                f.cp,
                f.cp_al,
                f.relink,
                first.server.cpu + first.agents.cpu + first.cli,
                first.rest(),
                f.tar_cpu,
                f.tar_rest
            );
        }
    }
    println!(
        "\nCPU / rest: CPU seconds of the measured processes, and of everything else on the machine meanwhile \
         (kernel work not charged to a process, other users' jobs). A large rest means the repeat was disturbed."
    );
}
