//! The fleet: hosts, join tokens, desired state, and what hosts report.

use async_trait::async_trait;
use ferry_domain::Tags;
use ferry_domain::report::ProjectReport;

use crate::Result;
use crate::model::*;

/// Hosts and their enrolment, what each host should run (desired state) and
/// what it reports it runs (actual state, service health).
#[async_trait]
pub trait Fleet: Send + Sync {
    /// Concurrency: Exactly one caller wins a host name; the others get
    /// `Conflict`.
    async fn enroll_host(&self, name: &str, tags: &Tags, token_hash: &str, now: i64) -> Result<Host>;

    /// The enrolled host whose token hashes to `token_hash`, if any.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn host_by_token(&self, token_hash: &str) -> Result<Option<Host>>;

    /// The host named `name`, or `NotFound`.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn host(&self, name: &str) -> Result<Host>;

    /// Every enrolled host.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn hosts(&self) -> Result<Vec<Host>>;

    /// The agent connected: record its version, mark it online, and keep the
    /// tags it announced only as `announced_tags` (when they differ from the
    /// enrolled ones, which this never changes).
    ///
    /// Concurrency: One statement on the row it names; last write wins.
    async fn host_connected(&self, host_id: i64, announced: &Tags, agent_version: &str, now: i64) -> Result<()>;

    /// Records a join token limited to `tags`, by its hash.
    ///
    /// Concurrency: One statement.
    async fn create_join_token(&self, token_hash: &str, tags: &Tags, by: &str, now: i64) -> Result<JoinToken>;

    /// The unrevoked join token with this hash, if any.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn join_token(&self, token_hash: &str) -> Result<Option<JoinToken>>;

    /// Every limited join token, revoked ones included, newest first.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn join_tokens(&self) -> Result<Vec<JoinToken>>;

    /// Revokes a join token: hosts can no longer enrol with it (those that
    /// did keep their own credentials).
    ///
    /// Concurrency: Idempotent: the first revocation's time stays.
    async fn revoke_join_token(&self, id: i64, now: i64) -> Result<()>;

    /// Replaces a host's tags (an administrator's act); clears the announced
    /// tags when they now agree.
    ///
    /// Concurrency: One statement; the host is read back after it, so it may already carry a later
    /// writer's change.
    async fn set_host_tags(&self, name: &str, tags: &Tags) -> Result<Host>;

    /// Marks the host online and seen at `now`.
    ///
    /// Concurrency: One statement on the row it names; last write wins.
    async fn host_seen(&self, host_id: i64, now: i64) -> Result<()>;

    /// Marks the host offline (its connection closed).
    ///
    /// Concurrency: One statement on the row it names; last write wins.
    async fn host_disconnected(&self, host_id: i64) -> Result<()>;

    /// Marks online hosts not seen since `seen_before` offline; returns them.
    ///
    /// Concurrency: One statement; each host is returned by exactly one of concurrent callers (a
    /// row is changed only while it is still online, re-checked under the row's lock).
    async fn mark_silent_hosts_offline(&self, seen_before: i64) -> Result<Vec<i64>>;

    /// What one host should run, per project.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn desired_for_host(&self, host_id: i64) -> Result<Vec<DesiredRow>>;

    /// Makes `env`'s desired release desired on this host for the env's
    /// project, unless the host already has a desired release of that project.
    /// Returns true if something was added (R3: a new host converges).
    ///
    /// Concurrency: exactly one caller wins: a host already desired for the
    /// project is left as it is (`false`).
    async fn adopt_host(&self, host_id: i64, env: &Environment, now: i64) -> Result<bool>;

    /// Per host with anything of the project desired or run: its desired
    /// release and the releases that ran successfully on it, newest first
    /// (recorded by `apply_report`), for choosing rollback targets per host.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn hosts_past(&self, project: &Project) -> Result<Vec<HostPastRow>>;

    /// Records an agent's report and moves that host's row of any running
    /// deployment of the project accordingly (the orchestrator then decides
    /// what the deployment does). Returns the deployments it changed.
    ///
    /// Concurrency: One transaction, serialised with `advance_deployment` on the
    /// deployments it touches: a host row moves only by
    /// `HostDeployState::can_move_to`, so a report and a step racing can never
    /// both end one host row. This must hold under concurrent callers on
    /// separate connections: SQLite's write lock does it; a backend that does
    /// not serialise writers locks each deployment's row it moves (in id
    /// order, as `advance_deployment` does) before reading its host rows.
    async fn apply_report(&self, host_id: i64, report: &ProjectReport, now: i64) -> Result<Vec<i64>>;

    /// Retires a host (`ferry host remove`): its row stays, renamed
    /// `NAME~ID`, for the history that names it; its credential stops
    /// working and its desired state goes, so a new host can enrol as NAME.
    /// Refused while it is a target of a running deployment. Returns its id.
    ///
    /// Concurrency: One transaction, atomic with its check that no running deployment targets the
    /// host; exactly one of concurrent callers retires it, the others get `NotFound`. SQLite
    /// serialises this with every writer; a backend that does not must lock the host's row so no
    /// deployment takes it as a target meanwhile.
    async fn retire_host(&self, name: &str, now: i64) -> Result<i64>;

    /// Makes `env`'s desired release the host's for env's project, replacing
    /// one of another environment of the project (the host moved). Returns
    /// true if something changed.
    ///
    /// Concurrency: Atomic with the host's desired row.
    async fn move_host_to_env(&self, host_id: i64, env: &Environment, now: i64) -> Result<bool>;

    /// Records where load balancers reach a host (`FERRY_HOST_ADDRESS`).
    ///
    /// Concurrency: One statement on the row it names; last write wins.
    async fn set_host_address(&self, host_id: i64, address: &str) -> Result<()>;

    /// Desired and actual state of every host that has either for a project.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn project_host_states(&self, project: &Project) -> Result<Vec<HostStateRow>>;

    /// Records how a project's service fares on a host, as the host
    /// reports it (R21): only for a project desired on that host, and
    /// atomic with reading the state before, so that exactly one report
    /// answers each turn (`Failing` when it started failing, `Recovered`
    /// when it runs again).
    ///
    /// Concurrency: Exactly one report answers each turn of a host's service
    /// state: the turn is checked and written in one transaction. A backend
    /// that does not serialise writers locks the host's actual-state row
    /// (`SELECT ... FOR UPDATE`) before the check.
    async fn record_service_state(
        &self,
        host_id: i64,
        project: &str,
        state: &ServiceState,
        now: i64,
    ) -> Result<Option<ServiceChange>>;
}
