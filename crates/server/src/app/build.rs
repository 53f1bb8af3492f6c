//! Builds from git (R5-R8): starting one by hand, from a push, or as a
//! retry, and cancelling one. The API, the web pages and the forges' webhooks
//! all come through here.

use ferry_store::{Build, NewBuild, Project, User};

use crate::AppState;
use crate::error::{AppError, AppResult};

/// Starts a build of `git_ref` (the default branch `main` when none is
/// given) of a project, asked for by `by`.
pub(crate) async fn start(state: &AppState, by: &User, project: &str, git_ref: Option<&str>) -> AppResult<Build> {
    let project = state.db.project(project).await?;
    let git_ref = git_ref.map(str::trim).filter(|r| !r.is_empty()).unwrap_or("main");
    queue(state, &project, git_ref, None, "manual", &by.name, None).await
}

/// Cancels a queued build at once, or asks a running one to stop.
pub(crate) async fn cancel(state: &AppState, id: i64) -> AppResult<Build> {
    let build = state.db.build(id).await?;
    if build.status.is_terminal() {
        return Err(AppError::Conflict(format!("build {id} already {}", build.status)));
    }
    Ok(state.db.cancel_build(id, crate::now_ms()).await?)
}

/// Builds again what an ended build built: the same ref, and the same commit
/// when a push named one.
pub(crate) async fn retry(state: &AppState, by: &User, id: i64) -> AppResult<Build> {
    let old = state.db.build(id).await?;
    if !old.status.is_terminal() {
        return Err(AppError::Conflict(format!("build {id} is still {}", old.status)));
    }
    let project = state.db.project(&old.project).await?;
    queue(state, &project, &old.git_ref, old.pushed_commit.as_deref(), "retry", &by.name, Some(old.id)).await
}

/// Queues a build of `git_ref` and wakes a worker. Every way a build starts
/// (by hand, a webhook, a retry, the web interface) comes through here, so
/// the ref's check cannot be skipped: it reaches `git` as an argument, and
/// `--upload-pack=...` would be an option.
pub(crate) async fn queue(
    state: &AppState,
    project: &Project,
    git_ref: &str,
    pushed_commit: Option<&str>,
    trigger: &str,
    by: &str,
    retry_of: Option<i64>,
) -> AppResult<Build> {
    if git_ref.is_empty()
        || git_ref.split('/').any(|part| part.is_empty() || part.starts_with('-'))
        || git_ref.contains("..")
        || git_ref.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(AppError::BadRequest(format!("'{git_ref}' is not a valid branch, tag or commit")));
    }
    if project.source.is_none() {
        return Err(AppError::BadRequest(format!(
            "project '{}' has no repository to build from; it takes uploaded releases only",
            project.name
        )));
    }
    let new = NewBuild {
        project_id: project.id,
        git_ref: git_ref.to_string(),
        pushed_commit: pushed_commit.map(str::to_string),
        trigger: trigger.to_string(),
        requested_by: by.to_string(),
        retry_of,
    };
    let build = state.db.create_build(&new, crate::now_ms()).await?;
    state.builds.queued();
    Ok(build)
}
