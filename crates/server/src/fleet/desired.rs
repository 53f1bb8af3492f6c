//! Desired state: what each host should run, with its variables, and hosts
//! joining or moving to the environment that now selects them (R2, R3, R17).

use std::collections::BTreeMap;
use std::time::Duration;

use ferry_domain::placement::{self, Placement};
use ferry_domain::vars::{self, SecretMask, Var, VarScope};
use ferry_domain::{Selector, Tags, release_name};
use ferry_proto::agent::{DesiredRelease, DesiredState};
use ferry_store::{Environment, Host, Release, VarRow};

use crate::error::{AppError, AppResult};
use crate::{AppState, now_ms};

/// How long a target host may be offline before it counts as failed, when the
/// request does not say.
pub const DEFAULT_OFFLINE_TIMEOUT: Duration = Duration::from_secs(60);

/// The R16 directory name of `release` in `env`.
pub fn release_name_for(project: &str, env: &str, release: &Release) -> String {
    release_name(project, env, &release.version, &release.branch, release.created_at / 1000, &release.committer)
}

/// Everything that should run on a host, as sent to its agent, with the
/// mask of the secret values in it (what comes back from the host is masked
/// with it).
pub async fn desired_state(state: &AppState, host: &Host) -> AppResult<(DesiredState, SecretMask)> {
    let rows = state.db.desired_for_host(host.id).await?;
    // Only variables that can reach this host ever leave the store here:
    // another host's secrets are not even opened.
    let vars = state.db.vars_for_host(host.id).await?;
    let mut releases = Vec::with_capacity(rows.len());
    let mut secrets = Vec::new();
    for row in rows {
        let vars = host_vars(state, &vars, &row.project, &row.env, &host.name, &mut secrets)?;
        releases.push(DesiredRelease {
            release_name: release_name_for(&row.project, &row.env, &row.release),
            project: row.project,
            env: row.env,
            release_id: row.release.id,
            version: row.release.version,
            keep_releases: row.keep_releases,
            desired_since: row.desired_since,
            vars,
        });
    }
    let load_balancers = crate::lb::desired_for_host(state, host).await?;
    Ok((DesiredState { releases, load_balancers }, SecretMask::new(secrets)))
}

/// The variables of `project` that `host` sees in `env` (R17), secrets opened.
pub(super) fn host_vars(
    state: &AppState,
    rows: &[VarRow],
    project: &str,
    env: &str,
    host: &str,
    secrets: &mut Vec<String>,
) -> AppResult<BTreeMap<String, String>> {
    let candidates: Vec<Var<&VarRow>> = rows
        .iter()
        .filter(|r| r.project == project)
        .map(|r| Var { scope: VarScope { env: r.env.clone(), host: r.host.clone() }, key: r.key.clone(), value: r })
        .collect();
    let target = VarScope { env: Some(env.to_string()), host: Some(host.to_string()) };
    let mut out = BTreeMap::new();
    for (key, var) in vars::resolve(&candidates, &target) {
        let row = var.value;
        let value = if row.secret {
            let opened = state.secrets.open_var(row).map_err(|e| {
                AppError::Internal(format!("secret {key} of project '{project}' ({}) cannot be opened: {e}", var.scope))
            })?;
            secrets.push(opened.expose().to_string());
            opened.expose().to_string()
        } else {
            row.value.clone()
        };
        out.insert(key.to_string(), value);
    }
    Ok(out)
}

pub(super) fn selector_of(env: &Environment) -> AppResult<Selector> {
    Selector::parse(&env.selector).map_err(|e| AppError::Internal(format!("stored selector of '{}': {e}", env.name)))
}

/// Gives a host the desired release of every environment its tags select,
/// where it has none for that project yet (R3), or where what it has is of
/// another environment of the project that no longer selects it (the host
/// was re-tagged, or that environment's selector changed): the host moved.
pub async fn adopt(state: &AppState, host_id: i64, tags: &Tags) -> AppResult<()> {
    let envs = state.db.all_environments().await?;
    let desired = state.db.desired_for_host(host_id).await?;
    for env in &envs {
        if !selector_of(env)?.matches(tags) {
            continue;
        }
        let current = match desired.iter().find(|d| d.project == env.project) {
            None => None,
            Some(d) => {
                let old = envs.iter().find(|e| e.project == env.project && e.name == d.env);
                let still_selected = match old {
                    Some(old) => selector_of(old)?.matches(tags),
                    None => false,
                };
                Some(placement::Current { env: &d.env, still_selected })
            }
        };
        let moved = match placement::place(&env.name, current) {
            Placement::Stay => continue,
            Placement::Adopt => false,
            Placement::Move => true,
        };
        let changed = match moved {
            true => state.db.move_host_to_env(host_id, env, now_ms()).await?,
            false => state.db.adopt_host(host_id, env, now_ms()).await?,
        };
        if changed {
            tracing::info!(host_id, project = %env.project, env = %env.name, moved,
                "host adopted the environment's release");
        }
    }
    Ok(())
}

/// Re-places every host after an environment's selector changed: hosts it
/// now selects move to it (see [`adopt`]); their agents hear at once.
pub async fn replace_all(state: &AppState) -> AppResult<()> {
    let hosts = state.db.hosts().await?;
    for h in &hosts {
        adopt(state, h.id, &h.tags).await?;
    }
    state.hub.wake(hosts.iter().map(|h| h.id));
    Ok(())
}

/// The hosts an environment's selector takes in.
pub async fn env_hosts(state: &AppState, env: &Environment) -> AppResult<Vec<Host>> {
    let selector = selector_of(env)?;
    Ok(state.db.hosts().await?.into_iter().filter(|h| selector.matches(&h.tags)).collect())
}
