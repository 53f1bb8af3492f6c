//! Deploy hooks on the host (R18): the `[hooks]` commands of the release's
//! own `ferry.toml`, run with `sh -c` in their own process group, with a
//! timeout, as the service's user. Output goes to the agent's log and to the
//! deployment log of the install; a failure carries the hook's name, exit
//! code and last lines.

use std::path::Path;
use std::sync::Arc;

use ferry_domain::{Hook, HooksRecipe};
use ferry_process::{RunAs, RunOutcome};

use crate::deploy_log::DeployLog;

/// A release's hooks, ready to run: with what environment, as whom, and
/// where their output goes.
pub struct Hooks<'a> {
    pub recipe: &'a HooksRecipe,
    pub env: &'a [(String, String)],
    pub user: Option<&'a RunAs>,
    pub log: &'a DeployLog,
}

impl Hooks<'_> {
    /// Runs one hook in `dir`, if the release defines it.
    pub async fn run(&self, hook: Hook, dir: &Path) -> Result<(), String> {
        let Some(command) = self.recipe.command(hook) else { return Ok(()) };
        let name = hook.name();
        let timeout = self.recipe.timeout().map_err(|e| e.to_string())?;
        let deploy_log = self.log.clone();
        let sink: ferry_process::LineSink = Arc::new(move |stream, line| {
            tracing::info!(hook = name, stream, "{line}");
            deploy_log.line(stream, line);
        });
        tracing::info!(hook = name, "running `{command}`");
        self.log.step(format!("running hook {name}: {command}"));
        let outcome =
            ferry_process::run_as(command, dir, self.env, self.user, timeout, &sink, ferry_process::never).await?;
        match outcome {
            RunOutcome::Succeeded => Ok(()),
            // The outcome on a line of its own: the deployment log shows the
            // first line of a failed install's error, and has the output already.
            RunOutcome::Failed { code, tail } => Err(format!(
                "hook {name} `{command}` {}\nlast output:\n{}",
                code.map_or("was killed by a signal".to_string(), |c| format!("exited with code {c}")),
                tail.join("\n")
            )),
            RunOutcome::TimedOut => {
                Err(format!("hook {name} `{command}` ran longer than {} s and was stopped", timeout.as_secs()))
            }
            RunOutcome::Canceled => Err(format!("hook {name} was canceled")),
        }
    }
}
