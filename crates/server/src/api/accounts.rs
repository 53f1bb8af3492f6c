//! Users, signing in, API tokens and project members (R26).

use axum::Json;
use axum::extract::{Path, State};
use ferry_proto::api::{
    AddMember, CreateToken, CreateUser, Login, MemberInfo, NewToken, TokenInfo, UpdateUser, UserInfo,
};

use crate::AppState;
use crate::app::account;
use crate::auth::{self, Caller};
use crate::error::AppResult;

/// `POST /api/v1/login`: checks a user's password and answers a new token.
#[utoipa::path(
    post,
    path = "/api/v1/login",
    tag = "accounts",
    request_body = Login,
    responses((status = 200, body = NewToken)),
)]
pub async fn login(
    State(state): State<AppState>,
    crate::agent_channel::Peer(peer): crate::agent_channel::Peer,
    Json(req): Json<Login>,
) -> AppResult<Json<NewToken>> {
    let user = auth::sign_in(&state, &req.user, req.password, peer.map(|p| p.ip())).await?;
    let name = req.token_name.unwrap_or_else(|| "login".into());
    Ok(Json(account::issue_token(&state, &user, &name).await?))
}

/// `GET /api/v1/whoami`.
#[utoipa::path(
    get,
    path = "/api/v1/whoami",
    tag = "accounts",
    responses((status = 200, body = UserInfo)),
)]
pub async fn whoami(Caller(user): Caller) -> Json<UserInfo> {
    Json(account::user_info(user))
}

/// `POST /api/v1/users`.
#[utoipa::path(
    post,
    path = "/api/v1/users",
    tag = "accounts",
    request_body = CreateUser,
    responses((status = 200, body = UserInfo)),
)]
pub async fn create_user(State(state): State<AppState>, Json(req): Json<CreateUser>) -> AppResult<Json<UserInfo>> {
    Ok(Json(account::create_user(&state, req).await?))
}

/// `POST /api/v1/users/{name}`: a user's e-mail address (empty clears it),
/// administrator flag and production right; what is not given keeps its
/// value. Everything is checked before anything changes.
#[utoipa::path(
    post,
    path = "/api/v1/users/{name}",
    tag = "accounts",
    params(("name" = String, Path)),
    request_body = UpdateUser,
    responses((status = 200, body = UserInfo)),
)]
pub async fn update_user(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    Json(req): Json<UpdateUser>,
) -> AppResult<Json<UserInfo>> {
    Ok(Json(account::update_user(&state, &caller, &name, req).await?))
}

/// `GET /api/v1/users`.
#[utoipa::path(
    get,
    path = "/api/v1/users",
    tag = "accounts",
    responses((status = 200, body = Vec<UserInfo>)),
)]
pub async fn list_users(State(state): State<AppState>) -> AppResult<Json<Vec<UserInfo>>> {
    Ok(Json(account::users(&state).await?))
}

/// `POST /api/v1/users/{name}/disable`: the user's tokens stop working at once.
#[utoipa::path(
    post,
    path = "/api/v1/users/{name}/disable",
    tag = "accounts",
    params(("name" = String, Path)),
    responses((status = 200, body = UserInfo)),
)]
pub async fn disable_user(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> AppResult<Json<UserInfo>> {
    Ok(Json(account::set_disabled(&state, &caller, &name, true).await?))
}

/// `POST /api/v1/users/{name}/enable`.
#[utoipa::path(
    post,
    path = "/api/v1/users/{name}/enable",
    tag = "accounts",
    params(("name" = String, Path)),
    responses((status = 200, body = UserInfo)),
)]
pub async fn enable_user(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> AppResult<Json<UserInfo>> {
    Ok(Json(account::set_disabled(&state, &caller, &name, false).await?))
}

/// `POST /api/v1/tokens`: a new token for the caller.
#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    tag = "accounts",
    request_body = CreateToken,
    responses((status = 200, body = NewToken)),
)]
pub async fn create_token(
    State(state): State<AppState>,
    Caller(user): Caller,
    Json(req): Json<CreateToken>,
) -> AppResult<Json<NewToken>> {
    Ok(Json(account::issue_token(&state, &user, &req.name).await?))
}

/// `GET /api/v1/tokens`: the caller's tokens.
#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    tag = "accounts",
    responses((status = 200, body = Vec<TokenInfo>)),
)]
pub async fn list_tokens(State(state): State<AppState>, Caller(user): Caller) -> AppResult<Json<Vec<TokenInfo>>> {
    Ok(Json(account::tokens(&state, &user).await?))
}

/// `DELETE /api/v1/tokens/{token_id}`: revokes one of the caller's tokens.
#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{token_id}",
    tag = "accounts",
    params(("token_id" = i64, Path)),
    responses((status = 200, body = Object)),
)]
pub async fn revoke_token(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(token_id): Path<i64>,
) -> AppResult<Json<serde_json::Value>> {
    account::revoke_token(&state, &user, token_id).await?;
    Ok(Json(serde_json::json!({ "revoked": token_id })))
}

/// `POST /api/v1/projects/{project}/members`: gives a user a role, replacing
/// the one they had.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/members",
    tag = "accounts",
    params(("project" = String, Path)),
    request_body = AddMember,
    responses((status = 200, body = MemberInfo)),
)]
pub async fn add_member(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(project): Path<String>,
    Json(req): Json<AddMember>,
) -> AppResult<Json<MemberInfo>> {
    Ok(Json(account::add_member(&state, &caller, &project, req).await?))
}

/// `GET /api/v1/projects/{project}/members`.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{project}/members",
    tag = "accounts",
    params(("project" = String, Path)),
    responses((status = 200, body = Vec<MemberInfo>)),
)]
pub async fn list_members(
    State(state): State<AppState>,
    Path(project): Path<String>,
) -> AppResult<Json<Vec<MemberInfo>>> {
    Ok(Json(account::members(&state, &project).await?))
}

/// `DELETE /api/v1/projects/{project}/members/{user}`.
#[utoipa::path(
    delete,
    path = "/api/v1/projects/{project}/members/{user}",
    tag = "accounts",
    params(("project" = String, Path), ("user" = String, Path)),
    responses((status = 200, body = Object)),
)]
pub async fn remove_member(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((project, user)): Path<(String, String)>,
) -> AppResult<Json<serde_json::Value>> {
    account::remove_member(&state, &caller, &project, &user).await?;
    Ok(Json(serde_json::json!({ "removed": user })))
}
