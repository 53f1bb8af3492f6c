//! Live pages: the dashboard, project, fleet, hosts and request pages follow
//! the server without being loaded again.
//!
//! A live page opens `GET /live?page=PATH` (Server-Sent Events). The server
//! sends a `changed` event whenever something the page may show changed
//! (the hub's change notices, fired where deployments advance, agents
//! report or connect, and after every successful changing request), and
//! every [`REFRESH`] anyway. The page then fetches itself again and swaps
//! only its live regions (`data-live`), each under the page's own route and
//! so its own access check. Where the stream cannot be opened the page
//! polls instead (`ferry.js`).

use std::collections::HashSet;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use ferry_domain::Action;
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::{PageError, Viewer};
use crate::AppState;
use crate::error::AppError;
use crate::hub::{Change, LiveSlot};

/// Live pages one session may hold open at once (tabs): a newer one evicts
/// the oldest, which then polls instead. Kept under a browser's six connections to
/// one server over HTTP/1.1, so that open streams never stall a page load.
pub const MAX_LIVE_PER_SESSION: usize = 4;
/// A live page is told to refresh at least this often, for what a notice
/// does not cover (time-based states, a notice lost between replicas).
const REFRESH: Duration = Duration::from_secs(60);
/// Notices closer together than this make one refresh.
const COALESCE: Duration = Duration::from_millis(300);

#[derive(serde::Deserialize, Default)]
pub struct LiveQuery {
    #[serde(default)]
    page: Option<String>,
}

/// Which changes a page follows: those of the projects it shows.
enum Scope {
    Projects(HashSet<String>),
}

impl Scope {
    fn wants(&self, change: &Change) -> bool {
        match (self, &change.project) {
            (_, None) => true,
            (Scope::Projects(names), Some(p)) => names.contains(p),
        }
    }
}

/// The projects page `page` shows, checked as the page itself is: a
/// project's or a request's page needs the right to read that project.
async fn scope(state: &AppState, v: &Viewer, page: &str) -> Result<Scope, PageError> {
    let parts: Vec<&str> = page.trim_start_matches('/').split('/').collect();
    let refused = || PageError(AppError::Forbidden("this page is not yours to follow".into()));
    match parts.as_slice() {
        ["projects", project, ..] if !project.is_empty() => {
            let project = project.to_string();
            let path = format!("/projects/{project}");
            if !crate::access::may(state, &v.user, &path, &[("project", project.clone())], Action::ReadProject).await {
                return Err(refused());
            }
            Ok(Scope::Projects(HashSet::from([project])))
        }
        ["requests", id] if !id.is_empty() => {
            let id: i64 = id.parse().map_err(|_| PageError(AppError::NotFound(format!("request {id}"))))?;
            let path = format!("/requests/{id}");
            if !crate::access::may(state, &v.user, &path, &[("id", id.to_string())], Action::ReadProject).await {
                return Err(refused());
            }
            Ok(Scope::Projects(HashSet::from([crate::app::request::project_of(state, id).await?])))
        }
        _ => {
            let names = crate::app::project::visible(state, &v.user).await?.into_iter().map(|(p, _)| p.name);
            Ok(Scope::Projects(names.collect()))
        }
    }
}

/// `GET /live?page=PATH`: `changed` events for the page at PATH (see the
/// module documentation). A session holds [`MAX_LIVE_PER_SESSION`] at most:
/// the oldest gets an `evicted` event and its page polls.
pub async fn live(State(state): State<AppState>, v: Viewer, Query(q): Query<LiveQuery>) -> Result<Response, PageError> {
    let page = q.page.unwrap_or_else(|| "/".into());
    let scope = scope(&state, &v, &page).await?;
    // The CSRF token stands for the session (it is derived from it).
    let slot = state.hub.live_slot(&v.csrf, MAX_LIVE_PER_SESSION);
    let rx = state.hub.subscribe();
    let sse = Sse::new(changes(rx, scope, slot)).keep_alive(KeepAlive::default());
    // Proxies that buffer answers (nginx) would hold the events back.
    Ok(([("x-accel-buffering", "no")], sse).into_response())
}

fn changes(
    rx: tokio::sync::broadcast::Receiver<Change>,
    scope: Scope,
    slot: LiveSlot,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold((rx, scope, Some(slot)), |(mut rx, scope, slot)| async move {
        // Evicted: one last event tells the page to poll, then the end.
        let slot = slot?;
        let deadline = tokio::time::sleep(REFRESH);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = slot.evicted.notified() => {
                    return Some((Ok(Event::default().event("evicted").data("evicted")), (rx, scope, None)));
                }
                got = rx.recv() => match got {
                    Ok(change) if !scope.wants(&change) => continue,
                    Ok(_) | Err(RecvError::Lagged(_)) => break,
                    // The server is shutting down.
                    Err(RecvError::Closed) => return None,
                },
                _ = &mut deadline => break,
            }
        }
        // One refresh for a burst of notices (a batch of host reports).
        tokio::time::sleep(COALESCE).await;
        while let Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) = rx.try_recv() {}
        Some((Ok(Event::default().event("changed").data("changed")), (rx, scope, Some(slot))))
    })
}
