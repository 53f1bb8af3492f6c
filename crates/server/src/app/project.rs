//! Projects and their environments (R3, R12, R23): creating them with every
//! check, and what the API and the pages both show of them.

use ferry_domain::{Action, Role, Secret, Selector, rfc3339_from_millis, validate_name};
use ferry_proto::api::{CreateProject, ProjectInfo, SetHostScope, UpdateProject};
use ferry_store::{NewProject, Project, ProjectSource, StoreError, User};

use super::environment::check_within_scope;
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

/// Changes how many releases hosts keep and how the project builds
/// (branches, tags, webhook secret). A new repository is the
/// administrator's to set, as at creation: a repository URL can reach the
/// server's own files.
pub(crate) async fn update(
    state: &AppState,
    caller: &User,
    project: &str,
    req: UpdateProject,
) -> AppResult<ProjectInfo> {
    let project = state.db.project(project).await?;
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
        changed(state, &project.name, &caller.name, None, change).await;
    }
    let project = state.db.project(&project.name).await?;
    // Hosts hear the new keep count with their desired state.
    state.hub.wake(state.db.hosts().await?.iter().map(|h| h.id));
    Ok(project_info(project))
}

/// Deletes a project (administrators) and its environments, keeping their
/// history; hosts stop being given its releases. The name stays taken.
pub(crate) async fn delete(state: &AppState, caller: &User, project: &str) -> AppResult<ProjectInfo> {
    let project = state.db.project(project).await?;
    state.db.delete_project(&project, crate::now_ms()).await?;
    tracing::info!(project = %project.name, by = %caller.name, "project deleted");
    state.hub.wake(state.db.hosts().await?.iter().map(|h| h.id));
    Ok(project_info(state.db.project_including_deleted(&project.name).await?))
}

/// The projects `caller` may read: every one for the administrator, their
/// memberships for everyone else.
pub(crate) async fn list(state: &AppState, caller: &User) -> AppResult<Vec<ProjectInfo>> {
    Ok(visible(state, caller).await?.into_iter().map(|(p, _)| project_info(p)).collect())
}

/// The projects `user` may read, each with the user's role in it (`None`
/// for the administrator without a membership).
pub(crate) async fn visible(state: &AppState, user: &User) -> AppResult<Vec<(Project, Option<Role>)>> {
    let mut out = Vec::new();
    for p in state.db.projects().await? {
        let role = state.db.membership(p.id, user.id).await?;
        if ferry_domain::access::allowed(&user.subject(), role, Action::ReadProject, false).is_ok() {
            out.push((p, role));
        }
    }
    Ok(out)
}

/// A project by name; a deleted one is not found.
pub(crate) async fn get(state: &AppState, name: &str) -> AppResult<Project> {
    Ok(state.db.project(name).await?)
}

/// `user`'s role in `project`, if they are a member.
pub(crate) async fn role_of(state: &AppState, project: &Project, user: &User) -> AppResult<Option<Role>> {
    Ok(state.db.membership(project.id, user.id).await?)
}

/// One project, deleted ones included (their history stays readable).
pub(crate) async fn show(state: &AppState, project: &str) -> AppResult<ProjectInfo> {
    Ok(project_info(state.db.project_including_deleted(project).await?))
}

/// Which hosts the project's environments may select (administrators).
/// Every existing environment must already select within the new scope.
pub(crate) async fn set_host_scope(
    state: &AppState,
    caller: &User,
    project: &str,
    req: SetHostScope,
) -> AppResult<ProjectInfo> {
    let mut project = state.db.project(project).await?;
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
    changed(state, &project.name, &caller.name, None, change).await;
    Ok(project_info(project))
}
