//! JSON bodies of the HTTP API under `/api/v1`.
//!
//! Times are RFC 3339 strings in UTC. Errors are always an [`ErrorBody`] with
//! a non-2xx status.
//!
//! Long file: every JSON body of `/api/v1`, kept together so that server and
//! CLI share one definition of each.

use std::collections::BTreeMap;

use ferry_domain::rollout::RolloutOptions;
use ferry_domain::status::Note;
use ferry_domain::{DeploymentKind, DeploymentStatus, Digest, HostDeployState, Manifest, OfflinePolicy, Tags};

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// A stable, machine-readable code such as `not_found` or `locked`.
    pub code: String,
    /// A sentence for the person at the keyboard.
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateProject {
    pub name: String,
    /// Releases kept on each host, the active one included. Default 5.
    #[serde(default)]
    pub keep_releases: Option<u32>,
    /// Git repository to build from (any URL the server's git can fetch).
    #[serde(default)]
    pub repo: Option<String>,
    /// Secret that push webhooks must be signed with.
    #[serde(default)]
    pub webhook_secret: Option<String>,
    /// Branch patterns whose pushes build (`main`, `release/*`); empty = all.
    #[serde(default)]
    pub branches: Vec<String>,
    /// Push version tags back to the repository after a successful build.
    #[serde(default)]
    pub push_tags: bool,
    /// The hosts the project's environments may select (`k=v,...`); unset:
    /// any host. Only an administrator creates projects, and so sets this.
    #[serde(default)]
    pub host_scope: Option<String>,
}

/// `PUT /api/v1/projects/{project}/host-scope` (administrators).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetHostScope {
    /// `k=v,...`, or `None` to let the project's environments select any host.
    pub scope: Option<String>,
}

/// `POST /api/v1/join-tokens` (administrators): a join token limited to tags.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateJoinToken {
    /// `k=v,...`: the only tags a host enrolling with it may have.
    pub tags: String,
}

/// A limited join token; `token` only in the answer that created it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JoinTokenInfo {
    pub id: i64,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub tags: Tags,
    pub created_by: String,
    pub created_at: String,
    #[serde(default)]
    pub revoked_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// `PUT /api/v1/hosts/{name}/tags` (administrators).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetHostTags {
    /// `k=v,...`: the host's tags from now on, replacing all of them.
    pub tags: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProjectInfo {
    pub name: String,
    pub keep_releases: u32,
    pub repo: Option<String>,
    /// Whether a webhook secret is set (the secret itself is never shown).
    pub webhook_secret_set: bool,
    pub branches: Vec<String>,
    pub push_tags: bool,
    pub created_at: String,
    /// See [`CreateProject::host_scope`].
    #[serde(default)]
    pub host_scope: Option<String>,
    /// When it was deleted; its history stays readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
}

/// `POST /api/v1/projects/{project}`: what is not given keeps its value.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateProject {
    #[serde(default)]
    pub keep_releases: Option<u32>,
    /// A new repository to build from (administrators); `""` stops building
    /// from git.
    #[serde(default)]
    pub repo: Option<String>,
    /// A new webhook secret; `""` removes it (webhooks are then refused).
    #[serde(default)]
    pub webhook_secret: Option<String>,
    /// Branch patterns whose pushes build; an empty list means all.
    #[serde(default)]
    pub branches: Option<Vec<String>>,
    #[serde(default)]
    pub push_tags: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateEnvironment {
    pub name: String,
    /// `k=v,...`: the tags a host needs to belong to this environment.
    pub selector: String,
    /// Deploy every successful build of this branch here (continuous deploy).
    #[serde(default)]
    pub auto_deploy_branch: Option<String>,
    /// The environment's default rollout (R13); unset options keep the
    /// default (all at once, stop at the first failure and put hosts back).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub rollout: RolloutOptions,
    /// Deployments to it need the production right (R26).
    #[serde(default)]
    pub production: bool,
    /// Deployments to it need an approved release request (R24).
    #[serde(default)]
    pub requires_approval: bool,
    /// Requests for it are tested on this environment of the project first.
    #[serde(default)]
    pub staging: Option<String>,
    /// It comes after this environment of the project (R23).
    #[serde(default)]
    pub after: Option<String>,
    /// What a target host offline at a deployment's start means (default
    /// skip).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub offline_policy: Option<OfflinePolicy>,
}

/// `POST /api/v1/projects/{project}/environments/{env}`: what is not given
/// keeps its value.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateEnvironment {
    /// A new tag selector: hosts it selects from now on belong here.
    #[serde(default)]
    pub selector: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub offline_policy: Option<OfflinePolicy>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnvironmentInfo {
    pub project: String,
    pub name: String,
    pub selector: String,
    /// The version new and returning hosts of this environment converge to.
    pub desired_version: Option<String>,
    pub auto_deploy_branch: Option<String>,
    pub created_at: String,
    /// How its deployments roll out, in words.
    #[serde(default)]
    pub rollout: String,
    /// Deployments to it need the production right (R26).
    #[serde(default)]
    pub production: bool,
    /// Deployments to it need an approved release request (R24).
    #[serde(default)]
    pub requires_approval: bool,
    /// Requests for it are tested on this environment first.
    #[serde(default)]
    pub staging: Option<String>,
    /// The environment it comes after (R23): versions reach it only once
    /// they succeeded on every host of that one.
    #[serde(default)]
    pub after: Option<String>,
    /// A requester may pass her own request for it as tested.
    #[serde(default)]
    pub self_test: bool,
    /// What a target host offline at a deployment's start means.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub offline_policy: OfflinePolicy,
}

/// `POST /api/v1/projects/{project}/environments/{env}/protection`: what
/// is not given keeps its value.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetProtection {
    #[serde(default)]
    pub requires_approval: Option<bool>,
    /// An environment of the same project; `""` for none.
    #[serde(default)]
    pub staging: Option<String>,
    /// The environment this one comes after (R23), of the same project;
    /// `""` for none.
    #[serde(default)]
    pub after: Option<String>,
    /// Whether a requester may pass her own request as tested.
    #[serde(default)]
    pub self_test: Option<bool>,
}

/// `POST /api/v1/projects/{project}/requests`: asks for a version to go to
/// an environment, or for the environment to be rolled back (R24).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateRequest {
    pub env: String,
    /// A build number, or `latest`; instead of `version`.
    #[serde(default)]
    pub build: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    /// A rollback request: to `version` if given, else to the previous good
    /// version.
    #[serde(default)]
    pub rollback: bool,
    pub reason: String,
    /// Release past the order of environments (R23): the version need not
    /// have succeeded on the environment `env` comes after. Needs the
    /// production right; `reason` says why, and approvers see it.
    #[serde(default)]
    pub skip_promotion: bool,
}

/// `POST /api/v1/requests/{id}/{action}`: what goes with an action.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RequestActionBody {
    /// Why (required to send back or reject), or a remark.
    #[serde(default)]
    pub note: Option<String>,
    /// A resubmission's new build (number or `latest`) ...
    #[serde(default)]
    pub build: Option<String>,
    /// ... or version.
    #[serde(default)]
    pub version: Option<String>,
}

/// A release request, with its history and deployments.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RequestInfo {
    pub id: i64,
    pub project: String,
    pub env: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub kind: ferry_domain::RequestKind,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub state: ferry_domain::RequestState,
    pub version: String,
    pub build: Option<i64>,
    pub reason: String,
    pub requester: String,
    pub created_at: String,
    pub updated_at: String,
    /// Where it is tested first, if anywhere.
    pub staging: Option<String>,
    /// Who or what it waits for, in words.
    pub waiting_for: String,
    /// Oldest first. Empty in lists.
    #[serde(default)]
    pub history: Vec<RequestEventInfo>,
    /// Deployments made for it (staging updates and the release), newest
    /// first. Empty in lists.
    #[serde(default)]
    pub deployments: Vec<DeploymentInfo>,
}

/// One entry of a request's history.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RequestEventInfo {
    pub at: String,
    pub actor: String,
    pub action: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub from: Option<ferry_domain::RequestState>,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub to: ferry_domain::RequestState,
    pub version: Option<String>,
    pub note: Option<String>,
    pub deployment: Option<i64>,
}

/// `POST /api/v1/projects/{project}/environments/{env}/production`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetProduction {
    pub production: bool,
}

/// `POST /api/v1/login`: a user name and password for a new API token.
#[derive(Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Login {
    pub user: String,
    pub password: String,
    /// What to call the token (default: `login`).
    #[serde(default)]
    pub token_name: Option<String>,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login").field("user", &self.user).field("password", &"***").finish()
    }
}

/// A new API token, shown this once.
#[derive(Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewToken {
    pub id: i64,
    pub user: String,
    pub name: String,
    pub token: String,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken").field("id", &self.id).field("user", &self.user).field("name", &self.name).finish()
    }
}

/// `POST /api/v1/tokens`: a new token for the caller.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateToken {
    pub name: String,
}

/// An API token as listed: never the token itself.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenInfo {
    pub id: i64,
    pub name: String,
    pub created_at: String,
}

/// `POST /api/v1/users` (administrator only).
#[derive(Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateUser {
    pub name: String,
    #[serde(default)]
    pub admin: bool,
    /// May deploy to production environments.
    #[serde(default)]
    pub production: bool,
    pub password: String,
    /// Where the user's e-mail notifications go.
    #[serde(default)]
    pub email: Option<String>,
}

impl std::fmt::Debug for CreateUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateUser")
            .field("name", &self.name)
            .field("admin", &self.admin)
            .field("production", &self.production)
            .field("email", &self.email)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserInfo {
    pub name: String,
    pub admin: bool,
    pub production: bool,
    pub disabled: bool,
    /// Where the user's e-mail notifications go.
    #[serde(default)]
    pub email: Option<String>,
}

/// `POST /api/v1/users/{name}`: changes a user; what is not given keeps
/// its value.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateUser {
    /// Where the user's e-mail notifications go; `""` clears it.
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub admin: Option<bool>,
    /// The production right (R26).
    #[serde(default)]
    pub production: Option<bool>,
}

/// `POST /api/v1/projects/{project}/members`: gives a user a role there.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AddMember {
    pub user: String,
    /// owner, developer or viewer.
    pub role: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemberInfo {
    pub user: String,
    pub role: String,
    pub created_at: String,
}

/// Asks which of these blobs the server does not hold yet.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlobQuery {
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub digests: Vec<Digest>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlobQueryAnswer {
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub missing: Vec<Digest>,
}

/// Registers a release whose blobs have all been uploaded.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateRelease {
    pub version: String,
    pub branch: String,
    pub committer: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub manifest: Manifest,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReleaseInfo {
    pub project: String,
    pub version: String,
    pub branch: String,
    pub committer: String,
    pub created_at: String,
    pub file_count: u64,
    pub total_size: u64,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub manifest_digest: Digest,
    /// Set while the release is marked bad.
    #[serde(default)]
    pub bad: Option<BadMarkInfo>,
}

/// Who marked a release bad, when and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BadMarkInfo {
    pub by: String,
    pub reason: String,
    pub at: String,
}

/// `POST /api/v1/projects/{project}/releases/{version}/bad`: marks a release
/// bad (replacing an earlier mark). `DELETE` on the same path clears it.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MarkBad {
    /// Required: shown to whoever the mark stops.
    pub reason: String,
}

/// `POST /api/v1/projects/{project}/deployments`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateDeployment {
    pub env: String,
    /// The version to deploy; for a rollback, `None` means "the previous good one".
    pub version: Option<String>,
    /// Only these hosts of the environment; `None` means all of them.
    #[serde(default)]
    pub hosts: Option<Vec<String>>,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub kind: DeploymentKind,
    /// How long a target host may stay offline before it counts as failed
    /// (under the `wait` offline policy, which giving it implies).
    #[serde(default)]
    pub offline_timeout_secs: Option<u64>,
    /// What offline targets mean for this deployment, instead of the
    /// environment's policy.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub offline: Option<OfflinePolicy>,
    /// Deploy what this build made: its number in the project, or `latest`
    /// for the newest successful build. Instead of `version`.
    #[serde(default)]
    pub build: Option<String>,
    /// Deploy the release even if it is marked bad; recorded on the
    /// deployment (`forced`) when it was.
    #[serde(default)]
    pub force: bool,
    /// Overrides of the environment's rollout for this deployment.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub rollout: RolloutOptions,
    /// A rollback for when minutes matter (R11): every host at once, no
    /// gates, and it takes over from a running deployment.
    #[serde(default)]
    pub emergency: bool,
    /// Deploy although the version has not succeeded on every host of the
    /// environment this one comes after (R23): the reason, recorded on the
    /// deployment and in the audit trail. Needs the production right.
    #[serde(default)]
    pub skip_promotion: Option<String>,
}

impl CreateDeployment {
    /// A deployment of `version` (`None`: for a rollback, the previous good
    /// one) to every host of `env`, with the environment's rollout and no
    /// overrides. Change what differs with struct update syntax.
    pub fn of(env: impl Into<String>, version: Option<String>, kind: DeploymentKind) -> CreateDeployment {
        CreateDeployment {
            env: env.into(),
            version,
            hosts: None,
            kind,
            offline_timeout_secs: None,
            offline: None,
            build: None,
            force: false,
            rollout: RolloutOptions::default(),
            emergency: false,
            skip_promotion: None,
        }
    }
}

/// The answer to `POST /api/v1/projects/{project}/deployments/plan` (a dry
/// run): what a `CreateDeployment` with the same body would do, worked out by
/// the same code, with nothing recorded.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeploymentPlan {
    pub project: String,
    pub env: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub kind: DeploymentKind,
    /// The headline version (for a rollback, where most hosts go).
    pub version: String,
    /// The rollout, described as `ferry deployment show` does.
    pub rollout: String,
    pub emergency: bool,
    /// The release is marked bad and `force` was given.
    pub forced: bool,
    /// It would go through a freeze (an emergency rollback).
    pub freeze_ignored: bool,
    /// The running deployment an emergency rollback would take over.
    pub takes_over: Option<i64>,
    /// In order; each host in the order the rollout takes it.
    pub batches: Vec<PlannedBatch>,
    /// Targets offline now that the offline policy would skip.
    pub skipped: Vec<PlannedHost>,
    /// Hosts left as they are, skipped orders of environments, and the like,
    /// in English.
    pub notes: Vec<String>,
    /// `notes` as codes with their arguments, in the same order, for
    /// rendering in another language; absent from older servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub note_codes: Vec<Note>,
    /// What every host of every batch would download, summed.
    pub download_bytes: u64,
    pub download_files: u64,
}

/// One batch of a [`DeploymentPlan`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlannedBatch {
    /// 1-based, as `ferry deployment show` numbers batches.
    pub batch: u32,
    pub hosts: Vec<PlannedHost>,
}

/// Where one host of a [`DeploymentPlan`] would go, and what it would fetch.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlannedHost {
    pub host: String,
    pub online: bool,
    pub version: String,
    /// What it runs now (the release it last ran successfully), if anything.
    pub from_version: Option<String>,
    pub release_name: String,
    /// Bytes and distinct files of the release that none of the releases the
    /// host keeps has: what its agent would download. A host with nothing
    /// yet downloads everything; going back to a release it still keeps, nothing.
    pub download_bytes: u64,
    pub download_files: u64,
    /// The rest of the release's bytes, already on the host.
    pub reused_bytes: u64,
}

/// `POST /api/v1/projects/{project}/promote`: deploys the version `from`
/// runs to `to` (R23), with `to`'s rollout, approvals and freezes.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Promote {
    pub from: String,
    pub to: String,
}

/// `POST /api/v1/deployments/{id}/retry`: a new deployment of the same
/// release to the hosts that failed (or all of its hosts).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetryDeployment {
    #[serde(default)]
    pub failed_only: bool,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeploymentInfo {
    pub id: i64,
    pub project: String,
    pub env: String,
    pub version: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub kind: DeploymentKind,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub status: DeploymentStatus,
    pub created_by: String,
    pub created_at: String,
    pub finished_at: Option<String>,
    /// It deployed a release marked bad, with `force`.
    #[serde(default)]
    pub forced: bool,
    /// It went ahead through a freeze of its environment (an emergency).
    #[serde(default)]
    pub freeze_ignored: bool,
    /// The rollout, in words.
    #[serde(default)]
    pub rollout: String,
    #[serde(default)]
    pub batch_count: u32,
    /// The batch most recently started (from 1); none before the first.
    #[serde(default)]
    pub current_batch: Option<u32>,
    /// What a running deployment waits for, in English.
    #[serde(default)]
    pub hold: Option<String>,
    /// `hold` as a code with its arguments (`ferry_domain::status::Note`),
    /// for rendering in another language; absent from older servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub hold_code: Option<Note>,
    #[serde(default)]
    pub paused: bool,
    #[serde(default)]
    pub emergency: bool,
    /// Why it ended as it did, in English.
    #[serde(default)]
    pub reason: Option<String>,
    /// `reason` as a code with its arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub reason_code: Option<Note>,
    /// The release request it was made for (R24), if any.
    #[serde(default)]
    pub request: Option<i64>,
    /// Empty in list views.
    #[serde(default)]
    pub hosts: Vec<DeploymentHostInfo>,
    /// Each transition with its time; empty in list views.
    #[serde(default)]
    pub events: Vec<DeploymentEventInfo>,
}

/// A status in English: from its code, or as the server wrote it (older
/// servers send no code).
fn english(code: Option<&Note>, text: Option<&str>) -> Option<String> {
    code.map(ToString::to_string).or_else(|| text.map(str::to_string))
}

impl DeploymentInfo {
    /// What it waits for, in English.
    pub fn hold_text(&self) -> Option<String> {
        english(self.hold_code.as_ref(), self.hold.as_deref())
    }

    /// Why it ended as it did, in English.
    pub fn reason_text(&self) -> Option<String> {
        english(self.reason_code.as_ref(), self.reason.as_deref())
    }
}

impl DeploymentEventInfo {
    /// What happened, in English.
    pub fn text(&self) -> String {
        english(self.code.as_ref(), Some(&self.what)).unwrap_or_default()
    }
}

impl DeploymentHostInfo {
    /// What was said of the host, in English.
    pub fn error_text(&self) -> Option<String> {
        english(self.error_code.as_ref(), self.error.as_deref())
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeploymentEventInfo {
    pub at: String,
    /// What happened, in English.
    pub what: String,
    /// `what` as a code with its arguments; absent from older servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub code: Option<Note>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeploymentHostInfo {
    pub host: String,
    /// Its batch, from 1.
    #[serde(default)]
    pub batch: u32,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub state: HostDeployState,
    pub release_name: String,
    /// The version this host goes to: the deployment's, or for a rollback
    /// the one this host ran before (they can differ per host).
    #[serde(default)]
    pub version: Option<String>,
    /// The version the host ran when the deployment was made (rollbacks).
    #[serde(default)]
    pub from_version: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// What the server or the host's agent said of it, in English (an
    /// agent's own text as it sent it).
    pub error: Option<String>,
    /// `error` as a code with its arguments; absent from older servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub error_code: Option<Note>,
    pub bytes_downloaded: u64,
    pub bytes_reused: u64,
}

/// `ferry status PROJECT`: which version runs where (R12).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProjectStatus {
    pub project: String,
    pub environments: Vec<EnvironmentStatus>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnvironmentStatus {
    pub env: String,
    pub selector: String,
    pub desired_version: Option<String>,
    /// Running version (or "none") -> number of hosts.
    pub version_counts: BTreeMap<String, u64>,
    pub hosts: Vec<HostProjectStatus>,
    /// The versions running or desired here that are marked bad, with
    /// their marks.
    #[serde(default)]
    pub marked_bad: BTreeMap<String, BadMarkInfo>,
    /// The freeze in force on this environment, if any.
    #[serde(default)]
    pub freeze: Option<LockInfo>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostProjectStatus {
    pub host: String,
    pub online: bool,
    pub desired_version: Option<String>,
    pub current_version: Option<String>,
    pub current_release: Option<String>,
    /// `idle`, `installing` or `failed`, as the agent last reported.
    pub activity: String,
    pub error: Option<String>,
    /// How the project's service fares there after its deploy (R21); none
    /// when the release has no service or the agent did not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceStatusInfo>,
}

/// A service's health on a host, as its agent last reported it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceStatusInfo {
    /// It keeps failing (a crash loop).
    pub failing: bool,
    /// Why, in one line (empty when it is not failing).
    #[serde(default)]
    pub reason: String,
    /// Its last lines of stderr when failing (secrets masked).
    #[serde(default)]
    pub stderr: Vec<String>,
    /// Since when it fails (or runs again), RFC 3339.
    #[serde(default)]
    pub since: Option<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostInfo {
    pub name: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub tags: Tags,
    pub online: bool,
    pub last_seen: Option<String>,
    pub agent_version: Option<String>,
    pub enrolled_at: String,
    /// `FERRY_HOST_ADDRESS`: where load balancers reach the host.
    #[serde(default)]
    pub address: Option<String>,
    /// The tags the host's agent asked for at its last connection, when they
    /// differ from `tags` (which only an administrator changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub announced_tags: Option<Tags>,
    /// The version label of the agent binary it runs (after an upgrade).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_binary: Option<String>,
    /// The SHA-256 of the agent's executable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_digest: Option<String>,
}

/// `GET /api/v1/agent-binaries`: one agent binary the server holds.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentBinaryInfo {
    pub version: String,
    pub sha256: String,
    pub size: i64,
    pub uploaded_by: String,
    pub uploaded_at: String,
}

/// `POST /api/v1/projects/{project}/environments/{env}/agent-upgrade`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetAgentUpgrade {
    /// The version label of an uploaded agent binary.
    pub version: String,
}

/// One host of an agent upgrade.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentUpgradeHostInfo {
    pub host: String,
    pub batch: u32,
    /// queued, upgrading, done, failed or skipped.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub running_version: Option<String>,
    pub running_digest: Option<String>,
}

/// The newest upgrade of an environment's agents.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentUpgradeInfo {
    pub id: i64,
    pub project: String,
    pub env: String,
    /// The target: version label and SHA-256.
    pub version: String,
    pub sha256: String,
    /// running, succeeded or failed.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub created_by: String,
    pub hosts: Vec<AgentUpgradeHostInfo>,
}

/// `POST /api/v1/agent/enroll`, authenticated by the join token in the body.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollRequest {
    pub name: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub tags: Tags,
    pub join_token: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollAnswer {
    pub host: String,
    /// The agent's own credential. Shown once; the server keeps only its hash.
    pub token: String,
    /// The server's Ed25519 public key (hex): the agent runs only agent
    /// binaries signed with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<String>,
}

/// `POST /api/v1/agent/blobs`: the blobs an agent wants, streamed back as
/// frames (see `ferry_artifact::frame`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlobRequest {
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub digests: Vec<Digest>,
}

/// `POST /api/v1/projects/{project}/builds`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateBuild {
    /// Branch, tag or commit; default: the repository's default branch `main`.
    #[serde(default)]
    pub git_ref: Option<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BuildInfo {
    /// Server-wide id, used by `/api/v1/builds/{id}`.
    pub id: i64,
    pub project: String,
    /// 1, 2, 3 ... within the project (`ferry deploy --build N`).
    pub number: i64,
    pub git_ref: String,
    pub commit: Option<String>,
    pub branch: Option<String>,
    pub tag: Option<String>,
    pub author: Option<String>,
    pub message: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub status: ferry_domain::BuildStatus,
    pub version: Option<String>,
    pub error: Option<String>,
    pub trigger: String,
    pub requested_by: String,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_secs: Option<f64>,
}

/// One line of a build log, as sent in the `line` events of
/// `GET /api/v1/builds/{id}/log`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogLineInfo {
    pub seq: i64,
    pub at: String,
    pub stream: String,
    pub line: String,
}

/// A page of a deployment's log: the answer to
/// `GET /api/v1/deployments/{id}/log[?host=H][&after=SEQ][&limit=N]`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeploymentLog {
    pub deployment: i64,
    /// The deployment's status, read before the lines: once it is no longer
    /// `running` and a page holds fewer lines than asked for, the log is
    /// complete (a host's log closes when its part of the deployment ends).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub status: DeploymentStatus,
    /// In order of `seq`; ask for the next page with `after` = the last `seq`.
    pub lines: Vec<DeploymentLogLineInfo>,
}

/// One line of a deployment's log: a build log line ([`LogLineInfo`]) with
/// the host it came from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeploymentLogLineInfo {
    pub host: String,
    /// Counts up through the whole deployment, across its hosts.
    pub seq: i64,
    /// RFC 3339, the host's clock.
    pub at: String,
    /// `stdout` or `stderr` of a hook, or `ferry` for the agent's own steps.
    pub stream: String,
    pub line: String,
}

/// What a push webhook did.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HookAnswer {
    /// The build it queued, if any.
    pub build: Option<BuildInfo>,
    /// Why nothing was built, if nothing was.
    pub ignored: Option<String>,
}

/// `POST /api/v1/projects/{project}/vars`: sets a variable (R17), replacing
/// the one of the same name and scope.
#[derive(Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetVar {
    pub key: String,
    /// May be a secret: never logged (see the `Debug` impl).
    pub value: String,
    /// Only hosts of this environment; with `host`, only that host there.
    #[serde(default)]
    pub env: Option<String>,
    /// Only this host.
    #[serde(default)]
    pub host: Option<String>,
    /// Write-only from now on: stored sealed, shown as `***`, sent only to
    /// the hosts whose hooks see it.
    #[serde(default)]
    pub secret: bool,
}

impl std::fmt::Debug for SetVar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetVar")
            .field("key", &self.key)
            .field("value", &"***")
            .field("env", &self.env)
            .field("host", &self.host)
            .field("secret", &self.secret)
            .finish()
    }
}

/// The scope of `GET` and `DELETE` on `/api/v1/projects/{project}/vars`, as
/// query parameters.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema, utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct VarQuery {
    #[serde(default)]
    pub env: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
}

/// One variable as the API shows it. A secret's `value` is always `***`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VarInfo {
    pub key: String,
    /// The value, or `***` for a secret.
    pub value: String,
    pub secret: bool,
    /// The scope: `None` means any environment / any host.
    pub env: Option<String>,
    pub host: Option<String>,
    pub updated_by: String,
    pub updated_at: String,
}

/// `POST /api/v1/projects/{project}/environments/{env}/freeze`: freezes an
/// environment (`ferry lock`). `DELETE` on the same path lifts the freeze.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateFreeze {
    /// Required: shown to everyone the freeze stops.
    pub reason: String,
    /// How long it lasts, e.g. `2h`, `30m`, `1day` (at least 1s, at most
    /// 30days). It ends by itself then.
    pub duration: String,
}

/// What holds an environment's deployment lock (R19).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum LockKind {
    /// Taken by hand for a while (`ferry lock`).
    Freeze,
    /// A running deployment, until it ends.
    Deployment,
}

/// One held lock, as `GET /api/v1/locks[?project=P]` lists them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LockInfo {
    pub project: String,
    pub env: String,
    pub kind: LockKind,
    /// Who froze the environment, or started the deployment.
    pub owner: String,
    /// The freeze's reason, or what the deployment does.
    pub reason: String,
    pub since: String,
    /// When a freeze ends by itself; `None` for a deployment, which holds the
    /// lock until it ends.
    pub expires_at: Option<String>,
    /// The running deployment's id.
    pub deployment: Option<i64>,
}

/// `POST /api/v1/projects/{project}/environments/{env}/lb`: puts a load
/// balancer in front of the environment (R14), replacing any it had.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetLoadBalancer {
    /// `nginx`, `haproxy` or `command`.
    pub driver: String,
    /// `k=v,...`: the tags of the load-balancer hosts.
    pub select: String,
    /// The address template of a backend host, e.g.
    /// `${FERRY_HOST_ADDRESS}:${PORT}`; default `${FERRY_HOST_ADDRESS}`.
    #[serde(default)]
    pub backend: Option<String>,
    /// The driver's options, named as the command line's flags:
    /// `upstream`, `file`, `reload` (nginx); `socket`, `haproxy-backend`
    /// (haproxy); `drain`, `ready` (command).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// An environment's load balancer and how far its hosts have come:
/// `GET /api/v1/projects/{project}/environments/{env}/lb`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoadBalancerInfo {
    pub project: String,
    pub env: String,
    pub driver: String,
    pub select: String,
    pub backend: String,
    pub options: BTreeMap<String, String>,
    /// Goes up with every change of the configuration or of the drained hosts.
    pub generation: u64,
    /// Every load-balancer host has applied `generation` without an error.
    pub applied: bool,
    /// The hosts of the environment, as the balancer should see them.
    pub backends: Vec<LbBackendInfo>,
    /// The hosts that drive the balancer.
    pub lb_hosts: Vec<LbHostInfo>,
    /// Why the balancer does not (yet) match `generation`: no load-balancer
    /// host, a backend address that cannot be worked out, a host's error.
    pub errors: Vec<String>,
    pub updated_by: String,
    pub updated_at: String,
}

/// One host of the environment behind a load balancer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LbBackendInfo {
    pub host: String,
    /// `None` when it cannot be worked out (see `LoadBalancerInfo::errors`).
    pub address: Option<String>,
    pub drained: bool,
    pub online: bool,
}

/// One load-balancer host and what it last applied.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LbHostInfo {
    pub host: String,
    pub online: bool,
    /// The generation it last reported, if any.
    pub applied_generation: Option<u64>,
    /// The error it reported with it.
    pub error: Option<String>,
    pub applied_at: Option<String>,
}

/// `POST .../lb/drain` and `.../lb/ready`: hosts of the environment to take
/// out of the load balancer, or put back.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LbHosts {
    pub hosts: Vec<String>,
}

/// The answer to a drain or ready: the generation to wait for with
/// `GET .../lb/applied?generation=N`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LbChange {
    pub generation: u64,
}

/// `GET /api/v1/projects/{project}/environments/{env}/lb/applied?generation=N`:
/// whether every load-balancer host has applied generation N.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LbProgressInfo {
    pub generation: u64,
    /// Every load-balancer host applied `generation` or a later one, without
    /// an error (an offline host counts for what it reported before it went).
    pub done: bool,
    pub lb_hosts: Vec<LbHostInfo>,
    /// Why the balancer will not get to `generation` by itself; stop waiting.
    pub errors: Vec<String>,
}

/// `GET /api/v1/audit`: which entries of the audit trail to list, newest first.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema, utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct AuditQuery {
    /// Only entries about this project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Only entries of this actor (a user's name, `agent:HOST`, `anonymous`,
    /// `invalid token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Only entries at or after this RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// At most this many: 100 by default, 10000 at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// One entry of the audit trail (R27).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntryInfo {
    pub seq: i64,
    /// RFC 3339.
    pub at: String,
    pub actor: String,
    /// The client's address.
    pub source: String,
    /// Method and route, e.g. `POST /api/v1/projects/{project}/deployments`.
    pub action: String,
    /// The route's parameters, e.g. `project=app env=prod`.
    pub object: String,
    /// The HTTP status, with the error message of a failure.
    pub outcome: String,
    /// What the request asked to change: its body with secrets masked, cut
    /// at 4 kB; for an upload, its size.
    pub summary: String,
    pub hash: String,
}

/// `GET /api/v1/audit/verify[?checkpoint=SEQ:HASH]`: what the verification
/// is asked to check besides the chain and the server's checkpoint.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema, utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct AuditVerifyQuery {
    /// A checkpoint kept elsewhere (`SEQ:HASH`, as `verify` printed it): the
    /// trail must still hold that entry with that hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
}

/// `GET /api/v1/audit/verify`: the hash chain recomputed from the first entry,
/// and checked against the server's checkpoint (and one given).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditVerification {
    pub ok: bool,
    /// Entries that matched before the first that does not (all of them
    /// when `ok`).
    pub verified: u64,
    /// The newest entry that matched.
    pub head_seq: Option<i64>,
    pub head_hash: Option<String>,
    /// The first entry that does not match, and why.
    pub broken: Option<AuditBreak>,
    /// How many of the entries verified predate keying: their plain SHA-256
    /// hash is checked, but anyone could have computed it. (0 from servers
    /// that did not say.)
    #[serde(default)]
    pub unkeyed: u64,
    /// The first entry whose hash is keyed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyed_from: Option<i64>,
    /// The server's checkpoint, kept outside the database: the trail must
    /// reach it. Keep `seq:hash` elsewhere too, for `verify
    /// --since-checkpoint`. `None` when the server's checkpoint file could not
    /// be trusted (`broken` says why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<AuditCheckpoint>,
}

/// The server's audit checkpoint: the newest entry it appended.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditCheckpoint {
    /// The entry's place in the trail (0: the trail was empty).
    pub seq: i64,
    /// Its keyed hash.
    pub hash: String,
    /// RFC 3339: when it was written.
    pub at: String,
    /// RFC 3339: since when the server has kept checkpoints (keying, or
    /// the file made anew after it was removed); entries removed before then
    /// are not covered by it.
    pub since: String,
}

/// The first entry of the trail that does not match.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditBreak {
    pub seq: i64,
    /// `content_changed`, `link_broken`, `entry_missing`, `not_keyed`,
    /// `scheme_changed`, `checkpoint_mismatch`, `truncated` or `checkpoint`
    /// (the server's checkpoint file is missing, behind, or was edited).
    pub kind: String,
    pub message: String,
}

/// `GET /api/v1/projects/{project}/stats[?env=E][&since_ms=T]`: deployment
/// statistics (R29) of each environment, or of the one asked for, over the
/// deployments created from `since` until the server's `until` (now). What
/// each number means is documented on [`EnvStats`](ferry_domain::stats::EnvStats).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProjectStats {
    pub project: String,
    pub since: String,
    pub until: String,
    pub since_ms: i64,
    pub until_ms: i64,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub environments: Vec<ferry_domain::stats::EnvStats>,
}

/// `POST /api/v1/projects/{project}/notifications`: send these events of the
/// project through a channel (R28).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AddNotificationRule {
    /// Event names (`ferry_domain::notify::EVENTS`).
    pub events: Vec<String>,
    /// `webhook` (the default), `email`, `slack`, `dingtalk`, `feishu` or
    /// `wecom`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Where the channels that post go (http or https); empty for e-mail.
    #[serde(default)]
    pub webhook: String,
    /// E-mail rules only: `members`, `approvers`, `starter` or addresses.
    #[serde(default)]
    pub to: Vec<String>,
    /// Webhook rules only: signs each body,
    /// `x-ferry-signature: sha256=<hex HMAC-SHA256>`.
    #[serde(default)]
    pub secret: Option<String>,
}

/// A notification rule (its secret is never shown).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationRuleInfo {
    pub id: i64,
    pub project: String,
    pub events: Vec<String>,
    /// The channel: webhook, email, slack, dingtalk, feishu or wecom.
    #[serde(default)]
    pub kind: String,
    /// The URL the channel posts to; empty for e-mail.
    pub webhook: String,
    /// E-mail rules' recipients, as given.
    #[serde(default)]
    pub to: Vec<String>,
    pub secret_set: bool,
    pub created_by: String,
    pub created_at: String,
}

/// One notification and every attempt to deliver it
/// (`GET /api/v1/projects/{project}/notifications/log`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationInfo {
    pub id: i64,
    pub event: String,
    /// The channel: webhook, email, slack, dingtalk, feishu or wecom.
    #[serde(default)]
    pub kind: String,
    /// The URL; empty for e-mail.
    pub webhook: String,
    /// The addresses an e-mail was written to, resolved when it was queued.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// Users meant but not written to, each with why.
    #[serde(default)]
    pub skipped: Vec<String>,
    /// `pending`, `delivered` or `failed` (given up).
    pub status: String,
    pub created_at: String,
    pub attempts: Vec<NotificationAttemptInfo>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationAttemptInfo {
    pub at: String,
    pub status_code: Option<u16>,
    pub error: Option<String>,
}
