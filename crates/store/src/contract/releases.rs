//! Releases and the content a project holds.

use async_trait::async_trait;
use ferry_domain::BadMark;

use crate::Result;
use crate::model::*;

/// Releases (immutable once created, but for their bad mark) and the blobs
/// each project may reference. A version is unique per project: of two
/// callers registering one, exactly one wins.
#[async_trait]
pub trait Releases: Send + Sync {
    /// Records that the project holds these blobs: their bytes were uploaded
    /// to it (or made by its build) and verified.
    ///
    /// Concurrency: One transaction; idempotent (a blob already recorded is
    /// left as it is), so concurrent callers never conflict.
    async fn add_project_blobs(&self, project_id: i64, digests: &[ferry_domain::Digest]) -> Result<()>;

    /// Those of `digests` the project is not recorded as holding, each once,
    /// in the order given. Existence checks answer from this, never from the
    /// whole store, so nobody learns what other projects hold.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn project_blobs_missing(
        &self,
        project_id: i64,
        digests: &[ferry_domain::Digest],
    ) -> Result<Vec<ferry_domain::Digest>>;

    /// Concurrency: Exactly one caller wins a version of a project; the others
    /// get `Conflict`.
    async fn create_release(&self, new: NewRelease, now: i64) -> Result<Release>;

    /// The project's release with this version, or `NotFound`.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn release(&self, project: &Project, version: &str) -> Result<Release>;

    /// The release with this id, or `NotFound`.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn release_by_id(&self, id: i64) -> Result<Release>;

    /// Newest first.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn releases(&self, project: &Project) -> Result<Vec<Release>>;

    /// Marks a release bad (replacing an earlier mark), or clears its mark
    /// with `None`. Returns the release as it now is.
    ///
    /// Concurrency: One statement; the release is read back after it, so it may already carry a
    /// later writer's mark.
    async fn set_release_mark(&self, release_id: i64, mark: Option<&BadMark>) -> Result<Release>;

    /// The hosts on which a deployment of `release_id` to `env` succeeded,
    /// in any deployment, by id.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn release_succeeded_hosts(&self, env: &Environment, release_id: i64) -> Result<Vec<i64>>;
}
