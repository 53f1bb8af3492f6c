//! Load balancers in front of environments (R14).

use async_trait::async_trait;

use crate::Result;
use crate::model::*;

/// Load balancers in front of environments (R14): one per environment, its
/// drained set and its generation, and what each load-balancer host applied.
#[async_trait]
pub trait LoadBalancers: Send + Sync {
    /// Puts a load balancer in front of `env`, replacing the one it had
    /// (its drained hosts stay drained). Returns the new generation.
    ///
    /// Concurrency: One transaction with the generation bump; serialised per environment:
    /// concurrent changes get distinct generations (a backend that does not serialise writers locks
    /// the environment's generation row).
    async fn set_load_balancer(&self, env: &Environment, lb: &NewLoadBalancer, now: i64) -> Result<u64>;

    /// Removes `env`'s load balancer with its drained hosts and what its
    /// hosts reported; false if it had none. The generation still goes up,
    /// so that a load balancer set later never reuses one.
    ///
    /// Concurrency: One transaction: the balancer, its drained and applied rows and the generation
    /// bump go together; exactly one of concurrent callers gets `true`.
    async fn unset_load_balancer(&self, env: &Environment) -> Result<bool>;

    /// The environment's load balancer, if one is set.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn load_balancer(&self, env: &Environment) -> Result<Option<LoadBalancer>>;

    /// Every load balancer, for working out a host's desired state.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn load_balancers(&self) -> Result<Vec<LoadBalancer>>;

    /// Takes hosts out of `env`'s load balancer (`drained`), or puts them
    /// back, in one transaction. The generation goes up if any host's state
    /// changed. Returns the generation now in force, or `None` when the
    /// environment has no load balancer (and nothing was recorded).
    ///
    /// Concurrency: One transaction: the drained set and the generation change
    /// together, and the generation only grows.
    async fn set_drained(&self, env: &Environment, host_ids: &[i64], drained: bool, now: i64) -> Result<Option<u64>>;

    /// Records what a load-balancer host reported having applied for
    /// `project`/`env`; a report about an unknown environment is dropped.
    ///
    /// Concurrency: one row per (environment, host); the last write wins.
    async fn record_lb_applied(
        &self,
        host_id: i64,
        project: &str,
        env: &str,
        generation: u64,
        error: Option<&str>,
        now: i64,
    ) -> Result<()>;

    /// What each load-balancer host last reported for the environment.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn lb_applied(&self, env_id: i64) -> Result<Vec<LbAppliedRow>>;
}
