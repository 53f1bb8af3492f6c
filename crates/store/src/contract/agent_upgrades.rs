//! Agent self-upgrade: the binaries the server holds and upgrades of environments' agents.

use async_trait::async_trait;

use crate::Result;
use crate::model::*;

/// Agent binaries and the upgrades of environments' agents: at most one
/// upgrade runs per environment (a unique index), and a host moves only from
/// the states the caller names, while its upgrade runs.
#[async_trait]
pub trait AgentUpgrades: Send + Sync {
    /// Records an uploaded agent binary; `Conflict` when its version label is taken.
    ///
    /// Concurrency: One statement; exactly one caller wins a version (a unique index): the others
    /// get `Conflict`.
    async fn add_agent_binary(&self, new: &NewAgentBinary) -> Result<AgentBinary>;

    /// The agent binary of this version label.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn agent_binary(&self, version: &str) -> Result<AgentBinary>;

    /// Every agent binary, oldest first.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn agent_binaries(&self) -> Result<Vec<AgentBinary>>;

    /// What a host's agent announced it runs (version label, SHA-256).
    ///
    /// Concurrency: One statement on the row it names; last write wins.
    async fn set_host_binary(&self, host_id: i64, version: Option<&str>, digest: Option<&str>) -> Result<()>;

    /// Records an upgrade of `env_id`'s agents to `binary_id`, the hosts
    /// queued in `batches` (batch 1 first); `Refused` while another upgrade
    /// of the environment runs.
    ///
    /// Concurrency: Exactly one upgrade runs per environment: a second gets
    /// `Conflict` (a unique index).
    async fn create_agent_upgrade(
        &self,
        env_id: i64,
        binary_id: i64,
        batches: &[Vec<i64>],
        by: &str,
        now: i64,
    ) -> Result<i64>;

    /// The newest upgrade of an environment's agents, with its hosts.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn latest_agent_upgrade(&self, env_id: i64) -> Result<Option<AgentUpgrade>>;

    /// An upgrade by id, with its hosts.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn agent_upgrade(&self, id: i64) -> Result<Option<AgentUpgrade>>;

    /// The running upgrades a host belongs to.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn running_agent_upgrades_of_host(&self, host_id: i64) -> Result<Vec<AgentUpgrade>>;

    /// Moves a host of a running upgrade to `to` when it is in one of
    /// `from`; answers whether it moved.
    ///
    /// Concurrency: Exactly one caller wins a move from the states it names: one
    /// conditional update (`WHERE state IN from`), which a row lock re-checks
    /// under any isolation. The upgrade's running status is read in the same
    /// statement; under read committed a backend locks the upgrade's row to
    /// keep a move from landing after `finish_agent_upgrade`.
    async fn set_agent_upgrade_host(
        &self,
        upgrade_id: i64,
        host_id: i64,
        from: &[ferry_domain::agent_upgrade::HostUpgradeState],
        to: ferry_domain::agent_upgrade::HostUpgradeState,
        error: Option<&str>,
        now: i64,
    ) -> Result<bool>;

    /// The `(upgrade, host)` pairs of running upgrades whose host has been
    /// upgrading since before `before`.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn stale_agent_upgrade_hosts(&self, before: i64) -> Result<Vec<(i64, i64)>>;

    /// Moves the queued hosts of `batch` to upgrading; answers their ids.
    ///
    /// Concurrency: Exactly one caller starts a batch: a second finds its hosts
    /// already moved and gets none.
    async fn start_agent_upgrade_batch(&self, upgrade_id: i64, batch: u32, now: i64) -> Result<Vec<i64>>;

    /// Ends a running upgrade (its queued hosts become skipped, in the same
    /// transaction); answers whether this call ended it.
    ///
    /// Concurrency: Exactly one caller ends an upgrade.
    async fn finish_agent_upgrade(
        &self,
        upgrade_id: i64,
        succeeded: bool,
        error: Option<&str>,
        now: i64,
    ) -> Result<bool>;
}
