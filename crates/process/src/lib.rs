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
    mut canceled: impl FnMut() -> futures_util::future::BoxFuture<'static, bool>,
) -> Result<RunOutcome, String> {
    let mut cmd = Command::new("sh");
    if let Some(u) = user {
        cmd.uid(u.uid).gid(u.gid).env("USER", &u.name).env("LOGNAME", &u.name).env("HOME", &u.home);
    }
    cmd.arg("-c")
        .arg(command)
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| {
        let who = user.map(|u| format!(" as user {}", u.name)).unwrap_or_default();
        format!("cannot start `sh -c {command}`{who} in {}: {e}", dir.display())
    })?;
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
