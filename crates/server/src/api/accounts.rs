//! Users, signing in, API tokens and project members (R26).

use axum::Json;
use axum::extract::{Path, State};
use ferry_domain::{Role, rfc3339_from_millis, validate_name};
use ferry_proto::api::{
    AddMember, CreateToken, CreateUser, Login, MemberInfo, NewToken, TokenInfo, UpdateUser, UserInfo,
};
use ferry_store::{NewUser, User};

use crate::AppState;
use crate::app::{AppError, AppResult};
use crate::auth::{self, Caller, USER_TOKEN_PREFIX};

/// Shorter passwords are refused when a user is created.
const MIN_PASSWORD_LEN: usize = 8;

fn user_info(u: User) -> UserInfo {
    UserInfo { name: u.name, admin: u.is_admin, production: u.production, disabled: u.disabled, email: u.email }
}

async fn issue_token(state: &AppState, user: &User, name: &str) -> AppResult<NewToken> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(AppError::BadRequest("a token's name must have 1 to 100 characters".into()));
    }
    let token = auth::new_token(USER_TOKEN_PREFIX);
    let row = state.db.create_api_token(user.id, name, &auth::token_hash(&token), crate::now_ms()).await?;
    Ok(NewToken { id: row.id, user: user.name.clone(), name: row.name, token })
}

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
    Ok(Json(issue_token(&state, &user, &name).await?))
}

/// `GET /api/v1/whoami`.
#[utoipa::path(
    get,
    path = "/api/v1/whoami",
    tag = "accounts",
    responses((status = 200, body = UserInfo)),
)]
pub async fn whoami(Caller(user): Caller) -> Json<UserInfo> {
    Json(user_info(user))
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
    validate_name("user name", &req.name)?;
    let email = checked_email(req.email)?;
    if req.password.chars().count() < MIN_PASSWORD_LEN {
        return Err(AppError::BadRequest(format!("a password needs at least {MIN_PASSWORD_LEN} characters")));
    }
    let password = req.password;
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|e| AppError::Internal(format!("hashing the password: {e}")))??;
    let new =
        NewUser { name: req.name, is_admin: req.admin, production: req.production, password_hash: Some(hash), email };
    Ok(Json(user_info(state.db.create_user(&new, crate::now_ms()).await?)))
}

/// An e-mail address as given, trimmed and checked; empty means none.
fn checked_email(email: Option<String>) -> AppResult<Option<String>> {
    match email.map(|e| e.trim().to_string()).filter(|e| !e.is_empty()) {
        Some(e) => {
            ferry_domain::notify::check_email(&e).map_err(|err| AppError::BadRequest(format!("--email: {err}")))?;
            Ok(Some(e))
        }
        None => Ok(None),
    }
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
    let user = state.db.user(&name).await?;
    if req.email.is_none() && req.admin.is_none() && req.production.is_none() {
        return Err(AppError::BadRequest("nothing to change: give --email, --admin or --production".into()));
    }
    let email = match req.email {
        Some(e) => Some(checked_email(Some(e))?),
        None => None,
    };
    if req.admin == Some(false) && user.id == caller.id {
        return Err(AppError::BadRequest(
            "you cannot take the administrator flag from yourself: ask another administrator".into(),
        ));
    }
    if let Some(email) = &email {
        state.db.set_user_email(user.id, email.as_deref()).await?;
    }
    if req.admin.is_some() || req.production.is_some() {
        let admin = req.admin.unwrap_or(user.is_admin);
        let production = req.production.unwrap_or(user.production);
        state.db.set_user_rights(user.id, admin, production).await?;
    }
    Ok(Json(user_info(state.db.user(&name).await?)))
}

/// `GET /api/v1/users`.
#[utoipa::path(
    get,
    path = "/api/v1/users",
    tag = "accounts",
    responses((status = 200, body = Vec<UserInfo>)),
)]
pub async fn list_users(State(state): State<AppState>) -> AppResult<Json<Vec<UserInfo>>> {
    Ok(Json(state.db.users().await?.into_iter().map(user_info).collect()))
}

async fn set_disabled(state: &AppState, caller: &User, name: &str, disabled: bool) -> AppResult<Json<UserInfo>> {
    let user = state.db.user(name).await?;
    if disabled && user.id == caller.id {
        return Err(AppError::BadRequest("you cannot disable yourself".into()));
    }
    state.db.set_user_disabled(user.id, disabled).await?;
    Ok(Json(user_info(state.db.user(name).await?)))
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
    set_disabled(&state, &caller, &name, true).await
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
    set_disabled(&state, &caller, &name, false).await
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
    Ok(Json(issue_token(&state, &user, &req.name).await?))
}

/// `GET /api/v1/tokens`: the caller's tokens.
#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    tag = "accounts",
    responses((status = 200, body = Vec<TokenInfo>)),
)]
pub async fn list_tokens(State(state): State<AppState>, Caller(user): Caller) -> AppResult<Json<Vec<TokenInfo>>> {
    let tokens = state.db.api_tokens(user.id).await?;
    Ok(Json(
        tokens
            .into_iter()
            .map(|t| TokenInfo { id: t.id, name: t.name, created_at: rfc3339_from_millis(t.created_at) })
            .collect(),
    ))
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
    if !state.db.revoke_api_token(user.id, token_id).await? {
        return Err(AppError::NotFound(format!("you have no API token {token_id}")));
    }
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
    let role: Role = req.role.parse().map_err(AppError::BadRequest)?;
    let project = state.db.project(&project).await?;
    let user = state.db.user(&req.user).await?;
    let now = crate::now_ms();
    state.db.set_member(&project, &user, role, now).await?;
    let change = format!("{} is a {role} of the project now (set by {})", user.name, caller.name);
    super::projects::changed(&state, &project.name, &caller.name, None, change).await;
    Ok(Json(MemberInfo { user: user.name, role: role.to_string(), created_at: rfc3339_from_millis(now) }))
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
    let project = state.db.project(&project).await?;
    Ok(Json(
        state
            .db
            .members(&project)
            .await?
            .into_iter()
            .map(|m| MemberInfo {
                user: m.user,
                role: m.role.to_string(),
                created_at: rfc3339_from_millis(m.created_at),
            })
            .collect(),
    ))
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
    let project = state.db.project(&project).await?;
    let member = state.db.user(&user).await?;
    if !state.db.remove_member(&project, &member).await? {
        return Err(AppError::NotFound(format!("user '{user}' is not a member of project '{}'", project.name)));
    }
    let change = format!("{user} is no longer a member of the project (removed by {})", caller.name);
    super::projects::changed(&state, &project.name, &caller.name, None, change).await;
    Ok(Json(serde_json::json!({ "removed": user })))
}
