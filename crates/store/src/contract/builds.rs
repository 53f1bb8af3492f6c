//! Builds from git (R5-R8): the queue, results and logs, and webhook deliveries.

use async_trait::async_trait;

use crate::Result;
use crate::model::*;

/// The build queue, build results and logs, and the webhook deliveries
/// already seen.
#[async_trait]
pub trait Builds: Send + Sync {
    /// Queues a build with the project's next build number.
    ///
    /// Concurrency: Serialised per project: build numbers are handed out once
    /// each, in order, under concurrent callers (a backend locks the project's
    /// builds while it numbers one).
    async fn create_build(&self, new: &NewBuild, now: i64) -> Result<Build>;

    /// The build with this id, or `NotFound`.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn build(&self, id: i64) -> Result<Build>;

    /// The project's build with this number, or `NotFound`.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn build_by_number(&self, project: &Project, number: i64) -> Result<Build>;

    /// Newest first, at most `limit`.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn builds(&self, project: &Project, limit: u32) -> Result<Vec<Build>>;

    /// The newest succeeded build of a project.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn latest_succeeded_build(&self, project: &Project) -> Result<Option<Build>>;

    /// How many builds wait in the queue (of every project), for `/metrics`.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn queued_build_count(&self) -> Result<u64>;

    /// Records the commit a build checked out.
    ///
    /// Concurrency: One statement on the row it names; last write wins.
    async fn set_build_commit(&self, id: i64, commit: &BuildCommit) -> Result<()>;

    /// Ends a queued or running build; false if it had already ended.
    ///
    /// Concurrency: Exactly one caller ends a build: the others get `false`.
    async fn finish_build(&self, id: i64, outcome: &BuildOutcome, now: i64) -> Result<bool>;

    /// Cancels a queued build at once, or asks a running one to stop.
    /// Returns the build as it now is.
    ///
    /// Concurrency: Atomic with the status it reads.
    async fn cancel_build(&self, id: i64, now: i64) -> Result<Build>;

    /// Concurrency: Serialised per build: sequence numbers are handed out without
    /// gaps or repeats (a backend locks the build's log while it appends).
    async fn append_build_log(&self, id: i64, lines: &[(i64, String, String)]) -> Result<()>;

    /// Log lines with `seq > after`, at most `limit`.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn build_log(&self, id: i64, after: i64, limit: u32) -> Result<Vec<LogLine>>;

    /// Records a webhook delivery; false if this id was seen before.
    ///
    /// Concurrency: Exactly one caller wins a delivery id: a redelivery racing
    /// the first sees `false`.
    async fn record_delivery(&self, project_id: i64, forge: &str, delivery_id: &str, now: i64) -> Result<bool>;
}
