//! Browser sessions: signing in and out, the session cookie, the CSRF token
//! derived from it, and the language cookie.
//!
//! The cookie holds a random token (`fy_s_...`); the database keeps only its
//! SHA-256, like API tokens, and each request reads the user again, so a
//! disabled user is refused at once. The cookie is HttpOnly, SameSite=Lax,
//! and Secure when the server is configured for https
//! (`ServerConfig::secure_cookies`). A session ends after
//! `ServerConfig::session_ttl` or when its user signs out.

use axum::Form;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use ferry_web::Lang;
use ferry_web::views::{Chrome, LoginPage, Nav};

use super::{PageError, html};
use crate::AppState;
use crate::auth::{SESSION_COOKIE, cookie, same_hash};
use crate::error::AppError;

/// The language cookie's name.
pub const LANG_COOKIE: &str = "ferry_lang";

/// The language of a request: the cookie set by the switcher, else the
/// browser's `Accept-Language`.
pub fn lang(headers: &HeaderMap) -> Lang {
    if let Some(l) = cookie(headers, LANG_COOKIE).and_then(Lang::from_code) {
        return l;
    }
    headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .map(Lang::from_accept_language)
        .unwrap_or_default()
}

/// The session's CSRF token: derived from the session token, which a page
/// of another site cannot read, and different from what the database holds.
pub fn csrf_token(session_token: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("ferry-csrf\0{session_token}").as_bytes());
    hex::encode(&digest[..16])
}

/// Refuses a request without the session's CSRF token, from the
/// `x-csrf-token` header (htmx) or the form's `csrf` field; hands the
/// request back with its body intact.
pub async fn check_csrf(req: Request, expected: &str) -> Result<Request, AppError> {
    let refused =
        || AppError::Forbidden("the form's CSRF token is missing or wrong: reload the page and try again".into());
    if let Some(h) = req.headers().get("x-csrf-token").and_then(|v| v.to_str().ok()) {
        return if same_hash(h, expected) { Ok(req) } else { Err(refused()) };
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, crate::audit::FORM_BODY_LIMIT)
        .await
        .map_err(|e| AppError::BadRequest(format!("cannot read the form: {e}")))?;
    let given = form_urlencoded::parse(&bytes).find(|(k, _)| k == "csrf").map(|(_, v)| v.into_owned());
    match given {
        Some(t) if same_hash(&t, expected) => Ok(Request::from_parts(parts, Body::from(bytes))),
        _ => Err(refused()),
    }
}

/// Only paths of this site are places to go back to after signing in.
fn local_path(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') { next } else { "/" }
}

#[derive(serde::Deserialize, Default)]
pub struct NextQuery {
    #[serde(default)]
    next: Option<String>,
}

/// `GET /login`.
pub async fn login_form(headers: HeaderMap, Query(q): Query<NextQuery>) -> Result<Response, PageError> {
    let lang = lang(&headers);
    let next = local_path(q.next.as_deref().unwrap_or("/")).to_string();
    html(&LoginPage {
        chrome: Chrome::new(lang, lang.text().sign_in, Nav::None, "/login"),
        error: false,
        user: String::new(),
        next,
    })
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    user: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /login`: checks the password as the API's login does, starts a
/// session and goes to where the user was going. A refusal answers 401 with
/// the form again, and the audit trail records it like the API's.
pub async fn login(
    State(state): State<AppState>,
    crate::agent_channel::Peer(peer): crate::agent_channel::Peer,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let lang = lang(&headers);
    // The sign-in form has no session to tie a CSRF token to; a browser
    // says when another site sends it (login CSRF), and that is refused.
    if headers.get("sec-fetch-site").is_some_and(|v| v.as_bytes() == b"cross-site") {
        return PageError(AppError::Forbidden("signing in from another site is refused".into())).into_response();
    }
    let next = local_path(form.next.as_deref().unwrap_or("/")).to_string();
    let user = match crate::auth::sign_in(&state, &form.user, form.password, peer.map(|p| p.ip())).await {
        Ok(user) => user,
        Err(e) => {
            let page = LoginPage {
                chrome: Chrome::new(lang, lang.text().sign_in, Nav::None, "/login"),
                error: true,
                user: form.user,
                next,
            };
            let mut response = match html(&page) {
                Ok(r) => r,
                Err(e) => return e.into_response(),
            };
            *response.status_mut() = e.status();
            if let Ok(v) = HeaderValue::from_str(&e.to_string()) {
                response.headers_mut().insert(crate::audit::ERROR_HEADER, v);
            }
            return response;
        }
    };
    let token = match crate::auth::start_web_session(&state, &user).await {
        Ok(token) => token,
        Err(e) => return PageError(e).into_response(),
    };
    let cookie = session_cookie(&state, &token, state.config.session_ttl.as_secs());
    ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
}

fn session_cookie(state: &AppState, value: &str, max_age: u64) -> String {
    let secure = if state.config.secure_cookies { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

/// `POST /logout`: ends the session and forgets the cookie.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, PageError> {
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        crate::auth::end_web_session(&state, token).await?;
    }
    let cookie = session_cookie(&state, "", 0);
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response())
}

#[derive(serde::Deserialize, Default)]
pub struct BackQuery {
    #[serde(default)]
    back: Option<String>,
}

/// `GET /lang/{code}`: remembers the language in a cookie and goes back.
pub async fn set_lang(Path(code): Path<String>, Query(q): Query<BackQuery>) -> Response {
    let back = local_path(q.back.as_deref().unwrap_or("/")).to_string();
    let Some(lang) = Lang::from_code(&code) else {
        return (StatusCode::NOT_FOUND, "unknown language").into_response();
    };
    let cookie = format!("{LANG_COOKIE}={}; Path=/; SameSite=Lax; Max-Age=31536000", lang.code());
    ([(header::SET_COOKIE, cookie)], Redirect::to(&back)).into_response()
}
