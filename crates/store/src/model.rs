//! Rows the [`Database`](crate::Database) returns. Times are milliseconds
//! since the epoch.
//!
//! Long file: every row type the store returns, plain data, kept together as
//! the store's vocabulary.

use std::collections::BTreeMap;

use ferry_domain::OfflinePolicy;
use ferry_domain::notify::Channel;
use ferry_domain::rollout::{Hold, RolloutPolicy};
use ferry_domain::status::Note;
use ferry_domain::{
    BadMark, BuildStatus, DeploymentKind, DeploymentStatus, Digest, Freeze, HostDeployState, RequestAction,
    RequestKind, RequestState, Secret, Tags,
};

/// A person (or script) that signs in with a password or an API token.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub is_admin: bool,
    /// May deploy to production environments (R26).
    pub production: bool,
    /// A disabled user's tokens and password are refused.
    pub disabled: bool,
    /// Has a password, so can sign in with `ferry login`.
    pub has_password: bool,
    /// Where the user's e-mail notifications go (R28); none: nowhere.
    pub email: Option<String>,
}

impl User {
    /// What the access rules need to know about the user.
    pub fn subject(&self) -> ferry_domain::Subject {
        ferry_domain::Subject { is_admin: self.is_admin, production: self.production }
    }
}

/// A user to create. The password arrives hashed (argon2id PHC string).
#[derive(Debug, Clone, PartialEq)]
pub struct NewUser {
    pub name: String,
    pub is_admin: bool,
    pub production: bool,
    pub password_hash: Option<String>,
    /// Already checked (`ferry_domain::notify::check_email`).
    pub email: Option<String>,
}

/// An API token as listed: never the token itself, nor its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiToken {
    pub id: i64,
    pub user: String,
    pub name: String,
    pub created_at: i64,
}

/// A join token limited to certain tags (never its secret: only its hash is
/// kept).
#[derive(Debug, Clone, PartialEq)]
pub struct JoinToken {
    pub id: i64,
    /// The tags a host enrolling with it may have.
    pub tags: Tags,
    pub created_by: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// A user's role in a project.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub project: String,
    pub user: String,
    pub role: ferry_domain::Role,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    pub id: i64,
    pub name: String,
    pub keep_releases: u32,
    pub source: Option<ProjectSource>,
    pub created_at: i64,
    /// The hosts its environments may select (`k=v,...`), as an
    /// administrator set it; `None`: any host.
    pub host_scope: Option<String>,
    /// When it was deleted (`ferry project delete`): its history stays.
    pub deleted_at: Option<i64>,
}

/// Where a project's code comes from, for builds (R5, R6).
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectSource {
    /// Anything the server's `git` can fetch: file://, https://, ssh.
    pub repo_url: String,
    /// Checks push webhooks; `None` refuses every webhook. Stored as the
    /// server gives it: sealed with the server's key.
    pub webhook_secret: Option<Secret>,
    /// Branch patterns whose pushes build; empty means all.
    pub branches: Vec<String>,
    /// Push the version tag back to `repo_url` after a successful build.
    pub push_tags: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewProject {
    pub name: String,
    pub keep_releases: u32,
    pub source: Option<ProjectSource>,
    /// See [`Project::host_scope`].
    pub host_scope: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewEnvironment {
    pub name: String,
    /// `k=v,...`, already validated.
    pub selector: String,
    pub auto_deploy_branch: Option<String>,
    pub rollout: RolloutPolicy,
    /// Deployments to it need the production right (R26).
    pub production: bool,
    /// Deployments to it need an approved release request (R24).
    pub requires_approval: bool,
    /// Requests for it are tested on this environment of the project first.
    pub staging_env_id: Option<i64>,
    /// What a target host offline at a deployment's start means.
    pub offline_policy: OfflinePolicy,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Environment {
    pub id: i64,
    pub project_id: i64,
    pub project: String,
    pub name: String,
    /// `k=v,...`, already validated.
    pub selector: String,
    pub desired_release_id: Option<i64>,
    pub auto_deploy_branch: Option<String>,
    pub created_at: i64,
    /// How its deployments roll out unless a deploy says otherwise.
    pub rollout: RolloutPolicy,
    /// Deployments to it need the production right (R26).
    pub production: bool,
    /// Deployments to it need an approved release request (R24).
    pub requires_approval: bool,
    /// The environment a request for this one is tested on first.
    pub staging: Option<String>,
    /// The environment this one comes after (R23): a version is deployed
    /// here only once it succeeded on every host of that one.
    pub after: Option<String>,
    /// The requester of a release request for this environment may pass it
    /// as tested herself.
    pub self_test: bool,
    /// What a target host offline at a deployment's start means.
    pub offline_policy: OfflinePolicy,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewRelease {
    pub project_id: i64,
    pub version: String,
    pub branch: String,
    pub committer: String,
    pub manifest_digest: Digest,
    pub file_count: u64,
    pub total_size: u64,
    pub created_by: String,
    /// Set for releases made by a build.
    pub origin: Option<ReleaseOrigin>,
}

/// The build and commit a release was made from.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseOrigin {
    pub build_id: i64,
    pub commit_sha: String,
    pub committed_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Release {
    pub id: i64,
    pub project_id: i64,
    pub version: String,
    pub branch: String,
    pub committer: String,
    pub manifest_digest: Digest,
    pub file_count: u64,
    pub total_size: u64,
    pub created_by: String,
    pub created_at: i64,
    pub origin: Option<ReleaseOrigin>,
    /// Set while the release is marked bad.
    pub bad: Option<BadMark>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub id: i64,
    pub name: String,
    pub tags: Tags,
    pub agent_version: Option<String>,
    pub online: bool,
    pub last_seen_at: Option<i64>,
    pub enrolled_at: i64,
    /// Where load balancers reach it (`FERRY_HOST_ADDRESS`); `None` until
    /// its agent connected once.
    pub address: Option<String>,
    /// The tags its agent asked for at its last connection, when they differ
    /// from `tags`: shown, never applied (only an administrator re-tags).
    pub announced_tags: Option<Tags>,
    /// The version label of the agent binary it runs, as its agent announced
    /// it (`None` from agents that predate self-upgrade).
    pub agent_binary: Option<String>,
    /// The SHA-256 (hex) of the executable its agent runs.
    pub agent_digest: Option<String>,
}

/// One project's desired release on a host, with what the agent needs.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredRow {
    pub project: String,
    pub keep_releases: u32,
    pub env: String,
    pub release: Release,
    /// When this release became desired on the host (a new deployment of
    /// the same release changes it).
    pub desired_since: i64,
}

/// One target host of a new deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentTarget {
    pub host_id: i64,
    /// The release this host goes to: the deployment's, or for a rollback
    /// the one this host ran before (R9, R11).
    pub release_id: i64,
    pub release_name: String,
    /// What the host last ran successfully when the deployment was made.
    pub from_release_id: Option<i64>,
    /// Its batch in the plan, from 0.
    pub batch: u32,
    /// Offline at the start under the `skip` policy: recorded as skipped,
    /// never started; given the release when the deployment succeeds.
    pub skipped: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewDeployment {
    pub project_id: i64,
    pub env_id: i64,
    pub release_id: i64,
    pub kind: DeploymentKind,
    pub created_by: String,
    pub targets: Vec<DeploymentTarget>,
    /// On success, also make the release the environment's desired release,
    /// so hosts that join later converge to it.
    pub whole_env: bool,
    pub offline_timeout_ms: i64,
    /// What offline targets mean for this deployment.
    pub offline_policy: OfflinePolicy,
    /// Go ahead even if the release is marked bad (`--force`); recorded on
    /// the deployment when the release was in fact marked.
    pub forced: bool,
    /// Go ahead even if the environment is frozen (an emergency rollback);
    /// recorded on the deployment when a freeze was in fact in force.
    pub ignore_freeze: bool,
    pub policy: RolloutPolicy,
    pub batch_count: u32,
    /// An emergency rollback (R11): no gates, and it takes over from a
    /// running deployment of the environment, which ends as canceled.
    pub emergency: bool,
    /// The release request it was made for (a staging update or the release).
    pub request_id: Option<i64>,
    /// Said in the deployment's history at its creation (e.g. hosts a
    /// rollback leaves alone, and why).
    pub notes: Vec<Note>,
}

/// What an operator asks of a running deployment.
pub use ferry_domain::orchestrate::Control as RolloutControl;

/// What one orchestrator step did.
#[derive(Debug, Clone, PartialEq)]
pub enum Advanced {
    /// Nothing to do now; the deployment waits for this.
    Waiting(Hold),
    /// Desired state changed for these hosts (a batch started, or a rollback):
    /// their agents should be woken.
    Changed { hosts: Vec<i64> },
    /// The deployment ended (with these hosts' desired state changed, for a rollback).
    Finished { status: DeploymentStatus, hosts: Vec<i64> },
    /// Not running (any more).
    NotRunning,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentRow {
    pub id: i64,
    pub project: String,
    pub env: String,
    pub release_id: i64,
    pub version: String,
    pub kind: DeploymentKind,
    pub status: DeploymentStatus,
    pub created_by: String,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    /// It deployed a release marked bad, by force.
    pub forced: bool,
    /// It went ahead through a freeze of its environment.
    pub freeze_ignored: bool,
    pub policy: RolloutPolicy,
    pub batch_count: u32,
    pub current_batch: Option<u32>,
    pub paused: bool,
    pub cancel_requested: bool,
    pub emergency: bool,
    /// What a running deployment waits for.
    pub hold: Option<Note>,
    /// Why it ended as it did.
    pub reason: Option<Note>,
    /// The release request it was made for, if any.
    pub request_id: Option<i64>,
}

/// One step of a deployment's history.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentEvent {
    pub at: i64,
    pub what: Note,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentHostRow {
    pub host: String,
    pub batch: u32,
    /// The release this host goes to, and its version.
    pub release_id: i64,
    pub version: String,
    /// The version the host ran when the deployment was made, where known.
    pub from_version: Option<String>,
    pub release_name: String,
    pub state: HostDeployState,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// What the server or the agent said of it.
    pub error: Option<Note>,
    pub bytes_downloaded: u64,
    pub bytes_reused: u64,
}

/// What one host has run of a project, for choosing its rollback target.
#[derive(Debug, Clone, PartialEq)]
pub struct HostPastRow {
    pub host_id: i64,
    /// The release the host is meant to run now.
    pub desired_release_id: Option<i64>,
    /// Releases that ran successfully on it (activated, reported idle),
    /// newest first.
    pub ran: Vec<i64>,
}

/// Desired and reported state of one host for one project.
#[derive(Debug, Clone, PartialEq)]
pub struct HostStateRow {
    pub host_id: i64,
    pub desired_env_id: Option<i64>,
    pub desired_version: Option<String>,
    pub current_version: Option<String>,
    pub current_release: Option<String>,
    pub activity: Option<String>,
    pub error: Option<String>,
    /// How the project's service fares there, as last reported (R21).
    pub service: Option<ServiceState>,
}

/// How a project's service fares on a host after its deploy (R21).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceState {
    /// The supervisor keeps failing to keep it running (a crash loop).
    pub failing: bool,
    /// Why, in one line (empty when it is not failing).
    pub reason: String,
    /// Its last lines of stderr when failing.
    pub stderr: Vec<String>,
    /// When it last started failing or recovered (0 when unknown).
    pub since: i64,
}

/// A service's health turned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceChange {
    Failing,
    Recovered,
}

/// A build request.
#[derive(Debug, Clone, PartialEq)]
pub struct NewBuild {
    pub project_id: i64,
    /// Branch, tag or commit, as asked.
    pub git_ref: String,
    /// The commit a push delivered: the build checks out exactly this one,
    /// wherever `git_ref` is by the time the build runs.
    pub pushed_commit: Option<String>,
    /// `manual`, `webhook:github`, `retry` ...
    pub trigger: String,
    pub requested_by: String,
    pub retry_of: Option<i64>,
}

/// The commit a build resolved its ref to.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BuildCommit {
    pub sha: String,
    pub branch: Option<String>,
    pub tag: Option<String>,
    pub author: String,
    pub message: String,
    pub committed_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Build {
    pub id: i64,
    pub project_id: i64,
    pub project: String,
    /// 1, 2, 3 ... per project.
    pub number: i64,
    pub git_ref: String,
    /// The commit a push delivered (webhook builds), see [`NewBuild`].
    pub pushed_commit: Option<String>,
    pub commit: Option<BuildCommit>,
    pub status: BuildStatus,
    pub cancel_requested: bool,
    pub version: Option<String>,
    pub release_id: Option<i64>,
    pub error: Option<String>,
    pub trigger: String,
    pub requested_by: String,
    pub retry_of: Option<i64>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// How a build ended.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildOutcome {
    pub status: BuildStatus,
    pub error: Option<String>,
    pub version: Option<String>,
    pub release_id: Option<i64>,
}

/// One line of a build's log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub seq: i64,
    pub at: i64,
    /// `stdout`, `stderr` or `ferry` (lines Ferry itself writes).
    pub stream: String,
    pub line: String,
}

/// Where a variable lives (R17): a project, and optionally one of its
/// environments and/or one host. `None` means any.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VarSlot {
    pub project_id: i64,
    pub env_id: Option<i64>,
    /// By name: a host may be given variables before it enrols, and keeps
    /// them across a removal and re-enrolment.
    pub host: Option<String>,
}

/// A variable to set, replacing the one of the same name in the same slot.
#[derive(Clone, PartialEq)]
pub struct NewVar {
    pub slot: VarSlot,
    pub key: String,
    /// Stored as given: the server seals secrets before they get here.
    pub value: String,
    pub secret: bool,
    pub updated_by: String,
}

/// One stored variable, with its scope by name.
#[derive(Clone, PartialEq)]
pub struct VarRow {
    pub project: String,
    pub env: Option<String>,
    pub host: Option<String>,
    pub key: String,
    /// As given to [`Projects::set_var`](crate::Projects::set_var): sealed
    /// for secrets.
    pub value: String,
    pub secret: bool,
    pub updated_by: String,
    pub updated_at: i64,
}

// Values stay out of Debug output: rows end up in logs and test failures.
impl std::fmt::Debug for NewVar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewVar")
            .field("slot", &self.slot)
            .field("key", &self.key)
            .field("value", &"***")
            .field("secret", &self.secret)
            .field("updated_by", &self.updated_by)
            .finish()
    }
}

impl std::fmt::Debug for VarRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VarRow")
            .field("project", &self.project)
            .field("env", &self.env)
            .field("host", &self.host)
            .field("key", &self.key)
            .field("value", &"***")
            .field("secret", &self.secret)
            .field("updated_by", &self.updated_by)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// One line of a deployment's log, from one of its hosts.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentLogLine {
    /// Increases through the whole deployment, across hosts: the cursor for
    /// paging and following.
    pub seq: i64,
    pub host: String,
    /// When the agent read the line (the host's clock).
    pub at: i64,
    /// `stdout`, `stderr` (of a hook) or `ferry` (the agent's own steps, and
    /// the marker standing for dropped lines).
    pub stream: String,
    pub line: String,
}

/// A freeze of one environment, with the names it is shown by.
#[derive(Debug, Clone, PartialEq)]
pub struct FreezeRow {
    pub project: String,
    pub env: String,
    pub freeze: Freeze,
}

/// An environment's load balancer, as the server sets it (R14). The store
/// keeps the values as given; `ferry_domain::lb` says what they mean.
#[derive(Debug, Clone, PartialEq)]
pub struct NewLoadBalancer {
    /// `nginx`, `haproxy` or `command`.
    pub driver: String,
    /// `k=v,...` selecting the load-balancer hosts, already validated.
    pub selector: String,
    /// The `${VAR}` template of a backend host's address.
    pub backend: String,
    /// The driver's options by name.
    pub options: BTreeMap<String, String>,
    pub updated_by: String,
}

/// A stored load balancer, with its environment and its drained hosts.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadBalancer {
    pub env_id: i64,
    pub project: String,
    pub env: String,
    /// The environment's own selector: its hosts are the backends.
    pub env_selector: String,
    pub driver: String,
    pub selector: String,
    pub backend: String,
    pub options: BTreeMap<String, String>,
    /// Goes up with every change of the load balancer or its drained hosts.
    pub generation: u64,
    /// Host ids out of the balancer, ascending.
    pub drained: Vec<i64>,
    pub updated_by: String,
    pub updated_at: i64,
}

/// What one load-balancer host last reported for an environment.
#[derive(Debug, Clone, PartialEq)]
pub struct LbAppliedRow {
    pub host_id: i64,
    pub generation: u64,
    pub error: Option<String>,
    pub applied_at: i64,
}

/// An audit entry to append (R27); the store gives it its `seq` and chain
/// fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry {
    pub at: i64,
    pub actor: String,
    pub source: String,
    pub action: String,
    /// Path parameters, `key=value` separated by spaces (`project=app env=prod`).
    pub object: String,
    pub outcome: String,
    pub summary: String,
}

/// A stored audit entry with its place in the hash chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub record: ferry_domain::audit::AuditRecord,
    /// How its hash was made, as stored (`ferry_domain::audit::Scheme`
    /// names): kept as text, so that a row rewritten with a name no server
    /// writes is reported by verification rather than failing to load.
    pub scheme: String,
    pub prev_hash: String,
    pub hash: String,
}

/// Which audit entries to list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditFilter {
    /// Only entries whose object names this project (`project=P`).
    pub project: Option<String>,
    /// Only entries of this actor.
    pub actor: Option<String>,
    /// Only entries at or after this time.
    pub since: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

/// A notification rule to add (R28): which events of a project go where,
/// through which channel.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotificationRule {
    /// Event names, already validated (`deploy.finished` ...).
    pub events: Vec<String>,
    pub kind: Channel,
    /// Where the channels that post go; empty for e-mail.
    pub webhook_url: String,
    /// Whom an e-mail rule writes to (`members`, `approvers`, `starter`,
    /// addresses), already validated; empty for the other channels.
    pub recipients: Vec<String>,
    /// Signs each body; stored as given: the server seals it.
    pub secret: Option<Secret>,
    pub created_by: String,
}

/// A stored notification rule.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationRule {
    pub id: i64,
    pub project: String,
    pub events: Vec<String>,
    pub kind: Channel,
    /// Empty for e-mail rules.
    pub webhook_url: String,
    /// E-mail rules' recipients, as given.
    pub recipients: Vec<String>,
    /// Sealed, as given to [`Notifications::add_notification_rule`](crate::Notifications::add_notification_rule).
    pub secret: Option<Secret>,
    pub created_by: String,
    pub created_at: i64,
}

/// A notification waiting for its next delivery attempt, with what
/// delivering it takes.
#[derive(Debug, Clone, PartialEq)]
pub struct DueNotification {
    pub id: i64,
    pub project: String,
    pub event: String,
    /// The JSON body, as enqueued.
    pub payload: String,
    /// Attempts made so far.
    pub attempts: u32,
    pub kind: Channel,
    /// Empty for e-mail.
    pub webhook_url: String,
    /// The addresses an e-mail is written to.
    pub recipients: Vec<String>,
    /// The rule's secret, sealed.
    pub secret: Option<Secret>,
}

/// One notification to queue for a rule: what its channel sends, and to
/// whom, decided when the event happened.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    pub rule_id: i64,
    pub kind: Channel,
    /// The rule's URL; empty for e-mail.
    pub webhook_url: String,
    /// What is sent: the webhook's or chat's JSON body, or for e-mail
    /// `{"subject": ..., "body": ...}`.
    pub payload: String,
    /// E-mail addresses.
    pub recipients: Vec<String>,
    /// Users meant but not written to, each with why.
    pub skipped: Vec<String>,
}

/// One attempt to deliver a notification.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationAttempt {
    pub at: i64,
    /// The receiver's HTTP status, if it answered.
    pub status_code: Option<u16>,
    /// Why it did not count as delivered, if it did not.
    pub error: Option<String>,
}

/// What becomes of a notification after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationOutcome {
    Delivered,
    /// Try again at this time.
    RetryAt(i64),
    /// No more attempts.
    GaveUp,
}

/// A notification and every attempt to deliver it, for the log.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationLogRow {
    pub id: i64,
    pub event: String,
    pub kind: Channel,
    /// Empty for e-mail.
    pub webhook_url: String,
    /// The addresses an e-mail was written to.
    pub recipients: Vec<String>,
    /// Users meant but not written to, each with why.
    pub skipped: Vec<String>,
    /// `pending`, `delivered` or `failed` (given up).
    pub status: String,
    pub created_at: i64,
    pub attempts: Vec<NotificationAttempt>,
}

/// A release or rollback request as it is created (R24).
#[derive(Debug, Clone, PartialEq)]
pub struct NewRequest {
    pub project_id: i64,
    pub env_id: i64,
    pub kind: RequestKind,
    /// Where the state machine says it starts.
    pub state: RequestState,
    pub release_id: i64,
    /// The build that made the release, when it was asked for by build.
    pub build_number: Option<i64>,
    pub reason: String,
    pub requester: String,
}

/// A release request as it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRow {
    pub id: i64,
    pub project: String,
    pub env: String,
    pub kind: RequestKind,
    pub state: RequestState,
    pub release_id: i64,
    pub version: String,
    pub build_number: Option<i64>,
    pub reason: String,
    pub requester: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A change of a request's state, decided by
/// `ferry_domain::request::apply` from the state in `from`.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestChange {
    pub from: RequestState,
    pub to: RequestState,
    pub action: RequestAction,
    pub actor: String,
    pub note: Option<String>,
    /// A resubmission's new release and build number.
    pub release: Option<(i64, Option<i64>)>,
    /// The deployment the change started or that ended, if any.
    pub deployment_id: Option<i64>,
}

/// One entry of a request's history.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestEvent {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    /// A [`RequestAction`]'s name, or `staging` for an update of the staging
    /// environment.
    pub action: String,
    pub from: Option<RequestState>,
    pub to: RequestState,
    pub version: Option<String>,
    pub note: Option<String>,
    pub deployment_id: Option<i64>,
}

/// Which requests to list; every field narrows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestFilter {
    pub project_id: Option<i64>,
    /// Any of these states; empty means any state.
    pub states: Vec<RequestState>,
    pub requester: Option<String>,
    pub limit: u32,
}

/// An entry of a request's history that changes nothing (e.g. `staging`:
/// its staging environment was updated by `deployment_id`).
#[derive(Debug, Clone, PartialEq)]
pub struct RequestNote<'a> {
    pub actor: &'a str,
    pub what: &'a str,
    pub note: Option<&'a str>,
    pub deployment_id: Option<i64>,
}

/// An agent binary the server holds (`ferry agent-upgrade upload`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentBinary {
    pub id: i64,
    /// The label an operator gave it, unique.
    pub version: String,
    /// SHA-256 of its bytes (hex), computed by the server at upload.
    pub sha256: String,
    pub size: i64,
    /// The server's Ed25519 signature (hex) over
    /// `ferry_domain::agent_upgrade::signed_message(sha256, version)`.
    pub signature: String,
    pub uploaded_by: String,
    pub uploaded_at: i64,
}

/// One host of an agent upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentUpgradeHost {
    pub host_id: i64,
    pub host: String,
    pub batch: u32,
    pub state: ferry_domain::agent_upgrade::HostUpgradeState,
    pub error: Option<String>,
    /// What the host's agent announced at its last connection.
    pub running_version: Option<String>,
    pub running_digest: Option<String>,
}

/// An upgrade of one environment's agents to one binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentUpgrade {
    pub id: i64,
    pub env_id: i64,
    pub binary: AgentBinary,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    pub error: Option<String>,
    pub created_by: String,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    /// In batch order, then by name.
    pub hosts: Vec<AgentUpgradeHost>,
}

/// An agent binary to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAgentBinary {
    pub version: String,
    pub sha256: String,
    pub size: i64,
    pub signature: String,
    pub uploaded_by: String,
    pub uploaded_at: i64,
}

/// A connection pool's use at one moment (`/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUse {
    /// Connections lent out to a query or transaction.
    pub in_use: u32,
    /// Connections open and waiting.
    pub idle: u32,
    /// The most the pool opens.
    pub max: u32,
}
