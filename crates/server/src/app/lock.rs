//! Environment locks (R19): freezes taken and lifted by hand, and the list
//! of every held lock (freezes in force and running deployments).

use ferry_domain::Freeze;
use ferry_domain::guards::{parse_freeze_duration, validate_reason};
use ferry_proto::api::{CreateFreeze, LockInfo};
use ferry_store::{DeploymentRow, StoreError, User};

use crate::error::{AppError, AppResult};
use crate::{AppState, guards, now_ms};

/// No deployment starts in the environment until the freeze ends by itself
/// or is lifted. A freeze already in force is not replaced: whoever took it
/// is asked first.
pub(crate) async fn freeze(
    state: &AppState,
    user: &User,
    project: &str,
    env: &str,
    req: CreateFreeze,
) -> AppResult<LockInfo> {
    let project = state.db.project(project).await?;
    let env = state.db.environment(&project, env).await?;
    let reason = validate_reason(&req.reason)?;
    let duration = parse_freeze_duration(&req.duration)?;
    let now = now_ms();
    let freeze = Freeze::new(&user.name, &reason, now, duration);
    let row = match state.db.freeze_environment(&env, &freeze, now).await {
        Ok(row) => row,
        Err(StoreError::Frozen { project, env, freeze: held }) => {
            return Err(AppError::Conflict(held.already_held(&project, &env)));
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(project = %row.project, env = %row.env, owner = %row.freeze.owner, reason = %row.freeze.reason,
        until = row.freeze.until, "environment frozen");
    Ok(guards::freeze_lock(&row))
}

/// Lifts the freeze in force. None in force is an error, so that a typo in
/// a name does not pass for success.
pub(crate) async fn unfreeze(state: &AppState, user: &User, project: &str, env: &str) -> AppResult<LockInfo> {
    let project = state.db.project(project).await?;
    let env = state.db.environment(&project, env).await?;
    let Some(row) = state.db.unfreeze_environment(&env, now_ms()).await? else {
        return Err(AppError::NotFound(format!("environment {}/{} is not frozen", project.name, env.name)));
    };
    tracing::info!(project = %row.project, env = %row.env, by = %user.name, owner = %row.freeze.owner,
        "freeze lifted");
    Ok(guards::freeze_lock(&row))
}

/// Every held lock, of one project or all: freezes in force and running
/// deployments, by project and environment.
pub(crate) async fn list(state: &AppState, project: Option<&str>) -> AppResult<Vec<LockInfo>> {
    let project = match project {
        Some(name) => Some(state.db.project(name).await?),
        None => None,
    };
    let mut locks: Vec<LockInfo> =
        state.db.freezes(project.as_ref(), now_ms()).await?.iter().map(guards::freeze_lock).collect();
    locks.extend(state.db.lock_holders(project.as_ref()).await?.iter().map(guards::deployment_lock));
    locks.sort_by(|a, b| (&a.project, &a.env, a.deployment).cmp(&(&b.project, &b.env, b.deployment)));
    Ok(locks)
}

/// The deployments running now, of every project: each holds its
/// environment's lock.
pub(crate) async fn running(state: &AppState) -> AppResult<Vec<DeploymentRow>> {
    Ok(state.db.lock_holders(None).await?)
}
