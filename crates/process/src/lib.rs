//! Running a command as Ferry runs every command it is given (build
//! scripts, deploy hooks): `sh -c` in a directory, in its own process group,
//! output handed over line by line, with a timeout and cancellation that end
//! the whole group (TERM, then KILL after a grace period), so nothing the
//! command started outlives it.
//!
//! Architecture invariant: no knowledge of builds, releases or hosts; callers
//! decide where lines go and what an outcome means.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

use std::sync::Arc;

/// How long a process group gets between TERM and KILL.
const KILL_GRACE: Duration = Duration::from_secs(5);
/// How many trailing output lines a failure message quotes.
const TAIL_LINES: usize = 10;

/// Where output lines go: called with the stream (`stdout` or `stderr`) and
/// the line, without its line ending.
pub type LineSink = Arc<dyn Fn(&'static str, String) + Send + Sync>;

/// How a command ended.
#[derive(Debug, PartialEq, Eq)]
pub enum RunOutcome {
    Succeeded,
    /// Exit code, or the signal that ended it.
    Failed {
        code: Option<i32>,
        tail: Vec<String>,
    },
    TimedOut,
    Canceled,
}

/// A user to run a command as: uid and gid, name and home for its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: std::path::PathBuf,
}

impl RunAs {
    /// The user of this name, from the system's user database.
    pub fn lookup(name: &str) -> Result<RunAs, String> {
        let user = nix::unistd::User::from_name(name)
            .map_err(|e| format!("looking up user '{name}': {e}"))?
            .ok_or_else(|| format!("user '{name}' does not exist on this machine"))?;
        Ok(RunAs { name: user.name, uid: user.uid.as_raw(), gid: user.gid.as_raw(), home: user.dir })
    }
}

/// Whether this process runs as root (and so may start others as any user).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Runs `command` and waits. `canceled` is polled once a second; use
/// [`never`] when nothing can cancel it.
pub async fn run(
    command: &str,
    dir: &Path,
    env: &[(String, String)],
    timeout: Duration,
    log: &LineSink,
    canceled: impl FnMut() -> futures_util::future::BoxFuture<'static, bool>,
) -> Result<RunOutcome, String> {
    run_as(command, dir, env, None, timeout, log, canceled).await
}

/// [`run`], as another user (which needs the caller to be root).
pub async fn run_as(
    command: &str,
    dir: &Path,
    env: &[(String, String)],
    user: Option<&RunAs>,
    timeout: Duration,
    log: &LineSink,
    canceled: impl FnMut() -> futures_util::future::BoxFuture<'static, bool>,
) -> Result<RunOutcome, String> {
    let mut cmd = Command::new("sh");
    if let Some(u) = user {
        cmd.uid(u.uid).gid(u.gid).env("USER", &u.name).env("LOGNAME", &u.name).env("HOME", &u.home);
    }
    cmd.arg("-c").arg(command).current_dir(dir).envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let who = user.map(|u| format!(" as user {}", u.name)).unwrap_or_default();
    supervise(cmd, format!("`sh -c {command}`{who} in {}", dir.display()), timeout, log, canceled).await
}

/// The wall around untrusted code (a build script: anyone who can push can
/// change it). bubblewrap runs it in its own PID namespace, so nothing it
/// starts outlives it; the whole filesystem is read-only but `writable`;
/// each of `hidden` (the server's data directory) is an empty directory;
/// `/tmp` is its own. When the server runs as root, the code runs as `user`
/// (bubblewrap would otherwise leave it root, able to undo the mounts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    /// The `bwrap` program.
    pub bwrap: std::path::PathBuf,
    /// The one directory it may write (its checkout).
    pub writable: std::path::PathBuf,
    /// Directories it must not see at all.
    pub hidden: Vec<std::path::PathBuf>,
    /// Who it runs as (when the caller is root).
    pub user: Option<RunAs>,
}

/// The `PATH` untrusted code gets: the caller's, else the usual one.
fn plain_path() -> String {
    std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into())
}

/// Runs untrusted `command` in `dir` with only `env` (plus `PATH`, `HOME`
/// and `LANG`): nothing of the caller's environment (its tokens, keys,
/// credentials) is passed on. With a [`Sandbox`], inside it; without, as the
/// caller, walled off by nothing but the clean environment.
pub async fn run_untrusted(
    command: &str,
    dir: &Path,
    env: &[(String, String)],
    sandbox: Option<&Sandbox>,
    timeout: Duration,
    log: &LineSink,
    canceled: impl FnMut() -> futures_util::future::BoxFuture<'static, bool>,
) -> Result<RunOutcome, String> {
    let home = sandbox.and_then(|s| s.user.as_ref()).map_or_else(|| dir.to_path_buf(), |u| u.home.clone());
    let mut vars: Vec<(String, String)> = vec![
        ("PATH".into(), plain_path()),
        ("HOME".into(), home.display().to_string()),
        ("LANG".into(), "C.UTF-8".into()),
    ];
    vars.extend(env.iter().cloned());
    let Some(sandbox) = sandbox else {
        let mut cmd = Command::new("sh");
        cmd.env_clear().envs(vars.iter().map(|(k, v)| (k, v))).arg("-c").arg(command).current_dir(dir);
        return supervise(cmd, format!("`sh -c {command}` in {}", dir.display()), timeout, log, canceled).await;
    };
    let mut cmd = Command::new(&sandbox.bwrap);
    cmd.env_clear().env("PATH", plain_path());
    cmd.args(["--die-with-parent", "--unshare-pid", "--unshare-ipc", "--new-session"]);
    cmd.args(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]);
    for hidden in &sandbox.hidden {
        cmd.arg("--tmpfs").arg(hidden);
    }
    cmd.arg("--bind").arg(&sandbox.writable).arg(&sandbox.writable);
    cmd.arg("--chdir").arg(dir).arg("--clearenv");
    for (k, v) in &vars {
        cmd.arg("--setenv").arg(k).arg(v);
    }
    if let Some(u) = &sandbox.user {
        cmd.args(["--setenv", "USER", &u.name, "--setenv", "LOGNAME", &u.name]);
    }
    cmd.arg("--");
    if let Some(u) = &sandbox.user {
        cmd.arg("setpriv").arg(format!("--reuid={}", u.uid)).arg(format!("--regid={}", u.gid)).args([
            "--clear-groups",
            "--inh-caps=-all",
            "--",
        ]);
    }
    cmd.arg("sh").arg("-c").arg(command);
    let who = sandbox.user.as_ref().map(|u| format!(" as user {}", u.name)).unwrap_or_default();
    let what = format!("`sh -c {command}`{who} in a sandbox ({}) in {}", sandbox.bwrap.display(), dir.display());
    supervise(cmd, what, timeout, log, canceled).await
}

/// Starts `cmd` in its own process group, hands its output to `log` and
/// waits for it, its timeout, or its cancellation.
async fn supervise(
    mut cmd: Command,
    what: String,
    timeout: Duration,
    log: &LineSink,
    mut canceled: impl FnMut() -> futures_util::future::BoxFuture<'static, bool>,
) -> Result<RunOutcome, String> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0).kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| format!("cannot start {what}: {e}"))?;
    let pgid = child.id().and_then(|id| i32::try_from(id).ok()).map(Pid::from_raw);
    let tail = std::sync::Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
    let out = child.stdout.take().map(|s| tokio::spawn(pump(s, "stdout", log.clone(), tail.clone())));
    let err = child.stderr.take().map(|s| tokio::spawn(pump(s, "stderr", log.clone(), tail.clone())));

    let deadline = tokio::time::Instant::now() + timeout;
    let mut poll = tokio::time::interval(Duration::from_secs(1));
    let outcome = loop {
        tokio::select! {
            status = child.wait() => {
                let status = status.map_err(|e| e.to_string())?;
                break if status.success() {
                    RunOutcome::Succeeded
                } else {
                    RunOutcome::Failed { code: status.code(), tail: Vec::new() }
                };
            }
            _ = tokio::time::sleep_until(deadline) => {
                stop_group(pgid, &mut child).await;
                break RunOutcome::TimedOut;
            }
            _ = poll.tick() => {
                if canceled().await {
                    stop_group(pgid, &mut child).await;
                    break RunOutcome::Canceled;
                }
            }
        }
    };
    // Children that outlived `sh` keep the pipes open: end them too.
    if let Some(pgid) = pgid {
        let _ = killpg(pgid, Signal::SIGKILL);
    }
    for pump in [out, err].into_iter().flatten() {
        let _ = tokio::time::timeout(Duration::from_secs(5), pump).await;
    }
    Ok(match outcome {
        RunOutcome::Failed { code, .. } => {
            let tail = tail.lock().map(|t| t.iter().cloned().collect()).unwrap_or_default();
            RunOutcome::Failed { code, tail }
        }
        other => other,
    })
}

/// TERM to the group, KILL after the grace period.
async fn stop_group(pgid: Option<Pid>, child: &mut tokio::process::Child) {
    let Some(pgid) = pgid else {
        let _ = child.kill().await;
        return;
    };
    let _ = killpg(pgid, Signal::SIGTERM);
    if tokio::time::timeout(KILL_GRACE, child.wait()).await.is_err() {
        let _ = killpg(pgid, Signal::SIGKILL);
        let _ = child.wait().await;
    }
}

/// Copies a pipe into the log, line by line, keeping the last lines.
async fn pump(
    pipe: impl AsyncRead + Unpin,
    stream: &'static str,
    log: LineSink,
    tail: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<String>>>,
) {
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf).trim_end_matches(['\n', '\r']).to_string();
                if let Ok(mut t) = tail.lock() {
                    t.push_back(format!("{stream}: {line}"));
                    if t.len() > TAIL_LINES {
                        t.pop_front();
                    }
                }
                log(stream, line);
            }
        }
    }
}

/// A `canceled` check for commands nobody cancels.
pub fn never() -> futures_util::future::BoxFuture<'static, bool> {
    Box::pin(async { false })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn collect() -> (LineSink, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        (Arc::new(move |stream, line| sink.lock().unwrap().push(format!("{stream}: {line}"))), lines)
    }

    #[tokio::test]
    async fn output_and_exit_codes() {
        let dir = tempfile::tempdir().unwrap();
        let (sink, lines) = collect();
        let env = vec![("GREETING".to_string(), "hi".to_string())];
        let ok = run("echo $GREETING; echo oops >&2", dir.path(), &env, Duration::from_secs(10), &sink, never).await;
        assert_eq!(ok, Ok(RunOutcome::Succeeded));
        let got = lines.lock().unwrap().clone();
        assert!(got.contains(&"stdout: hi".to_string()) && got.contains(&"stderr: oops".to_string()), "{got:?}");
        let failed = run("echo last words; exit 3", dir.path(), &[], Duration::from_secs(10), &sink, never).await;
        assert_eq!(failed, Ok(RunOutcome::Failed { code: Some(3), tail: vec!["stdout: last words".into()] }));
    }

    #[tokio::test]
    async fn a_timeout_ends_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let (sink, _) = collect();
        let started = std::time::Instant::now();
        let out = run("sleep 30 & sleep 30", dir.path(), &[], Duration::from_millis(300), &sink, never).await;
        assert_eq!(out, Ok(RunOutcome::TimedOut));
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
