//! Enforcing the route table's rules (R26). The rules themselves are
//! `ferry_domain::access`; which rule a route is served under is the route
//! table's ([`Route`], built in `api::routes` and `ui::routes`). This module only finds out who is asking and what the
//! request is about, and asks `ferry_domain::access::allowed`.

use std::collections::HashMap;

use axum::extract::{RawPathParams, Request, State};
use axum::handler::Handler;
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use ferry_domain::access::{Action, Role, allowed};
use ferry_store::{Environment, Project, User};

use crate::AppState;
use crate::auth::{self, Caller};
use crate::error::AppError;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// No user authentication: `/healthz`, signing in, forge webhooks (which
    /// carry their own signature).
    Public,
    /// Agents only, with the join token or their own credential (checked by
    /// the handler); a user token is refused there.
    Agent,
    /// A signed-in, enabled user allowed to do this.
    User(Action),
}

/// The state of the check wrapped around one route.
#[derive(Clone)]
pub struct Guard {
    pub state: AppState,
    pub rule: Rule,
}

/// Checks a route's rule before its handler runs. A user route gets the
/// caller in the request's extensions (see [`Caller`]).
pub async fn authorize(State(guard): State<Guard>, params: RawPathParams, mut req: Request, next: Next) -> Response {
    let action = match guard.rule {
        Rule::Public | Rule::Agent => return next.run(req).await,
        Rule::User(action) => action,
    };
    let params: HashMap<String, String> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let path = req.uri().path().to_string();
    match check(&guard.state, req.headers(), &path, &params, action).await {
        Ok(user) => {
            req.extensions_mut().insert(Caller(user));
            next.run(req).await
        }
        Err(e) => {
            linger(req.into_body()).await;
            e.into_response()
        }
    }
}

/// The most of a refused request's body [`linger`] reads.
const LINGER_BYTES: u64 = 512 << 20;
/// How long [`linger`] reads at most.
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(15);

/// Reads and drops what is left of a request body before an early answer
/// (a refusal, a conflict), within [`LINGER_BYTES`] and [`LINGER_TIME`].
/// Answering while a client still sends a large upload makes the server
/// close a connection with unread bytes, which resets it: the client then
/// sees "broken pipe" instead of the answer (a 403 would read as "cannot
/// reach the server"). nginx's lingering close, in the request's own time.
pub async fn linger(body: axum::body::Body) {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut read = 0u64;
    let drain = async {
        while let Some(Ok(chunk)) = stream.next().await {
            read = read.saturating_add(chunk.len() as u64);
            if read > LINGER_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, drain).await;
}

/// What a request is about, as far as its path tells.
#[derive(Default)]
struct Scope {
    project: Option<Project>,
    env: Option<Environment>,
    /// No project in the path: the action concerns none in particular.
    unscoped: bool,
}

async fn check(
    state: &AppState,
    headers: &HeaderMap,
    path: &str,
    params: &HashMap<String, String>,
    action: Action,
) -> Result<User, AppError> {
    let user = auth::user_from_headers(state, headers).await?;
    check_user(state, &user, path, params, action).await?;
    Ok(user)
}

/// Whether an authenticated `user` may do `action` on what a request's path
/// is about: the one check behind every user route, of the API and of the
/// web interface alike (`ui::guard` calls it with the session's user).
/// `path` is the request's path (`/api/v1/deployments/7/pause` or
/// `/deployments/7/pause`), `params` its route parameters.
pub async fn check_user(
    state: &AppState,
    user: &User,
    path: &str,
    params: &HashMap<String, String>,
    action: Action,
) -> Result<(), AppError> {
    let scope = scope(state, path, params).await?;
    let membership = match (&scope.project, scope.unscoped) {
        (Some(p), _) => state.db.membership(p.id, user.id).await?,
        // Uploading content is for anyone who may upload to some project.
        (None, true) if action == Action::Build => state.db.best_membership(user.id).await?,
        (None, _) => None,
    };
    let production = scope.env.as_ref().is_some_and(|e| e.production);
    allowed(&user.subject(), membership, action, production).map_err(|denied| {
        AppError::Forbidden(
            denied
                .message(scope.project.as_ref().map(|p| p.name.as_str()), scope.env.as_ref().map(|e| e.name.as_str())),
        )
    })
}

/// [`check_user`] as a yes or no, for deciding whether a button is worth
/// showing. Never the reason an action is allowed: the action's own route
/// checks again.
pub async fn may(state: &AppState, user: &User, path: &str, params: &[(&str, String)], action: Action) -> bool {
    let params: HashMap<String, String> = params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    check_user(state, user, path, &params, action).await.is_ok()
}

/// Finds the project (and environment) a request concerns from its path: the
/// `{project}` and `{env}` parameters, or the deployment, request or build
/// `{id}`. API paths and the web interface's name them the same way, the
/// API's under `/api/v1`.
/// An unknown project or deployment is the handler's 404 to give; here it
/// only means there is nothing to be a member of.
async fn scope(state: &AppState, path: &str, params: &HashMap<String, String>) -> Result<Scope, AppError> {
    let db = &state.db;
    let id = params.get("id").and_then(|id| id.parse::<i64>().ok());
    let path = path.strip_prefix("/api/v1").unwrap_or(path);
    // The names the path gives, directly or through the object it names.
    let (project, env): (Option<String>, Option<String>) = if let Some(name) = params.get("project") {
        (Some(name.clone()), params.get("env").cloned())
    } else if let (Some(id), true) = (id, path.starts_with("/deployments/")) {
        db.deployment(id).await.ok().map(|d| (Some(d.project), Some(d.env))).unwrap_or_default()
    } else if let (Some(id), true) = (id, path.starts_with("/requests/")) {
        db.request(id).await.ok().map(|r| (Some(r.project), Some(r.env))).unwrap_or_default()
    } else if let (Some(id), true) = (id, path.starts_with("/builds/")) {
        db.build(id).await.ok().map(|b| (Some(b.project), None)).unwrap_or_default()
    } else {
        return Ok(Scope { unscoped: true, ..Scope::default() });
    };
    let project = match project {
        // A deleted project's members still read its history.
        Some(name) => db.project_including_deleted(&name).await.ok(),
        None => None,
    };
    let env = match (&project, env) {
        (Some(p), Some(e)) => db.environment(p, &e).await.ok(),
        _ => None,
    };
    Ok(Scope { project, env, unscoped: false })
}

/// Checks that the caller may deploy to `env`, once a handler knows which
/// environment a request is about (the route could only check the project).
pub async fn check_deploy(state: &AppState, user: &User, project: &Project, env: &Environment) -> Result<(), AppError> {
    let membership: Option<Role> = state.db.membership(project.id, user.id).await?;
    allowed(&user.subject(), membership, Action::Deploy, env.production)
        .map_err(|denied| AppError::Forbidden(denied.message(Some(&project.name), Some(&env.name))))
}

/// Checks that the caller may create an environment that is production: the
/// route could only check the owner role, the flag is in the body. Like
/// changing the flag later, it needs the production right, so that only
/// someone with that right decides what deploys there on its own
/// (`--auto-deploy-branch`).
pub async fn check_new_production_env(
    state: &AppState,
    user: &User,
    project: &Project,
    env: &str,
) -> Result<(), AppError> {
    let membership: Option<Role> = state.db.membership(project.id, user.id).await?;
    allowed(&user.subject(), membership, Action::ChangeProduction, true)
        .map_err(|denied| AppError::Forbidden(denied.message(Some(&project.name), Some(env))))
}

/// One route of the API or the web pages: its method, path and permission,
/// and its handler.
pub(crate) struct Route {
    pub method: Method,
    pub path: &'static str,
    pub rule: Rule,
    pub handler: MethodRouter<AppState>,
}

/// A route of `method` only: the method in the table is the one served.
pub(crate) fn route<H, T>(method: Method, path: &'static str, rule: Rule, handler: H) -> Route
where
    H: Handler<T, AppState>,
    T: 'static,
{
    // The table only holds the methods axum can filter on.
    let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
    Route { method, path, rule, handler: on(filter, handler) }
}
