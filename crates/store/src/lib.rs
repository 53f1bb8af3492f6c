//! Everything the Ferry server keeps: the [`Database`] (projects,
//! environments, releases, hosts, desired state, deployments, variables) and
//! the [`ArtifactStore`] (release content, by digest).
//!
//! The database is one trait per area of the server, each in its own file
//! under `contract/` (accounts, projects, releases, fleet, deployments,
//! requests, builds, load balancers, audit, notifications, agent upgrades,
//! settings, health), each method stating what holds under concurrent
//! callers; [`Database`] is all of them together. Each backend is a module
//! with one `impl` per area file (`sqlite/accounts.rs`, ...): SQLite and the
//! local filesystem today; PostgreSQL and S3-compatible stores plug in beside
//! them without touching the server. A backend only reads and writes rows:
//! decisions are `ferry_domain`'s. Every backend must pass the conformance
//! suite in `tests/`: one file of stories per area, and racing stories that
//! call one method from several callers at once. Callers bring the area
//! traits into scope with `use ferry_store::prelude::*`.
//!
//! Architecture invariants:
//! - All server state that must survive a restart lives behind these traits;
//!   the server process holds only connections and caches. This is what lets
//!   several server replicas share one database later.
//! - Times are passed in by the caller (milliseconds since the epoch); the
//!   store never reads a clock, so its behaviour is reproducible in tests.
//! - The one-running-deployment-per-environment lock (R19) is enforced by the
//!   database itself (a unique index), not by a check-then-insert. Freezes and
//!   bad marks are checked inside the transaction that creates a deployment,
//!   so one taken a moment before is never missed.
//! - Secrets (variables marked secret, webhook secrets) arrive sealed by the
//!   server and are stored as given; the store never holds the key.
//! - The audit trail is append-only: the trait can add entries and read them,
//!   never change or remove one; each is chained to the one before by a hash
//!   keyed with the key the server passes in (the store never keeps it).

pub mod artifacts;
#[cfg(test)]
mod artifacts_tests;
pub mod contract;
pub mod model;
pub mod sqlite;
#[cfg(test)]
mod tests;

pub use artifacts::{ArtifactStore, BlobReader, BlobWriter, LocalArtifactStore};
pub use contract::{
    Accounts, AgentUpgrades, Audit, Builds, Coordination, Deployments, Fleet, Health, LoadBalancers, Notifications,
    Projects, Releases, Requests, Settings,
};

/// Everything a caller of the store needs in scope: the area traits whose
/// methods a `dyn Database` offers, the rows and the error.
pub mod prelude {
    pub use crate::contract::*;
    pub use crate::{ArtifactStore, Database, Result as StoreResult, StoreError};
}
pub use model::*;

/// Errors from the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row asked for does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A unique name is already taken.
    #[error("{0} already exists")]
    Conflict(String),
    /// The request does not fit the row's state (e.g. pausing a deployment
    /// that has ended). The message says why.
    #[error("{0}")]
    Refused(String),
    /// A deployment of this project and environment is already running.
    #[error("deployment {running} of this project and environment is still running")]
    Locked { running: i64 },
    /// The environment is frozen, and the deployment did not ask to ignore it.
    #[error("{}", freeze.refusal(project, env))]
    Frozen { project: String, env: String, freeze: ferry_domain::Freeze },
    /// The release is marked bad, and the deployment was not forced.
    #[error("{}", mark.refusal(project, version))]
    MarkedBad { project: String, version: String, mark: ferry_domain::BadMark },
    #[error("database error: {0}")]
    Backend(String),
    #[error("artifact store error: {0}")]
    Artifact(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The server's database: every area of the storage contract
/// ([`contract`]). See the crate documentation for the invariants.
pub trait Database:
    Settings
    + Accounts
    + Projects
    + Releases
    + Fleet
    + Deployments
    + Requests
    + Builds
    + LoadBalancers
    + Audit
    + Notifications
    + AgentUpgrades
    + Health
    + Coordination
    + Send
    + Sync
    + 'static
{
}

/// Every type that implements each area is a whole database.
impl<T> Database for T where
    T: Settings
        + Accounts
        + Projects
        + Releases
        + Fleet
        + Deployments
        + Requests
        + Builds
        + LoadBalancers
        + Audit
        + Notifications
        + AgentUpgrades
        + Health
        + Coordination
        + Send
        + Sync
        + 'static
{
}
