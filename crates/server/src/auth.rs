//! Credentials: user API tokens and agent tokens, both random and shown once;
//! the database keeps only their SHA-256.
//!
//! The two kinds carry different prefixes and live in different tables, so a
//! user token can never act as an agent, nor the reverse.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use ferry_store::{Host, User};
use rand::RngExt;

use crate::AppState;
use crate::error::AppError;

pub const USER_TOKEN_PREFIX: &str = "fy_u_";
pub const AGENT_TOKEN_PREFIX: &str = "fy_a_";
pub const JOIN_TOKEN_PREFIX: &str = "fy_j_";

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "ferry_session";
/// What a browser session's token starts with.
const SESSION_TOKEN_PREFIX: &str = "fy_s_";

/// The value of cookie `name`, if the request has it.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// The enabled user of the request's session and the session's token;
/// `None` without a session that is still valid.
pub async fn web_session(state: &AppState, headers: &HeaderMap) -> Result<Option<(User, String)>, AppError> {
    let Some(token) = cookie(headers, SESSION_COOKIE).filter(|t| t.starts_with(SESSION_TOKEN_PREFIX)) else {
        return Ok(None);
    };
    match state.db.user_for_web_session(&token_hash(token), crate::now_ms()).await? {
        Some(user) if user.disabled => Ok(None),
        Some(user) => Ok(Some((user, token.to_string()))),
        None => Ok(None),
    }
}

/// Starts a browser session for `user`, valid for the server's session
/// length; returns its token, for the cookie (the database keeps its hash).
pub async fn start_web_session(state: &AppState, user: &User) -> Result<String, AppError> {
    let token = new_token(SESSION_TOKEN_PREFIX);
    let now = crate::now_ms();
    let ttl = i64::try_from(state.config.session_ttl.as_millis()).unwrap_or(i64::MAX);
    state.db.create_web_session(user.id, &token_hash(&token), now, now.saturating_add(ttl)).await?;
    Ok(token)
}

/// Ends the browser session of `token`, if there is one.
pub async fn end_web_session(state: &AppState, token: &str) -> Result<(), AppError> {
    state.db.end_web_session(&token_hash(token)).await?;
    Ok(())
}

/// The user of a request's session, for naming them in the audit trail.
pub async fn session_user(state: &AppState, headers: &HeaderMap) -> Option<User> {
    web_session(state, headers).await.ok().flatten().map(|(u, _)| u)
}

/// A new random token with the given prefix.
pub fn new_token(prefix: &str) -> String {
    let bytes: [u8; 32] = rand::rng().random();
    format!("{prefix}{}", hex::encode(bytes))
}

/// What the database stores for a token.
pub fn token_hash(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// An argon2id hash of a password (PHC string, with its own random salt and
/// the parameters it was made with).
pub fn hash_password(password: &str) -> Result<String, AppError> {
    use argon2::password_hash::PasswordHasher;
    let salt: [u8; 16] = rand::rng().random();
    let hash: argon2::password_hash::phc::PasswordHash = argon2::Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map_err(|e| AppError::Internal(format!("hashing the password: {e}")))?;
    Ok(hash.to_string())
}

/// Whether `password` matches a stored hash; an unreadable hash matches nothing.
pub fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::password_hash::PasswordVerifier;
    match argon2::password_hash::phc::PasswordHash::new(hash) {
        Ok(parsed) => argon2::Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// What every refused sign-in says. One answer for an unknown user, a wrong
/// password and a locked account, so that the answer does not tell which
/// users exist; the audit trail records which it was.
pub const SIGN_IN_REFUSED: &str = "wrong user name or password, or the account refuses passwords for a while after \
     too many failed sign-ins (an administrator lifts that with `ferry user enable NAME`)";

/// A hash to check passwords of unknown users against, so that they take as
/// long to refuse as a known user's wrong password.
fn decoy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password("ferry-decoy-password").unwrap_or_default())
}

/// Failed sign-ins from one address within this window count together.
const ADDRESS_WINDOW_MS: i64 = 15 * 60 * 1000;
/// Failed sign-ins one address may make within the window, across users.
pub const ADDRESS_FAILURES: usize = 30;

/// Failed sign-ins per address, across every user: whoever tries many
/// accounts (or one account many times) from one place is refused there for a
/// while, before any account is looked at. Kept in memory: a restart forgets
/// it, the per-account locks in the database do not.
#[derive(Debug, Default)]
pub struct AddressLimit {
    failures: std::sync::Mutex<std::collections::HashMap<String, std::collections::VecDeque<i64>>>,
}

impl AddressLimit {
    /// Whether `address` has used up its failures at `now`.
    fn exhausted(&self, address: &str, now: i64) -> bool {
        let Ok(mut map) = self.failures.lock() else { return false };
        let Some(times) = map.get_mut(address) else { return false };
        while times.front().is_some_and(|t| *t <= now - ADDRESS_WINDOW_MS) {
            times.pop_front();
        }
        times.len() >= ADDRESS_FAILURES
    }

    fn record(&self, address: &str, now: i64) {
        let Ok(mut map) = self.failures.lock() else { return };
        // Bounded: old addresses go once the map grows large.
        if map.len() > 100_000 {
            map.retain(|_, times| times.back().is_some_and(|t| *t > now - ADDRESS_WINDOW_MS));
        }
        let times = map.entry(address.to_string()).or_default();
        times.push_back(now);
        while times.len() > ADDRESS_FAILURES {
            times.pop_front();
        }
    }
}

/// Checks a user name and password, as every way of signing in does, for a
/// request from `address`. An address that failed too often recently is
/// refused outright; an account that failed too often *from this address*
/// (`ferry_domain::access::sign_in_locked_until`) refuses passwords from
/// there, whatever the password, while other addresses may still sign in, so
/// nobody can keep someone else's account locked. A failure is counted, a
/// success clears its address's count. Unknown users, wrong passwords and
/// locked accounts get the same answer, after the same work.
pub async fn sign_in(
    state: &AppState,
    name: &str,
    password: String,
    address: Option<std::net::IpAddr>,
) -> Result<User, AppError> {
    let refused = || AppError::Unauthorized(SIGN_IN_REFUSED.into());
    let address = address.map_or_else(|| "unknown".to_string(), |a| a.to_string());
    let now = crate::now_ms();
    if state.sign_in_limit.exhausted(&address, now) {
        tracing::warn!(%address, "sign-in refused: too many failed sign-ins from this address");
        return Err(AppError::Unauthorized(format!(
            "too many failed sign-ins from your address ({address}); try again in 15 minutes"
        )));
    }
    let user = state.db.user(name).await.ok();
    let hash = match &user {
        Some(u) => state.db.password_hash(u.id).await?,
        None => None,
    };
    let checked = hash.clone().unwrap_or_else(|| decoy_hash().to_string());
    // Argon2 takes tens of milliseconds of CPU on purpose: off the runtime.
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &checked))
        .await
        .map_err(|e| AppError::Internal(format!("checking the password: {e}")))?;
    let (Some(user), Some(_)) = (user, hash) else {
        state.sign_in_limit.record(&address, now);
        return Err(refused());
    };
    if let Some(until) = state.db.sign_in_lock(user.id, &address, now).await? {
        state.sign_in_limit.record(&address, now);
        tracing::info!(user = %user.name, %address, "sign-in refused: locked until {}", ferry_domain::rfc3339_from_millis(until));
        return Err(refused());
    }
    if !ok {
        state.sign_in_limit.record(&address, now);
        let lock = ferry_domain::access::sign_in_locked_until;
        if let Some(until) = state.db.record_failed_sign_in(user.id, &address, now, lock).await? {
            tracing::warn!(user = %user.name, %address, "too many failed sign-ins: locked from there until {}", ferry_domain::rfc3339_from_millis(until));
        }
        return Err(refused());
    }
    state.db.clear_failed_sign_ins(user.id, &address).await?;
    if user.disabled {
        return Err(AppError::Unauthorized(format!("user '{}' is disabled", user.name)));
    }
    Ok(user)
}

/// Constant-time comparison of two hashes.
pub fn same_hash(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn bearer_of(headers: &axum::http::HeaderMap) -> Result<&str, AppError> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| AppError::Unauthorized("missing 'Authorization: Bearer <token>' header".into()))?;
    value
        .strip_prefix("Bearer ")
        .map(str::trim)
        .ok_or_else(|| AppError::Unauthorized("the Authorization header must be 'Bearer <token>'".into()))
}

fn bearer(parts: &Parts) -> Result<&str, AppError> {
    bearer_of(&parts.headers)
}

/// The enabled user whose API token a request carries. Read from the
/// database on every request, so a revoked token or a disabled user stops
/// working at once.
pub async fn user_from_headers(state: &AppState, headers: &axum::http::HeaderMap) -> Result<User, AppError> {
    let token = bearer_of(headers)?;
    if !token.starts_with(USER_TOKEN_PREFIX) {
        return Err(AppError::Unauthorized("this is not a user API token".into()));
    }
    match state.db.user_for_token(&token_hash(token)).await? {
        Some(user) if user.disabled => Err(AppError::Unauthorized(format!("user '{}' is disabled", user.name))),
        Some(user) => Ok(user),
        None => Err(AppError::Unauthorized("unknown or revoked API token".into())),
    }
}

/// A request by a user that its route's rule admitted (`access::authorize`
/// put it there). A handler cannot take a `Caller` on a route whose rule
/// does not authenticate users: the request fails instead.
#[derive(Clone)]
pub struct Caller(pub User);

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, AppError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| AppError::Internal("this route has no user access rule".into()))
    }
}

/// A request authenticated with an agent's own credential.
pub struct AgentCaller(pub Host);

impl FromRequestParts<AppState> for AgentCaller {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let token = bearer(parts)?;
        if !token.starts_with(AGENT_TOKEN_PREFIX) {
            return Err(AppError::Unauthorized("this is not an agent credential".into()));
        }
        match state.db.host_by_token(&token_hash(token)).await? {
            Some(host) => Ok(AgentCaller(host)),
            None => Err(AppError::Unauthorized("unknown agent credential; enrol the host again".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashes_compare() {
        let a = new_token(USER_TOKEN_PREFIX);
        let b = new_token(USER_TOKEN_PREFIX);
        assert_ne!(a, b);
        assert!(a.starts_with("fy_u_") && a.len() == 5 + 64);
        assert!(same_hash(&token_hash(&a), &token_hash(&a)));
        assert!(!same_hash(&token_hash(&a), &token_hash(&b)));
    }

    #[test]
    fn passwords_verify_against_their_hash_only() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong horse", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
        assert_ne!(hash, hash_password("correct horse").unwrap(), "each hash has its own salt");
    }
}
