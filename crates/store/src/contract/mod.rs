//! The storage contract, one trait per area. [`Database`](crate::Database)
//! is all of them together.
//!
//! Every method states what holds when several callers use it at once, on
//! separate connections and, with several server replicas, from separate
//! processes. The words mean:
//! - **one transaction**: all of the method's writes become visible
//!   together or not at all;
//! - **atomic with X**: X is read and written in that same transaction, so
//!   no other caller's write falls between the check and the change;
//! - **exactly one caller wins**: of concurrent callers trying the same
//!   change, one succeeds and the others are told (an error, `false` or
//!   `None`), never two;
//! - **serialised**: concurrent callers see each other's writes in one
//!   order (numbers handed out, sequences appended); a backend whose
//!   isolation does not serialise writers (PostgreSQL's read committed)
//!   must lock the row or table that carries the order;
//! - **read-only**: reads what was committed when it ran; may be stale by
//!   the time it returns, so a decision that must hold is made again inside
//!   the writing method.
//!
//! A method that says nothing more is one transaction whose outcome does
//! not depend on concurrent callers beyond "last write wins" on the row it
//! names. SQLite meets all of this by taking the write lock at the start of
//! every writing transaction (`BEGIN IMMEDIATE`); a backend with row-level
//! locking must take the locks the method names.

mod accounts;
mod agent_upgrades;
mod audit;
mod builds;
mod coordination;
mod deployments;
mod fleet;
mod health;
mod load_balancers;
mod notifications;
mod projects;
mod releases;
mod requests;
mod settings;

pub use accounts::Accounts;
pub use agent_upgrades::AgentUpgrades;
pub use audit::Audit;
pub use builds::Builds;
pub use coordination::Coordination;
pub use deployments::Deployments;
pub use fleet::Fleet;
pub use health::Health;
pub use load_balancers::LoadBalancers;
pub use notifications::Notifications;
pub use projects::Projects;
pub use releases::Releases;
pub use requests::Requests;
pub use settings::Settings;
