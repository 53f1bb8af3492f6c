//! The pages: each reads what it shows from the store, fills its view model
//! and renders it. Actions (POST) call the API's own handler, so a form does
//! exactly what the same API request does, with the same checks.
//!
//! Long file: one short handler per page; the page areas that grew (accounts,
//! requests, actions, grid) have their own modules.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use ferry_domain::access::Action;
use ferry_domain::rollout::{Hold, Step};
use ferry_domain::{DeploymentStatus, rfc3339_from_millis};
use ferry_store::{Build, DeploymentRow, Host, Project};
use ferry_web::views::*;
use futures_util::Stream;

use super::{PageError, Viewer, html};
use crate::AppState;
use crate::app;
use crate::auth::Caller;
use crate::error::AppError;

type PageResult = Result<Response, PageError>;

/// A time as pages show it, with its zone: `2026-11-22 10:40:03 UTC`.
pub fn when(ms: i64) -> String {
    when_text(&rfc3339_from_millis(ms))
}

/// An RFC 3339 UTC time (as the API answers it) as pages show it.
pub fn when_text(rfc3339: &str) -> String {
    let s = rfc3339.split('.').next().unwrap_or(rfc3339).trim_end_matches('Z');
    format!("{} UTC", s.replacen('T', " ", 1))
}

fn when_opt(ms: Option<i64>) -> String {
    ms.map(when).unwrap_or_default()
}

/// Bytes as people read them.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "kB", "MB", "GB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{v:.1} {}", UNITS[unit]) }
}

fn build_item(b: &Build) -> BuildItem {
    BuildItem {
        id: b.id,
        project: b.project.clone(),
        number: b.number,
        git_ref: b.git_ref.clone(),
        commit: b.commit.as_ref().map(|c| c.sha.chars().take(10).collect()).unwrap_or_default(),
        status: Status::new(b.status.to_string()),
        version: b.version.clone().unwrap_or_default(),
        requested_by: b.requested_by.clone(),
        created: when(b.created_at),
    }
}

pub(super) fn deployment_item(d: &DeploymentRow) -> DeploymentItem {
    let batch = match d.current_batch {
        // The stored batch counts from 0; people count from 1.
        Some(b) if !d.status.is_terminal() => format!("{}/{}", b + 1, d.batch_count),
        _ => d.batch_count.to_string(),
    };
    DeploymentItem {
        id: d.id,
        project: d.project.clone(),
        env: d.env.clone(),
        version: d.version.clone(),
        kind: d.kind.to_string(),
        status: Status::new(d.status.to_string()),
        created_by: d.created_by.clone(),
        created: when(d.created_at),
        batch,
        promote: match &d.hold {
            // A hold from before codes says it in words.
            Some(h) if h.to_string().starts_with("waiting for promote") && !d.status.is_terminal() => {
                format!("ferry deployment promote {}", d.id)
            }
            _ => String::new(),
        },
    }
}

fn host_item(h: &Host, runs: Vec<String>) -> HostItem {
    HostItem {
        name: h.name.clone(),
        tags: h.tags.to_string(),
        online: h.online,
        agent_version: h.agent_version.clone().unwrap_or_default(),
        last_seen: when_opt(h.last_seen_at),
        runs,
    }
}

/// `GET /static/{file}`: an embedded asset, cached for a year (its name
/// changes with its content).
pub async fn asset(uri: Uri) -> Response {
    match ferry_web::assets::by_path(uri.path()) {
        Some(a) => (
            [(header::CONTENT_TYPE, a.content_type), (header::CACHE_CONTROL, "public, max-age=31536000, immutable")],
            a.bytes,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `GET /favicon.ico`: the site's icon, which browsers ask for on every
/// page whatever the page links.
pub async fn favicon() -> Response {
    let a = &ferry_web::assets::FAVICON;
    ([(header::CONTENT_TYPE, a.content_type), (header::CACHE_CONTROL, "public, max-age=86400")], a.bytes)
        .into_response()
}

/// `GET /`: running rollouts, recent builds and deployments, offline hosts.
pub async fn dashboard(State(state): State<AppState>, v: Viewer) -> PageResult {
    let projects = app::project::visible(&state, &v.user).await?;
    let names: HashSet<&str> = projects.iter().map(|(p, _)| p.name.as_str()).collect();
    let mut builds = Vec::new();
    let mut deployments = Vec::new();
    let mut stats = Vec::new();
    let month_ago = crate::now_ms() - 30 * 24 * 3600 * 1000;
    for (p, _) in &projects {
        builds.extend(app::build::list(&state, &p.name, 10).await?);
        let recent: Vec<DeploymentRow> =
            app::deploy::rows(&state, &p.name, 1000).await?.into_iter().filter(|d| d.created_at >= month_ago).collect();
        let count = |s: DeploymentStatus| recent.iter().filter(|d| d.status == s).count() as u32;
        let counts = [
            count(DeploymentStatus::Succeeded),
            count(DeploymentStatus::Failed),
            count(DeploymentStatus::RolledBack),
            count(DeploymentStatus::Canceled),
        ];
        if counts.iter().any(|n| *n > 0) {
            stats.push(StatBar::new(p.name.clone(), counts, v.lang.text()));
        }
        deployments.extend(recent.into_iter().take(10));
    }
    builds.sort_by_key(|b| std::cmp::Reverse(b.created_at));
    deployments.sort_by_key(|d| std::cmp::Reverse(d.created_at));
    let running = app::lock::running(&state).await?;
    let offline: Vec<HostItem> =
        app::host::rows(&state).await?.iter().filter(|h| !h.online).map(|h| host_item(h, Vec::new())).collect();
    html(&DashboardPage {
        chrome: v.chrome(v.lang.text().nav_dashboard, Nav::Dashboard),
        stats,
        running: running.iter().filter(|d| names.contains(d.project.as_str())).map(deployment_item).collect(),
        builds: builds.iter().take(10).map(build_item).collect(),
        deployments: deployments.iter().take(10).map(deployment_item).collect(),
        offline,
        waiting: super::requests::waiting_for_me(&state, &v).await?,
    })
}

/// `GET /projects`: the projects I may see.
pub async fn projects(State(state): State<AppState>, v: Viewer) -> PageResult {
    let t = v.lang.text();
    let mut items = Vec::new();
    for (p, role) in app::project::visible(&state, &v.user).await? {
        let envs = app::environment::rows(&state, &p).await?.into_iter().map(|e| e.name).collect();
        let role = match role {
            Some(r) => r.to_string(),
            None => t.role_admin.to_string(),
        };
        items.push(ProjectItem { name: p.name, role, environments: envs });
    }
    let may_create = crate::access::may(&state, &v.user, "/projects", &[], Action::CreateProject).await;
    html(&ProjectsPage { chrome: v.chrome(t.projects_title, Nav::Projects), projects: items, may_create })
}

/// `GET /projects/{project}`: environments with their version, builds
/// newest first, deployments grouped by the build of their release (R10).
pub async fn project(State(state): State<AppState>, v: Viewer, Path(name): Path<String>) -> PageResult {
    let p = app::project::get(&state, &name).await?;
    let path = format!("/projects/{}/deploy", p.name);
    let scope = [("project", p.name.clone())];
    let may_deploy = crate::access::may(&state, &v.user, &path, &scope, Action::Deploy).await;
    let grid_envs = app::status::grid(&state, &p).await?;
    let mut envs = Vec::new();
    for e in app::environment::rows(&state, &p).await? {
        // What its hosts run now (`v1 (2) / v2 (1)` when mixed), not what
        // it was last meant to run.
        let running = grid_envs.iter().find(|g| g.name == e.name).map(|g| g.running.clone()).unwrap_or_default();
        // Where its rollback button goes, host by host, as the rollback
        // itself will go (an environment behind an approval offers the
        // emergency one).
        let rollback_to = match may_deploy {
            true => super::actions::rollback_plan(&state, &p, &e, e.requires_approval, v.lang.text())
                .await?
                .target()
                .unwrap_or_default(),
            false => String::new(),
        };
        envs.push(EnvItem {
            name: e.name,
            production: e.production,
            selector: e.selector,
            current: if running.0.is_empty() { String::new() } else { running.to_string() },
            mixed: running.is_mixed(),
            rollback_to,
            requires_approval: e.requires_approval,
            staging: e.staging.unwrap_or_default(),
        });
    }
    let builds = app::build::list(&state, &p.name, 50).await?;
    let deployments = app::deploy::rows(&state, &p.name, 1000).await?;
    let mut groups: Vec<DeploymentGroup> = Vec::new();
    let mut index: HashMap<i64, usize> = HashMap::new();
    for d in &deployments {
        let i = match index.get(&d.release_id) {
            Some(i) => *i,
            None => {
                let build = app::release::built_by(&state, d.release_id).await.map(|b| (b.id, b.number));
                groups.push(DeploymentGroup { version: d.version.clone(), build, deployments: Vec::new() });
                index.insert(d.release_id, groups.len() - 1);
                groups.len() - 1
            }
        };
        groups[i].deployments.push(deployment_item(d));
    }
    let path = format!("/projects/{}/builds", p.name);
    let may_build = crate::access::may(&state, &v.user, &path, &scope, Action::Build).await;
    let path = format!("/projects/{}/members", p.name);
    let may_manage = crate::access::may(&state, &v.user, &path, &scope, Action::ManageProject).await;
    let members = app::account::members(&state, &p.name).await?.into_iter().map(|m| (m.user, m.role)).collect();
    let delivery = delivery(&state, &p, v.lang.text()).await?;
    let grid = super::grid::cells(&state, &p, grid_envs, &deployments).await?;
    let failing = failing_services(&state, &p).await?;
    html(&ProjectPage {
        chrome: v.chrome(p.name.clone(), Nav::Projects),
        builds_from_git: p.source.is_some(),
        grid,
        name: p.name,
        envs,
        builds: builds.iter().map(build_item).collect(),
        groups,
        may_build,
        may_deploy,
        members,
        may_manage,
        delivery,
        failing,
    })
}

/// The hosts whose service of `p` keeps failing after its deploy (R21).
async fn failing_services(state: &AppState, p: &Project) -> Result<Vec<FailingService>, PageError> {
    let hosts = app::host::rows(state).await?;
    let envs = app::environment::rows(state, p).await?;
    let mut out = Vec::new();
    for row in app::status::host_states(state, p).await? {
        let Some(service) = row.service.filter(|s| s.failing) else { continue };
        out.push(FailingService {
            host: hosts.iter().find(|h| h.id == row.host_id).map(|h| h.name.clone()).unwrap_or_default(),
            env: row
                .desired_env_id
                .and_then(|id| envs.iter().find(|e| e.id == id))
                .map(|e| e.name.clone())
                .unwrap_or_default(),
            version: row.current_version.unwrap_or_default(),
            reason: service.reason,
            since: if service.since > 0 { when(service.since) } else { String::new() },
            stderr: service.stderr,
        });
    }
    Ok(out)
}

/// Each environment's deployments of the last 30 days (R29), by
/// `ferry_domain::stats` as `ferry stats` counts them.
async fn delivery(state: &AppState, p: &Project, t: &'static ferry_web::Text) -> Result<Vec<DeliveryRow>, PageError> {
    use ferry_domain::human_duration;
    let since = crate::now_ms() - 30 * 86_400_000;
    let stats = app::stats::project(state, &p.name, None, Some(since)).await?;
    let dash = || "-".to_string();
    Ok(stats
        .environments
        .into_iter()
        .map(|e| {
            let n = |x: u64| u32::try_from(x).unwrap_or(u32::MAX);
            let counts = [n(e.succeeded), n(e.failed.saturating_sub(e.rolled_back)), n(e.rolled_back), n(e.canceled)];
            DeliveryRow {
                bar: StatBar::new(e.env.clone(), counts, t),
                per_day: format!("{:.2}", e.deploys_per_day),
                lead_time: e.lead_time_ms.map(human_duration).unwrap_or_else(dash),
                failure_rate: match e.change_failure_rate {
                    Some(r) => format!("{:.0}% ({} / {})", r * 100.0, e.change_failures, e.changes),
                    None => dash(),
                },
                restore: e.time_to_restore_ms.map(human_duration).unwrap_or_else(dash),
            }
        })
        .collect())
}

#[derive(serde::Deserialize)]
pub struct BuildForm {
    git_ref: String,
}

/// `POST /projects/{project}/builds`: starts a build, as the API does.
pub async fn start_build(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(project): Path<String>,
    axum::Form(form): axum::Form<BuildForm>,
) -> PageResult {
    let build = app::build::start(&state, &user, &project, Some(&form.git_ref)).await?;
    Ok(Redirect::to(&format!("/builds/{}", build.id)).into_response())
}

/// `POST /builds/{id}/cancel`: cancels a build, as the API does.
pub async fn cancel_build(State(state): State<AppState>, _caller: Caller, Path(id): Path<i64>) -> PageResult {
    app::build::cancel(&state, id).await?;
    Ok(Redirect::to(&format!("/builds/{id}")).into_response())
}

/// `POST /builds/{id}/retry`: builds again, as the API does.
pub async fn retry_build(State(state): State<AppState>, Caller(user): Caller, Path(id): Path<i64>) -> PageResult {
    let build = app::build::retry(&state, &user, id).await?;
    Ok(Redirect::to(&format!("/builds/{}", build.id)).into_response())
}

/// How many log lines the build page renders before its live part.
const LOG_PAGE: u32 = 10_000;

/// `GET /builds/{id}`: the build and its log so far; while it runs, the rest
/// arrives over SSE.
pub async fn build(State(state): State<AppState>, v: Viewer, Path(id): Path<i64>) -> PageResult {
    let b = app::build::show(&state, id).await?;
    let lines = app::build::log(&state, id, 0, LOG_PAGE).await?;
    let last_seq = lines.last().map(|l| l.seq).unwrap_or(0);
    let path = format!("/builds/{id}/retry");
    let may_build = crate::access::may(&state, &v.user, &path, &[("id", id.to_string())], Action::Build).await;
    let live = !b.status.is_terminal();
    let path = format!("/projects/{}/deploy", b.project);
    let may_deploy =
        crate::access::may(&state, &v.user, &path, &[("project", b.project.clone())], Action::Deploy).await;
    html(&BuildPage {
        chrome: v.chrome(format!("{} #{}", b.project, b.number), Nav::Projects),
        build: build_item(&b),
        error: b.error.clone().unwrap_or_default(),
        release_id: b.release_id,
        lines: lines.into_iter().map(|l| LogLineView { at: when(l.at), stream: l.stream, line: l.line }).collect(),
        live,
        last_seq,
        may_build,
        may_retry: may_build && !live && b.status != ferry_domain::BuildStatus::Succeeded,
        may_cancel: may_build && live,
        may_deploy,
    })
}

#[derive(serde::Deserialize)]
pub struct AfterQuery {
    #[serde(default)]
    after: Option<i64>,
}

/// `GET /builds/{id}/log/stream?after=SEQ`: Server-Sent Events for the
/// build page: `line` events carry the new lines as HTML to append, and one
/// `end` event the build's final status badge, after which the page stops
/// listening. Lines are read from the store as the API's log does.
pub async fn build_log_stream(
    State(state): State<AppState>,
    v: Viewer,
    Path(id): Path<i64>,
    Query(q): Query<AfterQuery>,
    headers: axum::http::HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, PageError> {
    app::build::show(&state, id).await?;
    let resume = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let after = resume.or(q.after).unwrap_or(0);
    let t = v.lang.text();
    let stream = futures_util::stream::unfold((state, after, false), move |(state, mut after, done)| async move {
        if done {
            return None;
        }
        loop {
            // The status before the lines, so no line written before the
            // build ended is missed.
            let build = app::build::show(&state, id).await.ok();
            let lines = app::build::log(&state, id, after, 500).await.unwrap_or_default();
            if let Some(last) = lines.last() {
                after = last.seq;
                let mut html = String::new();
                for l in lines {
                    let view = LogLineView { at: when(l.at), stream: l.stream, line: l.line };
                    html.push_str(&ferry_web::render(&LogLineFragment { l: &view }).unwrap_or_default());
                }
                let event = Event::default().event("line").id(after.to_string()).data(html);
                return Some((Ok(event), (state, after, false)));
            }
            match build {
                Some(b) if !b.status.is_terminal() => tokio::time::sleep(Duration::from_millis(250)).await,
                ended => {
                    let word = ended.map(|b| b.status.to_string()).unwrap_or_else(|| "canceled".into());
                    let badge =
                        ferry_web::render(&StatusFragment { status: &Status::new(word), t }).unwrap_or_default();
                    // Never an empty `data`: browsers drop such events.
                    return Some((Ok(Event::default().event("end").data(badge)), (state, after, true)));
                }
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

async fn deployment_live_view(state: &AppState, v: &Viewer, id: i64) -> Result<DeploymentLive, PageError> {
    let (d, hosts, events) = app::deploy::detail(state, id).await?;
    let running = !d.status.is_terminal();
    let path = format!("/deployments/{id}/pause");
    let may_control = crate::access::may(state, &v.user, &path, &[("id", id.to_string())], Action::Deploy).await;
    let may_retry = may_control && d.status.is_terminal() && d.status != DeploymentStatus::Succeeded;
    let waits_for_promotion =
        running && matches!(app::deploy::next_step(state, id).await?, Some(Step::Wait(Hold::Promotion { .. })));
    Ok(DeploymentLive {
        id,
        item: deployment_item(&d),
        running,
        paused: d.paused,
        hold: d.hold.as_ref().map(|n| super::notes::render(n, v.lang.text())).unwrap_or_default(),
        reason: d.reason.as_ref().map(|n| super::notes::render(n, v.lang.text())).unwrap_or_default(),
        hosts: hosts
            .iter()
            .map(|h| DeploymentHostView {
                host: h.host.clone(),
                // From 1, as the API and the rollout picture count.
                batch: h.batch + 1,
                state: Status::new(h.state.to_string()),
                started: when_opt(h.started_at),
                finished: when_opt(h.finished_at),
                error: h.error.as_ref().map(|n| super::notes::render(n, v.lang.text())).unwrap_or_default(),
                downloaded: size(h.bytes_downloaded),
                reused: size(h.bytes_reused),
            })
            .collect(),
        events: events.into_iter().map(|e| (when(e.at), super::notes::render(&e.what, v.lang.text()))).collect(),
        may_control,
        may_retry,
        waits_for_promotion,
        picture: super::picture::picture(state, &d, &hosts, v.lang.text()).await?,
        csrf: v.csrf.clone(),
        t: v.lang.text(),
    })
}

#[derive(serde::Deserialize, Default)]
pub struct HostQuery {
    #[serde(default)]
    host: Option<String>,
}

/// How many lines of a deployment's log its page shows.
const DEPLOYMENT_LOG_PAGE: u32 = 5_000;

/// `GET /deployments/{id}[?host=H]`: batches, hosts, history, the controls,
/// and what the hosts (or one of them) logged.
pub async fn deployment(
    State(state): State<AppState>,
    v: Viewer,
    Path(id): Path<i64>,
    Query(q): Query<HostQuery>,
) -> PageResult {
    let live = deployment_live_view(&state, &v, id).await?;
    let log_host = q.host.filter(|h| !h.is_empty()).unwrap_or_default();
    let host = Some(log_host.as_str()).filter(|h| !h.is_empty());
    let log = app::deploy::log_rows(&state, id, host, 0, DEPLOYMENT_LOG_PAGE).await?;
    let log_last_seq = log.last().map(|l| l.seq).unwrap_or(0);
    let title = format!("{} #{id}", v.lang.text().deployment);
    html(&DeploymentPage {
        chrome: v.chrome(title, Nav::Projects),
        log_hosts: live.hosts.iter().map(|h| h.host.clone()).collect(),
        live,
        log_host,
        log_last_seq,
        log: log
            .into_iter()
            .map(|l| HostLogLine {
                host: l.host,
                at: when(l.at),
                line: LogLineView { at: when(l.at), stream: l.stream, line: l.line },
            })
            .collect(),
    })
}

/// `GET /deployments/{id}/live`: the part of the page that changes, for
/// htmx to replace while the deployment runs.
pub async fn deployment_live(State(state): State<AppState>, v: Viewer, Path(id): Path<i64>) -> PageResult {
    let live = deployment_live_view(&state, &v, id).await?;
    html(&DeploymentLivePartial { live })
}

#[derive(serde::Deserialize)]
pub struct DeploymentLogQuery {
    #[serde(default)]
    after: Option<i64>,
    #[serde(default)]
    host: Option<String>,
}

/// `GET /deployments/{id}/log/stream?after=SEQ[&host=H]`: Server-Sent Events
/// for the deployment page, like the build log's: `line` events with the
/// hosts' new lines as HTML, then one `end` event once the deployment has
/// ended and every line was sent (its log never changes after that).
pub async fn deployment_log_stream(
    State(state): State<AppState>,
    _v: Viewer,
    Path(id): Path<i64>,
    Query(q): Query<DeploymentLogQuery>,
    headers: axum::http::HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, PageError> {
    app::deploy::row(&state, id).await?;
    let resume = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let after = resume.or(q.after).unwrap_or(0);
    let host = q.host.filter(|h| !h.is_empty());
    let stream = futures_util::stream::unfold((state, after, false), move |(state, mut after, done)| {
        let host = host.clone();
        async move {
            if done {
                return None;
            }
            loop {
                // The status before the lines, so no line written before the
                // deployment ended is missed.
                let d = app::deploy::row(&state, id).await.ok();
                let lines = app::deploy::log_rows(&state, id, host.as_deref(), after, 500).await.unwrap_or_default();
                if let Some(last) = lines.last() {
                    after = last.seq;
                    let mut html = String::new();
                    for l in lines {
                        let view = HostLogLine {
                            host: l.host,
                            at: when(l.at),
                            line: LogLineView { at: when(l.at), stream: l.stream, line: l.line },
                        };
                        html.push_str(&ferry_web::render(&HostLogLineFragment { l: &view }).unwrap_or_default());
                    }
                    let event = Event::default().event("line").id(after.to_string()).data(html);
                    return Some((Ok(event), (state, after, false)));
                }
                match d {
                    Some(d) if !d.status.is_terminal() => tokio::time::sleep(Duration::from_millis(500)).await,
                    // Never an empty `data`: browsers drop such events.
                    _ => return Some((Ok(Event::default().event("end").data("end")), (state, after, true))),
                }
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// `POST /deployments/{id}/retry`: the same release again to the hosts
/// that did not succeed, as the API's retry does.
pub async fn retry_deployment(State(state): State<AppState>, Caller(user): Caller, Path(id): Path<i64>) -> PageResult {
    let d = app::deploy::retry(&state, &user, id, true).await?;
    Ok(Redirect::to(&format!("/deployments/{}", d.id)).into_response())
}

/// `POST /deployments/{id}/{pause|resume|cancel|promote}`, as the API does.
pub async fn control_deployment(
    State(state): State<AppState>,
    _caller: Caller,
    Path((id, action)): Path<(i64, String)>,
) -> PageResult {
    app::deploy::control(&state, id, &action).await?;
    Ok(Redirect::to(&format!("/deployments/{id}")).into_response())
}

/// The fleet matrix of the projects `user` may see.
pub async fn fleet_page(state: &AppState, v: &Viewer) -> Result<FleetPage, PageError> {
    let hosts = app::host::rows(state).await?;
    let mut columns = Vec::new();
    // Environment id -> column.
    let mut column_of: HashMap<i64, usize> = HashMap::new();
    let mut states = Vec::new();
    for (p, _) in app::project::visible(state, &v.user).await? {
        for e in app::environment::rows(state, &p).await? {
            column_of.insert(e.id, columns.len());
            columns.push(format!("{}/{}", p.name, e.name));
        }
        states.extend(app::status::host_states(state, &p).await?);
    }
    let empty = FleetCell { version: String::new(), colour: "", drift: false, desired: String::new() };
    let mut row_of: HashMap<i64, usize> = HashMap::with_capacity(hosts.len());
    let mut rows: Vec<FleetRow> = Vec::with_capacity(hosts.len());
    for h in &hosts {
        row_of.insert(h.id, rows.len());
        rows.push(FleetRow { host: h.name.clone(), online: h.online, cells: vec![empty.clone(); columns.len()] });
    }
    let mut versions: Vec<String> = Vec::new();
    for s in states {
        let (Some(env), Some(&row)) = (s.desired_env_id, row_of.get(&s.host_id)) else { continue };
        let Some(&col) = column_of.get(&env) else { continue };
        let version = s.current_version.clone().unwrap_or_default();
        let desired = s.desired_version.clone().unwrap_or_default();
        if !version.is_empty() && !versions.contains(&version) {
            versions.push(version.clone());
        }
        rows[row].cells[col] = FleetCell {
            colour: if version.is_empty() { "" } else { version_colour(&version) },
            drift: s.desired_version != s.current_version,
            version,
            desired,
        };
    }
    versions.sort();
    let legend = versions.into_iter().map(|v| (version_colour(&v), v)).map(|(c, v)| (v, c)).collect();
    Ok(FleetPage { chrome: v.chrome(v.lang.text().nav_fleet, Nav::Fleet), columns, rows, legend })
}

/// `GET /fleet`: environment x host -> version (R12).
pub async fn fleet(State(state): State<AppState>, v: Viewer) -> PageResult {
    html(&fleet_page(&state, &v).await?)
}

/// `GET /hosts`: every host, with what runs there of the projects I may see.
pub async fn hosts(State(state): State<AppState>, v: Viewer) -> PageResult {
    let mut runs: HashMap<i64, Vec<String>> = HashMap::new();
    for (p, _) in app::project::visible(&state, &v.user).await? {
        let envs: HashMap<i64, String> =
            app::environment::rows(&state, &p).await?.into_iter().map(|e| (e.id, e.name)).collect();
        for s in app::status::host_states(&state, &p).await? {
            let env = s.desired_env_id.and_then(|e| envs.get(&e)).cloned().unwrap_or_default();
            let version = s.current_version.or(s.desired_version).unwrap_or_default();
            runs.entry(s.host_id).or_default().push(format!("{}/{env} {version}", p.name));
        }
    }
    let hosts = app::host::rows(&state).await?;
    let items = hosts.iter().map(|h| host_item(h, runs.remove(&h.id).unwrap_or_default())).collect();
    html(&HostsPage { chrome: v.chrome(v.lang.text().nav_hosts, Nav::Hosts), hosts: items })
}

#[derive(serde::Deserialize, Default)]
pub struct AuditForm {
    #[serde(default)]
    project: Option<String>,
    #[serde(default)]
    actor: Option<String>,
    #[serde(default)]
    since: Option<String>,
}

/// `GET /audit?project=&actor=&since=`: the audit trail, as the API lists
/// it. `since` is a time, or a duration back from now (`2h`).
pub async fn audit(
    State(state): State<AppState>,
    v: Viewer,
    _caller: Caller,
    Query(f): Query<AuditForm>,
) -> PageResult {
    audit_page(state, v, f, None).await
}

/// `GET /projects/{project}/audit`: one project's part of the trail, for
/// its owners (the route's rule), as the API lists it.
pub async fn project_audit(
    State(state): State<AppState>,
    v: Viewer,
    _caller: Caller,
    Path(project): Path<String>,
    Query(f): Query<AuditForm>,
) -> PageResult {
    audit_page(state, v, f, Some(project)).await
}

async fn audit_page(state: AppState, v: Viewer, mut f: AuditForm, fixed: Option<String>) -> PageResult {
    if let Some(p) = &fixed {
        f.project = Some(p.clone());
    }
    let trimmed = |s: &Option<String>| s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    // A duration back from now (`2h`), a day (`2026-01-31`), or a time.
    let since = trimmed(&f.since).map(|s| match humantime::parse_duration(&s) {
        Ok(d) => humantime::format_rfc3339_seconds(std::time::SystemTime::now() - d).to_string(),
        Err(_) if s.len() == 10 && s.as_bytes().get(4) == Some(&b'-') => format!("{s}T00:00:00Z"),
        Err(_) => s,
    });
    let query =
        ferry_proto::api::AuditQuery { project: trimmed(&f.project), user: trimmed(&f.actor), since, limit: Some(200) };
    let entries = match &fixed {
        Some(p) => app::audit::project_entries(&state, p, query).await?,
        None => app::audit::entries(&state, query).await?,
    };
    let entries = entries
        .into_iter()
        .map(|e| AuditItem {
            seq: e.seq,
            at: when_text(&e.at),
            ok: e.outcome.starts_with('2') || e.outcome.starts_with('3'),
            actor: e.actor,
            source: e.source,
            action: e.action,
            object: e.object,
            outcome: e.outcome,
            summary: e.summary,
        })
        .collect();
    html(&AuditPage {
        chrome: v.chrome(v.lang.text().audit_title, Nav::Audit),
        action: match &fixed {
            Some(p) => format!("/projects/{p}/audit"),
            None => "/audit".into(),
        },
        project_fixed: fixed.is_some(),
        project: f.project.unwrap_or_default(),
        actor: f.actor.unwrap_or_default(),
        since: f.since.unwrap_or_default(),
        entries,
    })
}

#[derive(serde::Deserialize, Default)]
pub struct DeployQuery {
    #[serde(default)]
    env: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    tag: Option<String>,
    /// The dialog is shown again because its environment was changed.
    #[serde(default)]
    changed: Option<String>,
    /// Shown for an environment just picked: the focus goes back to its
    /// select, so that a keyboard user goes on from there.
    #[serde(default)]
    picked: Option<String>,
}

/// `GET /projects/{project}/deploy?env=E&tag=T`: the deploy dialog (R9):
/// releases newest first, the environment's hosts filtered by a tag
/// selector. Whether the deployment is allowed (production) is decided when
/// it is posted, as for the API.
pub async fn deploy_form(
    State(state): State<AppState>,
    v: Viewer,
    Path(name): Path<String>,
    Query(q): Query<DeployQuery>,
) -> PageResult {
    let p = app::project::get(&state, &name).await?;
    let envs = app::environment::rows(&state, &p).await?;
    let chosen = q.env.as_deref().and_then(|e| envs.iter().find(|x| x.name == e)).or(envs.first());
    let tag = q.tag.unwrap_or_default();
    let filter = match tag.trim() {
        "" => None,
        t => Some(ferry_domain::Selector::parse(t).map_err(|e| AppError::BadRequest(format!("tag filter: {e}")))?),
    };
    let mut hosts = Vec::new();
    if let Some(env) = chosen {
        // What each host runs of the project now, so that a canary is
        // picked knowingly.
        let running: HashMap<i64, String> = app::status::host_states(&state, &p)
            .await?
            .into_iter()
            .filter_map(|s| Some((s.host_id, s.current_version?)))
            .collect();
        let selector = ferry_domain::Selector::parse(&env.selector).ok();
        for h in app::host::rows(&state).await? {
            let in_env = selector.as_ref().is_some_and(|s| s.matches(&h.tags));
            if in_env && filter.as_ref().is_none_or(|f| f.matches(&h.tags)) {
                hosts.push(PickHost {
                    name: h.name.clone(),
                    tags: h.tags.to_string(),
                    online: h.online,
                    version: running.get(&h.id).cloned().unwrap_or_else(|| "-".into()),
                });
            }
        }
    }
    let mut build_of: HashMap<i64, i64> = HashMap::new();
    for b in app::build::list(&state, &p.name, 1000).await? {
        build_of.insert(b.id, b.number);
    }
    let releases = app::release::rows(&state, &p)
        .await?
        .into_iter()
        .map(|r| {
            let build = r.origin.as_ref().and_then(|o| build_of.get(&o.build_id));
            let label = match build {
                Some(n) => format!("{} · {} #{n} · {}", r.version, v.lang.text().build, r.branch),
                None => format!("{} · {}", r.version, r.branch),
            };
            let selected = q.version.as_deref() == Some(r.version.as_str());
            PickRelease { version: r.version, label, bad: r.bad.is_some(), selected }
        })
        .collect();
    html(&DeployPage {
        chrome: v.chrome(format!("{} · {}", p.name, v.lang.text().deploy_title), Nav::Projects),
        envs: envs.iter().map(|e| (e.name.clone(), e.production)).collect(),
        env: chosen.map(|e| e.name.clone()).unwrap_or_default(),
        default_rollout: chosen.map(|e| e.rollout.describe()).unwrap_or_default(),
        tag,
        releases,
        hosts,
        env_changed: q.changed.is_some(),
        focus_env: q.picked.is_some() || q.changed.is_some(),
        project: p.name,
    })
}

/// The deploy dialog's address for `env`, keeping the tag filter and the
/// release chosen.
fn deploy_form_url(project: &str, env: &str, tag: &str, version: Option<&str>, changed: bool) -> String {
    use ferry_web::views::url_encode;
    // Every part encoded: they come from the request, and a redirect's
    // address must be a valid header value.
    let mut url = format!("/projects/{}/deploy?env={}&tag={}", url_encode(project), url_encode(env), url_encode(tag));
    if let Some(v) = version.filter(|v| !v.is_empty()) {
        url.push_str(&format!("&version={}", url_encode(v)));
    }
    if changed {
        url.push_str("&changed=1");
    }
    url
}

/// `POST /projects/{project}/deploy`: the dialog's "show its hosts" button
/// (and, with JavaScript, a change of its environment): the dialog again
/// for the environment and tag filter chosen, deploying nothing. A POST
/// because the button belongs to the deploy form, whose CSRF token must not
/// go into an address.
pub async fn deploy_form_again(Path(project): Path<String>, body: axum::body::Bytes) -> PageResult {
    let (mut env, mut tag, mut version) = (String::new(), String::new(), None);
    for (k, val) in form_urlencoded::parse(&body) {
        match k.as_ref() {
            "env" => env = val.trim().to_string(),
            "tag" => tag = val.trim().to_string(),
            "version" => version = Some(val.trim().to_string()),
            _ => {}
        }
    }
    let url = deploy_form_url(&project, &env, &tag, version.as_deref(), false);
    Ok(Redirect::to(&format!("{url}&picked=1")).into_response())
}

/// `POST /projects/{project}/deployments`: the deploy dialog's form, sent
/// as the API's deployment request (`fleet::create_deployment` checks the
/// production right once the environment is known).
pub async fn deploy(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(project): Path<String>,
    body: axum::body::Bytes,
) -> PageResult {
    let mut env = String::new();
    // The environment whose hosts the dialog listed.
    let mut hosts_of = None;
    let mut tag = String::new();
    let mut version = None;
    let mut hosts = Vec::new();
    let mut all = true;
    let mut rollout = ferry_domain::rollout::RolloutOptions::default();
    // By hand: the host boxes repeat one field name.
    for (k, val) in form_urlencoded::parse(&body) {
        let val = val.trim().to_string();
        match k.as_ref() {
            "env" => env = val,
            "hosts_of" => hosts_of = Some(val),
            "tag" => tag = val,
            "version" => version = Some(val),
            "hosts" => hosts.push(val),
            "scope" => all = val != "chosen",
            "strategy" if !val.is_empty() => rollout.strategy = Some(val),
            "batch" if !val.is_empty() => rollout.batch = Some(val),
            "approve_each_batch" => rollout.approve_each_batch = Some(val == "on"),
            _ => {}
        }
    }
    // The environment was changed after its hosts were listed (without
    // JavaScript nothing lists the new one's): show them before anything
    // is deployed, so that what is sent is what was shown.
    if hosts_of.as_ref().is_some_and(|shown| *shown != env) {
        let url = deploy_form_url(&project, &env, &tag, version.as_deref(), true);
        return Ok(Redirect::to(&url).into_response());
    }
    if !all && hosts.is_empty() {
        return Err(AppError::BadRequest("tick the hosts to deploy to, or choose every host".into()).into());
    }
    let req = ferry_proto::api::CreateDeployment {
        hosts: if all { None } else { Some(hosts) },
        rollout,
        ..ferry_proto::api::CreateDeployment::of(env, version, ferry_domain::DeploymentKind::Deploy)
    };
    let d = app::deploy::create(&state, &user, &project, req).await?;
    Ok(Redirect::to(&format!("/deployments/{}", d.id)).into_response())
}

#[derive(serde::Deserialize)]
pub struct PromoteForm {
    from: String,
    to: String,
}

/// `POST /projects/{project}/promote`: the grid's promote button, as
/// `ferry promote` asks the API (R23).
pub async fn promote(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(project): Path<String>,
    axum::Form(f): axum::Form<PromoteForm>,
) -> PageResult {
    let req = ferry_proto::api::Promote { from: f.from, to: f.to };
    let d = app::deploy::promote(&state, &user, &project, req).await?;
    Ok(Redirect::to(&format!("/deployments/{}", d.id)).into_response())
}

#[derive(serde::Deserialize)]
pub struct ProjectForm {
    name: String,
    #[serde(default)]
    repo: Option<String>,
}

/// `POST /projects`: creates a project, as the API does.
pub async fn create_project(
    State(state): State<AppState>,
    _caller: Caller,
    axum::Form(f): axum::Form<ProjectForm>,
) -> PageResult {
    let req = ferry_proto::api::CreateProject {
        name: f.name.trim().to_string(),
        keep_releases: None,
        repo: f.repo.map(|r| r.trim().to_string()).filter(|r| !r.is_empty()),
        webhook_secret: None,
        branches: Vec::new(),
        push_tags: false,
        host_scope: None,
    };
    let p = app::project::create(&state, req).await?;
    Ok(Redirect::to(&format!("/projects/{}", p.name)).into_response())
}

#[derive(serde::Deserialize)]
pub struct EnvForm {
    name: String,
    selector: String,
    #[serde(default)]
    production: Option<String>,
    #[serde(default)]
    requires_approval: Option<String>,
    #[serde(default)]
    staging: Option<String>,
}

/// `POST /projects/{project}/environments`, as the API creates one; a
/// production environment needs the production right, checked there.
pub async fn create_env(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(project): Path<String>,
    axum::Form(f): axum::Form<EnvForm>,
) -> PageResult {
    let req = ferry_proto::api::CreateEnvironment {
        name: f.name.trim().to_string(),
        selector: f.selector.trim().to_string(),
        auto_deploy_branch: None,
        rollout: Default::default(),
        production: f.production.is_some(),
        requires_approval: f.requires_approval.is_some(),
        staging: f.staging.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()),
        after: None,
        offline_policy: None,
    };
    app::environment::create(&state, &user, &project, req).await?;
    Ok(Redirect::to(&format!("/projects/{project}")).into_response())
}
