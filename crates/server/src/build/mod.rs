//! Builds from git (R5-R8, R25, R30): a queue in the database, worked by a
//! few workers in the server process.
//!
//! A worker claims the oldest queued build of a project that has no running
//! build (the database enforces one running build per project), then:
//! fetch the project's mirror, resolve the ref, check the commit out into a
//! fresh directory, read `ferry.toml`, run `[build] command` with a timeout,
//! store the `[build] artifact` directory as a release, tag the commit, and
//! deploy to environments that follow the branch. Every step writes to the
//! build's log; any failure ends the build with the reason.

mod git;
pub mod log;
pub mod sandbox;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ferry_domain::{BuildStatus, DeploymentKind, Recipe, RecipeError, next_version_after, validate_version};
use ferry_proto::api::CreateDeployment;
use ferry_store::{Build, BuildCommit, BuildOutcome, Project, ReleaseOrigin, User};
use tokio::sync::Notify;

use crate::release::{self, Labels};
use crate::{AppState, fleet, now_ms};
use ferry_process::RunOutcome;
use log::LogSink;

/// Wakes idle workers when a build is queued.
#[derive(Clone, Default)]
pub struct BuildQueue {
    wake: Arc<Notify>,
}

impl BuildQueue {
    pub fn queued(&self) {
        self.wake.notify_waiters();
    }
}

/// Starts `workers` build workers; they stop with the server.
pub fn start_workers(state: &AppState, workers: usize, stop: tokio::sync::watch::Receiver<bool>) {
    for n in 0..workers {
        let state = state.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            loop {
                let wake = state.builds.wake.notified();
                let (holder, ttl) = (crate::replica::holder(), crate::replica::millis(crate::replica::BUILD_LEASE_TTL));
                match state.db.claim_build(holder, now_ms(), ttl).await {
                    Ok(Some(build)) => {
                        tracing::info!(worker = n, build = build.id, project = %build.project, "build started");
                        run_build(&state, build).await;
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => tracing::error!("claiming a build: {e}"),
                }
                // Another replica, or a lost wake-up: look again every few seconds anyway.
                tokio::select! {
                    _ = wake => {}
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = stop.changed() => return,
                }
            }
        });
    }
}

/// Why a build step failed; the message goes to the log and the build.
type StepError = String;

async fn run_build(state: &AppState, build: Build) {
    let started = std::time::Instant::now();
    let (log, writer) = LogSink::start(state.db.clone(), build.id);
    let workdir = state.config.data_dir.join("builds").join(build.id.to_string());
    let result = steps(state, &build, &log, &workdir).await;
    let outcome = match result {
        Ok(done) => done,
        Err(error) => {
            log.ferry(format!("build failed: {error}"));
            BuildOutcome { status: BuildStatus::Failed, error: Some(error), version: None, release_id: None }
        }
    };
    if let Err(e) = tokio::fs::remove_dir_all(&workdir).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("removing {}: {e}", workdir.display());
    }
    drop(log);
    let _ = writer.await;
    match state.db.finish_build(build.id, &outcome, now_ms()).await {
        Ok(ended) => {
            tracing::info!(build = build.id, status = %outcome.status, "build finished");
            // Only the call that ended it tells anyone (and counts it).
            if ended {
                state.metrics.build_ended(outcome.status.as_str(), started.elapsed());
                let facts = ferry_domain::notify::EventFacts {
                    build: Some(build.id),
                    number: Some(build.number),
                    git_ref: Some(build.git_ref.clone()),
                    status: Some(outcome.status.to_string()),
                    version: outcome.version.clone(),
                    error: outcome.error.clone(),
                    requested_by: Some(build.requested_by.clone()),
                    ..Default::default()
                };
                let (project, starter) = (&build.project, Some(build.requested_by.as_str()));
                crate::notify::emit(state, project, ferry_domain::notify::BUILD_FINISHED, starter, facts).await;
            }
        }
        Err(e) => tracing::error!(build = build.id, "recording the build's end: {e}"),
    }
    if outcome.status == BuildStatus::Succeeded {
        auto_deploy(state, &build).await;
    }
}

async fn steps(state: &AppState, build: &Build, log: &LogSink, workdir: &PathBuf) -> Result<BuildOutcome, StepError> {
    let project = state.db.project(&build.project).await.map_err(|e| e.to_string())?;
    let Some(source) = project.source.clone() else {
        return Err(format!("project '{}' has no repository (create it with --repo URL)", project.name));
    };
    let mirror = git::Mirror::new(&state.config.data_dir, &project.name);
    log.ferry(format!("fetching {}", source.repo_url));
    mirror.fetch(&source.repo_url).await?;
    let commit = mirror.resolve(&build.git_ref, build.pushed_commit.as_deref(), &source.repo_url).await?;
    log.ferry(format!("building {} at {} ({}: {})", build.git_ref, &commit.sha, commit.author, commit.message));
    state.db.set_build_commit(build.id, &commit).await.map_err(|e| e.to_string())?;

    if let Some(parent) = workdir.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let _ = tokio::fs::remove_dir_all(workdir).await;
    mirror.checkout(&commit.sha, workdir).await?;
    let recipe_text = match tokio::fs::read_to_string(workdir.join("ferry.toml")).await {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(RecipeError::Missing(commit.sha.clone()).to_string());
        }
        Err(e) => return Err(format!("reading ferry.toml: {e}")),
    };
    let recipe = Recipe::parse(&recipe_text).map_err(|e| e.to_string())?;
    let recipe = recipe.build().map_err(|e| e.to_string())?;
    let timeout = recipe.timeout().map_err(|e| e.to_string())?;

    let version = version_for(state, &project, &commit).await?;
    log.ferry(format!(
        "version {version}; running `{}` (timeout {})",
        recipe.command,
        humantime::format_duration(timeout)
    ));
    let env = build_env(build, &project, &commit, &version, &recipe.env);
    let wall = &state.config.build_wall;
    let sandbox = wall.sandbox(workdir, &state.config.data_dir)?;
    if let Some(user) = wall.owner() {
        let (dir, user) = (workdir.clone(), user.clone());
        tokio::task::spawn_blocking(move || sandbox::hand_over(&dir, &user))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("giving the checkout to the build's user: {e}"))?;
    }
    log.ferry(wall.describe());
    let db = state.db.clone();
    let build_id = build.id;
    let sink_log = log.clone();
    let sink: ferry_process::LineSink = std::sync::Arc::new(move |stream, line| sink_log.line(stream, line));
    let outcome =
        ferry_process::run_untrusted(&recipe.command, workdir, &env, sandbox.as_ref(), timeout, &sink, move || {
            let db = db.clone();
            Box::pin(async move { db.build(build_id).await.map(|b| b.cancel_requested).unwrap_or(false) })
        })
        .await?;
    match outcome {
        RunOutcome::Succeeded => {}
        RunOutcome::Canceled => {
            log.ferry("canceled; the build's processes were stopped");
            return Ok(BuildOutcome {
                status: BuildStatus::Canceled,
                error: Some("canceled while running".into()),
                version: None,
                release_id: None,
            });
        }
        RunOutcome::TimedOut => {
            return Err(format!(
                "the build command ran longer than its timeout of {}; its processes were stopped",
                humantime::format_duration(timeout)
            ));
        }
        RunOutcome::Failed { code, tail } => {
            let how = code.map_or("was killed by a signal".to_string(), |c| format!("exited with code {c}"));
            return Err(format!("`{}` {how}; last output:\n{}", recipe.command, tail.join("\n")));
        }
    }

    let artifact = workdir.join(recipe.artifact.trim_end_matches('/'));
    if !artifact.is_dir() {
        return Err(format!("ferry.toml: build.artifact = '{}' is not a directory after the build", recipe.artifact));
    }
    // The deploy-side sections (hooks ...) travel with the release.
    let travelling = artifact.join("ferry.toml");
    if !travelling.exists() {
        tokio::fs::copy(workdir.join("ferry.toml"), &travelling)
            .await
            .map_err(|e| format!("copying ferry.toml into the release: {e}"))?;
    }
    let tree = state
        .artifacts
        .import_dir(&artifact)
        .await
        .map_err(|e| format!("the build output cannot be a release: {e}"))?;
    // The project's own build made this content: the project holds it.
    let made: Vec<_> = tree.blobs.keys().copied().collect();
    state.db.add_project_blobs(project.id, &made).await.map_err(|e| e.to_string())?;
    let labels = Labels {
        version: version.clone(),
        branch: commit.branch.clone().or(commit.tag.clone()).unwrap_or_else(|| "detached".into()),
        committer: commit.author.clone(),
    };
    let origin =
        ReleaseOrigin { build_id: build.id, commit_sha: commit.sha.clone(), committed_at: commit.committed_at };
    let release = release::register(state, &project, &tree.manifest, labels, &build.requested_by, Some(origin))
        .await
        .map_err(|e| e.to_string())?;
    log.ferry(format!("stored release {version}: {} files, {} bytes", release.file_count, release.total_size));

    if commit.tag.is_none() {
        mirror.tag(&version, &commit.sha).await?;
        log.ferry(format!("tagged {} as {version}", &commit.sha[..commit.sha.len().min(12)]));
        if source.push_tags {
            match mirror.push_tag(&source.repo_url, &version).await {
                Ok(()) => log.ferry(format!("pushed tag {version} to {}", source.repo_url)),
                // The release exists; a failed push is reported, not fatal.
                Err(e) => log.ferry(format!("warning: pushing tag {version} failed: {e}")),
            }
        }
    }
    Ok(BuildOutcome {
        status: BuildStatus::Succeeded,
        error: None,
        version: Some(version),
        release_id: Some(release.id),
    })
}

/// A tag's name, or the newest release's version plus one (R25).
async fn version_for(state: &AppState, project: &Project, commit: &BuildCommit) -> Result<String, StepError> {
    if let Some(tag) = &commit.tag {
        validate_version(tag).map_err(|e| format!("tag '{tag}' cannot be a version: {e}"))?;
        return Ok(tag.clone());
    }
    let releases = state.db.releases(project).await.map_err(|e| e.to_string())?;
    let versions: Vec<&str> = releases.iter().map(|r| r.version.as_str()).collect();
    Ok(next_version_after(&versions))
}

fn build_env(
    build: &Build,
    project: &Project,
    commit: &BuildCommit,
    version: &str,
    extra: &std::collections::BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let mut env = vec![
        ("FERRY_PROJECT".to_string(), project.name.clone()),
        ("FERRY_BUILD_ID".to_string(), build.id.to_string()),
        ("FERRY_BUILD_NUMBER".to_string(), build.number.to_string()),
        ("FERRY_COMMIT".to_string(), commit.sha.clone()),
        ("FERRY_BRANCH".to_string(), commit.branch.clone().unwrap_or_default()),
        ("FERRY_TAG".to_string(), commit.tag.clone().unwrap_or_default()),
        ("FERRY_VERSION".to_string(), version.to_string()),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

/// Deploys a successful build to every environment that follows its branch.
async fn auto_deploy(state: &AppState, build: &Build) {
    let Ok(build) = state.db.build(build.id).await else { return };
    let (Some(commit), Some(version)) = (&build.commit, &build.version) else { return };
    let Some(branch) = &commit.branch else { return };
    let Ok(project) = state.db.project(&build.project).await else { return };
    let Ok(envs) = state.db.environments(&project).await else { return };
    let envs: Vec<_> = envs.into_iter().filter(|e| e.auto_deploy_branch.as_deref() == Some(branch.as_str())).collect();
    if envs.is_empty() {
        return;
    }
    // A build of a commit its branch has since moved past (a late or queued
    // push) made its release, but does not replace what the newer push
    // deploys: that push's own build does.
    if build.pushed_commit.is_some() {
        let mirror = git::Mirror::new(&state.config.data_dir, &project.name);
        if let Ok(head) = mirror.head_of(branch).await
            && head != commit.sha
        {
            tracing::info!(build = build.id, %branch, "not auto-deployed: the branch has moved on to {head}");
            let object = format!("project={} build={}", project.name, build.number);
            let outcome = format!("skipped: {branch} has moved on from {} to {head}", commit.sha);
            crate::audit::record_server_action(state, &build.requested_by, "auto-deploy", &object, &outcome).await;
            return;
        }
    }
    for env in envs {
        // The environment's auto-deploy setting, which only its project's
        // owners can make, is what authorises this deployment; it is
        // recorded under the build's requester.
        let caller = User {
            id: 0,
            name: build.requested_by.clone(),
            is_admin: true,
            production: true,
            disabled: false,
            has_password: false,
            email: None,
        };
        let req = CreateDeployment::of(&env.name, Some(version.clone()), DeploymentKind::Deploy);
        // An environment that requires an approval is refused here like
        // anyone else's deploy (`fleet::create_deployment`).
        let outcome = match fleet::create_deployment(state, &caller, &project.name, req).await {
            Ok(d) => {
                tracing::info!(build = build.id, env = %env.name, deployment = d.id, "auto-deployed");
                format!("started deployment {} of {version}", d.id)
            }
            Err(e) => {
                tracing::warn!(build = build.id, env = %env.name, "auto-deploy refused: {e}");
                format!("refused: {e}")
            }
        };
        let object = format!("project={} env={} build={}", project.name, env.name, build.number);
        crate::audit::record_server_action(state, &build.requested_by, "auto-deploy", &object, &outcome).await;
    }
}
