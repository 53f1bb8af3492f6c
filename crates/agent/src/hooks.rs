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

/// Whether the install a hook runs for was superseded (the server now wants
/// another release of the project): checked while the hook runs.
pub type Superseded = Arc<dyn Fn() -> bool + Send + Sync>;

/// A release's hooks, ready to run: with what environment, as whom, and
/// where their output goes.
pub struct Hooks<'a> {
    pub recipe: &'a HooksRecipe,
    pub env: &'a [(String, String)],
    pub user: Option<&'a RunAs>,
    pub log: &'a DeployLog,
    /// When it says so, the running hook's whole process group is stopped
    /// at once and the hook fails: nobody waits for an install nobody wants.
    pub superseded: Option<Superseded>,
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
        let superseded = self.superseded.clone();
        let canceled = move || -> futures_util::future::BoxFuture<'static, bool> {
            let stop = superseded.as_ref().is_some_and(|s| s());
            Box::pin(async move { stop })
        };
        let outcome = ferry_process::run_as(command, dir, self.env, self.user, timeout, &sink, canceled).await?;
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
            RunOutcome::Canceled => {
                self.log.step(format!("stopped hook {name}: the server asked for another release"));
                Err(format!("hook {name} was stopped: the server asked for another release"))
            }
        }
    }
}
