//! Environments in order (R23) on the server: the facts the gate of
//! `ferry_domain::promotion` decides from, the `--skip-promotion` override,
//! the version `ferry promote` deploys, and the versions of each environment for the grid of
//! the project page.
//!
//! Every deployment passes [`check`] in `fleet::create_deployment_as` (a
//! deploy, a promotion, a request's staging update and its release alike);
//! a release request is also checked when it is created and before it moves
//! to releasing, so that it is refused before it changes anything.

use std::collections::BTreeMap;

use ferry_domain::Selector;
use ferry_domain::promotion::{self, Candidate, Running, UpstreamHost};
use ferry_domain::status::Note;
use ferry_proto::api::CreateDeployment;
use ferry_store::{Environment, HostStateRow, Project, Release, User};

use crate::AppState;
use crate::error::{AppError, AppResult};

fn selector_of(env: &Environment) -> AppResult<Selector> {
    Selector::parse(&env.selector).map_err(|e| AppError::Internal(format!("stored selector of '{}': {e}", env.name)))
}

/// Whether deploying `release` to `env` goes back: to a release no newer
/// (made no later) than the one the environment last deployed successfully.
/// Going back is never gated. A "rollback" to a newer release is not going
/// back, so `ferry rollback --to` cannot be a way round the order.
fn going_back(env: &Environment, release: &Release) -> bool {
    env.desired_release_id.is_some_and(|current| release.id <= current)
}

/// Refuses `release` for `env` unless it succeeded on every host of the
/// environment `env` comes after (see `ferry_domain::promotion`). Passes
/// when `env` comes after none, and for going back.
pub async fn check_gate(state: &AppState, project: &Project, env: &Environment, release: &Release) -> AppResult<()> {
    let Some(upstream_name) = &env.after else { return Ok(()) };
    let candidate = Candidate {
        project: &project.name,
        env: &env.name,
        version: &release.version,
        going_back: going_back(env, release),
    };
    if candidate.going_back {
        return Ok(());
    }
    let upstream = state.db.environment(project, upstream_name).await?;
    let selector = selector_of(&upstream)?;
    let succeeded = state.db.release_succeeded_hosts(&upstream, release.id).await?;
    let states = state.db.project_host_states(project).await?;
    let hosts: Vec<UpstreamHost> = state
        .db
        .hosts()
        .await?
        .into_iter()
        .filter(|h| selector.matches(&h.tags))
        .map(|h| UpstreamHost {
            succeeded: succeeded.contains(&h.id),
            runs_it: states
                .iter()
                .any(|s| s.host_id == h.id && s.current_version.as_deref() == Some(release.version.as_str())),
            name: h.name,
        })
        .collect();
    promotion::check(&candidate, &upstream.name, &hosts).map_err(|e| AppError::Conflict(e.to_string()))
}

/// The promotion check of one deployment: the gate, or, when the request
/// skips it (`--skip-promotion --reason`), the caller's production right.
/// Answers what to record on the deployment when the order was skipped.
pub async fn check(
    state: &AppState,
    caller: &User,
    project: &Project,
    env: &Environment,
    release: &Release,
    req: &CreateDeployment,
) -> AppResult<Option<Note>> {
    let Some(reason) = &req.skip_promotion else {
        check_gate(state, project, env, release).await?;
        return Ok(None);
    };
    let reason = ferry_domain::guards::validate_reason(reason)
        .map_err(|e| AppError::BadRequest(format!("--skip-promotion: {e}")))?;
    let upstream = check_skip(state, caller, project, env).await?;
    tracing::warn!(project = %project.name, env = %env.name, version = %release.version, by = %caller.name,
        %reason, "a deployment skips the promotion order");
    Ok(Some(Note::PromotionSkipped { by: caller.name.clone(), version: release.version.clone(), upstream, reason }))
}

/// Checks that `caller` may skip the order of `env`, which must have one;
/// answers the environment it comes after.
pub async fn check_skip(state: &AppState, caller: &User, project: &Project, env: &Environment) -> AppResult<String> {
    let Some(upstream) = &env.after else {
        return Err(AppError::BadRequest(format!(
            "environment '{}' comes after no other environment: there is no promotion order to skip; drop \
             --skip-promotion",
            env.name
        )));
    };
    // The same right as deploying to production: whoever may put any
    // version on production may decide it need not wait for staging.
    let membership = state.db.membership(project.id, caller.id).await?;
    if ferry_domain::access::allowed(&caller.subject(), membership, ferry_domain::Action::Deploy, true).is_err() {
        return Err(AppError::Forbidden(format!(
            "skipping the promotion order of environment '{}' of project '{}' (--skip-promotion) needs the \
             production right",
            env.name, project.name
        )));
    }
    Ok(upstream.clone())
}

/// The versions the hosts `env` selects run now.
fn running(env: &Environment, hosts: &[ferry_store::Host], states: &[HostStateRow]) -> AppResult<Running> {
    let selector = selector_of(env)?;
    let versions: Vec<&str> = hosts
        .iter()
        .filter(|h| selector.matches(&h.tags))
        .filter_map(|h| states.iter().find(|s| s.host_id == h.id).and_then(|s| s.current_version.as_deref()))
        .collect();
    Ok(Running::of(versions))
}

/// The one version every host of `from` runs, to be promoted to `to`
/// (named in the error when there is no such version).
pub async fn version_to_promote(
    state: &AppState,
    project: &Project,
    from: &Environment,
    to: &Environment,
) -> AppResult<String> {
    let hosts = state.db.hosts().await?;
    let states = state.db.project_host_states(project).await?;
    promotion::version_to_promote(&from.name, &running(from, &hosts, &states)?)
        .map_err(|e| AppError::Conflict(format!("nothing to promote to '{}': {e}", to.name)))
}

/// One environment of the project page's grid.
#[derive(Debug, Clone, PartialEq)]
pub struct GridEnv {
    pub name: String,
    /// The environment it comes after.
    pub after: Option<String>,
    /// What its hosts run.
    pub running: Running,
    /// It is behind the one it comes after: that one's version could be
    /// promoted here.
    pub behind: bool,
}

/// The project's environments in the order versions travel, each with the
/// versions its hosts run and whether it is behind the one before.
pub async fn grid(state: &AppState, project: &Project) -> AppResult<Vec<GridEnv>> {
    let envs = state.db.environments(project).await?;
    let hosts = state.db.hosts().await?;
    let states = state.db.project_host_states(project).await?;
    let mut by_name = BTreeMap::new();
    for env in &envs {
        by_name.insert(env.name.clone(), running(env, &hosts, &states)?);
    }
    let order: Vec<(String, Option<String>)> = envs.iter().map(|e| (e.name.clone(), e.after.clone())).collect();
    Ok(promotion::in_order(&order)
        .into_iter()
        .filter_map(|name| {
            let env = envs.iter().find(|e| e.name == name)?;
            let running = by_name.get(&name).cloned().unwrap_or_default();
            let behind = env
                .after
                .as_ref()
                .and_then(|a| by_name.get(a))
                .is_some_and(|upstream| promotion::is_behind(upstream, &running));
            Some(GridEnv { name, after: env.after.clone(), running, behind })
        })
        .collect())
}
