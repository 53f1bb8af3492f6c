//! Deployments: durable rollouts, their history and per-host logs.

use async_trait::async_trait;
use ferry_domain::report::LogLine as AgentLogLine;
use ferry_domain::rollout::Step;

use crate::Result;
use crate::model::*;

/// Deployments as durable rollouts (R4, R13, R19). The decisions are
/// `ferry_domain::orchestrate`'s; a backend reads the rows they need and
/// writes what they return, each call in one transaction. The lock (one
/// running deployment per environment) must hold across server replicas: a
/// backend enforces it with a unique index or a lock on the environment,
/// never with a check-then-insert alone.
#[async_trait]
pub trait Deployments: Send + Sync {
    /// Atomically: refuses a frozen environment (`Frozen`, unless
    /// `ignore_freeze`) and a release marked bad (`MarkedBad`, unless
    /// `forced`), takes the environment's deployment lock (or, for an
    /// emergency, takes it over from the running deployment, which ends as
    /// canceled), and records the deployment and its plan: every target host,
    /// queued in its batch. Nothing changes on a host until
    /// [`advance_deployment`](Self::advance_deployment) starts its batch.
    ///
    /// Concurrency: One transaction, and the lock holds under concurrent callers
    /// on separate connections or processes: exactly one of two deployments of
    /// one environment is created, the other gets `Locked` (a backend relies on a
    /// unique index over running deployments, not on the check it makes first).
    async fn create_deployment(&self, new: NewDeployment, now: i64) -> Result<i64>;

    /// One step of the orchestrator, in one transaction: reads the running
    /// deployment's recorded state, asks `ferry_domain::rollout::next_step`
    /// what to do, and does it (start a batch: make the release desired on
    /// its hosts; roll back; finish). A step is never taken twice: a second
    /// caller reads the state the first one left. Call it until it waits.
    ///
    /// Concurrency: Exactly one caller takes each step: concurrent callers (two
    /// servers, a report and the ticker) are serialised on the deployment, so a
    /// batch starts once and a deployment ends once. A backend that does not
    /// serialise writers must lock the deployment's row (`SELECT ... FOR UPDATE`)
    /// before reading it.
    async fn advance_deployment(&self, id: i64, now: i64) -> Result<Advanced>;

    /// Records an operator's pause, resume, cancel or promote. Refused
    /// (`Conflict`) for a deployment that has ended.
    ///
    /// Concurrency: Atomic with the status it checks, and serialised with
    /// `advance_deployment` on the deployment: SQLite's write lock does this; a
    /// backend that does not serialise writers locks the deployment's row
    /// (`SELECT ... FOR UPDATE`) before reading its status.
    async fn control_deployment(&self, id: i64, control: RolloutControl, now: i64) -> Result<()>;

    /// The step [`advance_deployment`](Self::advance_deployment) would
    /// take now, without taking it, with the hosts of the batch it would
    /// start (`None` when the deployment is not running).
    ///
    /// Concurrency: Read-only: takes no step and writes nothing; the step may be taken or overtaken
    /// by the time it returns, so `advance_deployment` decides again.
    async fn peek_deployment(&self, id: i64, now: i64) -> Result<Option<(Step, Vec<i64>)>>;

    /// Records what the server holds a running deployment for (shown as its
    /// `hold`, and in its history when it changes).
    ///
    /// Concurrency: Writes and records a history line only when the hold differs
    /// from the recorded one, checked in the same transaction, so concurrent
    /// callers with one hold record one line. A backend that does not
    /// serialise writers locks the deployment's row before the check.
    async fn hold_deployment(&self, id: i64, hold: &ferry_domain::status::Note, now: i64) -> Result<()>;

    /// The hosts a rollout took out of its environment's load balancer and
    /// has not put back yet.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn rollout_drained(&self, id: i64) -> Result<Vec<i64>>;

    /// Replaces the list of hosts this rollout has drained from its load balancer.
    ///
    /// Concurrency: One statement on the deployment's row; the list is replaced, not merged, so
    /// last write wins.
    async fn set_rollout_drained(&self, id: i64, hosts: &[i64]) -> Result<()>;

    /// The deployments still running, oldest first, for the orchestrator's sweep.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn running_deployments(&self) -> Result<Vec<i64>>;

    /// A deployment's transitions, oldest first.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn deployment_events(&self, id: i64) -> Result<Vec<DeploymentEvent>>;

    /// The deployment with this id, or `NotFound`.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn deployment(&self, id: i64) -> Result<DeploymentRow>;

    /// The deployment's targets, with each one's state.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn deployment_hosts(&self, id: i64) -> Result<Vec<DeploymentHostRow>>;

    /// Newest first, at most `limit`.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn deployments(&self, project: &Project, limit: u32) -> Result<Vec<DeploymentRow>>;

    /// Running deployments, of one project or of all, oldest first: each holds
    /// its environment's lock (R19).
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn lock_holders(&self, project: Option<&Project>) -> Result<Vec<DeploymentRow>>;

    /// Every deployment of a project (of one environment if `env` is given)
    /// created at or after `since`, running ones included, oldest first: what
    /// `ferry_domain::stats` computes the statistics from.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn deployment_facts(
        &self,
        project: &Project,
        env: Option<&Environment>,
        since: i64,
    ) -> Result<Vec<ferry_domain::stats::DeploymentFacts>>;

    /// Finished deployments of an environment, newest first, for choosing a
    /// rollback target.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn environment_history(&self, env: &Environment) -> Result<Vec<DeploymentRow>>;

    /// Fails started target hosts of running deployments that are offline,
    /// as their deployment's offline policy says
    /// (`ferry_domain::offline::offline_failure`: a few missed heartbeats, or
    /// the offline timeout under `wait`). Returns the deployments it changed.
    ///
    /// Concurrency: One transaction; serialised with `advance_deployment` and
    /// `apply_report` on each deployment it touches (a backend that does not
    /// serialise writers locks those deployments' rows, in id order).
    async fn fail_offline_targets(&self, now: i64, heartbeat_interval_ms: i64) -> Result<Vec<i64>>;

    /// Appends an agent's log lines about its install of `release_id` of
    /// `project` to the deployment taking that release to the host: a running
    /// deployment whose row for the host is still pending or running. Lines
    /// no such deployment is waiting for (a retry after the host failed, a
    /// drift repair, a release no longer deployed) are dropped, so a finished
    /// deployment's log never changes. Per deployment host, keeps what
    /// `ferry_domain::log::LogBudget` admits and counts the rest in one marker
    /// line. A line without a time gets `now`. Returns the deployment the
    /// lines went to, if any.
    ///
    /// Concurrency: Serialised per deployment: sequence numbers are handed out
    /// without gaps or repeats under concurrent callers (a backend locks the
    /// deployment's log while it appends), and the budget is counted in the same
    /// transaction.
    async fn append_deployment_log(
        &self,
        host_id: i64,
        project: &str,
        release_id: i64,
        lines: &[AgentLogLine],
        now: i64,
    ) -> Result<Option<i64>>;

    /// A deployment's log lines with `seq > after`, of one host if `host` is
    /// given, in order, at most `limit`.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn deployment_log(
        &self,
        deployment_id: i64,
        host: Option<&str>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<DeploymentLogLine>>;
}
