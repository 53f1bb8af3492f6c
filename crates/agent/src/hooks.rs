//! Deploy hooks on the host (R18): the `[hooks]` commands of the release's
//! own `ferry.toml`, run with `sh -c` in their own process group, with a
//! timeout, as the agent's user. Output goes to the agent's log and to the
//! deployment log of the install; a failure carries the hook's name, exit
//! code and last lines.

use std::path::Path;
use std::sync::Arc;

use ferry_domain::{HooksRecipe, Manifest, Recipe};
use ferry_process::RunOutcome;

use crate::deploy_log::DeployLog;
use crate::objects::ObjectStore;

/// The `[hooks]` of a release, read from its `ferry.toml` text.
pub fn parse(text: &str) -> Result<HooksRecipe, String> {
    let recipe = Recipe::parse(text).map_err(|e| format!("the release's {e}"))?;
    let hooks = recipe.hooks.unwrap_or_default();
    hooks.timeout().map_err(|e| format!("the release's {e}"))?;
    Ok(hooks)
}

/// The hooks of an installed release (its `ferry.toml`, if any).
pub fn of_release(release_dir: &Path) -> Result<HooksRecipe, String> {
    match std::fs::read_to_string(release_dir.join("ferry.toml")) {
        Ok(text) => parse(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HooksRecipe::default()),
        Err(e) => Err(format!("reading the release's ferry.toml: {e}")),
    }
}

/// The hooks of a release not yet assembled, read from the content store.
pub fn of_manifest(manifest: &Manifest, objects: &ObjectStore) -> Result<HooksRecipe, String> {
    let Some((_, digest, _, executable)) = manifest.files().find(|f| f.0 == "ferry.toml") else {
        return Ok(HooksRecipe::default());
    };
    let text = std::fs::read_to_string(objects.path_for(&digest, executable))
        .map_err(|e| format!("reading the release's ferry.toml: {e}"))?;
    parse(&text)
}

/// Runs one hook if the release defines it. Its output goes line by line to
/// the agent's log and to the install's deployment log.
pub async fn run(
    name: &str,
    command: Option<&str>,
    hooks: &HooksRecipe,
    dir: &Path,
    env: &[(String, String)],
    log: &DeployLog,
) -> Result<(), String> {
    let Some(command) = command.filter(|c| !c.trim().is_empty()) else { return Ok(()) };
    let timeout = hooks.timeout().map_err(|e| e.to_string())?;
    let hook = name.to_string();
    let deploy_log = log.clone();
    let sink: ferry_process::LineSink = Arc::new(move |stream, line| {
        tracing::info!(hook = %hook, stream, "{line}");
        deploy_log.line(stream, line);
    });
    tracing::info!(hook = name, "running `{command}`");
    log.step(format!("running hook {name}: {command}"));
    match ferry_process::run(command, dir, env, timeout, &sink, ferry_process::never).await? {
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
