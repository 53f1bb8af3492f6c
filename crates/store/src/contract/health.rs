//! Health: whether the database answers, and how busy its connections are.

use async_trait::async_trait;

use crate::Result;
use crate::model::*;

/// The database's own health, for `/readyz` and `/metrics`.
#[async_trait]
pub trait Health: Send + Sync {
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
