//! What runs where (R12): environment x host -> version.

use std::collections::BTreeMap;

use ferry_domain::Selector;
use ferry_proto::api::{BadMarkInfo, EnvironmentStatus, HostProjectStatus, ProjectStatus};
use ferry_store::{HostStateRow, Project};

use super::environment::env_info;
use crate::error::AppResult;
use crate::{AppState, guards};

/// Environment x host -> version, with counts per version (R12), the bad
/// marks that still run somewhere, and freezes.
pub(crate) async fn project(state: &AppState, project: &str) -> AppResult<ProjectStatus> {
    let project = state.db.project(project).await?;
    let hosts = state.db.hosts().await?;
    let rows = state.db.project_host_states(&project).await?;
    // A release marked bad that still runs (or is still desired) somewhere
    // is pointed out where it does: the mark itself changes no host.
    let bad: BTreeMap<String, BadMarkInfo> = state
        .db
        .releases(&project)
        .await?
        .iter()
        .filter_map(|r| r.bad.as_ref().map(|m| (r.version.clone(), guards::bad_mark_info(m))))
        .collect();
    let freezes = state.db.freezes(Some(&project), crate::now_ms()).await?;
    let mut environments = Vec::new();
    for env in state.db.environments(&project).await? {
        let selector = Selector::parse(&env.selector).unwrap_or_default();
        let mut entries = Vec::new();
        let mut version_counts = BTreeMap::new();
        for host in &hosts {
            let row = rows.iter().find(|r| r.host_id == host.id);
            let assigned_here = row.and_then(|r| r.desired_env_id) == Some(env.id);
            let assigned_elsewhere = row.and_then(|r| r.desired_env_id).is_some_and(|id| id != env.id);
            if !(assigned_here || (selector.matches(&host.tags) && !assigned_elsewhere)) {
                continue;
            }
            let current = row.and_then(|r| r.current_version.clone());
            *version_counts.entry(current.clone().unwrap_or_else(|| "none".into())).or_insert(0) += 1;
            entries.push(HostProjectStatus {
                host: host.name.clone(),
                online: host.online,
                desired_version: row.filter(|_| assigned_here).and_then(|r| r.desired_version.clone()),
                current_version: current,
                current_release: row.and_then(|r| r.current_release.clone()),
                activity: row.and_then(|r| r.activity.clone()).unwrap_or_else(|| "unknown".into()),
                error: row.and_then(|r| r.error.clone()),
                service: row.and_then(|r| r.service.as_ref()).map(|s| ferry_proto::api::ServiceStatusInfo {
                    failing: s.failing,
                    reason: s.reason.clone(),
                    stderr: s.stderr.clone(),
                    since: (s.since > 0).then(|| ferry_domain::rfc3339_from_millis(s.since)),
                }),
            });
        }
        let info = env_info(state, env).await?;
        let marked_bad = bad
            .iter()
            .filter(|(v, _)| version_counts.contains_key(*v) || info.desired_version.as_ref() == Some(*v))
            .map(|(v, m)| (v.clone(), m.clone()))
            .collect();
        let freeze = freezes.iter().find(|f| f.env == info.name).map(guards::freeze_lock);
        environments.push(EnvironmentStatus {
            env: info.name,
            selector: info.selector,
            desired_version: info.desired_version,
            version_counts,
            hosts: entries,
            marked_bad,
            freeze,
        });
    }
    Ok(ProjectStatus { project: project.name, environments })
}

/// What each host of the fleet was told to run of `project`, and runs.
pub(crate) async fn host_states(state: &AppState, project: &Project) -> AppResult<Vec<HostStateRow>> {
    Ok(state.db.project_host_states(project).await?)
}

pub(crate) use crate::promotion::GridEnv;

/// Each environment of `project` in order, with the versions its hosts run
/// (the project page's grid).
pub(crate) async fn grid(state: &AppState, project: &Project) -> AppResult<Vec<GridEnv>> {
    crate::promotion::grid(state, project).await
}
