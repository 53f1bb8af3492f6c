//! Builds from git (R5-R8): starting one by hand, from a forge's push
//! webhook, or as a retry, cancelling one, and reading builds and their logs. The API, the web pages and the forges' webhooks
//! all come through here.

use axum::http::HeaderMap;
use ferry_domain::pattern::matches_any;
use ferry_domain::rfc3339_from_millis;
use ferry_proto::api::{BuildInfo, HookAnswer};
use ferry_store::{Build, LogLine, NewBuild, Project, User};

use crate::AppState;
use crate::error::{AppError, AppResult};
use crate::secrets::webhook_context;
use crate::webhook::{Event, Forge, HookError, Ref, payload_key, verify_and_parse};

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

/// A build as the API and the pages show it.
pub(crate) fn info(b: Build) -> BuildInfo {
    let duration_secs = match (b.started_at, b.finished_at) {
        (Some(s), Some(f)) => Some((f - s) as f64 / 1000.0),
        _ => None,
    };
    let commit = b.commit.clone();
    BuildInfo {
        id: b.id,
        project: b.project,
        number: b.number,
        git_ref: b.git_ref,
        commit: commit.as_ref().map(|c| c.sha.clone()),
        branch: commit.as_ref().and_then(|c| c.branch.clone()),
        tag: commit.as_ref().and_then(|c| c.tag.clone()),
        author: commit.as_ref().map(|c| c.author.clone()),
        message: commit.as_ref().map(|c| c.message.clone()),
        status: b.status,
        version: b.version,
        error: b.error,
        trigger: b.trigger,
        requested_by: b.requested_by,
        created_at: rfc3339_from_millis(b.created_at),
        started_at: b.started_at.map(rfc3339_from_millis),
        finished_at: b.finished_at.map(rfc3339_from_millis),
        duration_secs,
    }
}

/// A project's builds, newest first; a deleted project's stay readable.
pub(crate) async fn list(state: &AppState, project: &str, limit: u32) -> AppResult<Vec<Build>> {
    let project = state.db.project_including_deleted(project).await?;
    Ok(state.db.builds(&project, limit).await?)
}

/// One build.
pub(crate) async fn show(state: &AppState, id: i64) -> AppResult<Build> {
    Ok(state.db.build(id).await?)
}

/// A build by the project's own number (the `#` of `ferry builds`).
pub(crate) async fn by_number(state: &AppState, project: &str, number: i64) -> AppResult<Build> {
    let project = state.db.project(project).await?;
    Ok(state.db.build_by_number(&project, number).await?)
}

/// The build as it is now and up to `limit` of its log lines after `after`.
/// The build is read first, so that when it has ended no line written
/// before its end is missing. A read that fails gives no build and no lines:
/// a follower asks again.
pub(crate) async fn log_page(state: &AppState, id: i64, after: i64, limit: u32) -> (Option<Build>, Vec<LogLine>) {
    let build = state.db.build(id).await.ok();
    let lines = log(state, id, after, limit).await.unwrap_or_default();
    (build, lines)
}

/// Up to `limit` of a build's log lines after `after`.
pub(crate) async fn log(state: &AppState, id: i64, after: i64, limit: u32) -> AppResult<Vec<LogLine>> {
    Ok(state.db.build_log(id, after, limit).await?)
}

/// A forge's push webhook (R5): verified against the project's secret,
/// counted once per delivery, payload and pushed commit, and matched
/// against the project's branches; queues a build of the pushed commit, or
/// says why it builds nothing.
pub(crate) async fn push(
    state: &AppState,
    forge: &str,
    project: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> AppResult<HookAnswer> {
    let forge = Forge::parse(forge)
        .ok_or_else(|| AppError::NotFound(format!("unknown forge '{forge}'; use github, gitlab, gitea or gerrit")))?;
    // Same answer for an unknown project as for a bad signature: a webhook
    // endpoint must not tell strangers which projects exist.
    let refused = || AppError::Unauthorized("webhook refused: unknown project or wrong signature".into());
    let project = state.db.project(project).await.map_err(|_| refused())?;
    let Some(source) = project.source.clone() else { return Err(refused()) };
    let Some(secret) = source.webhook_secret.as_ref() else {
        tracing::warn!(project = %project.name, "webhook refused: the project has no webhook secret (--webhook-secret)");
        return Err(refused());
    };
    let secret = state.secrets.open(secret.expose(), &webhook_context(&project.name)).map_err(|e| {
        AppError::Internal(format!("the webhook secret of project '{}' cannot be opened: {e}", project.name))
    })?;
    let event = verify_and_parse(forge, secret.expose(), headers, body).map_err(|e| match e {
        HookError::Unauthorized(m) => {
            tracing::warn!(project = %project.name, forge = forge.name(), "webhook refused: {m}");
            refused()
        }
        HookError::BadPayload(m) => AppError::BadRequest(m),
    })?;
    let ignored = |why: String| Ok(HookAnswer { build: None, ignored: Some(why) });
    let (reference, delivery, commit) = match event {
        Event::Other { what } => return ignored(format!("'{what}' events build nothing")),
        Event::Push { reference, delivery, commit } => (reference, delivery, commit),
    };
    if !state.db.record_delivery(project.id, forge.name(), &delivery, crate::now_ms()).await? {
        return ignored(format!("delivery {delivery} was already handled"));
    }
    // A replay (Gitea) resends the same payload under a new delivery id.
    let payload = payload_key(forge, headers, body);
    if !state.db.record_delivery(project.id, forge.name(), &payload, crate::now_ms()).await? {
        return ignored("this payload was already delivered (a replay)".to_string());
    }
    // A signed push replayed under a new delivery id is still the same push:
    // one build per ref and commit. Kept beside the delivery ids, under a
    // prefix no forge's ids use.
    if let (Some(commit), Ref::Branch(r) | Ref::Tag(r)) = (&commit, &reference) {
        let push = format!("push:{r}@{commit}");
        if !state.db.record_delivery(project.id, forge.name(), &push, crate::now_ms()).await? {
            return ignored(format!("{r} at {commit} was already built from a push"));
        }
    }
    let git_ref = match reference {
        Ref::Deleted(r) => return ignored(format!("{r} was deleted")),
        Ref::Branch(b) if !matches_any(&source.branches, &b) => {
            return ignored(format!(
                "branch '{b}' is not among the project's branches ({})",
                source.branches.join(", ")
            ));
        }
        Ref::Branch(b) => b,
        Ref::Tag(t) => format!("refs/tags/{t}"),
    };
    // The pushed commit, not whatever the branch holds when the build runs:
    // a late or queued delivery still builds what was pushed.
    let build =
        queue(state, &project, &git_ref, commit.as_deref(), &format!("webhook:{}", forge.name()), forge.name(), None)
            .await?;
    tracing::info!(project = %project.name, forge = forge.name(), %git_ref, build = build.id, "push webhook queued a build");
    Ok(HookAnswer { build: Some(info(build)), ignored: None })
}
