//! Variables (R17): configuration kept out of the repository, per project,
//! environment, host, or host within one environment; the most specific
//! wins (crates/domain `vars.rs`).
//!
//! Secret values are write-only: they are sealed before they are stored, and
//! no answer, log line or error message of this module contains one; lists
//! show `***`.

use ferry_domain::rfc3339_from_millis;
use ferry_domain::vars::{self, MASK, Var, VarScope};
use ferry_proto::api::{SetVar, VarInfo, VarQuery};
use ferry_store::{NewVar, Project, User, VarRow, VarSlot};

use crate::AppState;
use crate::error::{AppError, AppResult};
use crate::secrets::var_context;

/// How the API shows a stored variable: never a secret's value.
fn var_info(row: &VarRow) -> VarInfo {
    VarInfo {
        key: row.key.clone(),
        value: if row.secret { MASK.to_string() } else { row.value.clone() },
        secret: row.secret,
        env: row.env.clone(),
        host: row.host.clone(),
        updated_by: row.updated_by.clone(),
        updated_at: rfc3339_from_millis(row.updated_at),
    }
}

fn scope_of(row: &VarRow) -> VarScope {
    VarScope { env: row.env.clone(), host: row.host.clone() }
}

/// An empty `?env=` means no environment, as the flag left out would.
fn given(name: Option<&str>) -> Option<&str> {
    name.map(str::trim).filter(|n| !n.is_empty())
}

/// The store slot and the scope of `env`/`host` in `project`; an unknown
/// environment is refused, naming it. A host is taken by its name, enrolled
/// or not: a host enrolling under that name later starts with its
/// variables (and one removed and enrolled again keeps them).
async fn slot(
    state: &AppState,
    project: &Project,
    env: Option<&str>,
    host: Option<&str>,
) -> AppResult<(VarSlot, VarScope)> {
    let mut slot = VarSlot { project_id: project.id, env_id: None, host: None };
    let mut scope = VarScope::project();
    if let Some(name) = given(env) {
        let e = state.db.environment(project, name).await?;
        slot.env_id = Some(e.id);
        scope.env = Some(e.name);
    }
    if let Some(name) = given(host) {
        ferry_domain::validate_name("--host", name)?;
        slot.host = Some(name.to_string());
        scope.host = Some(name.to_string());
    }
    Ok((slot, scope))
}

fn not_set(key: &str, scope: &VarScope, project: &Project) -> String {
    format!("{key} is not set in project '{}' for {}", project.name, scope.describe())
}

/// Variables are part of the desired state, which is resent on every change;
/// they take effect at the host's next activation.
async fn wake_project_hosts(state: &AppState, project: &Project) -> AppResult<()> {
    let hosts = state.db.project_host_states(project).await?;
    state.hub.wake(hosts.iter().filter(|h| h.desired_env_id.is_some()).map(|h| h.host_id));
    Ok(())
}

/// Sets one variable; a secret is sealed before it is stored.
pub(crate) async fn set(state: &AppState, caller: &User, project: &str, req: SetVar) -> AppResult<VarInfo> {
    vars::validate(&req.key, &req.value)?;
    let project = state.db.project(project).await?;
    let (slot, scope) = slot(state, &project, req.env.as_deref(), req.host.as_deref()).await?;
    let existing = state.db.vars(&project).await?;
    let existing = existing.iter().find(|r| r.key == req.key && scope_of(r) == scope);
    if existing.is_some_and(|r| r.secret) && !req.secret {
        // Replacing a secret with a plain value would show it in every list.
        return Err(AppError::Conflict(format!(
            "{} ({scope}) is a secret: give --secret to replace it, or unset it first to store a plain value",
            req.key
        )));
    }
    let value = if req.secret {
        state
            .secrets
            .seal(&req.value, &var_context(&project.name, &scope, &req.key))
            .map_err(|e| AppError::Internal(format!("sealing {}: {e}", req.key)))?
    } else {
        req.value
    };
    let new = NewVar { slot, key: req.key.clone(), value, secret: req.secret, updated_by: caller.name.clone() };
    let replaced = state.db.set_var(&new, crate::now_ms()).await?;
    tracing::info!(project = %project.name, key = %req.key, scope = %scope, secret = req.secret, replaced,
        by = %caller.name, "variable set");
    wake_project_hosts(state, &project).await?;
    let row = state
        .db
        .vars(&project)
        .await?
        .into_iter()
        .find(|r| r.key == req.key && scope_of(r) == scope)
        .ok_or_else(|| AppError::Internal(format!("variable {} vanished after it was set", req.key)))?;
    Ok(var_info(&row))
}

/// Every variable of the project; or, given `env` and/or `host`, the
/// variables such a host sees, each from the scope that wins.
pub(crate) async fn list(state: &AppState, project: &str, q: VarQuery) -> AppResult<Vec<VarInfo>> {
    let project = state.db.project(project).await?;
    let (_, target) = slot(state, &project, q.env.as_deref(), q.host.as_deref()).await?;
    let rows = state.db.vars(&project).await?;
    if target == VarScope::project() {
        return Ok(rows.iter().map(var_info).collect());
    }
    let candidates: Vec<Var<&VarRow>> =
        rows.iter().map(|r| Var { scope: scope_of(r), key: r.key.clone(), value: r }).collect();
    Ok(vars::resolve(&candidates, &target).into_values().map(|v| var_info(v.value)).collect())
}

/// Removes the variable of exactly this scope; returns what was removed.
pub(crate) async fn unset(
    state: &AppState,
    caller: &User,
    project: &str,
    key: &str,
    q: VarQuery,
) -> AppResult<VarInfo> {
    vars::validate_key(key)?;
    let project = state.db.project(project).await?;
    let (slot, scope) = slot(state, &project, q.env.as_deref(), q.host.as_deref()).await?;
    let rows = state.db.vars(&project).await?;
    let Some(row) = rows.iter().find(|r| r.key == key && scope_of(r) == scope) else {
        return Err(AppError::NotFound(not_set(key, &scope, &project)));
    };
    if !state.db.unset_var(&slot, key).await? {
        return Err(AppError::NotFound(not_set(key, &scope, &project)));
    }
    tracing::info!(project = %project.name, %key, scope = %scope, by = %caller.name, "variable unset");
    wake_project_hosts(state, &project).await?;
    Ok(var_info(row))
}
