//! Settings: small values the server keeps (keys' fingerprints, the audit scheme), and the database's own health.

use async_trait::async_trait;

use crate::Result;
use crate::model::*;

/// Server settings and the database's health.
#[async_trait]
pub trait Settings: Send + Sync {
    async fn get_setting(&self, key: &str) -> Result<Option<String>>;

    async fn set_setting(&self, key: &str, value: &str) -> Result<()>;

    /// Stores `value` unless the key exists; returns the value now stored.
    ///
    /// Concurrency: Exactly one caller wins: of concurrent callers with different
    /// values, every one gets back the value that was stored first.
    async fn init_setting(&self, key: &str, value: &str) -> Result<String>;

    /// Answers when the database answers a query (`/readyz`).
    async fn ping(&self) -> Result<()>;

    /// The connection pool's use right now, for `/metrics`; `None` for a
    /// store without a pool.
    fn pool_use(&self) -> Option<PoolUse> {
        None
    }
}
