//! What a rollback would do on each host (R11): the plan the CLI, the confirm
//! page and the real rollback share.

use std::collections::BTreeMap;

use ferry_domain::{HostPast, HostRollback, host_rollback_target};
use ferry_store::{Environment, Host};

use crate::AppState;
use crate::error::AppResult;
use crate::guards::{self};

/// Where a rollback of `env` takes each of `hosts` (in their order), as
/// `ferry rollback` chooses it, changing nothing (R9, R11): each host goes
/// back to the release that ran successfully on it before (or to `to`),
/// passing over releases marked bad, whatever the environment's desired
/// version says. With `emergency`, the environment's running deployment (if
/// any) is what is undone: its hosts go to the release they last ran
/// successfully, never to one only in flight. The web UI names each
/// rollback button's target with this.
pub async fn rollback_plan(
    state: &AppState,
    project: &ferry_store::Project,
    env: &Environment,
    hosts: &[&Host],
    to: Option<i64>,
    emergency: bool,
) -> AppResult<Vec<HostRollback<i64>>> {
    let bad = guards::bad_release_ids(state, project).await?;
    let past = state.db.hosts_past(project).await?;
    // What an emergency undoes on each host: the running deployment's release.
    let mut undoing: BTreeMap<String, i64> = BTreeMap::new();
    if emergency
        && let Some(running) = state.db.lock_holders(Some(project)).await?.into_iter().find(|d| d.env == env.name)
    {
        for row in state.db.deployment_hosts(running.id).await? {
            undoing.insert(row.host, row.release_id);
        }
    }
    Ok(hosts
        .iter()
        .map(|host| {
            let row = past.iter().find(|p| p.host_id == host.id);
            let past = HostPast {
                desired: row.and_then(|r| r.desired_release_id),
                ran: row.map(|r| r.ran.clone()).unwrap_or_default(),
            };
            host_rollback_target(&past, undoing.get(&host.name), to.as_ref(), |id| bad.contains(id))
        })
        .collect())
}

/// The release most hosts of a rollback plan go to (the first such, on a
/// tie); `None` when none moves.
pub fn most_common_target(plan: &[HostRollback<i64>]) -> Option<i64> {
    let mut counts: Vec<(i64, usize)> = Vec::new();
    for r in plan.iter().filter_map(HostRollback::release) {
        match counts.iter_mut().find(|(id, _)| id == r) {
            Some((_, n)) => *n += 1,
            None => counts.push((*r, 1)),
        }
    }
    // `max_by_key` keeps the last maximum: look from the end for the first.
    counts.iter().rev().max_by_key(|(_, n)| *n).map(|(id, _)| *id)
}
