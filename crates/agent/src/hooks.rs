//! Deploy hooks on the host (R18): the `[hooks]` commands of the release's
//! own `ferry.toml`, run with `sh -c` in their own process group, with a
//! timeout, as the agent's user. Output goes to the agent's log; a failure
//! carries the hook's name, exit code and last lines.

use std::path::Path;
use std::sync::Arc;

use ferry_domain::HooksRecipe;
use ferry_process::RunOutcome;

/// Runs one hook if the release defines it.
pub async fn run(
    name: &str,
    command: Option<&str>,
    hooks: &HooksRecipe,
    dir: &Path,
    env: &[(String, String)],
) -> Result<(), String> {
    let Some(command) = command.filter(|c| !c.trim().is_empty()) else { return Ok(()) };
    let timeout = hooks.timeout().map_err(|e| e.to_string())?;
    let hook = name.to_string();
    let sink: ferry_process::LineSink = Arc::new(move |stream, line| tracing::info!(hook = %hook, stream, "{line}"));
    tracing::info!(hook = name, "running `{command}`");
    match ferry_process::run(command, dir, env, timeout, &sink, ferry_process::never).await? {
        RunOutcome::Succeeded => Ok(()),
        RunOutcome::Failed { code, tail } => Err(format!(
            "hook {name} `{command}` {}; last output:\n{}",
            code.map_or("was killed by a signal".to_string(), |c| format!("exited with code {c}")),
            tail.join("\n")
        )),
        RunOutcome::TimedOut => {
            Err(format!("hook {name} `{command}` ran longer than {} s and was stopped", timeout.as_secs()))
        }
        RunOutcome::Canceled => Err(format!("hook {name} was canceled")),
    }
}
