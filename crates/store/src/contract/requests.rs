//! Release requests (R24) and their history.

use async_trait::async_trait;

use crate::Result;
use crate::model::*;

/// Release requests (R24). A request moves only from the state the change
/// names, checked and written in one transaction: of two callers moving one
/// request from one state, exactly one wins.
#[async_trait]
pub trait Requests: Send + Sync {
    /// Creates a request with the first entry of its history.
    ///
    /// Concurrency: One transaction: the request and its first history line are written together.
    async fn create_request(&self, new: &NewRequest, now: i64) -> Result<RequestRow>;

    /// The request with this id, or `NotFound`.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn request(&self, id: i64) -> Result<RequestRow>;

    /// Requests, newest first.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn requests(&self, filter: &RequestFilter) -> Result<Vec<RequestRow>>;

    /// Changes a request's state and records it, in one transaction, if its
    /// state is still `change.from`; otherwise `Refused`, naming the state it
    /// is in now (someone else acted first).
    ///
    /// Concurrency: Exactly one caller wins a move from one state; the others get
    /// `Refused`. One conditional update (`WHERE state = from`), which holds
    /// under any isolation level that re-checks a row under its lock.
    async fn change_request(&self, id: i64, change: &RequestChange, now: i64) -> Result<RequestRow>;

    /// Adds an entry to a request's history that does not change its state
    /// (its staging environment was updated).
    ///
    /// Concurrency: One transaction: the note is appended to the request's history without changing
    /// its state.
    async fn note_request(&self, id: i64, note: &RequestNote<'_>, now: i64) -> Result<()>;

    /// A request's history, oldest first.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn request_events(&self, id: i64) -> Result<Vec<RequestEvent>>;

    /// The deployments made for a request, newest first.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn request_deployments(&self, id: i64) -> Result<Vec<DeploymentRow>>;

    /// Marks a release request as skipping the order of environments.
    ///
    /// Concurrency: One statement; idempotent.
    async fn set_request_skip_promotion(&self, request_id: i64) -> Result<()>;

    /// Whether a release request skips the order of environments.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn request_skips_promotion(&self, request_id: i64) -> Result<bool>;
}
