//! Environments of a project (R3, R23, R24): creating and changing them
//! with every check (selectors that overlap, the project's host scope, the
//! production right, the order of environments), and deleting them.

use ferry_domain::rollout::RolloutOptions;
use ferry_domain::{Action, Selector, rfc3339_from_millis, validate_name};
use ferry_proto::api::{CreateEnvironment, EnvironmentInfo, SetProduction, SetProtection, UpdateEnvironment};
use ferry_store::{Environment, NewEnvironment, Project, StoreError, User};

use super::project::changed;
use crate::AppState;
use crate::error::{AppError, AppResult};

/// An environment as the API and the pages show it.
pub(crate) async fn env_info(state: &AppState, e: Environment) -> AppResult<EnvironmentInfo> {
    let desired_version = match e.desired_release_id {
        Some(id) => Some(state.db.release_by_id(id).await?.version),
        None => None,
    };
    Ok(EnvironmentInfo {
        project: e.project,
        name: e.name,
        selector: e.selector,
        desired_version,
        auto_deploy_branch: e.auto_deploy_branch,
        created_at: rfc3339_from_millis(e.created_at),
        rollout: e.rollout.describe(),
        production: e.production,
        requires_approval: e.requires_approval,
        staging: e.staging,
        after: e.after,
        self_test: e.self_test,
        offline_policy: e.offline_policy,
    })
}

/// An environment selects hosts only inside the project's host scope, as the
/// administrator set it: a project owner cannot point a project at another
/// project's hosts.
pub(crate) fn check_within_scope(project: &Project, env: &str, selector: &Selector) -> AppResult<()> {
    let Some(scope) = &project.host_scope else { return Ok(()) };
    let scope = Selector::parse(scope)
        .map_err(|e| AppError::Internal(format!("stored host scope of '{}': {e}", project.name)))?;
    if selector.within(&scope) {
        return Ok(());
    }
    Err(AppError::Forbidden(format!(
        "environment '{env}' would select hosts with {selector}, outside project '{}''s hosts ({scope}): \
         its selector must include {scope}; an administrator sets which hosts a project may use \
         (ferry project hosts {} ...)",
        project.name, project.name
    )))
}

/// Builds deploy themselves to an environment that follows a branch; one
/// that requires an approval cannot do both.
pub(crate) fn auto_deploy_needs_no_approval(env: &str) -> AppError {
    AppError::Conflict(format!(
        "environment '{env}' deploys builds of its branch on its own (--auto-deploy-branch), so it cannot also \
         require an approval; follow the branch with a staging environment and request releases from there"
    ))
}

/// The id of the environment requests for `env` are tested on: `None` for
/// none (`""`). It must be another environment of the project.
pub(crate) async fn staging_env(
    state: &AppState,
    project: &Project,
    env: &str,
    staging: Option<&str>,
) -> AppResult<Option<i64>> {
    let Some(name) = staging.map(str::trim).filter(|s| !s.is_empty()) else { return Ok(None) };
    if name == env {
        return Err(AppError::BadRequest(format!(
            "environment '{env}' cannot be its own staging environment: name another one of project '{}'",
            project.name
        )));
    }
    match state.db.environment(project, name).await {
        Ok(s) => Ok(Some(s.id)),
        Err(StoreError::NotFound(_)) => Err(AppError::NotFound(format!(
            "--staging: project '{}' has no environment '{name}'; create it first",
            project.name
        ))),
        Err(e) => Err(e.into()),
    }
}

/// The id of the environment `env` comes after (R23): `None` for none
/// (`""`). It must be another environment of the project, and the new order
/// must have no cycle.
pub(crate) async fn after_env(
    state: &AppState,
    project: &Project,
    env: &str,
    after: Option<&str>,
) -> AppResult<Option<i64>> {
    let Some(name) = after.map(str::trim).filter(|s| !s.is_empty()) else { return Ok(None) };
    let envs = state.db.environments(project).await?;
    let Some(upstream) = envs.iter().find(|e| e.name == name) else {
        return Err(AppError::NotFound(format!(
            "--after: project '{}' has no environment '{name}'; an environment comes after another of the same \
             project",
            project.name
        )));
    };
    let order = envs.iter().map(|e| (e.name.clone(), e.after.clone())).collect();
    ferry_domain::promotion::check_order(&order, env, name).map_err(|e| AppError::BadRequest(e.to_string()))?;
    Ok(Some(upstream.id))
}

/// Creates an environment of a project: its host selector (which may not
/// overlap another environment's, nor leave the project's host scope), its
/// rollout, protection and place in the order of environments.
pub(crate) async fn create(
    state: &AppState,
    caller: &User,
    project: &str,
    req: CreateEnvironment,
) -> AppResult<EnvironmentInfo> {
    validate_name("environment name", &req.name)?;
    let selector = Selector::parse(&req.selector).map_err(|e| AppError::BadRequest(format!("--select: {e}")))?;
    let project = state.db.project(project).await?;
    check_within_scope(&project, &req.name, &selector)?;
    if req.production {
        crate::access::check_new_production_env(state, caller, &project, &req.name).await?;
    }
    for other in state.db.environments(&project).await? {
        let other_sel = Selector::parse(&other.selector).unwrap_or_default();
        if selector.overlaps(&other_sel) {
            return Err(AppError::Conflict(format!(
                "selector {selector} overlaps environment '{}' ({}): a host runs a project for one environment \
                 only, so give the selectors a key with different values (e.g. env=staging / env=prod)",
                other.name, other.selector
            )));
        }
    }
    let rollout = req.rollout.apply(&Default::default()).map_err(|e| AppError::BadRequest(e.to_string()))?;
    let staging_env_id = staging_env(state, &project, &req.name, req.staging.as_deref()).await?;
    // A new environment is nobody's upstream yet: no cycle is possible.
    let after_env_id = after_env(state, &project, &req.name, req.after.as_deref()).await?;
    let auto_deploy_branch = req.auto_deploy_branch.map(|b| b.trim().to_string()).filter(|b| !b.is_empty());
    if req.requires_approval && auto_deploy_branch.is_some() {
        return Err(auto_deploy_needs_no_approval(&req.name));
    }
    let new = NewEnvironment {
        name: req.name.clone(),
        selector: selector.to_string(),
        auto_deploy_branch,
        rollout,
        production: req.production,
        requires_approval: req.requires_approval,
        staging_env_id,
        offline_policy: req.offline_policy.unwrap_or_default(),
    };
    let env = match state.db.create_environment(&project, &new, crate::now_ms()).await {
        Err(StoreError::Conflict(_)) if state.db.environment(&project, &req.name).await.is_err() => {
            return Err(AppError::Conflict(format!(
                "environment '{}' of project '{}' was deleted; its name stays taken so that its history names \
                 one environment",
                req.name, project.name
            )));
        }
        other => other?,
    };
    let env = match after_env_id {
        Some(_) => {
            state.db.set_environment_order(&env, after_env_id, false).await?;
            state.db.environment(&project, &env.name).await?
        }
        None => env,
    };
    let what = if env.production { "production environment" } else { "environment" };
    let change = format!("{what} '{}' created (hosts {}) by {}", env.name, env.selector, caller.name);
    changed(state, &project.name, &caller.name, Some(&env.name), change).await;
    env_info(state, env).await
}

/// Deletes an environment; the route's rule asked for the production right
/// if it is production. Its deployments stay readable; its hosts stop being
/// given its release. The name stays taken.
pub(crate) async fn delete(state: &AppState, caller: &User, project: &str, env: &str) -> AppResult<String> {
    let project = state.db.project(project).await?;
    let env = state.db.environment(&project, env).await?;
    state.db.delete_environment(&env, crate::now_ms()).await?;
    let change = format!("environment '{}' deleted by {}", env.name, caller.name);
    changed(state, &project.name, &caller.name, Some(&env.name), change).await;
    state.hub.wake(state.db.hosts().await?.iter().map(|h| h.id));
    Ok(format!("{}/{}", project.name, env.name))
}

/// Changes which hosts the environment selects (inside the project's host
/// scope, overlapping no other environment of the project) and what an
/// offline target means. Hosts it now selects take its desired release. The
/// hosts of a production environment change only with the production right.
pub(crate) async fn update(
    state: &AppState,
    caller: &User,
    project: &str,
    env: &str,
    req: UpdateEnvironment,
) -> AppResult<EnvironmentInfo> {
    let project = state.db.project(project).await?;
    let env = state.db.environment(&project, env).await?;
    let mut changes = Vec::new();
    if let Some(text) = &req.selector {
        let selector = Selector::parse(text).map_err(|e| AppError::BadRequest(format!("--select: {e}")))?;
        check_within_scope(&project, &env.name, &selector)?;
        if env.production {
            let membership = state.db.membership(project.id, caller.id).await?;
            ferry_domain::access::allowed(&caller.subject(), membership, Action::ChangeProduction, true).map_err(
                |_| {
                    AppError::Forbidden(format!(
                        "changing which hosts production environment '{}' of project '{}' selects needs the \
                         production right",
                        env.name, project.name
                    ))
                },
            )?;
        }
        for other in state.db.environments(&project).await?.iter().filter(|o| o.id != env.id) {
            let other_sel = Selector::parse(&other.selector).unwrap_or_default();
            if selector.overlaps(&other_sel) {
                return Err(AppError::Conflict(format!(
                    "selector {selector} overlaps environment '{}' ({}): a host runs a project for one \
                     environment only",
                    other.name, other.selector
                )));
            }
        }
        if selector.to_string() != env.selector {
            state.db.set_environment_selector(&env, &selector.to_string()).await?;
            changes.push(format!("selects {selector}"));
        }
    }
    if let Some(policy) = req.offline_policy.filter(|p| *p != env.offline_policy) {
        state.db.set_environment_offline_policy(&env, policy).await?;
        changes.push(format!("offline policy {policy}"));
    }
    if !changes.is_empty() {
        let change = format!("environment '{}' {} now (set by {})", env.name, changes.join(", "), caller.name);
        changed(state, &project.name, &caller.name, Some(&env.name), change).await;
    }
    if req.selector.is_some() {
        crate::fleet::replace_all(state).await?;
    }
    let env = state.db.environment(&project, &env.name).await?;
    env_info(state, env).await
}

/// Changes the environment's default rollout; options not given keep their
/// value.
pub(crate) async fn set_rollout(
    state: &AppState,
    caller: &User,
    project: &str,
    env: &str,
    options: RolloutOptions,
) -> AppResult<EnvironmentInfo> {
    let project = state.db.project(project).await?;
    let env = state.db.environment(&project, env).await?;
    let policy = options.apply(&env.rollout).map_err(|e| AppError::BadRequest(e.to_string()))?;
    state.db.set_environment_rollout(&env, &policy).await?;
    let env = state.db.environment(&project, &env.name).await?;
    let change =
        format!("environment '{}' rolls out {} now (set by {})", env.name, env.rollout.describe(), caller.name);
    changed(state, &project.name, &caller.name, Some(&env.name), change).await;
    env_info(state, env).await
}

/// Makes the environment production (deployments to it need the production
/// right) or not.
pub(crate) async fn set_production(
    state: &AppState,
    caller: &User,
    project: &str,
    env: &str,
    req: SetProduction,
) -> AppResult<EnvironmentInfo> {
    let project = state.db.project(project).await?;
    let env = state.db.environment(&project, env).await?;
    let before = env.production;
    state.db.set_environment_production(&env, req.production).await?;
    let env = state.db.environment(&project, &env.name).await?;
    if env.production != before {
        let now = if env.production { "is production now" } else { "is no longer production" };
        let change = format!("environment '{}' {now} (set by {})", env.name, caller.name);
        changed(state, &project.name, &caller.name, Some(&env.name), change).await;
    }
    env_info(state, env).await
}

/// Whether deployments need an approved request, where requests are tested
/// first (R24), which environment it comes after and whether a requester
/// may pass her own request (R23). What is not given keeps its value.
pub(crate) async fn set_protection(
    state: &AppState,
    project: &str,
    env: &str,
    req: SetProtection,
) -> AppResult<EnvironmentInfo> {
    let project = state.db.project(project).await?;
    let env = state.db.environment(&project, env).await?;
    let staging_env_id = match &req.staging {
        Some(name) => staging_env(state, &project, &env.name, Some(name)).await?,
        None => match &env.staging {
            Some(name) => Some(state.db.environment(&project, name).await?.id),
            None => None,
        },
    };
    let requires_approval = req.requires_approval.unwrap_or(env.requires_approval);
    if requires_approval && env.auto_deploy_branch.is_some() {
        return Err(auto_deploy_needs_no_approval(&env.name));
    }
    let after_env_id = match &req.after {
        Some(name) => after_env(state, &project, &env.name, Some(name)).await?,
        None => match &env.after {
            Some(name) => Some(state.db.environment(&project, name).await?.id),
            None => None,
        },
    };
    let self_test = req.self_test.unwrap_or(env.self_test);
    state.db.set_environment_protection(&env, requires_approval, staging_env_id).await?;
    state.db.set_environment_order(&env, after_env_id, self_test).await?;
    let env = state.db.environment(&project, &env.name).await?;
    env_info(state, env).await
}

/// A project's environments.
pub(crate) async fn list(state: &AppState, project: &str) -> AppResult<Vec<EnvironmentInfo>> {
    let project = state.db.project(project).await?;
    let mut out = Vec::new();
    for e in state.db.environments(&project).await? {
        out.push(env_info(state, e).await?);
    }
    Ok(out)
}

/// The environments of a project.
pub(crate) async fn rows(state: &AppState, project: &Project) -> AppResult<Vec<Environment>> {
    Ok(state.db.environments(project).await?)
}

/// One environment of a project.
pub(crate) async fn get(state: &AppState, project: &Project, name: &str) -> AppResult<Environment> {
    Ok(state.db.environment(project, name).await?)
}
