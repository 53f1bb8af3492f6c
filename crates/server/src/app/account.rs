//! Accounts (R26): users, their API tokens, and project members. The API and
//! the web pages both come through here; access rules are the route table's.

use ferry_domain::{Role, rfc3339_from_millis, validate_name};
use ferry_proto::api::{AddMember, CreateUser, MemberInfo, NewToken, TokenInfo, UpdateUser, UserInfo};
use ferry_store::{NewUser, User};

use crate::AppState;
use crate::auth::{self, USER_TOKEN_PREFIX};
use crate::error::{AppError, AppResult};

/// Shorter passwords are refused when a user is created.
const MIN_PASSWORD_LEN: usize = 8;

/// A user as the API and the pages show one.
pub(crate) fn user_info(u: User) -> UserInfo {
    UserInfo { name: u.name, admin: u.is_admin, production: u.production, disabled: u.disabled, email: u.email }
}

/// A new API token for `user`, shown once.
pub(crate) async fn issue_token(state: &AppState, user: &User, name: &str) -> AppResult<NewToken> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(AppError::BadRequest("a token's name must have 1 to 100 characters".into()));
    }
    let token = auth::new_token(USER_TOKEN_PREFIX);
    let row = state.db.create_api_token(user.id, name, &auth::token_hash(&token), crate::now_ms()).await?;
    Ok(NewToken { id: row.id, user: user.name.clone(), name: row.name, token })
}

/// Creates a user with a password (hashed with argon2id off the async
/// threads).
pub(crate) async fn create_user(state: &AppState, req: CreateUser) -> AppResult<UserInfo> {
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
    Ok(user_info(state.db.create_user(&new, crate::now_ms()).await?))
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

/// A user's e-mail address (empty clears it), administrator flag and
/// production right; what is not given keeps its value. Everything is
/// checked before anything changes.
pub(crate) async fn update_user(state: &AppState, caller: &User, name: &str, req: UpdateUser) -> AppResult<UserInfo> {
    let user = state.db.user(name).await?;
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
    Ok(user_info(state.db.user(name).await?))
}

/// Every user, by name.
pub(crate) async fn users(state: &AppState) -> AppResult<Vec<UserInfo>> {
    Ok(state.db.users().await?.into_iter().map(user_info).collect())
}

/// Disables a user (their tokens stop working at once) or enables one
/// again. Nobody disables themselves.
pub(crate) async fn set_disabled(state: &AppState, caller: &User, name: &str, disabled: bool) -> AppResult<UserInfo> {
    let user = state.db.user(name).await?;
    if disabled && user.id == caller.id {
        return Err(AppError::BadRequest("you cannot disable yourself".into()));
    }
    state.db.set_user_disabled(user.id, disabled).await?;
    Ok(user_info(state.db.user(name).await?))
}

/// `user`'s own API tokens (never their values).
pub(crate) async fn tokens(state: &AppState, user: &User) -> AppResult<Vec<TokenInfo>> {
    let tokens = state.db.api_tokens(user.id).await?;
    Ok(tokens
        .into_iter()
        .map(|t| TokenInfo { id: t.id, name: t.name, created_at: rfc3339_from_millis(t.created_at) })
        .collect())
}

/// Revokes one of `user`'s own tokens; another user's is "not found".
pub(crate) async fn revoke_token(state: &AppState, user: &User, token_id: i64) -> AppResult<()> {
    if !state.db.revoke_api_token(user.id, token_id).await? {
        return Err(AppError::NotFound(format!("you have no API token {token_id}")));
    }
    Ok(())
}

/// Gives a user a role in a project, replacing the one they had, and tells
/// the project's channels.
pub(crate) async fn add_member(
    state: &AppState,
    caller: &User,
    project: &str,
    req: AddMember,
) -> AppResult<MemberInfo> {
    let role: Role = req.role.parse().map_err(AppError::BadRequest)?;
    let project = state.db.project(project).await?;
    let user = state.db.user(&req.user).await?;
    let now = crate::now_ms();
    state.db.set_member(&project, &user, role, now).await?;
    let change = format!("{} is a {role} of the project now (set by {})", user.name, caller.name);
    super::project::changed(state, &project.name, &caller.name, None, change).await;
    Ok(MemberInfo { user: user.name, role: role.to_string(), created_at: rfc3339_from_millis(now) })
}

/// A project's members and their roles.
pub(crate) async fn members(state: &AppState, project: &str) -> AppResult<Vec<MemberInfo>> {
    let project = state.db.project(project).await?;
    Ok(state
        .db
        .members(&project)
        .await?
        .into_iter()
        .map(|m| MemberInfo { user: m.user, role: m.role.to_string(), created_at: rfc3339_from_millis(m.created_at) })
        .collect())
}

/// Takes a user's role in a project away, and tells the project's channels.
pub(crate) async fn remove_member(state: &AppState, caller: &User, project: &str, user: &str) -> AppResult<()> {
    let project = state.db.project(project).await?;
    let member = state.db.user(user).await?;
    if !state.db.remove_member(&project, &member).await? {
        return Err(AppError::NotFound(format!("user '{user}' is not a member of project '{}'", project.name)));
    }
    let change = format!("{user} is no longer a member of the project (removed by {})", caller.name);
    super::project::changed(state, &project.name, &caller.name, None, change).await;
    Ok(())
}
