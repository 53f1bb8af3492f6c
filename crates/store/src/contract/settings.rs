//! Settings: small values the server keeps (keys' fingerprints, the audit scheme), and the database's own health.

use async_trait::async_trait;

use crate::Result;
use crate::model::*;

/// Server settings and the database's health.
#[async_trait]
pub trait Settings: Send + Sync {
    /// The setting's value, if it was ever stored.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn get_setting(&self, key: &str) -> Result<Option<String>>;

    /// Stores `value` under `key`, replacing any value before it.
    ///
    /// Concurrency: One statement (insert or replace); last write wins.
    async fn set_setting(&self, key: &str, value: &str) -> Result<()>;

    /// Stores `value` unless the key exists; returns the value now stored.
    ///
    /// Concurrency: Exactly one caller wins: of concurrent callers with different
    /// values, every one gets back the value that was stored first.
    async fn init_setting(&self, key: &str, value: &str) -> Result<String>;

    /// Answers when the database answers a query (`/readyz`).
    ///
    /// Concurrency: Read-only; uses one connection for one query.
    async fn ping(&self) -> Result<()>;

    /// The connection pool's use right now, for `/metrics`; `None` for a
    /// store without a pool.
    ///
    /// Concurrency: Reads the pool's counters without a query: a snapshot, stale at once.
    fn pool_use(&self) -> Option<PoolUse> {
        None
    }
}
