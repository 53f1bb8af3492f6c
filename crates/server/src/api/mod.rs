//! The HTTP API under `/api/v1`, plus `/healthz`. Handlers are thin: they
//! authenticate, validate, call the store or `fleet`, and shape the answer.

mod audit;
mod builds;
mod deployments;
mod hooks;
mod hosts;
mod lb;
mod locks;
mod notify;
mod projects;
mod releases;
mod stats;
mod vars;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};

use crate::{AppState, agent_channel};

/// Large enough for the manifest of a release with hundreds of thousands of
/// files; blob uploads stream and are not bound by it.
pub const JSON_BODY_LIMIT: usize = 256 * 1024 * 1024;

/// `?limit=N` on list endpoints: 50 by default, 1000 at most.
#[derive(serde::Deserialize)]
pub struct ListQuery {
    limit: Option<u32>,
}

impl ListQuery {
    pub fn limit(&self) -> u32 {
        self.limit.unwrap_or(50).min(1000)
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/api/v1/projects", post(projects::create).get(projects::list))
        .route("/api/v1/projects/{project}", get(projects::show))
        .route("/api/v1/projects/{project}/environments", post(projects::create_env).get(projects::list_envs))
        .route("/api/v1/projects/{project}/environments/{env}/rollout", post(projects::set_env_rollout))
        .route("/api/v1/projects/{project}/environments/{env}/lb", post(lb::set).get(lb::show).delete(lb::unset))
        .route("/api/v1/projects/{project}/environments/{env}/lb/drain", post(lb::drain))
        .route("/api/v1/projects/{project}/environments/{env}/lb/ready", post(lb::ready))
        .route("/api/v1/projects/{project}/environments/{env}/lb/applied", get(lb::applied))
        .route("/api/v1/projects/{project}/status", get(projects::status))
        .route("/api/v1/projects/{project}/stats", get(stats::show))
        .route("/api/v1/projects/{project}/notifications", post(notify::add).get(notify::list))
        .route("/api/v1/projects/{project}/notifications/log", get(notify::log))
        .route("/api/v1/projects/{project}/notifications/{id}", delete(notify::remove))
        .route("/api/v1/projects/{project}/vars", post(vars::set).get(vars::list))
        .route("/api/v1/projects/{project}/vars/{key}", delete(vars::unset))
        .route("/api/v1/projects/{project}/releases", post(releases::create).get(releases::list))
        .route("/api/v1/projects/{project}/releases/{version}/archive", get(releases::archive))
        .route(
            "/api/v1/projects/{project}/releases/{version}/bad",
            post(releases::mark_bad).delete(releases::mark_good),
        )
        .route("/api/v1/projects/{project}/environments/{env}/freeze", post(locks::freeze).delete(locks::unfreeze))
        .route("/api/v1/locks", get(locks::list))
        .route("/api/v1/projects/{project}/deployments", post(deployments::create).get(deployments::list))
        .route("/api/v1/deployments/{id}", get(deployments::show))
        .route("/api/v1/deployments/{id}/log", get(deployments::log))
        .route("/api/v1/deployments/{id}/retry", post(deployments::retry))
        .route("/api/v1/deployments/{id}/{action}", post(deployments::control))
        .route("/api/v1/projects/{project}/builds", post(builds::create).get(builds::list))
        .route("/api/v1/builds/{id}", get(builds::show))
        .route("/api/v1/builds/{id}/cancel", post(builds::cancel))
        .route("/api/v1/builds/{id}/retry", post(builds::retry))
        .route("/api/v1/builds/{id}/log", get(builds::log))
        .route("/api/v1/hooks/{forge}/{project}", post(hooks::receive))
        .route("/api/v1/blobs/missing", post(releases::missing_blobs))
        .route("/api/v1/blobs", post(releases::upload_blobs))
        .route("/api/v1/hosts", get(hosts::list))
        .route("/api/v1/audit", get(audit::list))
        .route("/api/v1/audit/verify", get(audit::verify))
        .route("/api/v1/agent/enroll", post(agent_channel::enroll))
        .route("/api/v1/agent/connect", get(agent_channel::connect))
        .route("/api/v1/agent/releases/{id}/manifest", get(agent_channel::manifest))
        .route("/api/v1/agent/blobs", post(agent_channel::blobs))
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        // Every request passes here, after routing (so the route pattern is
        // known): the audit trail is recorded in this one place (R27).
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::audit::record))
        .with_state(state)
}
