//! Accounts (R26): users, API tokens, browser sessions, sign-in locks and project members.

use async_trait::async_trait;

use crate::Result;
use crate::model::*;

/// Users, their API tokens and browser sessions, sign-in locks and project
/// members. Every method is one transaction; names are unique (`Conflict`),
/// so of two callers creating one name exactly one wins.
#[async_trait]
pub trait Accounts: Send + Sync {
    /// Creates the user if needed and adds an API token (by hash) for them.
    ///
    /// Concurrency: One transaction: the user (created when missing) and the token are written
    /// together; a token hash already in use gives `Conflict` and changes nothing.
    async fn add_api_token(
        &self,
        user: &str,
        is_admin: bool,
        token_name: &str,
        token_hash: &str,
        now: i64,
    ) -> Result<()>;

    /// The user a token hash belongs to, disabled or not: the caller refuses
    /// a disabled one, so that it can say why.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn user_for_token(&self, token_hash: &str) -> Result<Option<User>>;

    /// Creates a user; `Conflict` if the name is taken.
    ///
    /// Concurrency: Exactly one caller wins a name; the others get `Conflict`.
    async fn create_user(&self, new: &NewUser, now: i64) -> Result<User>;

    /// The user named `name`, or `NotFound`.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn user(&self, name: &str) -> Result<User>;

    /// Every user, by name.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn users(&self) -> Result<Vec<User>>;

    /// The stored password hash of a user, if the user exists and has one.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn password_hash(&self, user_id: i64) -> Result<Option<String>>;

    /// Disables or enables a user. A disabled user's tokens are refused from
    /// the next request on. Enabling also lifts its sign-in locks, from
    /// every address.
    ///
    /// Concurrency: One transaction: enabling clears the user's sign-in failures in the same
    /// transaction. Last write wins.
    async fn set_user_disabled(&self, user_id: i64, disabled: bool) -> Result<()>;

    /// Until when a user's account refuses passwords from `address`, if it
    /// does at `now`.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn sign_in_lock(&self, user_id: i64, address: &str, now: i64) -> Result<Option<i64>>;

    /// Counts a failed sign-in from `address`, in one transaction; `lock`
    /// says until when the account refuses passwords from there given the
    /// failures in a row so far. Returns that time, if it is now locked.
    ///
    /// Concurrency: Atomic with the count it reads: concurrent failures are all
    /// counted (serialised on the user's row for `address`).
    async fn record_failed_sign_in(
        &self,
        user_id: i64,
        address: &str,
        now: i64,
        lock: fn(u32, i64) -> Option<i64>,
    ) -> Result<Option<i64>>;

    /// A successful sign-in from `address`: its count starts again (other
    /// addresses' locks stay).
    ///
    /// Concurrency: One statement; idempotent.
    async fn clear_failed_sign_ins(&self, user_id: i64, address: &str) -> Result<()>;

    /// Sets or clears a user's e-mail address (already checked).
    ///
    /// Concurrency: One statement on the row it names; last write wins.
    async fn set_user_email(&self, user_id: i64, email: Option<&str>) -> Result<()>;

    /// Sets a user's administrator flag and production right.
    ///
    /// Concurrency: One statement on the row it names; last write wins.
    async fn set_user_rights(&self, user_id: i64, is_admin: bool, production: bool) -> Result<()>;

    /// Adds an API token (by hash) for an existing user.
    ///
    /// Concurrency: Exactly one caller wins a token name for a user; the others
    /// get `Conflict`.
    async fn create_api_token(&self, user_id: i64, name: &str, token_hash: &str, now: i64) -> Result<ApiToken>;

    /// A user's API tokens, oldest first.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn api_tokens(&self, user_id: i64) -> Result<Vec<ApiToken>>;

    /// Removes one of a user's tokens; false if the user has no such token.
    ///
    /// Concurrency: Exactly one caller wins: of concurrent revocations of one token, one gets
    /// `true`, the others `false`.
    async fn revoke_api_token(&self, user_id: i64, token_id: i64) -> Result<bool>;

    /// Starts a web session (by the hash of its cookie) for a user, ending
    /// at `expires_at`; sessions already ended at `now` are removed.
    ///
    /// Concurrency: One transaction: expired sessions are removed and the new one added together; a
    /// hash already in use gives `Conflict`.
    async fn create_web_session(&self, user_id: i64, token_hash: &str, now: i64, expires_at: i64) -> Result<()>;

    /// The user of a web session that has not ended at `now`, disabled or
    /// not (the caller refuses a disabled one).
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn user_for_web_session(&self, token_hash: &str, now: i64) -> Result<Option<User>>;

    /// Ends a web session (signing out); false if there was none.
    ///
    /// Concurrency: Exactly one caller wins: of concurrent calls for one session, one gets `true`,
    /// the others `false`.
    async fn end_web_session(&self, token_hash: &str) -> Result<bool>;

    /// Gives a user a role in a project, replacing the role they had.
    ///
    /// Concurrency: One statement (insert or replace the role); last write wins.
    async fn set_member(&self, project: &Project, user: &User, role: ferry_domain::Role, now: i64) -> Result<()>;

    /// Removes a user from a project; false if they were not a member.
    ///
    /// Concurrency: Exactly one caller wins: of concurrent removals, one gets `true`, the others
    /// `false`.
    async fn remove_member(&self, project: &Project, user: &User) -> Result<bool>;

    /// A project's members, by user name.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn members(&self, project: &Project) -> Result<Vec<Member>>;

    /// A user's role in a project, if any.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn membership(&self, project_id: i64, user_id: i64) -> Result<Option<ferry_domain::Role>>;

    /// A user's highest role in any project, for actions that concern no one
    /// project (uploading content).
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn best_membership(&self, user_id: i64) -> Result<Option<ferry_domain::Role>>;
}
