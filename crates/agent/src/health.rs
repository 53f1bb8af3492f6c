//! Running a release's `[health]` check (R13, R14): one probe, tried every
//! `interval` until it passes, `retries` attempts have failed, or `timeout`
//! has passed. The failure names the probe and what the last attempt saw.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ferry_domain::health::status_passes;
use ferry_domain::{HealthRecipe, Probe};
use ferry_process::RunOutcome;

use crate::config::expand_with;

/// The longest a single attempt may take.
const ATTEMPT_LIMIT: Duration = Duration::from_secs(10);

/// Runs the check; `Ok` once it passes. `env` expands `${VAR}` and is the
/// environment of a `command` probe, which runs in `dir`.
///
/// A `command` probe is the release's own code, so it runs as the service's
/// user (`user`), like the hooks, never as the agent's (often root).
pub async fn check(
    recipe: &HealthRecipe,
    dir: &Path,
    env: &[(String, String)],
    user: Option<&ferry_process::RunAs>,
) -> Result<(), String> {
    let probe = match recipe.probe().map_err(|e| e.to_string())? {
        Probe::Http { url, status, body } => {
            Probe::Http { url: expand_with("[health] http", &url, env)?, status, body }
        }
        Probe::Tcp { address } => Probe::Tcp { address: expand_with("[health] tcp", &address, env)? },
        Probe::Command { command } => Probe::Command { command: expand_with("[health] command", &command, env)? },
    };
    let interval = recipe.interval().map_err(|e| e.to_string())?;
    let timeout = recipe.timeout().map_err(|e| e.to_string())?;
    let started = tokio::time::Instant::now();
    let deadline = started + timeout;
    // reqwest panics without a process-wide rustls provider; unit tests get here without `run`.
    ferry_tls::install_crypto_provider();
    let http = reqwest::Client::builder().timeout(ATTEMPT_LIMIT.min(timeout)).build().map_err(|e| e.to_string())?;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now()).max(Duration::from_millis(100));
        let outcome = match tokio::time::timeout(left.min(ATTEMPT_LIMIT), attempt(&probe, &http, dir, env, user)).await
        {
            Ok(outcome) => outcome,
            Err(_) => Err("no answer in time".to_string()),
        };
        let last = match outcome {
            Ok(()) => {
                tracing::info!(probe = %describe(&probe), attempts, "health check passed");
                return Ok(());
            }
            Err(e) => e,
        };
        let out_of_tries = recipe.retries.is_some_and(|r| attempts >= r);
        if out_of_tries || tokio::time::Instant::now() + interval >= deadline {
            return Err(format!(
                "health check {} failed after {attempts} attempt(s) in {:.1} s; last: {last}",
                describe(&probe),
                started.elapsed().as_secs_f64()
            ));
        }
        tokio::time::sleep(interval).await;
    }
}

fn describe(probe: &Probe) -> String {
    match probe {
        Probe::Http { url, .. } => format!("GET {url}"),
        Probe::Tcp { address } => format!("tcp {address}"),
        Probe::Command { command } => format!("`{command}`"),
    }
}

async fn attempt(
    probe: &Probe,
    http: &reqwest::Client,
    dir: &Path,
    env: &[(String, String)],
    user: Option<&ferry_process::RunAs>,
) -> Result<(), String> {
    match probe {
        Probe::Http { url, status, body } => {
            let resp = http.get(url).send().await.map_err(|e| error_chain(&e))?;
            let got = resp.status().as_u16();
            if !status_passes(*status, got) {
                let wanted = status.map_or("a 2xx status".to_string(), |s| format!("status {s}"));
                return Err(format!("status {got}, expected {wanted}"));
            }
            if let Some(want) = body {
                let text = resp.text().await.map_err(|e| error_chain(&e))?;
                if !text.contains(want.as_str()) {
                    let shown: String = text.chars().take(200).collect();
                    return Err(format!("the body does not contain '{want}': {shown}"));
                }
            }
            Ok(())
        }
        Probe::Tcp { address } => {
            tokio::net::TcpStream::connect(address.as_str()).await.map(|_| ()).map_err(|e| format!("connecting: {e}"))
        }
        Probe::Command { command } => {
            let sink: ferry_process::LineSink = Arc::new(|stream, line| tracing::debug!(stream, "health: {line}"));
            match ferry_process::run_as(command, dir, env, user, ATTEMPT_LIMIT, &sink, ferry_process::never).await? {
                RunOutcome::Succeeded => Ok(()),
                RunOutcome::Failed { code, tail } => Err(format!(
                    "{}{}",
                    code.map_or("killed by a signal".to_string(), |c| format!("exit code {c}")),
                    tail.last().map(|l| format!(": {l}")).unwrap_or_default()
                )),
                RunOutcome::TimedOut => Err("the command ran too long".into()),
                RunOutcome::Canceled => Err("canceled".into()),
            }
        }
    }
}

/// reqwest hides the useful part ("connection refused") in the source chain.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
