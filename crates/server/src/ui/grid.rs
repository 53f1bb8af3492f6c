//! The head of the project page: one cell per environment, in the order
//! versions travel (R23), with what its hosts run, its last deployment (when
//! and by whom), its hosts' health and drift, and the next thing to do
//! there: watch the running deployment, retry a failed one, approve a
//! request, or promote the version of the environment before.

use std::collections::HashSet;

use ferry_domain::DeploymentStatus;
use ferry_store::{DeploymentRow, Project};
use ferry_web::views::{GridCell, NextStep, Status};

use super::PageError;
use super::pages::when;
use crate::app::status::GridEnv;
use crate::{AppState, app};

/// The grid's cells for `envs` (from `app::status::grid`), given the
/// project's deployments newest first.
pub async fn cells(
    state: &AppState,
    project: &Project,
    envs: Vec<GridEnv>,
    deployments: &[DeploymentRow],
) -> Result<Vec<GridCell>, PageError> {
    let hosts = app::host::rows(state).await?;
    let states = app::status::host_states(state, project).await?;
    let environments = app::environment::rows(state, project).await?;
    let awaiting = app::request::awaiting_approval(state, project).await?;
    let mut out = Vec::with_capacity(envs.len());
    for g in envs {
        let Some(env) = environments.iter().find(|e| e.name == g.name) else { continue };
        let selector = ferry_domain::Selector::parse(&env.selector).ok();
        let ids: HashSet<i64> =
            hosts.iter().filter(|h| selector.as_ref().is_some_and(|s| s.matches(&h.tags))).map(|h| h.id).collect();
        let online = hosts.iter().filter(|h| ids.contains(&h.id) && h.online).count();
        let mine = states.iter().filter(|s| ids.contains(&s.host_id) && s.desired_env_id == Some(env.id));
        let (mut drift, mut errors) = (0, 0);
        for s in mine {
            if s.desired_version.is_some() && s.desired_version != s.current_version {
                drift += 1;
            }
            if s.error.is_some() {
                errors += 1;
            }
        }
        let last = deployments.iter().find(|d| d.env == g.name);
        let request = awaiting.iter().find(|r| r.env == g.name);
        let next = match (last, request) {
            (Some(d), _) if !d.status.is_terminal() => NextStep::Watch(d.id),
            (_, Some(r)) => NextStep::Approve(r.id),
            (Some(d), _) if matches!(d.status, DeploymentStatus::Failed | DeploymentStatus::RolledBack) => {
                NextStep::Retry(d.id)
            }
            _ if g.behind => NextStep::Promote,
            _ => NextStep::Nothing,
        };
        out.push(GridCell {
            after: g.after.unwrap_or_default(),
            versions: g.running.to_string(),
            mixed: g.running.is_mixed(),
            behind: g.behind,
            last: last
                .map(|d| format!("{} · {} · {}", d.version, d.created_by, when(d.created_at)))
                .unwrap_or_default(),
            last_id: last.map(|d| d.id),
            last_status: last.map(|d| Status::new(d.status.to_string())),
            hosts: ids.len(),
            online,
            drift,
            errors,
            next,
            env: g.name,
        });
    }
    Ok(out)
}
