//! What several server replicas on one database need: named leases, build
//! and notification claims that expire with their holder, and a wake-up that
//! reaches the other server processes.
//!
//! A *holder* is one server process (a random id per process start). A
//! lease or claim is valid while `now < expires_at`; a holder keeps it by
//! renewing before it expires. Times are the caller's (milliseconds since the
//! epoch): replicas are assumed to have clocks within a small fraction of a
//! TTL of each other.

use async_trait::async_trait;

use crate::Result;
use crate::model::*;

/// Leases, claims and cross-process wake-ups. SQLite implements them in its
/// file, where they cost nothing with one process.
#[async_trait]
pub trait Coordination: Send + Sync {
    /// Takes or renews the named lease for `ttl_ms` from `now`: true if
    /// `holder` now holds it. The same holder renews; another holder takes it
    /// only once it has expired.
    ///
    /// Concurrency: Exactly one caller wins: at any moment at most one
    /// holder's claim is valid (atomic with the lease's row).
    async fn claim_lease(&self, name: &str, holder: &str, now: i64, ttl_ms: i64) -> Result<bool>;

    /// Gives the named lease up if `holder` holds it, so another replica can
    /// take it at once; does nothing otherwise.
    ///
    /// Concurrency: Atomic with the lease's holder: never releases another
    /// holder's lease.
    async fn release_lease(&self, name: &str, holder: &str) -> Result<()>;

    /// Moves the oldest queued build of a project with no running build to
    /// running (R6: one build per project at a time), records `holder` with
    /// a lease until `now + ttl_ms` on it, and returns it.
    ///
    /// Concurrency: Exactly one caller wins each queued build, and a project
    /// never has two running (one transaction with the project's builds). A
    /// backend that does not serialise writers must lock the row it claims
    /// (`FOR UPDATE SKIP LOCKED`).
    async fn claim_build(&self, holder: &str, now: i64, ttl_ms: i64) -> Result<Option<Build>>;

    /// Extends the lease of every running build `holder` holds to
    /// `now + ttl_ms`; returns how many it extended. A build whose lease
    /// another sweep already ended is not revived.
    ///
    /// Concurrency: One transaction; touches only `holder`'s running builds.
    async fn renew_build_leases(&self, holder: &str, now: i64, ttl_ms: i64) -> Result<u64>;

    /// Fails every running build whose lease expired before `now` (its
    /// server stopped), with `reason`; returns their ids. A build running
    /// from before leases existed has none and counts as expired.
    ///
    /// Concurrency: Exactly one caller ends each build: concurrent sweeps
    /// (two replicas) never both fail one, and a build whose holder renewed
    /// in time is never failed.
    async fn fail_expired_builds(&self, reason: &str, now: i64) -> Result<Vec<i64>>;

    /// Claims up to `limit` notifications due at `now` for `holder` until
    /// `now + ttl_ms`, the longest waiting first, and returns them. A claimed
    /// row is not due for anyone else until the claim expires or an attempt
    /// is recorded ([`Notifications::record_notification_attempt`]
    /// reschedules or ends it): delivery is at least once, never by two
    /// holders at once while the claim is valid.
    ///
    /// Concurrency: Exactly one caller wins each due row.
    ///
    /// [`Notifications::record_notification_attempt`]: crate::Notifications::record_notification_attempt
    async fn claim_due_notifications(
        &self,
        holder: &str,
        now: i64,
        ttl_ms: i64,
        limit: u32,
    ) -> Result<Vec<DueNotification>>;

    /// Publishes a wake-up on `topic` (e.g. `host:12`) for every server
    /// process; returns its sequence number. Wake-ups older than a few
    /// minutes are pruned as new ones arrive.
    ///
    /// Concurrency: Serialised: sequence numbers only grow, each handed out
    /// once, in commit order.
    async fn publish_wake(&self, topic: &str, now: i64) -> Result<i64>;

    /// The wake-ups published after `seq`, oldest first, at most `limit`,
    /// each as `(seq, topic)`; the next call asks after the last one's `seq`.
    /// A process that only wants new ones starts after
    /// [`Coordination::latest_wake`].
    ///
    /// A wake-up is a hint, not a message: a reader that falls behind the
    /// pruning misses some, and readers must act the same on a wake-up seen
    /// twice. What a wake-up asks for also happens on the periodic resync,
    /// which stays the safety net.
    ///
    /// Concurrency: Read-only; sees wake-ups in sequence order. A wake-up
    /// committed later never gets a lower number than one already seen
    /// (SQLite serialises writers; a backend that does not must hand numbers
    /// out under a lock, or readers must re-read a short window).
    async fn wakes_after(&self, seq: i64, limit: u32) -> Result<Vec<(i64, String)>>;

    /// The newest wake-up's sequence number (0 when there is none).
    ///
    /// Concurrency: Read-only.
    async fn latest_wake(&self) -> Result<i64>;
}
