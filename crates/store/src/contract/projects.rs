//! Projects and environments: their settings, freezes, variables and order.

use async_trait::async_trait;
use ferry_domain::Freeze;
use ferry_domain::rollout::RolloutPolicy;

use crate::Result;
use crate::model::*;

/// Projects and their environments, freezes (R19), variables (R17) and the
/// order of environments (R23). Names are unique among live rows
/// (`Conflict`): of two callers creating one name, exactly one wins. Soft
/// deletes keep rows and names.
#[async_trait]
pub trait Projects: Send + Sync {
    /// Concurrency: Exactly one caller wins a name; the others get `Conflict`.
    async fn create_project(&self, new: &NewProject, now: i64) -> Result<Project>;

    /// A project that is not deleted.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn project(&self, name: &str) -> Result<Project>;

    /// A project by name, deleted or not: for reading its history.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn project_including_deleted(&self, name: &str) -> Result<Project>;

    /// The projects that are not deleted.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn projects(&self) -> Result<Vec<Project>>;

    /// Changes how many releases hosts keep and where builds come from
    /// (the webhook secret as the source gives it: sealed).
    ///
    /// Concurrency: One statement on the row it names; last write wins.
    async fn update_project(&self, project: &Project, keep_releases: u32, source: Option<&ProjectSource>)
    -> Result<()>;

    /// Deletes a project and its environments, keeping their rows (and so
    /// their deployments, builds, releases and audit entries) for the
    /// history; their names stay taken. Hosts stop being given its releases.
    /// Refused while it has a running deployment or a queued or running build.
    ///
    /// Concurrency: One transaction, atomic with its checks for a running deployment and a queued
    /// or running build; exactly one of concurrent callers deletes, the others get `NotFound`.
    /// SQLite serialises this with every writer; a backend that does not must lock the project's
    /// row, and take the same lock where deployments and builds are created, so none starts
    /// meanwhile.
    async fn delete_project(&self, project: &Project, now: i64) -> Result<()>;

    /// Deletes an environment the same way: its row stays for its
    /// deployments; its hosts stop being given its release, its load
    /// balancer goes, and environments tested on it are tested nowhere.
    /// Refused while it has a running deployment.
    ///
    /// Concurrency: One transaction, atomic with its check for a running deployment. SQLite
    /// serialises this with every writer; a backend that does not must lock the environment's row,
    /// and take the same lock where deployments are created, so none starts meanwhile.
    async fn delete_environment(&self, env: &Environment, now: i64) -> Result<()>;

    /// Replaces the webhook secret of a project that builds from git, as the
    /// server gives it (sealed).
    ///
    /// Concurrency: One statement on the row it names; last write wins.
    async fn set_webhook_secret(&self, project: &Project, secret: Option<&str>) -> Result<()>;

    /// Sets (or, with `None`, lifts) which hosts the project's environments
    /// may select.
    ///
    /// Concurrency: One statement on the row it names; last write wins.
    async fn set_project_host_scope(&self, project: &Project, scope: Option<&str>) -> Result<()>;

    /// Concurrency: Exactly one caller wins a name within the project; the others
    /// get `Conflict`.
    async fn create_environment(&self, project: &Project, new: &NewEnvironment, now: i64) -> Result<Environment>;

    /// The project's environment named `name`, or `NotFound`.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn environment(&self, project: &Project, name: &str) -> Result<Environment>;

    /// The project's environments, in promotion order.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn environments(&self, project: &Project) -> Result<Vec<Environment>>;

    /// Every environment of every project, for matching a host's tags.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn all_environments(&self) -> Result<Vec<Environment>>;

    /// Sets an environment's default rollout.
    ///
    /// Concurrency: One statement on the row it names; last write wins.
    async fn set_environment_rollout(&self, env: &Environment, policy: &RolloutPolicy) -> Result<()>;

    /// Makes an environment production, or not.
    ///
    /// Concurrency: One statement on the row it names; last write wins.
    async fn set_environment_production(&self, env: &Environment, production: bool) -> Result<()>;

    /// Whether deployments to an environment need an approved request, and
    /// where requests for it are tested first (an environment of the same
    /// project, not itself).
    ///
    /// Concurrency: One statement on the row it names; last write wins.
    async fn set_environment_protection(
        &self,
        env: &Environment,
        requires_approval: bool,
        staging_env_id: Option<i64>,
    ) -> Result<()>;

    /// Changes an environment's tag selector (already validated).
    ///
    /// Concurrency: One statement on the row it names; last write wins.
    async fn set_environment_selector(&self, env: &Environment, selector: &str) -> Result<()>;

    /// Sets what a target host offline at a deployment's start means.
    ///
    /// Concurrency: One statement on the row it names; last write wins.
    async fn set_environment_offline_policy(
        &self,
        env: &Environment,
        policy: ferry_domain::OfflinePolicy,
    ) -> Result<()>;

    /// Freezes an environment. An expired freeze of it is replaced; one in
    /// force at `now` is refused with `Frozen`.
    ///
    /// Concurrency: Atomic with the freeze it replaces: the environment has at
    /// most one freeze in force (a backend that does not serialise writers
    /// locks the environment's row first).
    async fn freeze_environment(&self, env: &Environment, freeze: &Freeze, now: i64) -> Result<FreezeRow>;

    /// Lifts the freeze of an environment; `None` if none was in force at
    /// `now` (an expired one is removed all the same).
    ///
    /// Concurrency: One transaction: the freeze returned is the one removed; of concurrent callers
    /// exactly one gets it, the others `None` (a backend locks the freeze's row while it reads it).
    async fn unfreeze_environment(&self, env: &Environment, now: i64) -> Result<Option<FreezeRow>>;

    /// The freeze of an environment in force at `now`, if any.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn environment_freeze(&self, env: &Environment, now: i64) -> Result<Option<FreezeRow>>;

    /// Freezes in force at `now`, of one project or of all, by project and
    /// environment name.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn freezes(&self, project: Option<&Project>, now: i64) -> Result<Vec<FreezeRow>>;

    /// Sets a variable, replacing the one of the same name in the same slot.
    /// Returns true if it replaced one.
    ///
    /// Concurrency: Atomic per (scope, key): one value per name and scope (a
    /// unique index); the last writer wins.
    async fn set_var(&self, new: &NewVar, now: i64) -> Result<bool>;

    /// Removes a variable; false if there was none of that name in the slot.
    ///
    /// Concurrency: Exactly one caller wins: of concurrent removals, one gets `true`, the others
    /// `false`.
    async fn unset_var(&self, slot: &VarSlot, key: &str) -> Result<bool>;

    /// Every variable of a project, ordered by name, then from the least to
    /// the most specific scope.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn vars(&self, project: &Project) -> Result<Vec<VarRow>>;

    /// The variables that can reach one host: for each project it has a
    /// desired release of, those for the whole project or the host's
    /// environment there, and for any host or this one. Never another host's.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn vars_for_host(&self, host_id: i64) -> Result<Vec<VarRow>>;

    /// Which environment `env` comes after (`None`: none) and whether a
    /// requester may pass her own request for it. The caller checks that
    /// the order has no cycle and stays in the project.
    ///
    /// Concurrency: One statement on the row it names; last write wins.
    async fn set_environment_order(&self, env: &Environment, after_env_id: Option<i64>, self_test: bool) -> Result<()>;
}
