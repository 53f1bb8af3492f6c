//! `/api/v1/projects/{project}/environments/{env}/lb`: the load balancer in
//! front of an environment (R14), and taking its hosts out and back in.
//!
//! Changing a load balancer or the hosts it sends requests to decides what
//! production traffic reaches, so these writes are for administrators.

use axum::Json;
use axum::extract::{Path, Query, State};
use ferry_domain::LbConfig;
use ferry_proto::api::{LbChange, LbHosts, LbProgressInfo, LoadBalancerInfo, SetLoadBalancer};
use ferry_store::{Environment, NewLoadBalancer};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{AppError, AppResult};
use crate::lb;

async fn environment(state: &AppState, project: &str, env: &str) -> AppResult<Environment> {
    let project = state.db.project(project).await?;
    Ok(state.db.environment(&project, env).await?)
}

fn none_set(env: &Environment) -> AppError {
    AppError::NotFound(format!(
        "environment '{}' of project '{}' has no load balancer; set one with `ferry env lb set {} {} ...`",
        env.name, env.project, env.project, env.name
    ))
}

/// `POST`: sets the load balancer, replacing any the environment had.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/environments/{env}/lb",
    tag = "lb",
    params(("project" = String, Path), ("env" = String, Path)),
    request_body = SetLoadBalancer,
    responses((status = 200, body = LoadBalancerInfo)),
)]
pub async fn set(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((project, env)): Path<(String, String)>,
    Json(req): Json<SetLoadBalancer>,
) -> AppResult<Json<LoadBalancerInfo>> {
    let env = environment(&state, &project, &env).await?;
    let config = LbConfig::new(&req.driver, &req.select, req.backend.as_deref(), &req.options)
        .map_err(|e| AppError::BadRequest(e.to_string()))?;
    let new = NewLoadBalancer {
        driver: config.driver.name().to_string(),
        selector: config.select.to_string(),
        backend: config.backend.clone(),
        // With the defaults filled in, so that `show` says what runs.
        options: config.driver.options(),
        updated_by: caller.name.clone(),
    };
    let old = state.db.load_balancer(&env).await?;
    let generation = state.db.set_load_balancer(&env, &new, crate::now_ms()).await?;
    tracing::info!(project = %env.project, env = %env.name, driver = %new.driver, select = %new.selector, generation,
        "load balancer set");
    // Hosts that no longer drive it keep the balancer as it was; the new ones take over.
    if let Some(old) = old {
        lb::wake(&state, &old.selector).await?;
    }
    lb::wake(&state, &new.selector).await?;
    Ok(Json(lb::info(&state, &env).await?.ok_or_else(|| none_set(&env))?))
}

/// `GET`: the load balancer, its backends and how far its hosts have come.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{project}/environments/{env}/lb",
    tag = "lb",
    params(("project" = String, Path), ("env" = String, Path)),
    responses((status = 200, body = LoadBalancerInfo)),
)]
pub async fn show(
    State(state): State<AppState>,
    _caller: Caller,
    Path((project, env)): Path<(String, String)>,
) -> AppResult<Json<LoadBalancerInfo>> {
    let env = environment(&state, &project, &env).await?;
    Ok(Json(lb::info(&state, &env).await?.ok_or_else(|| none_set(&env))?))
}

/// `DELETE`: removes the load balancer. Its hosts leave the balancer as they
/// last set it: the server no longer says what it should be.
#[utoipa::path(
    delete,
    path = "/api/v1/projects/{project}/environments/{env}/lb",
    tag = "lb",
    params(("project" = String, Path), ("env" = String, Path)),
    responses((status = 200, body = Object)),
)]
pub async fn unset(
    State(state): State<AppState>,
    _caller: Caller,
    Path((project, env)): Path<(String, String)>,
) -> AppResult<Json<serde_json::Value>> {
    let env = environment(&state, &project, &env).await?;
    let Some(old) = state.db.load_balancer(&env).await? else { return Err(none_set(&env)) };
    state.db.unset_load_balancer(&env).await?;
    tracing::info!(project = %env.project, env = %env.name, "load balancer removed");
    lb::wake(&state, &old.selector).await?;
    Ok(Json(serde_json::json!({ "removed": true })))
}

/// The ids of `names`, each a host of `env`.
async fn hosts_of(state: &AppState, env: &Environment, names: &[String]) -> AppResult<Vec<i64>> {
    if names.is_empty() {
        return Err(AppError::BadRequest("name at least one host".into()));
    }
    let selector = ferry_domain::Selector::parse(&env.selector)
        .map_err(|e| AppError::Internal(format!("stored selector of '{}': {e}", env.name)))?;
    let all = state.db.hosts().await?;
    let mut ids = Vec::new();
    for name in names {
        let Some(host) = all.iter().find(|h| &h.name == name) else {
            return Err(AppError::NotFound(format!("host '{name}' not found")));
        };
        if !selector.matches(&host.tags) {
            return Err(AppError::BadRequest(format!(
                "host '{name}' (tags {}) is not in environment '{}' (selector {})",
                host.tags, env.name, env.selector
            )));
        }
        ids.push(host.id);
    }
    Ok(ids)
}

async fn change(state: AppState, project: String, env: String, req: LbHosts, drain: bool) -> AppResult<Json<LbChange>> {
    let env = environment(&state, &project, &env).await?;
    let ids = hosts_of(&state, &env, &req.hosts).await?;
    let generation = if drain { lb::drain(&state, &env, &ids).await? } else { lb::undrain(&state, &env, &ids).await? };
    let generation = generation.ok_or_else(|| none_set(&env))?;
    Ok(Json(LbChange { generation }))
}

/// `POST .../lb/drain`: takes hosts out of the balancer.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/environments/{env}/lb/drain",
    tag = "lb",
    params(("project" = String, Path), ("env" = String, Path)),
    request_body = LbHosts,
    responses((status = 200, body = LbChange)),
)]
pub async fn drain(
    State(state): State<AppState>,
    _caller: Caller,
    Path((project, env)): Path<(String, String)>,
    Json(req): Json<LbHosts>,
) -> AppResult<Json<LbChange>> {
    change(state, project, env, req, true).await
}

/// `POST .../lb/ready`: puts hosts back.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/environments/{env}/lb/ready",
    tag = "lb",
    params(("project" = String, Path), ("env" = String, Path)),
    request_body = LbHosts,
    responses((status = 200, body = LbChange)),
)]
pub async fn ready(
    State(state): State<AppState>,
    _caller: Caller,
    Path((project, env)): Path<(String, String)>,
    Json(req): Json<LbHosts>,
) -> AppResult<Json<LbChange>> {
    change(state, project, env, req, false).await
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GenerationQuery {
    generation: u64,
}

/// `GET .../lb/applied?generation=N`: whether the change numbered N is in
/// effect on every load-balancer host; what the orchestrator waits for too.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{project}/environments/{env}/lb/applied",
    tag = "lb",
    params(("project" = String, Path), ("env" = String, Path), GenerationQuery),
    responses((status = 200, body = LbProgressInfo)),
)]
pub async fn applied(
    State(state): State<AppState>,
    _caller: Caller,
    Path((project, env)): Path<(String, String)>,
    Query(q): Query<GenerationQuery>,
) -> AppResult<Json<LbProgressInfo>> {
    let env = environment(&state, &project, &env).await?;
    let p = lb::applied(&state, &env, q.generation).await?;
    Ok(Json(LbProgressInfo {
        generation: p.generation,
        done: p.done,
        lb_hosts: p.hosts.into_iter().map(lb::LbHostProgress::info).collect(),
        errors: p.errors,
    }))
}
