//! Projects, environments and the version-per-host view (R12).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use ferry_domain::{Action, Secret, Selector};
use ferry_proto::api::{
    BadMarkInfo, CreateEnvironment, CreateProject, EnvironmentInfo, EnvironmentStatus, HostProjectStatus, ProjectInfo,
    ProjectStatus, SetProduction, SetProtection, UpdateEnvironment, UpdateProject,
};

use crate::app::project;
use crate::app::project::{
    after_env, auto_deploy_needs_no_approval, changed, check_keep, check_within_scope, env_info, project_info,
    staging_env,
};
use crate::auth::Caller;
use crate::error::{AppError, AppResult};
use crate::secrets::webhook_context;
use crate::{AppState, guards};

#[utoipa::path(
    post,
    path = "/api/v1/projects",
    tag = "projects",
    request_body = CreateProject,
    responses((status = 200, body = ProjectInfo)),
)]
pub async fn create(
    State(state): State<AppState>,
    _caller: Caller,
    Json(req): Json<CreateProject>,
) -> AppResult<Json<ProjectInfo>> {
    Ok(Json(project::create(&state, req).await?))
}

/// `POST /api/v1/projects/{project}`: changes how many releases hosts keep
/// and how the project builds (branches, tags, webhook secret). A new
/// repository is the administrator's to set, as at creation: a repository
/// URL can reach the server's own files. The host scope has its own
/// (administrators') route.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}",
    tag = "projects",
    params(("project" = String, Path)),
    request_body = UpdateProject,
    responses((status = 200, body = ProjectInfo)),
)]
pub async fn update(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(project): Path<String>,
    Json(req): Json<UpdateProject>,
) -> AppResult<Json<ProjectInfo>> {
    let project = state.db.project(&project).await?;
    let keep = req.keep_releases.unwrap_or(project.keep_releases);
    check_keep(keep)?;
    let mut source = project.source.clone();
    let mut changes = Vec::new();
    if let Some(repo) = req.repo.as_deref().map(str::trim)
        && source.as_ref().map(|s| s.repo_url.as_str()) != Some(repo)
    {
        ferry_domain::access::allowed(&caller.subject(), None, Action::CreateProject, false).map_err(|_| {
            AppError::Forbidden(
                "changing a project's repository needs the administrator (a repository URL can reach the \
                 server's own files)"
                    .into(),
            )
        })?;
        if repo.starts_with('-') {
            return Err(AppError::BadRequest(format!("'{repo}' is not a repository URL")));
        }
        source = match (repo.is_empty(), source) {
            (true, _) => None,
            (false, Some(s)) => Some(ferry_store::ProjectSource { repo_url: repo.to_string(), ..s }),
            (false, None) => Some(ferry_store::ProjectSource {
                repo_url: repo.to_string(),
                webhook_secret: None,
                branches: Vec::new(),
                push_tags: false,
            }),
        };
        changes.push(if repo.is_empty() { "no repository".to_string() } else { format!("repository {repo}") });
    }
    let builds_asked = req.webhook_secret.is_some() || req.branches.is_some() || req.push_tags.is_some();
    match source.as_mut() {
        None if builds_asked => {
            return Err(AppError::BadRequest("--webhook-secret, --branches and --push-tags need --repo".into()));
        }
        None => {}
        Some(s) => {
            if let Some(secret) = &req.webhook_secret {
                s.webhook_secret = match secret.is_empty() {
                    true => None,
                    false => Some(Secret::new(
                        state
                            .secrets
                            .seal(secret, &webhook_context(&project.name))
                            .map_err(|e| AppError::Internal(format!("sealing the webhook secret: {e}")))?,
                    )),
                };
                changes.push("webhook secret".into());
            }
            if let Some(branches) = &req.branches {
                s.branches = branches.iter().map(|b| b.trim().to_string()).filter(|b| !b.is_empty()).collect();
                changes.push(format!(
                    "branches {}",
                    if s.branches.is_empty() { "all".into() } else { s.branches.join(",") }
                ));
            }
            if let Some(push) = req.push_tags {
                s.push_tags = push;
                changes.push(format!("push tags {push}"));
            }
        }
    }
    if keep != project.keep_releases {
        changes.push(format!("keeps {keep} releases"));
    }
    state.db.update_project(&project, keep, source.as_ref()).await?;
    if !changes.is_empty() {
        let change = format!("project '{}': {} (set by {})", project.name, changes.join(", "), caller.name);
        changed(&state, &project.name, &caller.name, None, change).await;
    }
    let project = state.db.project(&project.name).await?;
    // Hosts hear the new keep count with their desired state.
    state.hub.wake(state.db.hosts().await?.iter().map(|h| h.id));
    Ok(Json(project_info(project)))
}

/// `DELETE /api/v1/projects/{project}` (administrators): the project and its
/// environments are deleted, their history kept (deployments, builds,
/// releases and the audit trail stay readable, `ferry deployments P`
/// included); hosts stop being given its releases and keep what they run.
/// The name stays taken.
#[utoipa::path(
    delete,
    path = "/api/v1/projects/{project}",
    tag = "projects",
    params(("project" = String, Path)),
    responses((status = 200, body = ProjectInfo)),
)]
pub async fn delete(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(project): Path<String>,
) -> AppResult<Json<ProjectInfo>> {
    let project = state.db.project(&project).await?;
    state.db.delete_project(&project, crate::now_ms()).await?;
    tracing::info!(project = %project.name, by = %caller.name, "project deleted");
    state.hub.wake(state.db.hosts().await?.iter().map(|h| h.id));
    Ok(Json(project_info(state.db.project_including_deleted(&project.name).await?)))
}

/// `DELETE /api/v1/projects/{project}/environments/{env}`: owners, and for a
/// production environment the production right (the route's rule). Refused
/// while a deployment runs there; its deployments stay readable; its hosts
/// stop being given its release and keep what they run. The name stays
/// taken.
#[utoipa::path(
    delete,
    path = "/api/v1/projects/{project}/environments/{env}",
    tag = "projects",
    params(("project" = String, Path), ("env" = String, Path)),
    responses((status = 200, body = Object)),
)]
pub async fn delete_env(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((project, env)): Path<(String, String)>,
) -> AppResult<Json<serde_json::Value>> {
    let project = state.db.project(&project).await?;
    let env = state.db.environment(&project, &env).await?;
    state.db.delete_environment(&env, crate::now_ms()).await?;
    let change = format!("environment '{}' deleted by {}", env.name, caller.name);
    changed(&state, &project.name, &caller.name, Some(&env.name), change).await;
    state.hub.wake(state.db.hosts().await?.iter().map(|h| h.id));
    Ok(Json(serde_json::json!({ "deleted": format!("{}/{}", project.name, env.name) })))
}

/// `GET /api/v1/projects`: the projects the caller may read (every one for
/// the administrator, their memberships for everyone else).
#[utoipa::path(
    get,
    path = "/api/v1/projects",
    tag = "projects",
    responses((status = 200, body = Vec<ProjectInfo>)),
)]
pub async fn list(State(state): State<AppState>, Caller(caller): Caller) -> AppResult<Json<Vec<ProjectInfo>>> {
    let mut out = Vec::new();
    for p in state.db.projects().await? {
        let membership = state.db.membership(p.id, caller.id).await?;
        if ferry_domain::access::allowed(&caller.subject(), membership, ferry_domain::Action::ReadProject, false)
            .is_ok()
        {
            out.push(project_info(p));
        }
    }
    Ok(Json(out))
}

#[utoipa::path(
    get,
    path = "/api/v1/projects/{project}",
    tag = "projects",
    params(("project" = String, Path)),
    responses((status = 200, body = ProjectInfo)),
)]
pub async fn show(
    State(state): State<AppState>,
    _caller: Caller,
    Path(project): Path<String>,
) -> AppResult<Json<ProjectInfo>> {
    Ok(Json(project_info(state.db.project_including_deleted(&project).await?)))
}

/// `PUT /api/v1/projects/{project}/host-scope`: which hosts the project's
/// environments may select (administrators). Every existing environment must
/// already select within the new scope.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/host-scope",
    tag = "projects",
    params(("project" = String, Path)),
    request_body = ferry_proto::api::SetHostScope,
    responses((status = 200, body = ProjectInfo)),
)]
pub async fn set_host_scope(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(project): Path<String>,
    Json(req): Json<ferry_proto::api::SetHostScope>,
) -> AppResult<Json<ProjectInfo>> {
    let mut project = state.db.project(&project).await?;
    let scope = match req.scope.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => Some(Selector::parse(text).map_err(|e| AppError::BadRequest(format!("scope: {e}")))?),
    };
    project.host_scope = scope.as_ref().map(Selector::to_string);
    for env in state.db.environments(&project).await? {
        let selector = Selector::parse(&env.selector)
            .map_err(|e| AppError::Internal(format!("stored selector of '{}': {e}", env.name)))?;
        check_within_scope(&project, &env.name, &selector).map_err(|_| {
            AppError::Conflict(format!(
                "environment '{}' selects {}, outside the scope asked for; change or remove it first",
                env.name, env.selector
            ))
        })?;
    }
    state.db.set_project_host_scope(&project, project.host_scope.as_deref()).await?;
    let change = match &project.host_scope {
        Some(s) => format!("hosts limited to {s} by {}", caller.name),
        None => format!("host limit lifted by {}", caller.name),
    };
    changed(&state, &project.name, &caller.name, None, change).await;
    Ok(Json(project_info(project)))
}

#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/environments",
    tag = "projects",
    params(("project" = String, Path)),
    request_body = CreateEnvironment,
    responses((status = 200, body = EnvironmentInfo)),
)]
pub async fn create_env(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(project): Path<String>,
    Json(req): Json<CreateEnvironment>,
) -> AppResult<Json<EnvironmentInfo>> {
    Ok(Json(project::create_env(&state, &caller, &project, req).await?))
}

/// `POST /api/v1/projects/{project}/environments/{env}`: changes which hosts
/// the environment selects (inside the project's host scope, overlapping no
/// other environment of the project) and what an offline target means.
/// Hosts it now selects move to it: they take its desired release (see
/// `fleet::adopt`). The hosts of a production environment are changed only
/// with the production right.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/environments/{env}",
    tag = "projects",
    params(("project" = String, Path), ("env" = String, Path)),
    request_body = UpdateEnvironment,
    responses((status = 200, body = EnvironmentInfo)),
)]
pub async fn update_env(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((project, env)): Path<(String, String)>,
    Json(req): Json<UpdateEnvironment>,
) -> AppResult<Json<EnvironmentInfo>> {
    let project = state.db.project(&project).await?;
    let env = state.db.environment(&project, &env).await?;
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
        changed(&state, &project.name, &caller.name, Some(&env.name), change).await;
    }
    if req.selector.is_some() {
        crate::fleet::replace_all(&state).await?;
    }
    let env = state.db.environment(&project, &env.name).await?;
    Ok(Json(env_info(&state, env).await?))
}

/// `POST /api/v1/projects/{project}/environments/{env}/rollout`: changes the
/// environment's default rollout; options not given keep their value.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/environments/{env}/rollout",
    tag = "projects",
    params(("project" = String, Path), ("env" = String, Path)),
    request_body(content = Object, description = "The rollout options (`ferry_domain::rollout::RolloutOptions`)"),
    responses((status = 200, body = EnvironmentInfo)),
)]
pub async fn set_env_rollout(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((project, env)): Path<(String, String)>,
    Json(options): Json<ferry_domain::rollout::RolloutOptions>,
) -> AppResult<Json<EnvironmentInfo>> {
    let project = state.db.project(&project).await?;
    let env = state.db.environment(&project, &env).await?;
    let policy = options.apply(&env.rollout).map_err(|e| AppError::BadRequest(e.to_string()))?;
    state.db.set_environment_rollout(&env, &policy).await?;
    let env = state.db.environment(&project, &env.name).await?;
    let change =
        format!("environment '{}' rolls out {} now (set by {})", env.name, env.rollout.describe(), caller.name);
    changed(&state, &project.name, &caller.name, Some(&env.name), change).await;
    Ok(Json(env_info(&state, env).await?))
}

/// `POST /api/v1/projects/{project}/environments/{env}/production`: makes
/// the environment production (deployments to it need the production right)
/// or not.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/environments/{env}/production",
    tag = "projects",
    params(("project" = String, Path), ("env" = String, Path)),
    request_body = SetProduction,
    responses((status = 200, body = EnvironmentInfo)),
)]
pub async fn set_env_production(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((project, env)): Path<(String, String)>,
    Json(req): Json<SetProduction>,
) -> AppResult<Json<EnvironmentInfo>> {
    let project = state.db.project(&project).await?;
    let env = state.db.environment(&project, &env).await?;
    let before = env.production;
    state.db.set_environment_production(&env, req.production).await?;
    let env = state.db.environment(&project, &env.name).await?;
    if env.production != before {
        let now = if env.production { "is production now" } else { "is no longer production" };
        let change = format!("environment '{}' {now} (set by {})", env.name, caller.name);
        changed(&state, &project.name, &caller.name, Some(&env.name), change).await;
    }
    Ok(Json(env_info(&state, env).await?))
}

/// `POST /api/v1/projects/{project}/environments/{env}/protection`: whether
/// deployments need an approved request, where requests are tested first
/// (R24), which environment it comes after and whether a requester may pass
/// her own request (R23). What is not given keeps its value.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/environments/{env}/protection",
    tag = "projects",
    params(("project" = String, Path), ("env" = String, Path)),
    request_body = SetProtection,
    responses((status = 200, body = EnvironmentInfo)),
)]
pub async fn set_env_protection(
    State(state): State<AppState>,
    Path((project, env)): Path<(String, String)>,
    Json(req): Json<SetProtection>,
) -> AppResult<Json<EnvironmentInfo>> {
    let project = state.db.project(&project).await?;
    let env = state.db.environment(&project, &env).await?;
    let staging_env_id = match &req.staging {
        Some(name) => staging_env(&state, &project, &env.name, Some(name)).await?,
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
        Some(name) => after_env(&state, &project, &env.name, Some(name)).await?,
        None => match &env.after {
            Some(name) => Some(state.db.environment(&project, name).await?.id),
            None => None,
        },
    };
    let self_test = req.self_test.unwrap_or(env.self_test);
    state.db.set_environment_protection(&env, requires_approval, staging_env_id).await?;
    state.db.set_environment_order(&env, after_env_id, self_test).await?;
    let env = state.db.environment(&project, &env.name).await?;
    Ok(Json(env_info(&state, env).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/projects/{project}/environments",
    tag = "projects",
    params(("project" = String, Path)),
    responses((status = 200, body = Vec<EnvironmentInfo>)),
)]
pub async fn list_envs(
    State(state): State<AppState>,
    _caller: Caller,
    Path(project): Path<String>,
) -> AppResult<Json<Vec<EnvironmentInfo>>> {
    let project = state.db.project(&project).await?;
    let mut out = Vec::new();
    for e in state.db.environments(&project).await? {
        out.push(env_info(&state, e).await?);
    }
    Ok(Json(out))
}

/// Environment x host -> version, with counts per version (R12).
#[utoipa::path(
    get,
    path = "/api/v1/projects/{project}/status",
    tag = "projects",
    params(("project" = String, Path)),
    responses((status = 200, body = ProjectStatus)),
)]
pub async fn status(
    State(state): State<AppState>,
    _caller: Caller,
    Path(project): Path<String>,
) -> AppResult<Json<ProjectStatus>> {
    let project = state.db.project(&project).await?;
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
        let info = env_info(&state, env).await?;
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
    Ok(Json(ProjectStatus { project: project.name, environments }))
}
