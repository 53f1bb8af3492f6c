//! Planning a deployment: who may start it, which hosts, which releases,
//! which batches, every check, and recording it. Deploys and dry runs share
//! `plan_deployment`.

use std::collections::BTreeMap;
use std::time::Duration;

use ferry_domain::notify;
use ferry_domain::offline::{self, AtStart};
use ferry_domain::placement;
use ferry_domain::rollout::{self, FailLimit, PlanHost, RolloutPolicy};
use ferry_domain::status::Note;
use ferry_domain::{DeploymentKind, HostRollback};
use ferry_proto::api::{CreateDeployment, DeploymentInfo};
use ferry_store::{DeploymentTarget, Environment, Host, NewDeployment, Release, User};

use crate::error::{AppError, AppResult};
use crate::guards::{self, Overrides};
use crate::{AppState, now_ms};

use super::*;

/// On whose authority a deployment is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authority {
    /// The caller's own rights: a deploy, rollback or retry.
    Caller,
    /// Updating the staging environment of a release request: the
    /// requester's own rights, and the deployment is linked to the request.
    Staging { request: i64 },
    /// Releasing an approved request: its approval stands in for the
    /// production right and for the environment's approval requirement.
    Approved { request: i64 },
}

impl Authority {
    fn request(self) -> Option<i64> {
        match self {
            Authority::Caller => None,
            Authority::Staging { request } | Authority::Approved { request } => Some(request),
        }
    }
}

/// Creates a deployment or rollback on the caller's own authority and wakes
/// the target hosts' agents.
pub async fn create_deployment(
    state: &AppState,
    caller: &User,
    project_name: &str,
    req: CreateDeployment,
) -> AppResult<DeploymentInfo> {
    create_deployment_as(state, caller, project_name, req, Authority::Caller).await
}

/// Checks that `caller` may deploy to `env` on `authority`, and that the
/// environment's approval requirement is met (R24, R26).
pub(super) async fn check_authority(
    state: &AppState,
    caller: &User,
    project: &ferry_store::Project,
    env: &Environment,
    req: &CreateDeployment,
    authority: Authority,
) -> AppResult<()> {
    if let Authority::Approved { .. } = authority {
        return Ok(());
    }
    // The route could only check the project role: the environment, and so
    // whether it is production, is known from here on. Every deployment
    // (deploy, rollback, retry) passes this one check.
    crate::access::check_deploy(state, caller, project, env).await?;
    if !env.requires_approval {
        return Ok(());
    }
    let (p, e) = (&project.name, &env.name);
    match authority {
        Authority::Staging { .. } => Err(AppError::Conflict(format!(
            "environment '{e}' requires an approval itself, so it cannot be the staging environment requests are              tested on: ferry env update {p} ENV --staging NAME"
        ))),
        // Minutes matter: someone trusted with production may go back
        // without waiting for an approver. It is flagged and recorded.
        _ if req.emergency && (caller.production || caller.is_admin) => Ok(()),
        _ if req.emergency => Err(AppError::Forbidden(format!(
            "an emergency rollback of environment '{e}' past its approval needs the production right"
        ))),
        _ => {
            let what = match req.kind {
                DeploymentKind::Deploy => format!("ferry request create {p} {e} --build N --reason TEXT"),
                DeploymentKind::Rollback => format!("ferry request create {p} {e} --rollback --reason TEXT"),
            };
            Err(AppError::ApprovalRequired(format!(
                "environment '{e}' of project '{p}' requires an approved release request: {what} (or, when \
                 minutes matter, ferry rollback {p} {e} --emergency with the production right)"
            )))
        }
    }
}

/// A deployment worked out and checked, not yet recorded: what
/// [`create_deployment_as`] records, and what a dry run shows. Both come from
/// [`plan_deployment`], so a dry run shows what the deployment would do.
pub struct PlannedDeployment {
    pub project: ferry_store::Project,
    pub env: Environment,
    /// The deployment's headline release (where most hosts of a rollback go).
    pub release: Release,
    /// Exactly what would be recorded: targets in batches, skipped hosts,
    /// the rollout policy, the notes.
    pub new: NewDeployment,
    /// The running deployment an emergency rollback would take over.
    pub superseded: Option<i64>,
    /// The target hosts, moving or skipped, by which `new` names them.
    pub hosts: Vec<Host>,
}

/// Works out a deployment or rollback on `authority` and runs every check a
/// real one passes (rights, approval requirement, freeze, bad marks, hosts,
/// order of environments, offline policy, rollout options), changing
/// nothing. The store checks freezes, bad marks and the lock again when it
/// records the deployment.
pub async fn plan_deployment(
    state: &AppState,
    caller: &User,
    project_name: &str,
    req: &CreateDeployment,
    authority: Authority,
) -> AppResult<PlannedDeployment> {
    let db = &state.db;
    let project = db.project(project_name).await?;
    let env = db.environment(&project, &req.env).await?;
    check_authority(state, caller, &project, &env, req, authority).await?;
    // Freezes and bad marks (see `guards`): refused with who and why before
    // anything else; the store checks both again in the deployment's
    // transaction.
    let overrides = Overrides::of(req);
    guards::check_freeze(state, &env, overrides.ignore_freeze).await?;
    // Target hosts: the environment's hosts, or the chosen subset of them (R9).
    let selector = selector_of(&env)?;
    let all_hosts = db.hosts().await?;
    let in_env: Vec<&Host> = all_hosts.iter().filter(|h| selector.matches(&h.tags)).collect();
    let (targets, whole_env): (Vec<&Host>, bool) = match &req.hosts {
        None => (in_env, true),
        Some(names) if names.is_empty() => return Err(AppError::BadRequest("--hosts names no host".into())),
        Some(names) => {
            let mut chosen = Vec::new();
            for name in names {
                let Some(host) = all_hosts.iter().find(|h| &h.name == name) else {
                    return Err(AppError::NotFound(format!("host '{name}' not found")));
                };
                if !selector.matches(&host.tags) {
                    return Err(AppError::BadRequest(format!(
                        "host '{name}' (tags {}) is not in environment '{}' (selector {})",
                        host.tags, env.name, env.selector
                    )));
                }
                if !chosen.iter().any(|h: &&Host| h.id == host.id) {
                    chosen.push(host);
                }
            }
            (chosen, false)
        }
    };
    // The release named (`--version`, `--build`, or a rollback's `--to`).
    let named = match (&req.version, &req.build) {
        (Some(_), Some(_)) => {
            return Err(AppError::BadRequest("give either --version or --build, not both".into()));
        }
        (None, Some(build)) => Some(release_of_build(state, &project, build).await?),
        (Some(v), None) => Some(db.release(&project, v).await?),
        (None, None) if req.kind == DeploymentKind::Deploy => {
            return Err(AppError::BadRequest("a deploy needs a version".into()));
        }
        (None, None) => None,
    };
    if let Some(release) = &named {
        guards::check_release(&project.name, release, overrides.force)?;
    }
    // A host runs a project for one environment only: refuse to steal it
    // from another environment that still selects it. One that no longer
    // does (the host was re-tagged, or its selector changed) has no claim.
    let envs = db.environments(&project).await?;
    for row in db.project_host_states(&project).await? {
        let Some(other) = row.desired_env_id.filter(|id| *id != env.id) else { continue };
        let Some(host) = targets.iter().find(|h| h.id == row.host_id) else { continue };
        let Some(other) = envs.iter().find(|e| e.id == other) else { continue };
        let current = placement::Current { env: &other.name, still_selected: selector_of(other)?.matches(&host.tags) };
        if placement::claimed_elsewhere(&env.name, Some(current)) {
            return Err(AppError::Conflict(format!(
                "host '{}' already runs project '{}' for environment '{}'",
                host.name, project.name, other.name
            )));
        }
    }
    if req.emergency && req.kind != DeploymentKind::Rollback {
        return Err(AppError::BadRequest("--emergency is for rollbacks: ferry rollback P ENV --emergency".into()));
    }

    // An emergency ends the environment's running deployment in the same
    // transaction; what follows an end must follow that one too.
    let superseded = match req.emergency {
        // The environment's lock holder (R19): at most one.
        true => db.lock_holders(Some(&project)).await?.into_iter().find(|d| d.env == env.name).map(|d| d.id),
        false => None,
    };

    // Where each host goes: a deploy's release everywhere; a rollback's per
    // host, back to what that host ran before (R9, R11).
    let (release, moves, notes) = match (req.kind, named) {
        (DeploymentKind::Deploy, Some(release)) => {
            let moves = targets.iter().map(|h| (*h, release.id, None)).collect::<Vec<_>>();
            (release, moves, Vec::new())
        }
        (_, named) => {
            let releases = db.releases(&project).await?;
            let version = |id: i64| {
                releases.iter().find(|r| r.id == id).map_or_else(|| format!("release {id}"), |r| r.version.clone())
            };
            let plan =
                rollback_plan(state, &project, &env, &targets, named.as_ref().map(|r| r.id), req.emergency).await?;
            let bad = releases.iter().any(|r| r.bad.is_some());
            let mut moves = Vec::new();
            let mut stays = Vec::new();
            for (host, outcome) in targets.iter().zip(plan) {
                match outcome {
                    HostRollback::To { release, from } => moves.push((*host, release, from)),
                    HostRollback::AlreadyThere(r) => {
                        stays.push(Note::AlreadyRuns { host: host.name.clone(), version: version(r) })
                    }
                    HostRollback::NothingEarlier => {
                        stays.push(Note::NothingEarlier { host: host.name.clone(), not_bad: bad })
                    }
                }
            }
            // An emergency that stops a running deployment changes something
            // even when no host moves: it is recorded, and ends that one.
            if moves.is_empty() && superseded.is_none() {
                let hint = if named.is_none() { "; name a version with --to VERSION" } else { "" };
                let what = match stays.is_empty() {
                    true => "it has no hosts".to_string(),
                    // Each says "left as is: ..."; the refusal says why alone.
                    false => stays
                        .iter()
                        .map(|s| s.to_string().trim_start_matches("left as is: ").to_string())
                        .collect::<Vec<_>>()
                        .join("; "),
                };
                return Err(AppError::Conflict(format!(
                    "nothing to roll back in {}/{}: {what}{hint}",
                    project.name, env.name
                )));
            }
            // The deployment's headline: where most of its hosts go.
            let to: Vec<HostRollback<i64>> =
                moves.iter().map(|(_, release, from)| HostRollback::To { release: *release, from: *from }).collect();
            let headline = most_common_target(&to).or(env.desired_release_id);
            let release = match named {
                Some(r) => r,
                None => releases.iter().find(|r| Some(r.id) == headline).cloned().ok_or_else(|| {
                    AppError::Conflict(format!(
                        "nothing to roll back in {}/{}: no host moves and the environment has no version",
                        project.name, env.name
                    ))
                })?,
            };
            (release, moves, stays)
        }
    };
    // The order of environments (R23): the version must have succeeded on
    // every host of the environment this one comes after, unless someone
    // with the production right skips it, saying why. Going back is never
    // held up (see `promotion`).
    let mut notes: Vec<Note> = notes;
    notes.extend(crate::promotion::check(state, caller, &project, &env, &release, req).await?);
    let releases_named: BTreeMap<i64, String> = {
        let mut out = BTreeMap::new();
        for (_, id, _) in &moves {
            if !out.contains_key(id) {
                let r = if *id == release.id { release.clone() } else { db.release_by_id(*id).await? };
                out.insert(*id, release_name_for(&project.name, &env.name, &r));
            }
        }
        out
    };

    // Offline hosts among those that move (crates/domain `offline.rs`):
    // skipped ones are recorded, never started, and get their release when
    // the deployment succeeds.
    let offline_policy =
        offline::for_deployment(req.offline, req.offline_timeout_secs.is_some(), env.offline_policy, req.emergency);
    let liveness: Vec<(&str, bool)> = moves.iter().map(|(h, _, _)| (h.name.as_str(), h.online)).collect();
    let skipped: Vec<i64> = match offline::at_start(offline_policy, &liveness) {
        AtStart::PlanAll => Vec::new(),
        AtStart::Refuse(why) => return Err(AppError::Conflict(why)),
        AtStart::Skip(names) => {
            moves.iter().filter(|(h, _, _)| names.contains(&h.name.as_str())).map(|(h, _, _)| h.id).collect()
        }
    };

    // The rollout (R13): the environment's, with this request's overrides;
    // an emergency rollback goes everywhere at once and stops for nothing.
    let policy = if req.emergency {
        if !req.rollout.is_empty() {
            return Err(AppError::BadRequest(
                "an emergency rollback goes to every host at once; drop the rollout options".into(),
            ));
        }
        RolloutPolicy { max_failed: FailLimit::Percent(100), auto_rollback: false, ..RolloutPolicy::default() }
    } else {
        req.rollout.apply(&env.rollout).map_err(|e| AppError::BadRequest(e.to_string()))?
    };
    let moving: Vec<&Host> = moves.iter().map(|(h, _, _)| *h).filter(|h| !skipped.contains(&h.id)).collect();
    let plan_hosts: Vec<PlanHost<'_>> =
        moving.iter().map(|h| PlanHost { id: h.id, name: &h.name, tags: &h.tags }).collect();
    let batches = rollout::plan(&policy.strategy, &plan_hosts).map_err(|e| AppError::BadRequest(e.to_string()))?;

    let offline_timeout = req.offline_timeout_secs.map(Duration::from_secs).unwrap_or(DEFAULT_OFFLINE_TIMEOUT);
    let target_of = |host_id: i64, batch: usize| -> Option<DeploymentTarget> {
        let (_, release_id, from) = moves.iter().find(|(h, _, _)| h.id == host_id)?;
        Some(DeploymentTarget {
            host_id,
            release_id: *release_id,
            release_name: releases_named.get(release_id).cloned().unwrap_or_default(),
            from_release_id: *from,
            batch: u32::try_from(batch).unwrap_or(u32::MAX),
            skipped: skipped.contains(&host_id),
        })
    };
    let new = NewDeployment {
        project_id: project.id,
        env_id: env.id,
        release_id: release.id,
        kind: req.kind,
        created_by: caller.name.clone(),
        targets: batches
            .iter()
            .enumerate()
            .flat_map(|(batch, hosts)| hosts.iter().filter_map(move |host_id| target_of(*host_id, batch)))
            .chain(skipped.iter().filter_map(|host_id| target_of(*host_id, 0)))
            .collect(),
        whole_env,
        offline_timeout_ms: i64::try_from(offline_timeout.as_millis()).unwrap_or(i64::MAX),
        offline_policy,
        forced: overrides.force,
        ignore_freeze: overrides.ignore_freeze,
        batch_count: u32::try_from(batches.len()).unwrap_or(u32::MAX),
        policy,
        emergency: req.emergency,
        request_id: authority.request(),
        notes,
    };
    Ok(PlannedDeployment {
        hosts: targets.iter().map(|h| (*h).clone()).collect(),
        project,
        env,
        release,
        new,
        superseded,
    })
}

/// Creates a deployment or rollback on `authority` and wakes the target
/// hosts' agents.
pub async fn create_deployment_as(
    state: &AppState,
    caller: &User,
    project_name: &str,
    req: CreateDeployment,
    authority: Authority,
) -> AppResult<DeploymentInfo> {
    let db = &state.db;
    let PlannedDeployment { project, env, release, new, superseded, hosts: _ } =
        plan_deployment(state, caller, project_name, &req, authority).await?;
    let skipped = new.targets.iter().filter(|t| t.skipped).count();
    let (moving, batches) = (new.targets.len() - skipped, new.batch_count);
    let id = db.create_deployment(new, now_ms()).await?;
    state.metrics.deployment_started(req.kind.as_str());
    if let Some(old) = superseded.filter(|old| *old != id) {
        crate::rollout::ended(state, old).await;
    }
    tracing::info!(id, project = %project.name, env = %env.name, version = %release.version, kind = %req.kind,
        hosts = moving, skipped, batches, emergency = req.emergency,
        "deployment created");
    notify_started(state, id, req.emergency).await;
    crate::rollout::drive(state, id).await?;
    deployment_info(state, id).await
}

/// Tells the project's notification rules that a deployment started, and
/// of an emergency rollback the whole project (`rollback.emergency`).
/// Before the first step, so that a start is heard of before the end.
pub(super) async fn notify_started(state: &AppState, id: i64, emergency: bool) {
    let d = match state.db.deployment(id).await {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(id, "reading the deployment to notify: {e}");
            return;
        }
    };
    let facts = crate::rollout::deployment_facts(&d);
    let starter = Some(d.created_by.as_str());
    crate::notify::emit(state, &d.project, notify::DEPLOY_STARTED, starter, facts.clone()).await;
    if emergency {
        crate::notify::emit(state, &d.project, notify::ROLLBACK_EMERGENCY, starter, facts).await;
    }
}

/// The release a build made (R8: only successful builds are deployable).
pub async fn release_of_build(state: &AppState, project: &ferry_store::Project, which: &str) -> AppResult<Release> {
    let build = if which == "latest" {
        state
            .db
            .latest_succeeded_build(project)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("project '{}' has no successful build yet", project.name)))?
    } else {
        let number: i64 = which
            .trim_start_matches('#')
            .parse()
            .map_err(|_| AppError::BadRequest(format!("--build takes a build number or 'latest', not '{which}'")))?;
        state.db.build_by_number(project, number).await?
    };
    match build.release_id {
        Some(id) if build.status == ferry_domain::BuildStatus::Succeeded => Ok(state.db.release_by_id(id).await?),
        _ => Err(AppError::Conflict(format!(
            "build {} of '{}' {}; only successful builds can be deployed",
            build.number, project.name, build.status
        ))),
    }
}
