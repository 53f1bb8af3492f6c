//! Builds: queue, list, show, cancel, retry, and the live log (R6, R30).

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use ferry_domain::rfc3339_from_millis;
use ferry_proto::api::{BuildInfo, CreateBuild, LogLineInfo};
use ferry_store::{Build, NewBuild, Project};
use futures_util::Stream;

use super::ListQuery;
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

pub fn build_info(b: Build) -> BuildInfo {
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

/// Queues a build of `git_ref` and wakes a worker. Every way a build starts
/// (by hand, a webhook, a retry, the web interface) comes through here, so
/// the ref's check cannot be skipped: it reaches `git` as an argument, and
/// `--upload-pack=...` would be an option.
pub async fn queue(
    state: &AppState,
    project: &Project,
    git_ref: &str,
    pushed_commit: Option<&str>,
    trigger: &str,
    by: &str,
    retry_of: Option<i64>,
) -> ApiResult<Build> {
    if git_ref.is_empty()
        || git_ref.split('/').any(|part| part.is_empty() || part.starts_with('-'))
        || git_ref.contains("..")
        || git_ref.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ApiError::BadRequest(format!("'{git_ref}' is not a valid branch, tag or commit")));
    }
    if project.source.is_none() {
        return Err(ApiError::BadRequest(format!(
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

#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/builds",
    tag = "builds",
    params(("project" = String, Path)),
    request_body = CreateBuild,
    responses((status = 200, body = BuildInfo)),
)]
pub async fn create(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(project): Path<String>,
    Json(req): Json<CreateBuild>,
) -> ApiResult<Json<BuildInfo>> {
    let project = state.db.project(&project).await?;
    let git_ref = req.git_ref.as_deref().map(str::trim).filter(|r| !r.is_empty()).unwrap_or("main");
    let build = queue(&state, &project, git_ref, None, "manual", &user.name, None).await?;
    Ok(Json(build_info(build)))
}

#[utoipa::path(
    get,
    path = "/api/v1/projects/{project}/builds",
    tag = "builds",
    params(("project" = String, Path), ListQuery),
    responses((status = 200, body = Vec<BuildInfo>)),
)]
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
    Path(project): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<BuildInfo>>> {
    let project = state.db.project_including_deleted(&project).await?;
    let builds = state.db.builds(&project, q.limit()).await?;
    Ok(Json(builds.into_iter().map(build_info).collect()))
}

#[utoipa::path(
    get,
    path = "/api/v1/builds/{id}",
    tag = "builds",
    params(("id" = i64, Path)),
    responses((status = 200, body = BuildInfo)),
)]
pub async fn show(State(state): State<AppState>, _caller: Caller, Path(id): Path<i64>) -> ApiResult<Json<BuildInfo>> {
    Ok(Json(build_info(state.db.build(id).await?)))
}

/// `GET /api/v1/projects/{project}/builds/{number}`: a build by the
/// project's own number (the `#` of `ferry builds`).
#[utoipa::path(
    get,
    path = "/api/v1/projects/{project}/builds/{number}",
    tag = "builds",
    params(("project" = String, Path), ("number" = i64, Path)),
    responses((status = 200, body = BuildInfo)),
)]
pub async fn show_number(
    State(state): State<AppState>,
    _caller: Caller,
    Path((project, number)): Path<(String, i64)>,
) -> ApiResult<Json<BuildInfo>> {
    let project = state.db.project(&project).await?;
    Ok(Json(build_info(state.db.build_by_number(&project, number).await?)))
}

#[utoipa::path(
    post,
    path = "/api/v1/builds/{id}/cancel",
    tag = "builds",
    params(("id" = i64, Path)),
    responses((status = 200, body = BuildInfo)),
)]
pub async fn cancel(State(state): State<AppState>, _caller: Caller, Path(id): Path<i64>) -> ApiResult<Json<BuildInfo>> {
    let build = state.db.build(id).await?;
    if build.status.is_terminal() {
        return Err(ApiError::Conflict(format!("build {id} already {}", build.status)));
    }
    Ok(Json(build_info(state.db.cancel_build(id, crate::now_ms()).await?)))
}

/// Queues a new build of the same ref as a failed or canceled one.
#[utoipa::path(
    post,
    path = "/api/v1/builds/{id}/retry",
    tag = "builds",
    params(("id" = i64, Path)),
    responses((status = 200, body = BuildInfo)),
)]
pub async fn retry(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(id): Path<i64>,
) -> ApiResult<Json<BuildInfo>> {
    let old = state.db.build(id).await?;
    if !old.status.is_terminal() {
        return Err(ApiError::Conflict(format!("build {id} is still {}", old.status)));
    }
    let project = state.db.project(&old.project).await?;
    let build =
        queue(&state, &project, &old.git_ref, old.pushed_commit.as_deref(), "retry", &user.name, Some(old.id)).await?;
    Ok(Json(build_info(build)))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    #[serde(default)]
    follow: Option<String>,
    /// Resume after this line (the SSE `id` of the last line seen).
    #[serde(default)]
    after: Option<i64>,
}

/// `GET /api/v1/builds/{id}/log[?follow=1]`: Server-Sent Events. Each line
/// is a `line` event (JSON [`LogLineInfo`], `id` = its sequence number); the
/// stream ends with an `end` event carrying the build, once the build has
/// ended (or at once without `follow`).
#[utoipa::path(
    get,
    path = "/api/v1/builds/{id}/log",
    tag = "builds",
    params(("id" = i64, Path), LogQuery),
    responses((status = 200, description = "The build's log as server-sent events (`line` events carry a `LogLineInfo`)", content_type = "text/event-stream")),
)]
pub async fn log(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<i64>,
    Query(q): Query<LogQuery>,
    headers: axum::http::HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    state.db.build(id).await?;
    let follow = q.follow.as_deref().is_some_and(|f| f != "0" && f != "false");
    let resume = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let after = q.after.or(resume).unwrap_or(0);
    struct Cursor {
        state: AppState,
        after: i64,
        pending: std::collections::VecDeque<Event>,
        done: bool,
    }
    let cursor = Cursor { state, after, pending: Default::default(), done: false };
    let stream = futures_util::stream::unfold(cursor, move |mut c| async move {
        loop {
            if let Some(ev) = c.pending.pop_front() {
                return Some((Ok(ev), c));
            }
            if c.done {
                return None;
            }
            // Read the status before the lines, so no line written before the
            // build ended can be missed.
            let build = c.state.db.build(id).await.ok();
            let lines = c.state.db.build_log(id, c.after, 1000).await.unwrap_or_default();
            let ended = build.as_ref().is_none_or(|b| b.status.is_terminal());
            for l in &lines {
                c.after = l.seq;
                let info = LogLineInfo {
                    seq: l.seq,
                    at: rfc3339_from_millis(l.at),
                    stream: l.stream.clone(),
                    line: l.line.clone(),
                };
                let data = serde_json::to_string(&info).unwrap_or_default();
                c.pending.push_back(Event::default().event("line").id(l.seq.to_string()).data(data));
            }
            if lines.len() < 1000 && (ended || !follow) {
                let data = build.map(build_info).and_then(|b| serde_json::to_string(&b).ok()).unwrap_or("{}".into());
                c.pending.push_back(Event::default().event("end").data(data));
                c.done = true;
                continue;
            }
            if lines.is_empty() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
