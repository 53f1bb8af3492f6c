//! Projects and their environments (R3, R12, R23): creating them with every
//! check, and what the API and the pages both show of them.

use ferry_domain::{Secret, Selector, rfc3339_from_millis, validate_name};
use ferry_proto::api::{CreateEnvironment, CreateProject, EnvironmentInfo, ProjectInfo};
use ferry_store::{Environment, NewEnvironment, NewProject, Project, ProjectSource, StoreError, User};

use crate::AppState;
use crate::error::{AppError, AppResult};
use crate::secrets::webhook_context;

pub(crate) const DEFAULT_KEEP_RELEASES: u32 = 5;

/// Tells the project's rules (`project.changed`) what `who` changed.
pub(crate) async fn changed(state: &AppState, project: &str, who: &str, env: Option<&str>, change: String) {
    let facts = ferry_domain::notify::EventFacts {
        env: env.map(str::to_string),
        change: Some(change),
        created_by: Some(who.to_string()),
        ..Default::default()
    };
    crate::notify::emit(state, project, ferry_domain::notify::PROJECT_CHANGED, Some(who), facts).await;
}

pub(crate) fn project_info(p: Project) -> ProjectInfo {
    let source = p.source.as_ref();
    ProjectInfo {
        name: p.name.clone(),
        keep_releases: p.keep_releases,
        repo: source.map(|s| s.repo_url.clone()),
        webhook_secret_set: source.is_some_and(|s| s.webhook_secret.is_some()),
        branches: source.map(|s| s.branches.clone()).unwrap_or_default(),
        push_tags: source.is_some_and(|s| s.push_tags),
        created_at: rfc3339_from_millis(p.created_at),
        host_scope: p.host_scope.clone(),
        deleted_at: p.deleted_at.map(rfc3339_from_millis),
    }
}

/// The checks of a new keep-releases count.
pub(crate) fn check_keep(keep: u32) -> AppResult<()> {
    if (1..=100).contains(&keep) {
        return Ok(());
    }
    Err(AppError::BadRequest(format!("keep_releases must be between 1 and 100, not {keep}")))
}

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

/// Creates a project: its name, how many releases hosts keep, and, for a
/// project built from git, its repository, branches and sealed webhook
/// secret.
pub(crate) async fn create(state: &AppState, req: CreateProject) -> AppResult<ProjectInfo> {
    validate_name("project name", &req.name)?;
    let keep = req.keep_releases.unwrap_or(DEFAULT_KEEP_RELEASES);
    check_keep(keep)?;
    let source = match req.repo.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
        None => {
            if req.webhook_secret.is_some() || !req.branches.is_empty() || req.push_tags {
                return Err(AppError::BadRequest("--webhook-secret, --branches and --push-tags need --repo".into()));
            }
            None
        }
        Some(url) => {
            if url.starts_with('-') {
                return Err(AppError::BadRequest(format!("'{url}' is not a repository URL")));
            }
            let branches: Vec<String> =
                req.branches.iter().map(|b| b.trim().to_string()).filter(|b| !b.is_empty()).collect();
            Some(ProjectSource {
                repo_url: url.to_string(),
                // Sealed before it reaches the database (see `secrets`).
                webhook_secret: match req.webhook_secret.filter(|s| !s.is_empty()) {
                    Some(s) => Some(Secret::new(
                        state
                            .secrets
                            .seal(&s, &webhook_context(&req.name))
                            .map_err(|e| AppError::Internal(format!("sealing the webhook secret: {e}")))?,
                    )),
                    None => None,
                },
                branches,
                push_tags: req.push_tags,
            })
        }
    };
    let host_scope = match req.host_scope.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => {
            Some(Selector::parse(text).map_err(|e| AppError::BadRequest(format!("--hosts: {e}")))?.to_string())
        }
    };
    let new = NewProject { name: req.name.clone(), keep_releases: keep, source, host_scope };
    let p = match state.db.create_project(&new, crate::now_ms()).await {
        Err(StoreError::Conflict(_))
            if state.db.project_including_deleted(&req.name).await.is_ok_and(|p| p.deleted_at.is_some()) =>
        {
            return Err(AppError::Conflict(format!(
                "project '{}' was deleted; its name stays taken so that its history names one project",
                req.name
            )));
        }
        other => other?,
    };
    Ok(project_info(p))
}

/// Creates an environment of a project: its host selector (which may not
/// overlap another environment's, nor leave the project's host scope), its
/// rollout, protection and place in the order of environments.
pub(crate) async fn create_env(
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
