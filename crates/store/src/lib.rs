//! Everything the Ferry server keeps: the [`Database`] (projects,
//! environments, releases, hosts, desired state, deployments, variables) and
//! the [`ArtifactStore`] (release content, by digest).
//!
//! Both are narrow traits with one module per backend: SQLite and the local
//! filesystem today; PostgreSQL and S3-compatible stores plug in beside them
//! without touching the server. Every backend must pass the conformance suite
//! in `tests.rs`.
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
pub mod model;
pub mod sqlite;
#[cfg(test)]
mod tests;

use async_trait::async_trait;
use ferry_domain::report::{LogLine as AgentLogLine, ProjectReport};
use ferry_domain::rollout::{RolloutPolicy, Step};
use ferry_domain::{BadMark, Freeze, Tags};

pub use artifacts::{ArtifactStore, BlobReader, BlobWriter, LocalArtifactStore};
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

/// The server's database. See the crate documentation for the invariants.
#[async_trait]
pub trait Database: Send + Sync + 'static {
    // --- settings and API tokens ---
    async fn get_setting(&self, key: &str) -> Result<Option<String>>;
    async fn set_setting(&self, key: &str, value: &str) -> Result<()>;
    /// Stores `value` unless the key exists; returns the value now stored.
    async fn init_setting(&self, key: &str, value: &str) -> Result<String>;
    /// Creates the user if needed and adds an API token (by hash) for them.
    async fn add_api_token(
        &self,
        user: &str,
        is_admin: bool,
        token_name: &str,
        token_hash: &str,
        now: i64,
    ) -> Result<()>;
    /// The user a token hash belongs to, disabled or not: the caller refuses
    /// a disabled one, so that it can say why.
    async fn user_for_token(&self, token_hash: &str) -> Result<Option<User>>;

    // --- users, tokens and members (R26) ---
    /// Creates a user; `Conflict` if the name is taken.
    async fn create_user(&self, new: &NewUser, now: i64) -> Result<User>;
    async fn user(&self, name: &str) -> Result<User>;
    /// Every user, by name.
    async fn users(&self) -> Result<Vec<User>>;
    /// The stored password hash of a user, if the user exists and has one.
    async fn password_hash(&self, user_id: i64) -> Result<Option<String>>;
    /// Disables or enables a user. A disabled user's tokens are refused from
    /// the next request on. Enabling also lifts its sign-in locks, from
    /// every address.
    async fn set_user_disabled(&self, user_id: i64, disabled: bool) -> Result<()>;
    /// Until when a user's account refuses passwords from `address`, if it
    /// does at `now`.
    async fn sign_in_lock(&self, user_id: i64, address: &str, now: i64) -> Result<Option<i64>>;
    /// Counts a failed sign-in from `address`, in one transaction; `lock`
    /// says until when the account refuses passwords from there given the
    /// failures in a row so far. Returns that time, if it is now locked.
    async fn record_failed_sign_in(
        &self,
        user_id: i64,
        address: &str,
        now: i64,
        lock: fn(u32, i64) -> Option<i64>,
    ) -> Result<Option<i64>>;
    /// A successful sign-in from `address`: its count starts again (other
    /// addresses' locks stay).
    async fn clear_failed_sign_ins(&self, user_id: i64, address: &str) -> Result<()>;
    /// Sets or clears a user's e-mail address (already checked).
    async fn set_user_email(&self, user_id: i64, email: Option<&str>) -> Result<()>;
    /// Sets a user's administrator flag and production right.
    async fn set_user_rights(&self, user_id: i64, is_admin: bool, production: bool) -> Result<()>;
    /// Adds an API token (by hash) for an existing user.
    async fn create_api_token(&self, user_id: i64, name: &str, token_hash: &str, now: i64) -> Result<ApiToken>;
    /// A user's API tokens, oldest first.
    async fn api_tokens(&self, user_id: i64) -> Result<Vec<ApiToken>>;
    /// Removes one of a user's tokens; false if the user has no such token.
    async fn revoke_api_token(&self, user_id: i64, token_id: i64) -> Result<bool>;
    /// Starts a web session (by the hash of its cookie) for a user, ending
    /// at `expires_at`; sessions already ended at `now` are removed.
    async fn create_web_session(&self, user_id: i64, token_hash: &str, now: i64, expires_at: i64) -> Result<()>;
    /// The user of a web session that has not ended at `now`, disabled or
    /// not (the caller refuses a disabled one).
    async fn user_for_web_session(&self, token_hash: &str, now: i64) -> Result<Option<User>>;
    /// Ends a web session (signing out); false if there was none.
    async fn end_web_session(&self, token_hash: &str) -> Result<bool>;
    /// Gives a user a role in a project, replacing the role they had.
    async fn set_member(&self, project: &Project, user: &User, role: ferry_domain::Role, now: i64) -> Result<()>;
    /// Removes a user from a project; false if they were not a member.
    async fn remove_member(&self, project: &Project, user: &User) -> Result<bool>;
    /// A project's members, by user name.
    async fn members(&self, project: &Project) -> Result<Vec<Member>>;
    /// A user's role in a project, if any.
    async fn membership(&self, project_id: i64, user_id: i64) -> Result<Option<ferry_domain::Role>>;
    /// A user's highest role in any project, for actions that concern no one
    /// project (uploading content).
    async fn best_membership(&self, user_id: i64) -> Result<Option<ferry_domain::Role>>;

    // --- projects and environments ---
    async fn create_project(&self, new: &NewProject, now: i64) -> Result<Project>;
    /// A project that is not deleted.
    async fn project(&self, name: &str) -> Result<Project>;
    /// A project by name, deleted or not: for reading its history.
    async fn project_including_deleted(&self, name: &str) -> Result<Project>;
    /// The projects that are not deleted.
    async fn projects(&self) -> Result<Vec<Project>>;
    /// Changes how many releases hosts keep and where builds come from
    /// (the webhook secret as the source gives it: sealed).
    async fn update_project(&self, project: &Project, keep_releases: u32, source: Option<&ProjectSource>)
    -> Result<()>;
    /// Deletes a project and its environments, keeping their rows (and so
    /// their deployments, builds, releases and audit entries) for the
    /// history; their names stay taken. Hosts stop being given its releases.
    /// Refused while it has a running deployment or a queued or running build.
    async fn delete_project(&self, project: &Project, now: i64) -> Result<()>;
    /// Deletes an environment the same way: its row stays for its
    /// deployments; its hosts stop being given its release, its load
    /// balancer goes, and environments tested on it are tested nowhere.
    /// Refused while it has a running deployment.
    async fn delete_environment(&self, env: &Environment, now: i64) -> Result<()>;
    /// Replaces the webhook secret of a project that builds from git, as the
    /// server gives it (sealed).
    async fn set_webhook_secret(&self, project: &Project, secret: Option<&str>) -> Result<()>;
    /// Records that the project holds these blobs: their bytes were uploaded
    /// to it (or made by its build) and verified. Idempotent.
    async fn add_project_blobs(&self, project_id: i64, digests: &[ferry_domain::Digest]) -> Result<()>;
    /// Those of `digests` the project is not recorded as holding, each once,
    /// in the order given. Existence checks answer from this, never from the
    /// whole store, so nobody learns what other projects hold.
    async fn project_blobs_missing(
        &self,
        project_id: i64,
        digests: &[ferry_domain::Digest],
    ) -> Result<Vec<ferry_domain::Digest>>;
    /// Sets (or, with `None`, lifts) which hosts the project's environments
    /// may select.
    async fn set_project_host_scope(&self, project: &Project, scope: Option<&str>) -> Result<()>;
    async fn create_environment(&self, project: &Project, new: &NewEnvironment, now: i64) -> Result<Environment>;
    async fn environment(&self, project: &Project, name: &str) -> Result<Environment>;
    async fn environments(&self, project: &Project) -> Result<Vec<Environment>>;
    /// Every environment of every project, for matching a host's tags.
    async fn all_environments(&self) -> Result<Vec<Environment>>;
    /// Sets an environment's default rollout.
    async fn set_environment_rollout(&self, env: &Environment, policy: &RolloutPolicy) -> Result<()>;
    /// Makes an environment production, or not.
    async fn set_environment_production(&self, env: &Environment, production: bool) -> Result<()>;
    /// Whether deployments to an environment need an approved request, and
    /// where requests for it are tested first (an environment of the same
    /// project, not itself).
    async fn set_environment_protection(
        &self,
        env: &Environment,
        requires_approval: bool,
        staging_env_id: Option<i64>,
    ) -> Result<()>;

    // --- releases ---
    async fn create_release(&self, new: NewRelease, now: i64) -> Result<Release>;
    async fn release(&self, project: &Project, version: &str) -> Result<Release>;
    async fn release_by_id(&self, id: i64) -> Result<Release>;
    /// Newest first.
    async fn releases(&self, project: &Project) -> Result<Vec<Release>>;
    /// Marks a release bad (replacing an earlier mark), or clears its mark
    /// with `None`. Returns the release as it now is.
    async fn set_release_mark(&self, release_id: i64, mark: Option<&BadMark>) -> Result<Release>;

    // --- hosts ---
    async fn enroll_host(&self, name: &str, tags: &Tags, token_hash: &str, now: i64) -> Result<Host>;
    async fn host_by_token(&self, token_hash: &str) -> Result<Option<Host>>;
    async fn host(&self, name: &str) -> Result<Host>;
    async fn hosts(&self) -> Result<Vec<Host>>;
    /// The agent connected: record its version, mark it online, and keep the
    /// tags it announced only as `announced_tags` (when they differ from the
    /// enrolled ones, which this never changes).
    async fn host_connected(&self, host_id: i64, announced: &Tags, agent_version: &str, now: i64) -> Result<()>;
    /// Records a join token limited to `tags`, by its hash.
    async fn create_join_token(&self, token_hash: &str, tags: &Tags, by: &str, now: i64) -> Result<JoinToken>;
    /// The unrevoked join token with this hash, if any.
    async fn join_token(&self, token_hash: &str) -> Result<Option<JoinToken>>;
    /// Every limited join token, revoked ones included, newest first.
    async fn join_tokens(&self) -> Result<Vec<JoinToken>>;
    /// Revokes a join token: hosts can no longer enrol with it (those that
    /// did keep their own credentials).
    async fn revoke_join_token(&self, id: i64, now: i64) -> Result<()>;
    /// Replaces a host's tags (an administrator's act); clears the announced
    /// tags when they now agree.
    async fn set_host_tags(&self, name: &str, tags: &Tags) -> Result<Host>;
    async fn host_seen(&self, host_id: i64, now: i64) -> Result<()>;
    async fn host_disconnected(&self, host_id: i64) -> Result<()>;
    /// Marks online hosts not seen since `seen_before` offline; returns them.
    async fn mark_silent_hosts_offline(&self, seen_before: i64) -> Result<Vec<i64>>;

    // --- desired state ---
    /// What one host should run, per project.
    async fn desired_for_host(&self, host_id: i64) -> Result<Vec<DesiredRow>>;
    /// Makes `env`'s desired release desired on this host for the env's
    /// project, unless the host already has a desired release of that project.
    /// Returns true if something was added (R3: a new host converges).
    async fn adopt_host(&self, host_id: i64, env: &Environment, now: i64) -> Result<bool>;

    // --- deployments ---
    /// Atomically: refuses a frozen environment (`Frozen`, unless
    /// `ignore_freeze`) and a release marked bad (`MarkedBad`, unless
    /// `forced`), takes the environment's deployment lock (or, for an
    /// emergency, takes it over from the running deployment, which ends as
    /// canceled), and records the deployment and its plan: every target host,
    /// queued in its batch. Nothing changes on a host until
    /// [`advance_deployment`](Database::advance_deployment) starts its batch.
    async fn create_deployment(&self, new: NewDeployment, now: i64) -> Result<i64>;
    /// One step of the orchestrator, in one transaction: reads the running
    /// deployment's recorded state, asks `ferry_domain::rollout::next_step`
    /// what to do, and does it (start a batch: make the release desired on
    /// its hosts; roll back; finish). A step is never taken twice: a second
    /// caller reads the state the first one left. Call it until it waits.
    async fn advance_deployment(&self, id: i64, now: i64) -> Result<Advanced>;
    /// Records an operator's pause, resume, cancel or promote. Refused
    /// (`Conflict`) for a deployment that has ended.
    async fn control_deployment(&self, id: i64, control: RolloutControl, now: i64) -> Result<()>;
    /// The step [`advance_deployment`](Database::advance_deployment) would
    /// take now, without taking it, with the hosts of the batch it would
    /// start (`None` when the deployment is not running).
    async fn peek_deployment(&self, id: i64, now: i64) -> Result<Option<(Step, Vec<i64>)>>;
    /// Records what the server holds a running deployment for (shown as its
    /// `hold`, and in its history when it changes).
    async fn hold_deployment(&self, id: i64, hold: &ferry_domain::status::Note, now: i64) -> Result<()>;
    /// The hosts a rollout took out of its environment's load balancer and
    /// has not put back yet.
    async fn rollout_drained(&self, id: i64) -> Result<Vec<i64>>;
    async fn set_rollout_drained(&self, id: i64, hosts: &[i64]) -> Result<()>;
    /// The deployments still running, oldest first, for the orchestrator's sweep.
    async fn running_deployments(&self) -> Result<Vec<i64>>;
    /// A deployment's transitions, oldest first.
    async fn deployment_events(&self, id: i64) -> Result<Vec<DeploymentEvent>>;
    async fn deployment(&self, id: i64) -> Result<DeploymentRow>;
    async fn deployment_hosts(&self, id: i64) -> Result<Vec<DeploymentHostRow>>;
    /// Newest first, at most `limit`.
    async fn deployments(&self, project: &Project, limit: u32) -> Result<Vec<DeploymentRow>>;
    /// Running deployments, of one project or of all, oldest first: each holds
    /// its environment's lock (R19).
    async fn lock_holders(&self, project: Option<&Project>) -> Result<Vec<DeploymentRow>>;
    /// Every deployment of a project (of one environment if `env` is given)
    /// created at or after `since`, running ones included, oldest first: what
    /// `ferry_domain::stats` computes the statistics from.
    async fn deployment_facts(
        &self,
        project: &Project,
        env: Option<&Environment>,
        since: i64,
    ) -> Result<Vec<ferry_domain::stats::DeploymentFacts>>;
    /// Finished deployments of an environment, newest first, for choosing a
    /// rollback target.
    async fn environment_history(&self, env: &Environment) -> Result<Vec<DeploymentRow>>;
    /// Per host with anything of the project desired or run: its desired
    /// release and the releases that ran successfully on it, newest first
    /// (recorded by `apply_report`), for choosing rollback targets per host.
    async fn hosts_past(&self, project: &Project) -> Result<Vec<HostPastRow>>;
    /// Records an agent's report and moves that host's row of any running
    /// deployment of the project accordingly (the orchestrator then decides
    /// what the deployment does). Returns the deployments it changed.
    async fn apply_report(&self, host_id: i64, report: &ProjectReport, now: i64) -> Result<Vec<i64>>;
    /// Fails started target hosts of running deployments that are offline,
    /// as their deployment's offline policy says
    /// (`ferry_domain::offline::offline_failure`: a few missed heartbeats, or
    /// the offline timeout under `wait`). Returns the deployments it changed.
    async fn fail_offline_targets(&self, now: i64, heartbeat_interval_ms: i64) -> Result<Vec<i64>>;
    /// Changes an environment's tag selector (already validated).
    async fn set_environment_selector(&self, env: &Environment, selector: &str) -> Result<()>;
    /// Sets what a target host offline at a deployment's start means.
    async fn set_environment_offline_policy(
        &self,
        env: &Environment,
        policy: ferry_domain::OfflinePolicy,
    ) -> Result<()>;
    /// Retires a host (`ferry host remove`): its row stays, renamed
    /// `NAME~ID`, for the history that names it; its credential stops
    /// working and its desired state goes, so a new host can enrol as NAME.
    /// Refused while it is a target of a running deployment. Returns its id.
    async fn retire_host(&self, name: &str, now: i64) -> Result<i64>;
    /// Makes `env`'s desired release the host's for env's project, replacing
    /// one of another environment of the project (the host moved). Returns
    /// true if something changed.
    async fn move_host_to_env(&self, host_id: i64, env: &Environment, now: i64) -> Result<bool>;
    /// Appends an agent's log lines about its install of `release_id` of
    /// `project` to the deployment taking that release to the host: a running
    /// deployment whose row for the host is still pending or running. Lines
    /// no such deployment is waiting for (a retry after the host failed, a
    /// drift repair, a release no longer deployed) are dropped, so a finished
    /// deployment's log never changes. Per deployment host, keeps what
    /// `ferry_domain::log::LogBudget` admits and counts the rest in one marker
    /// line. A line without a time gets `now`. Returns the deployment the
    /// lines went to, if any.
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
    async fn deployment_log(
        &self,
        deployment_id: i64,
        host: Option<&str>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<DeploymentLogLine>>;

    // --- freezes ---
    /// Freezes an environment. An expired freeze of it is replaced; one in
    /// force at `now` is refused with `Frozen`.
    async fn freeze_environment(&self, env: &Environment, freeze: &Freeze, now: i64) -> Result<FreezeRow>;
    /// Lifts the freeze of an environment; `None` if none was in force at
    /// `now` (an expired one is removed all the same).
    async fn unfreeze_environment(&self, env: &Environment, now: i64) -> Result<Option<FreezeRow>>;
    /// The freeze of an environment in force at `now`, if any.
    async fn environment_freeze(&self, env: &Environment, now: i64) -> Result<Option<FreezeRow>>;
    /// Freezes in force at `now`, of one project or of all, by project and
    /// environment name.
    async fn freezes(&self, project: Option<&Project>, now: i64) -> Result<Vec<FreezeRow>>;

    // --- release requests (R24) ---
    /// Creates a request with the first entry of its history.
    async fn create_request(&self, new: &NewRequest, now: i64) -> Result<RequestRow>;
    async fn request(&self, id: i64) -> Result<RequestRow>;
    /// Requests, newest first.
    async fn requests(&self, filter: &RequestFilter) -> Result<Vec<RequestRow>>;
    /// Changes a request's state and records it, in one transaction, if its
    /// state is still `change.from`; otherwise `Refused`, naming the state it
    /// is in now (someone else acted first).
    async fn change_request(&self, id: i64, change: &RequestChange, now: i64) -> Result<RequestRow>;
    /// Adds an entry to a request's history that does not change its state
    /// (its staging environment was updated).
    async fn note_request(&self, id: i64, note: &RequestNote<'_>, now: i64) -> Result<()>;
    /// A request's history, oldest first.
    async fn request_events(&self, id: i64) -> Result<Vec<RequestEvent>>;
    /// The deployments made for a request, newest first.
    async fn request_deployments(&self, id: i64) -> Result<Vec<DeploymentRow>>;

    // --- builds ---
    /// Queues a build with the project's next build number.
    async fn create_build(&self, new: &NewBuild, now: i64) -> Result<Build>;
    async fn build(&self, id: i64) -> Result<Build>;
    async fn build_by_number(&self, project: &Project, number: i64) -> Result<Build>;
    /// Newest first, at most `limit`.
    async fn builds(&self, project: &Project, limit: u32) -> Result<Vec<Build>>;
    /// The newest succeeded build of a project.
    async fn latest_succeeded_build(&self, project: &Project) -> Result<Option<Build>>;
    /// Atomically moves the oldest queued build of a project with no running
    /// build to running, and returns it (R6: one build per project at a time).
    async fn claim_next_build(&self, now: i64) -> Result<Option<Build>>;
    /// How many builds wait in the queue (of every project), for `/metrics`.
    async fn queued_build_count(&self) -> Result<u64>;
    /// Answers when the database answers a query (`/readyz`).
    async fn ping(&self) -> Result<()>;
    /// The connection pool's use right now, for `/metrics`; `None` for a
    /// store without a pool.
    fn pool_use(&self) -> Option<PoolUse> {
        None
    }
    async fn set_build_commit(&self, id: i64, commit: &BuildCommit) -> Result<()>;
    /// Ends a queued or running build; false if it had already ended.
    async fn finish_build(&self, id: i64, outcome: &BuildOutcome, now: i64) -> Result<bool>;
    /// Cancels a queued build at once, or asks a running one to stop.
    /// Returns the build as it now is.
    async fn cancel_build(&self, id: i64, now: i64) -> Result<Build>;
    /// Fails every running build, with `reason`: used at start-up, when no
    /// build of a previous server process can still be running.
    async fn fail_running_builds(&self, reason: &str, now: i64) -> Result<u64>;
    async fn append_build_log(&self, id: i64, lines: &[(i64, String, String)]) -> Result<()>;
    /// Log lines with `seq > after`, at most `limit`.
    async fn build_log(&self, id: i64, after: i64, limit: u32) -> Result<Vec<LogLine>>;
    /// Records a webhook delivery; false if this id was seen before.
    async fn record_delivery(&self, project_id: i64, forge: &str, delivery_id: &str, now: i64) -> Result<bool>;

    // --- variables (R17) ---
    /// Sets a variable, replacing the one of the same name in the same slot.
    /// Returns true if it replaced one.
    async fn set_var(&self, new: &NewVar, now: i64) -> Result<bool>;
    /// Removes a variable; false if there was none of that name in the slot.
    async fn unset_var(&self, slot: &VarSlot, key: &str) -> Result<bool>;
    /// Every variable of a project, ordered by name, then from the least to
    /// the most specific scope.
    async fn vars(&self, project: &Project) -> Result<Vec<VarRow>>;
    /// The variables that can reach one host: for each project it has a
    /// desired release of, those for the whole project or the host's
    /// environment there, and for any host or this one. Never another host's.
    async fn vars_for_host(&self, host_id: i64) -> Result<Vec<VarRow>>;

    // --- load balancers (R14) ---
    /// Records where load balancers reach a host (`FERRY_HOST_ADDRESS`).
    async fn set_host_address(&self, host_id: i64, address: &str) -> Result<()>;
    /// Puts a load balancer in front of `env`, replacing the one it had
    /// (its drained hosts stay drained). Returns the new generation.
    async fn set_load_balancer(&self, env: &Environment, lb: &NewLoadBalancer, now: i64) -> Result<u64>;
    /// Removes `env`'s load balancer with its drained hosts and what its
    /// hosts reported; false if it had none. The generation still goes up,
    /// so that a load balancer set later never reuses one.
    async fn unset_load_balancer(&self, env: &Environment) -> Result<bool>;
    async fn load_balancer(&self, env: &Environment) -> Result<Option<LoadBalancer>>;
    /// Every load balancer, for working out a host's desired state.
    async fn load_balancers(&self) -> Result<Vec<LoadBalancer>>;
    /// Takes hosts out of `env`'s load balancer (`drained`), or puts them
    /// back, in one transaction. The generation goes up if any host's state
    /// changed. Returns the generation now in force, or `None` when the
    /// environment has no load balancer (and nothing was recorded).
    async fn set_drained(&self, env: &Environment, host_ids: &[i64], drained: bool, now: i64) -> Result<Option<u64>>;
    /// Records what a load-balancer host reported having applied for
    /// `project`/`env`; a report about an unknown environment is dropped.
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
    async fn lb_applied(&self, env_id: i64) -> Result<Vec<LbAppliedRow>>;

    // --- audit trail (R27) ---
    // Append-only on purpose: there is no way to change or remove an entry.
    /// Appends an entry in one transaction: reads the last entry's hash and
    /// stores the new one chained to it, keyed with `key`
    /// (`ferry_domain::audit::AuditKey::entry_hash`).
    async fn append_audit(&self, entry: &NewAuditEntry, key: &ferry_domain::audit::AuditKey) -> Result<AuditEntry>;
    /// Entries matching `filter`, newest first.
    async fn audit_log(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>>;
    /// Entries with `seq > after`, oldest first, at most `limit`, as stored:
    /// for recomputing the chain page by page.
    async fn audit_chain(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>>;
    /// The newest entry, if any.
    async fn audit_head(&self) -> Result<Option<AuditEntry>>;
    /// The `seq` of the oldest entry stored with this hash scheme, if any.
    async fn audit_first_with_scheme(&self, scheme: &str) -> Result<Option<i64>>;
    // --- notifications (R28) ---
    async fn add_notification_rule(
        &self,
        project: &Project,
        new: &NewNotificationRule,
        now: i64,
    ) -> Result<NotificationRule>;
    /// A project's rules, oldest first.
    async fn notification_rules(&self, project: &Project) -> Result<Vec<NotificationRule>>;
    /// Removes a rule of the project, giving up on what it still had to
    /// deliver; false if the project has no such rule. What it delivered
    /// stays in the log.
    async fn remove_notification_rule(&self, project: &Project, id: i64) -> Result<bool>;
    /// Records these notifications of `event` in one transaction, due at
    /// once; one whose rule was removed meanwhile is left out. Returns the
    /// ids of those recorded.
    async fn enqueue_notifications(
        &self,
        project_id: i64,
        event: &str,
        items: &[NewNotification],
        now: i64,
    ) -> Result<Vec<i64>>;
    /// Notifications waiting for an attempt at `now`, the longest waiting
    /// first, at most `limit`.
    async fn due_notifications(&self, now: i64, limit: u32) -> Result<Vec<DueNotification>>;
    /// Records an attempt and what follows from it, in one transaction.
    /// Refused for a notification that is not waiting (delivered, given up).
    async fn record_notification_attempt(
        &self,
        id: i64,
        attempt: &NotificationAttempt,
        outcome: NotificationOutcome,
    ) -> Result<()>;
    /// A project's notifications, newest first, at most `limit`, each with
    /// its attempts.
    async fn notification_log(&self, project: &Project, limit: u32) -> Result<Vec<NotificationLogRow>>;

    // --- status ---
    /// Desired and actual state of every host that has either for a project.
    async fn project_host_states(&self, project: &Project) -> Result<Vec<HostStateRow>>;
    /// Records how a project's service fares on a host, as the host
    /// reports it (R21): only for a project desired on that host, and
    /// atomic with reading the state before, so that exactly one report
    /// answers each turn (`Failing` when it started failing, `Recovered`
    /// when it runs again).
    async fn record_service_state(
        &self,
        host_id: i64,
        project: &str,
        state: &ServiceState,
        now: i64,
    ) -> Result<Option<ServiceChange>>;

    // --- environments in order (R23) ---
    /// Which environment `env` comes after (`None`: none) and whether a
    /// requester may pass her own request for it. The caller checks that
    /// the order has no cycle and stays in the project.
    async fn set_environment_order(&self, env: &Environment, after_env_id: Option<i64>, self_test: bool) -> Result<()>;
    /// The hosts on which a deployment of `release_id` to `env` succeeded,
    /// in any deployment, by id.
    async fn release_succeeded_hosts(&self, env: &Environment, release_id: i64) -> Result<Vec<i64>>;
    /// Marks a release request as skipping the order of environments.
    async fn set_request_skip_promotion(&self, request_id: i64) -> Result<()>;
    /// Whether a release request skips the order of environments.
    async fn request_skips_promotion(&self, request_id: i64) -> Result<bool>;

    // --- agent self-upgrade (migration 0022) ---
    /// Records an uploaded agent binary; `Conflict` when its version label is taken.
    async fn add_agent_binary(&self, new: &NewAgentBinary) -> Result<AgentBinary>;
    /// The agent binary of this version label.
    async fn agent_binary(&self, version: &str) -> Result<AgentBinary>;
    /// Every agent binary, oldest first.
    async fn agent_binaries(&self) -> Result<Vec<AgentBinary>>;
    /// What a host's agent announced it runs (version label, SHA-256).
    async fn set_host_binary(&self, host_id: i64, version: Option<&str>, digest: Option<&str>) -> Result<()>;
    /// Records an upgrade of `env_id`'s agents to `binary_id`, the hosts
    /// queued in `batches` (batch 1 first); `Refused` while another upgrade
    /// of the environment runs.
    async fn create_agent_upgrade(
        &self,
        env_id: i64,
        binary_id: i64,
        batches: &[Vec<i64>],
        by: &str,
        now: i64,
    ) -> Result<i64>;
    /// The newest upgrade of an environment's agents, with its hosts.
    async fn latest_agent_upgrade(&self, env_id: i64) -> Result<Option<AgentUpgrade>>;
    /// An upgrade by id, with its hosts.
    async fn agent_upgrade(&self, id: i64) -> Result<Option<AgentUpgrade>>;
    /// The running upgrades a host belongs to.
    async fn running_agent_upgrades_of_host(&self, host_id: i64) -> Result<Vec<AgentUpgrade>>;
    /// Moves a host of a running upgrade to `to` when it is in one of
    /// `from`; answers whether it moved.
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
    async fn stale_agent_upgrade_hosts(&self, before: i64) -> Result<Vec<(i64, i64)>>;
    /// Moves the queued hosts of `batch` to upgrading; answers their ids.
    async fn start_agent_upgrade_batch(&self, upgrade_id: i64, batch: u32, now: i64) -> Result<Vec<i64>>;
    /// Ends a running upgrade (its queued hosts become skipped, in the same
    /// transaction); answers whether this call ended it.
    async fn finish_agent_upgrade(
        &self,
        upgrade_id: i64,
        succeeded: bool,
        error: Option<&str>,
        now: i64,
    ) -> Result<bool>;
}
