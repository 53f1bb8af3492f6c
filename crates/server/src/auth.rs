//! Credentials: user API tokens and agent tokens, both random and shown once;
//! the database keeps only their SHA-256.
//!
//! The two kinds carry different prefixes and live in different tables, so a
//! user token can never act as an agent, nor the reverse.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use ferry_store::{Host, User};
use rand::RngExt;

use crate::AppState;
use crate::error::ApiError;

pub const USER_TOKEN_PREFIX: &str = "fy_u_";
pub const AGENT_TOKEN_PREFIX: &str = "fy_a_";
pub const JOIN_TOKEN_PREFIX: &str = "fy_j_";

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

/// Constant-time comparison of two hashes.
pub fn same_hash(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::Unauthorized("missing 'Authorization: Bearer <token>' header".into()))?;
    value
        .strip_prefix("Bearer ")
        .map(str::trim)
        .ok_or_else(|| ApiError::Unauthorized("the Authorization header must be 'Bearer <token>'".into()))
}

/// A request authenticated with a user API token.
pub struct Caller(pub User);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        if !token.starts_with(USER_TOKEN_PREFIX) {
            return Err(ApiError::Unauthorized("this is not a user API token".into()));
        }
        match state.db.user_for_token(&token_hash(token)).await? {
            Some(user) => Ok(Caller(user)),
            None => Err(ApiError::Unauthorized("unknown or revoked API token".into())),
        }
    }
}

/// A request authenticated with an agent's own credential.
pub struct AgentCaller(pub Host);

impl FromRequestParts<AppState> for AgentCaller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        if !token.starts_with(AGENT_TOKEN_PREFIX) {
            return Err(ApiError::Unauthorized("this is not an agent credential".into()));
        }
        match state.db.host_by_token(&token_hash(token)).await? {
            Some(host) => Ok(AgentCaller(host)),
            None => Err(ApiError::Unauthorized("unknown agent credential; enrol the host again".into())),
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
}
