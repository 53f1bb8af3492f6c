//! The web interface (issue 7): server-rendered pages at `/`, beside the
//! API at `/api/v1`. The markup, view models and strings are `ferry_web`'s;
//! this module fills the view models from the store and renders them.
//!
//! Every page and form is a route of [`routes`], declared with the same
//! [`Rule`] the API's table uses, and [`guard`] checks it with the API's own
//! check (`access::check_user`) for the session's user. A button that is not
//! shown is a convenience, never the reason an action is refused: every POST
//! goes through its route's rule, and calls the use case (`crate::app`) the
//! API's handler calls.
//!
//! Sessions are cookies (`session.rs`); every POST needs the session's CSRF
//! token, in the form's `csrf` field or the `x-csrf-token` header.

mod accounts;
mod actions;
mod grid;
mod live;
mod notes;
mod pages;
mod picture;
mod requests;
mod session;

use std::collections::HashMap;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use ferry_domain::Action;
use ferry_store::User;
use ferry_web::Lang;
use ferry_web::views::{Chrome, ErrorPage, Nav};

use crate::AppState;
use crate::access::Rule;
use crate::access::{Route, route};
use crate::error::AppError;

/// The web interface's route table: every page and form with its rule.
pub(crate) fn routes() -> Vec<Route> {
    use Action::*;
    use Rule::{Public, User};
    let (g, p) = (Method::GET, Method::POST);
    vec![
        route(g.clone(), "/static/{file}", Public, pages::asset),
        route(g.clone(), "/favicon.ico", Public, pages::favicon),
        route(g.clone(), "/lang/{code}", Public, session::set_lang),
        route(g.clone(), "/login", Public, session::login_form),
        // Signing in checks the password itself, as the API's login does.
        route(p.clone(), "/login", Public, session::login),
        route(p.clone(), "/logout", User(ReadShared), session::logout),
        route(g.clone(), "/", User(ReadShared), pages::dashboard),
        route(g.clone(), "/projects", User(ReadShared), pages::projects),
        route(p.clone(), "/projects", User(CreateProject), pages::create_project),
        route(g.clone(), "/projects/{project}", User(ReadProject), pages::project),
        route(p.clone(), "/projects/{project}/builds", User(Build), pages::start_build),
        route(p.clone(), "/projects/{project}/environments", User(ManageProject), pages::create_env),
        route(g.clone(), "/projects/{project}/deploy", User(Deploy), pages::deploy_form),
        route(p.clone(), "/projects/{project}/deploy", User(Deploy), pages::deploy_form_again),
        // The production right is checked once the environment is known, as
        // for the API's route.
        route(p.clone(), "/projects/{project}/deployments", User(Deploy), pages::deploy),
        // Rollbacks and member removal ask first: a confirm page (GET) with
        // the plan, holding the real form (POST).
        route(g.clone(), "/projects/{project}/environments/{env}/rollback", User(Deploy), actions::rollback_confirm),
        route(p.clone(), "/projects/{project}/environments/{env}/rollback", User(Deploy), actions::rollback),
        route(p.clone(), "/projects/{project}/promote", User(Deploy), pages::promote),
        route(g.clone(), "/builds/{id}", User(ReadProject), pages::build),
        route(g.clone(), "/builds/{id}/log/stream", User(ReadProject), pages::build_log_stream),
        route(p.clone(), "/builds/{id}/cancel", User(Build), pages::cancel_build),
        route(p.clone(), "/builds/{id}/retry", User(Build), pages::retry_build),
        route(g.clone(), "/deployments/{id}", User(ReadProject), pages::deployment),
        route(g.clone(), "/deployments/{id}/live", User(ReadProject), pages::deployment_live),
        route(g.clone(), "/deployments/{id}/log/stream", User(ReadProject), pages::deployment_log_stream),
        // The production right is checked from the deployment's environment,
        // as for the API's routes.
        route(p.clone(), "/deployments/{id}/retry", User(Deploy), pages::retry_deployment),
        route(p.clone(), "/deployments/{id}/{action}", User(Deploy), pages::control_deployment),
        // Release requests (R24), under the API's rules for each action.
        route(g.clone(), "/requests", User(ReadShared), requests::requests),
        route(g.clone(), "/requests/{id}", User(ReadProject), requests::request),
        route(p.clone(), "/requests/{id}/pass", User(Test), requests::pass),
        route(p.clone(), "/requests/{id}/send-back", User(Test), requests::send_back),
        route(p.clone(), "/requests/{id}/approve", User(Approve), requests::approve),
        route(p.clone(), "/requests/{id}/reject", User(Approve), requests::reject),
        route(p.clone(), "/requests/{id}/resubmit", User(Request), requests::resubmit),
        route(p.clone(), "/requests/{id}/release", User(Request), requests::release),
        route(p.clone(), "/requests/{id}/withdraw", User(Request), requests::withdraw),
        route(g.clone(), "/projects/{project}/requests/new", User(Request), requests::new_request),
        route(p.clone(), "/projects/{project}/requests", User(Request), requests::create_request),
        route(g.clone(), "/fleet", User(ReadShared), pages::fleet),
        // A live page's change notices; the page's own project or request
        // is checked as the page is (see `live.rs`).
        route(g.clone(), "/live", User(ReadShared), live::live),
        // Accounts (R26), each under the API's rule for the same thing.
        route(g.clone(), "/users", User(ManageUsers), accounts::users),
        route(p.clone(), "/users", User(ManageUsers), accounts::create_user),
        route(p.clone(), "/users/{name}/disable", User(ManageUsers), accounts::disable_user),
        route(p.clone(), "/users/{name}/enable", User(ManageUsers), accounts::enable_user),
        route(p.clone(), "/projects/{project}/members", User(ManageProject), accounts::add_member),
        route(
            g.clone(),
            "/projects/{project}/members/{user}/remove",
            User(ManageProject),
            actions::remove_member_confirm,
        ),
        route(p.clone(), "/projects/{project}/members/{user}/remove", User(ManageProject), accounts::remove_member),
        route(g.clone(), "/tokens", User(ManageOwnTokens), accounts::tokens),
        route(p.clone(), "/tokens", User(ManageOwnTokens), accounts::create_token),
        route(p.clone(), "/tokens/{token_id}/revoke", User(ManageOwnTokens), accounts::revoke_token),
        route(g.clone(), "/hosts", User(ReadShared), pages::hosts),
        // The audit trail is the administrators', as in the API.
        route(g.clone(), "/audit", User(ManageUsers), pages::audit),
        // A project's owners read its part, as in the API.
        route(g, "/projects/{project}/audit", User(ManageProject), pages::project_audit),
    ]
}

/// The web interface's router, built from [`routes`] like the API's.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for r in routes() {
        let guard = Guard { state: state.clone(), rule: r.rule };
        let handler = r.handler.route_layer(axum::middleware::from_fn_with_state(guard, self::guard));
        router = router.route(r.path, handler);
    }
    router
        .layer(axum::middleware::from_fn_with_state(state.clone(), error_pages))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::audit::record))
        .with_state(state)
}

/// The state of the check wrapped around one UI route.
#[derive(Clone)]
pub struct Guard {
    state: AppState,
    rule: Rule,
}

/// Who is asking, in which language, with which CSRF token: what a UI
/// handler of a user route gets (the guard put it there).
#[derive(Clone)]
pub struct Viewer {
    pub user: User,
    pub lang: Lang,
    pub csrf: String,
    /// Where the language switcher comes back to: the request's path for
    /// a GET, the page the form was on (or the dashboard) after a POST.
    pub path: String,
    /// How many release requests wait for the user (the menu's count);
    /// counted for pages, not for the parts htmx fetches.
    pub waiting: usize,
}

impl Viewer {
    /// The frame of a page for this viewer.
    pub fn chrome(&self, title: impl Into<String>, nav: Nav) -> Chrome {
        Chrome::new(self.lang, title, nav, self.path.clone())
            .signed_in(self.user.name.clone(), self.user.is_admin, self.csrf.clone())
            .waiting(self.waiting)
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = PageError;
    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, PageError> {
        parts
            .extensions
            .get::<Viewer>()
            .cloned()
            .ok_or_else(|| PageError(AppError::Internal("this page has no user access rule".into())))
    }
}

/// Checks a UI route's rule: a signed-in session (else the sign-in page),
/// the CSRF token of any POST, then the API's own permission check.
pub async fn guard(State(g): State<Guard>, params: RawPathParams, req: Request, next: Next) -> Response {
    let action = match g.rule {
        Rule::Public | Rule::Agent => return next.run(req).await,
        Rule::User(action) => action,
    };
    let state = &g.state;
    let lang = session::lang(req.headers());
    let path = req.uri().path().to_string();
    let back = back_path(&req);
    let (user, token) = match crate::auth::web_session(state, req.headers()).await {
        Ok(Some(s)) => s,
        // HEAD is answered as GET is (a redirect to the sign-in page).
        Ok(None) if req.method() == Method::GET || req.method() == Method::HEAD => {
            let target = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
            return Redirect::to(&format!("/login?next={}", ferry_web::views::url_encode(target))).into_response();
        }
        Ok(None) => return PageError(AppError::Unauthorized("sign in first".into())).into_response(),
        Err(e) => return PageError(e).into_response(),
    };
    let csrf = session::csrf_token(&token);
    let req = if req.method() == Method::GET || req.method() == Method::HEAD {
        req
    } else {
        match session::check_csrf(req, &csrf).await {
            Ok(req) => req,
            Err(e) => return PageError(e).into_response(),
        }
    };
    let params: HashMap<String, String> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    if let Err(e) = crate::access::check_user(state, &user, &path, &params, action).await {
        return PageError(e).into_response();
    }
    // The menu's count of requests waiting for the user: for whole pages
    // only, not for htmx's partial refreshes or event streams.
    let whole_page = req.method() == Method::GET
        && !req.headers().contains_key("hx-request")
        && !req.headers().get(header::ACCEPT).and_then(|a| a.to_str().ok()).is_some_and(|a| a.contains("event-stream"));
    let waiting = match whole_page {
        true => requests::waiting_count(state, &user).await.unwrap_or(0),
        false => 0,
    };
    let mut req = req;
    req.extensions_mut().insert(crate::auth::Caller(user.clone()));
    req.extensions_mut().insert(Viewer { user, lang, csrf, path: back, waiting });
    next.run(req).await
}

/// A UI handler's failure: answered as an HTML error page in the viewer's
/// language (see [`error_pages`]), with the status the API would give.
#[derive(Debug)]
pub struct PageError(pub AppError);

impl From<AppError> for PageError {
    fn from(e: AppError) -> Self {
        PageError(e)
    }
}

impl From<ferry_store::StoreError> for PageError {
    fn from(e: ferry_store::StoreError) -> Self {
        PageError(e.into())
    }
}

impl From<ferry_web::RenderError> for PageError {
    fn from(e: ferry_web::RenderError) -> Self {
        PageError(AppError::Internal(e.to_string()))
    }
}

/// Marks a response whose page [`error_pages`] still has to render.
#[derive(Clone)]
struct Unrendered(String);

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        if status.is_server_error() {
            tracing::error!("{}", self.0);
        }
        let message = self.0.to_string();
        // A header value is one line of visible characters.
        let one_line: String = message.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        let mut response = status.into_response();
        if let Ok(v) = HeaderValue::from_bytes(one_line.as_bytes()) {
            response.headers_mut().insert(crate::audit::ERROR_HEADER, v);
        }
        response.extensions_mut().insert(Unrendered(message));
        response
    }
}

/// The page a request's language switch leads back to: its own path for a
/// GET, else the local page the form was sent from (the `Referer`), else
/// the dashboard, since only GET pages can be gone back to.
fn back_path(req: &Request) -> String {
    if req.method() == Method::GET || req.method() == Method::HEAD {
        return req.uri().path().to_string();
    }
    let referer = req.headers().get(header::REFERER).and_then(|v| v.to_str().ok()).unwrap_or("");
    let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    // Only a page of this site, as a path: `http(s)://<host>/path`.
    let path = referer
        .split_once("://")
        .and_then(|(_, rest)| rest.strip_prefix(host))
        .filter(|p| !host.is_empty() && p.starts_with('/') && !p.starts_with("//"))
        .map(|p| p.split(['?', '#']).next().unwrap_or(p));
    path.unwrap_or("/").to_string()
}

/// Renders the error pages of [`PageError`]s in the request's language,
/// inside the normal frame (menu, sign-out) when the session is signed in:
/// the one place where a UI failure becomes HTML.
async fn error_pages(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let lang = session::lang(req.headers());
    let here = back_path(&req);
    let signed_in = crate::auth::web_session(&state, req.headers()).await.ok().flatten();
    let response = next.run(req).await;
    let Some(Unrendered(message)) = response.extensions().get::<Unrendered>().cloned() else {
        return response;
    };
    let status = response.status();
    let t = lang.text();
    let shown = match status {
        StatusCode::FORBIDDEN => format!("{} {message}", t.forbidden),
        StatusCode::NOT_FOUND => format!("{} {message}", t.not_found),
        _ => message,
    };
    let mut chrome = Chrome::new(lang, t.error_title, Nav::None, here);
    if let Some((user, token)) = signed_in {
        chrome = chrome.signed_in(user.name, user.is_admin, session::csrf_token(&token));
    }
    let page = ErrorPage { chrome, status: status.as_u16(), message: shown };
    let (mut parts, _) = response.into_parts();
    let body = match ferry_web::render(&page) {
        Ok(html) => {
            parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
            for (name, value) in PAGE_HEADERS {
                parts.headers.insert(name, HeaderValue::from_static(value));
            }
            Body::from(html)
        }
        Err(e) => Body::from(e.to_string()),
    };
    Response::from_parts(parts, body)
}

/// Headers every page carries: pages show live state (never from a cache),
/// and no other site may frame them (clickjacking) or learn their URLs.
const PAGE_HEADERS: [(header::HeaderName, &str); 4] = [
    (header::CACHE_CONTROL, "no-store"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "same-origin"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
];

/// A rendered page.
pub fn html<T: ferry_web::Template>(page: &T) -> Result<Response, PageError> {
    let html = ferry_web::render(page)?;
    Ok((PAGE_HEADERS, Html(html)).into_response())
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod bench;
