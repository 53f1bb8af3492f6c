//! Freezes of environments and bad marks on releases: what stops a
//! deployment before it starts, besides a running one (R19).
//!
//! Both live in the database, so they hold on the server and across
//! replicas, never on hosts. `fleet::create_deployment` asks here first, to
//! refuse with who and why before anything else is resolved; the store
//! checks both again inside the transaction that records the deployment, so a
//! freeze or a mark made in between is not missed either. The rules
//! themselves (when a freeze is in force, what a rollback skips) are in
//! `ferry_domain::guards` and `ferry_domain::rollback`.

use ferry_domain::{BadMark, DeploymentKind, rfc3339_from_millis};
use ferry_proto::api::{BadMarkInfo, CreateDeployment, LockInfo, LockKind};
use ferry_store::{DeploymentRow, Environment, FreezeRow, Project, Release};

use crate::error::{AppError, AppResult};
use crate::{AppState, now_ms};

/// What a deployment may go ahead despite. Both are recorded on the
/// deployment when they did override something.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overrides {
    /// Deploy a release marked bad (`--force`).
    pub force: bool,
    /// Go through a freeze of the environment. Only an emergency rollback
    /// should set this: a freeze exists to stop ordinary deployments.
    pub ignore_freeze: bool,
}

impl Overrides {
    /// What a deployment request may override: `force` passes a bad mark;
    /// only an emergency rollback passes a freeze (when minutes matter, a
    /// freeze must not stand in the way of going back).
    pub fn of(req: &CreateDeployment) -> Overrides {
        Overrides { force: req.force, ignore_freeze: req.emergency && req.kind == DeploymentKind::Rollback }
    }
}

/// Refuses a deployment to `env` while a freeze is in force there, with who
/// froze it, why and until when (409, code `frozen`), unless `ignore_freeze`.
/// The check any path that creates deployments calls first; the store repeats
/// it in the deployment's transaction (see `NewDeployment::ignore_freeze`).
pub async fn check_freeze(state: &AppState, env: &Environment, ignore_freeze: bool) -> AppResult<()> {
    let Some(held) = state.db.environment_freeze(env, now_ms()).await? else { return Ok(()) };
    if ignore_freeze {
        tracing::warn!(project = %held.project, env = %held.env, owner = %held.freeze.owner,
            reason = %held.freeze.reason, "a deployment goes through the environment's freeze");
        return Ok(());
    }
    Err(AppError::Frozen(held.freeze.refusal(&held.project, &held.env)))
}

/// Refuses a release marked bad, with who marked it and why (409, code
/// `marked_bad`), unless `force`.
pub fn check_release(project: &str, release: &Release, force: bool) -> AppResult<()> {
    match &release.bad {
        Some(mark) if !force => Err(AppError::MarkedBad(mark.refusal(project, &release.version))),
        _ => Ok(()),
    }
}

/// The ids of a project's releases that are marked bad, for the rollback
/// target choice to skip.
pub async fn bad_release_ids(state: &AppState, project: &Project) -> AppResult<Vec<i64>> {
    Ok(state.db.releases(project).await?.into_iter().filter(|r| r.bad.is_some()).map(|r| r.id).collect())
}

/// A bad mark as the API shows it.
pub fn bad_mark_info(mark: &BadMark) -> BadMarkInfo {
    BadMarkInfo { by: mark.by.clone(), reason: mark.reason.clone(), at: rfc3339_from_millis(mark.at) }
}

/// A freeze as a held lock.
pub fn freeze_lock(row: &FreezeRow) -> LockInfo {
    LockInfo {
        project: row.project.clone(),
        env: row.env.clone(),
        kind: LockKind::Freeze,
        owner: row.freeze.owner.clone(),
        reason: row.freeze.reason.clone(),
        since: rfc3339_from_millis(row.freeze.since),
        expires_at: Some(rfc3339_from_millis(row.freeze.until)),
        deployment: None,
    }
}

/// A running deployment as the lock it holds until it ends (R19).
pub fn deployment_lock(row: &DeploymentRow) -> LockInfo {
    LockInfo {
        project: row.project.clone(),
        env: row.env.clone(),
        kind: LockKind::Deployment,
        owner: row.created_by.clone(),
        reason: format!("deployment {} ({} of version {}) is running", row.id, row.kind, row.version),
        since: rfc3339_from_millis(row.created_at),
        expires_at: None,
        deployment: Some(row.id),
    }
}
