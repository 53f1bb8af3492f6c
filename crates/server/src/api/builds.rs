//! Builds: queue, list, show, cancel, retry, and the live log (R6, R30).

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use ferry_domain::rfc3339_from_millis;
use ferry_proto::api::{BuildInfo, CreateBuild, LogLineInfo};
use futures_util::Stream;

use super::ListQuery;
use crate::AppState;
use crate::app::build;
use crate::auth::Caller;
use crate::error::AppResult;

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
) -> AppResult<Json<BuildInfo>> {
    Ok(Json(build::info(build::start(&state, &user, &project, req.git_ref.as_deref()).await?)))
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
) -> AppResult<Json<Vec<BuildInfo>>> {
    Ok(Json(build::list(&state, &project, q.limit()).await?.into_iter().map(build::info).collect()))
}

#[utoipa::path(
    get,
    path = "/api/v1/builds/{id}",
    tag = "builds",
    params(("id" = i64, Path)),
    responses((status = 200, body = BuildInfo)),
)]
pub async fn show(State(state): State<AppState>, _caller: Caller, Path(id): Path<i64>) -> AppResult<Json<BuildInfo>> {
    Ok(Json(build::info(build::show(&state, id).await?)))
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
) -> AppResult<Json<BuildInfo>> {
    Ok(Json(build::info(build::by_number(&state, &project, number).await?)))
}

#[utoipa::path(
    post,
    path = "/api/v1/builds/{id}/cancel",
    tag = "builds",
    params(("id" = i64, Path)),
    responses((status = 200, body = BuildInfo)),
)]
pub async fn cancel(State(state): State<AppState>, _caller: Caller, Path(id): Path<i64>) -> AppResult<Json<BuildInfo>> {
    Ok(Json(build::info(build::cancel(&state, id).await?)))
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
) -> AppResult<Json<BuildInfo>> {
    Ok(Json(build::info(build::retry(&state, &user, id).await?)))
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
) -> AppResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    build::show(&state, id).await?;
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
            let (build, lines) = build::log_page(&c.state, id, c.after, 1000).await;
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
                let data = build.map(build::info).and_then(|b| serde_json::to_string(&b).ok()).unwrap_or("{}".into());
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
