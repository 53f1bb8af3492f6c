//! The audit trail (R27): append-only and hash-chained.

use async_trait::async_trait;

use crate::Result;
use crate::model::*;

/// The audit trail (R27). There is no way to change or remove an entry.
#[async_trait]
pub trait Audit: Send + Sync {
    // Append-only on purpose: there is no way to change or remove an entry.
    /// Appends an entry in one transaction: reads the last entry's hash and
    /// stores the new one chained to it, keyed with `key`
    /// (`ferry_domain::audit::AuditKey::entry_hash`).
    ///
    /// Concurrency: Serialised: the chain never forks under concurrent callers on
    /// separate connections or processes. A backend reads the last entry and
    /// inserts the next in one transaction that excludes other appenders
    /// (SQLite's write lock; elsewhere a lock on the chain's head).
    async fn append_audit(&self, entry: &NewAuditEntry, key: &ferry_domain::audit::AuditKey) -> Result<AuditEntry>;

    /// Entries matching `filter`, newest first.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn audit_log(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>>;

    /// Entries with `seq > after`, oldest first, at most `limit`, as stored:
    /// for recomputing the chain page by page.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn audit_chain(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>>;

    /// The newest entry, if any.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns: appenders never rely on it
    /// (`append_audit` reads the head inside its own transaction).
    async fn audit_head(&self) -> Result<Option<AuditEntry>>;

    /// The `seq` of the oldest entry stored with this hash scheme, if any.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn audit_first_with_scheme(&self, scheme: &str) -> Result<Option<i64>>;
}
