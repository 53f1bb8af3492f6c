//! Users, project members and one's own API tokens in the browser (R26).
//! Each form calls the use case the API calls (`app::account`), under the
//! same rule.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use ferry_proto::api::{AddMember, CreateUser};
use ferry_web::views::{Nav, TokensPage, UserItem, UsersPage};

use super::{PageError, Viewer, html};
use crate::AppState;
use crate::app::account;
use crate::auth::Caller;

type PageResult = Result<Response, PageError>;

/// `GET /users`.
pub async fn users(State(state): State<AppState>, v: Viewer) -> PageResult {
    let users = account::users(&state).await?;
    let users = users
        .into_iter()
        .map(|u| UserItem { name: u.name, admin: u.admin, production: u.production, disabled: u.disabled })
        .collect();
    html(&UsersPage { chrome: v.chrome(v.lang.text().nav_users, Nav::Users), users })
}

#[derive(serde::Deserialize)]
pub struct UserForm {
    name: String,
    password: String,
    #[serde(default)]
    admin: Option<String>,
    #[serde(default)]
    production: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

/// `POST /users`.
pub async fn create_user(State(state): State<AppState>, axum::Form(f): axum::Form<UserForm>) -> PageResult {
    let req = CreateUser {
        name: f.name.trim().to_string(),
        admin: f.admin.is_some(),
        production: f.production.is_some(),
        password: f.password,
        email: f.email.map(|e| e.trim().to_string()).filter(|e| !e.is_empty()),
    };
    account::create_user(&state, req).await?;
    Ok(Redirect::to("/users").into_response())
}

/// `POST /users/{name}/disable`.
pub async fn disable_user(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> PageResult {
    account::set_disabled(&state, &caller, &name, true).await?;
    Ok(Redirect::to("/users").into_response())
}

/// `POST /users/{name}/enable`.
pub async fn enable_user(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> PageResult {
    account::set_disabled(&state, &caller, &name, false).await?;
    Ok(Redirect::to("/users").into_response())
}

#[derive(serde::Deserialize)]
pub struct MemberForm {
    user: String,
    role: String,
}

/// `POST /projects/{project}/members`.
pub async fn add_member(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(project): Path<String>,
    axum::Form(f): axum::Form<MemberForm>,
) -> PageResult {
    let req = AddMember { user: f.user.trim().to_string(), role: f.role };
    account::add_member(&state, &caller, &project, req).await?;
    Ok(Redirect::to(&format!("/projects/{project}")).into_response())
}

/// `POST /projects/{project}/members/{user}/remove`.
pub async fn remove_member(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((project, user)): Path<(String, String)>,
) -> PageResult {
    account::remove_member(&state, &caller, &project, &user).await?;
    Ok(Redirect::to(&format!("/projects/{project}")).into_response())
}

async fn tokens_page(state: AppState, v: Viewer, caller: Caller, new_token: Option<String>) -> PageResult {
    let tokens = account::tokens(&state, &caller.0).await?;
    let tokens = tokens.into_iter().map(|t| (t.id, t.name, super::pages::when_text(&t.created_at))).collect();
    html(&TokensPage { chrome: v.chrome(v.lang.text().nav_tokens, Nav::Tokens), tokens, new_token })
}

/// `GET /tokens`: my API tokens.
pub async fn tokens(State(state): State<AppState>, v: Viewer, caller: Caller) -> PageResult {
    tokens_page(state, v, caller, None).await
}

#[derive(serde::Deserialize)]
pub struct TokenForm {
    name: String,
}

/// `POST /tokens`: a new token, shown on the answer this once (never
/// stored in the clear, so never shown again).
pub async fn create_token(
    State(state): State<AppState>,
    v: Viewer,
    caller: Caller,
    axum::Form(f): axum::Form<TokenForm>,
) -> PageResult {
    let new = account::issue_token(&state, &caller.0, &f.name).await?;
    let mut page = tokens_page(state, v, caller, Some(new.token)).await?;
    // The answer holds a secret: kept out of caches, like every page.
    page.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    Ok(page)
}

/// `POST /tokens/{token_id}/revoke`.
pub async fn revoke_token(State(state): State<AppState>, Caller(caller): Caller, Path(id): Path<i64>) -> PageResult {
    account::revoke_token(&state, &caller, id).await?;
    Ok(Redirect::to("/tokens").into_response())
}
