//! Users, signing in, API tokens and project members (R26).

use axum::Json;
use axum::extract::{Path, State};
use ferry_domain::{Role, rfc3339_from_millis, validate_name};
use ferry_proto::api::{AddMember, CreateToken, CreateUser, Login, MemberInfo, NewToken, TokenInfo, UserInfo};
use ferry_store::{NewUser, User};

use crate::AppState;
use crate::auth::{self, Caller, USER_TOKEN_PREFIX};
use crate::error::{ApiError, ApiResult};

/// Shorter passwords are refused when a user is created.
const MIN_PASSWORD_LEN: usize = 8;

fn user_info(u: User) -> UserInfo {
    UserInfo { name: u.name, admin: u.is_admin, production: u.production, disabled: u.disabled }
}

async fn issue_token(state: &AppState, user: &User, name: &str) -> ApiResult<NewToken> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(ApiError::BadRequest("a token's name must have 1 to 100 characters".into()));
    }
    let token = auth::new_token(USER_TOKEN_PREFIX);
    let row = state.db.create_api_token(user.id, name, &auth::token_hash(&token), crate::now_ms()).await?;
    Ok(NewToken { id: row.id, user: user.name.clone(), name: row.name, token })
}

/// `POST /api/v1/login`: checks a user's password and answers a new token.
pub async fn login(State(state): State<AppState>, Json(req): Json<Login>) -> ApiResult<Json<NewToken>> {
    let user = check_password(&state, &req.user, req.password).await?;
    let name = req.token_name.unwrap_or_else(|| "login".into());
    Ok(Json(issue_token(&state, &user, &name).await?))
}

/// The enabled user with this name and password: how the API's login and
/// the web interface's sign-in both check one. Every failure reads the
/// same, so that it does not tell which names exist.
pub async fn check_password(state: &AppState, name: &str, password: String) -> ApiResult<User> {
    let refused = || ApiError::Unauthorized("wrong user name or password".into());
    let user = state.db.user(name).await.map_err(|_| refused())?;
    let hash = state.db.password_hash(user.id).await?.ok_or_else(refused)?;
    // Argon2 takes tens of milliseconds of CPU on purpose: off the runtime.
    let ok = tokio::task::spawn_blocking(move || auth::verify_password(&password, &hash))
        .await
        .map_err(|e| ApiError::Internal(format!("checking the password: {e}")))?;
    if !ok {
        return Err(refused());
    }
    if user.disabled {
        return Err(ApiError::Unauthorized(format!("user '{}' is disabled", user.name)));
    }
    Ok(user)
}

/// `GET /api/v1/whoami`.
pub async fn whoami(Caller(user): Caller) -> Json<UserInfo> {
    Json(user_info(user))
}

/// `POST /api/v1/users`.
pub async fn create_user(State(state): State<AppState>, Json(req): Json<CreateUser>) -> ApiResult<Json<UserInfo>> {
    validate_name("user name", &req.name)?;
    if req.password.chars().count() < MIN_PASSWORD_LEN {
        return Err(ApiError::BadRequest(format!("a password needs at least {MIN_PASSWORD_LEN} characters")));
    }
    let password = req.password;
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(format!("hashing the password: {e}")))??;
    let new = NewUser { name: req.name, is_admin: req.admin, production: req.production, password_hash: Some(hash) };
    Ok(Json(user_info(state.db.create_user(&new, crate::now_ms()).await?)))
}

/// `GET /api/v1/users`.
pub async fn list_users(State(state): State<AppState>) -> ApiResult<Json<Vec<UserInfo>>> {
    Ok(Json(state.db.users().await?.into_iter().map(user_info).collect()))
}

async fn set_disabled(state: &AppState, caller: &User, name: &str, disabled: bool) -> ApiResult<Json<UserInfo>> {
    let user = state.db.user(name).await?;
    if disabled && user.id == caller.id {
        return Err(ApiError::BadRequest("you cannot disable yourself".into()));
    }
    state.db.set_user_disabled(user.id, disabled).await?;
    Ok(Json(user_info(state.db.user(name).await?)))
}

/// `POST /api/v1/users/{name}/disable`: the user's tokens stop working at once.
pub async fn disable_user(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<UserInfo>> {
    set_disabled(&state, &caller, &name, true).await
}

/// `POST /api/v1/users/{name}/enable`.
pub async fn enable_user(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<UserInfo>> {
    set_disabled(&state, &caller, &name, false).await
}

/// `POST /api/v1/tokens`: a new token for the caller.
pub async fn create_token(
    State(state): State<AppState>,
    Caller(user): Caller,
    Json(req): Json<CreateToken>,
) -> ApiResult<Json<NewToken>> {
    Ok(Json(issue_token(&state, &user, &req.name).await?))
}

/// `GET /api/v1/tokens`: the caller's tokens.
pub async fn list_tokens(State(state): State<AppState>, Caller(user): Caller) -> ApiResult<Json<Vec<TokenInfo>>> {
    let tokens = state.db.api_tokens(user.id).await?;
    Ok(Json(
        tokens
            .into_iter()
            .map(|t| TokenInfo { id: t.id, name: t.name, created_at: rfc3339_from_millis(t.created_at) })
            .collect(),
    ))
}

/// `DELETE /api/v1/tokens/{token_id}`: revokes one of the caller's tokens.
pub async fn revoke_token(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(token_id): Path<i64>,
) -> ApiResult<Json<serde_json::Value>> {
    if !state.db.revoke_api_token(user.id, token_id).await? {
        return Err(ApiError::NotFound(format!("you have no API token {token_id}")));
    }
    Ok(Json(serde_json::json!({ "revoked": token_id })))
}

/// `POST /api/v1/projects/{project}/members`: gives a user a role, replacing
/// the one they had.
pub async fn add_member(
    State(state): State<AppState>,
    Path(project): Path<String>,
    Json(req): Json<AddMember>,
) -> ApiResult<Json<MemberInfo>> {
    let role: Role = req.role.parse().map_err(ApiError::BadRequest)?;
    let project = state.db.project(&project).await?;
    let user = state.db.user(&req.user).await?;
    let now = crate::now_ms();
    state.db.set_member(&project, &user, role, now).await?;
    Ok(Json(MemberInfo { user: user.name, role: role.to_string(), created_at: rfc3339_from_millis(now) }))
}

/// `GET /api/v1/projects/{project}/members`.
pub async fn list_members(
    State(state): State<AppState>,
    Path(project): Path<String>,
) -> ApiResult<Json<Vec<MemberInfo>>> {
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
pub async fn remove_member(
    State(state): State<AppState>,
    Path((project, user)): Path<(String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    let project = state.db.project(&project).await?;
    let member = state.db.user(&user).await?;
    if !state.db.remove_member(&project, &member).await? {
        return Err(ApiError::NotFound(format!("user '{user}' is not a member of project '{}'", project.name)));
    }
    Ok(Json(serde_json::json!({ "removed": user })))
}
