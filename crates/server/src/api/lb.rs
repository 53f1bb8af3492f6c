//! `/api/v1/projects/{project}/environments/{env}/lb`: the load balancer in
//! front of an environment (R14), and taking its hosts out and back in.
//!
//! Changing a load balancer or the hosts it sends requests to decides what
//! production traffic reaches, so these writes are for administrators.

use axum::Json;
use axum::extract::{Path, Query, State};
use ferry_proto::api::{LbChange, LbHosts, LbProgressInfo, LoadBalancerInfo, SetLoadBalancer};

use crate::AppState;
use crate::app::load_balancer;
use crate::auth::Caller;
use crate::error::AppResult;

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
    Ok(Json(load_balancer::set(&state, &caller, &project, &env, req).await?))
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
    Ok(Json(load_balancer::show(&state, &project, &env).await?))
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
    load_balancer::unset(&state, &project, &env).await?;
    Ok(Json(serde_json::json!({ "removed": true })))
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
    Ok(Json(load_balancer::change(&state, &project, &env, req, true).await?))
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
    Ok(Json(load_balancer::change(&state, &project, &env, req, false).await?))
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
    Ok(Json(load_balancer::applied(&state, &project, &env, q.generation).await?))
}
