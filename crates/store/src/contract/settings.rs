//! Settings: small values the server keeps (keys' fingerprints, the audit scheme).

use async_trait::async_trait;

use crate::Result;

/// Server settings.
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
}
