//! Projects, environments and the version-per-host view (R12).

use axum::Json;
use axum::extract::{Path, State};
use ferry_proto::api::{
    CreateEnvironment, CreateProject, EnvironmentInfo, ProjectInfo, ProjectStatus, SetProduction, SetProtection,
    UpdateEnvironment, UpdateProject,
};

use crate::AppState;
use crate::app::{environment, project, status};
use crate::auth::Caller;
use crate::error::AppResult;

#[utoipa::path(
    post,
    path = "/api/v1/projects",
    tag = "projects",
    request_body = CreateProject,
    responses((status = 200, body = ProjectInfo)),
)]
pub async fn create(
    State(state): State<AppState>,
    _caller: Caller,
    Json(req): Json<CreateProject>,
) -> AppResult<Json<ProjectInfo>> {
    Ok(Json(project::create(&state, req).await?))
}

/// `POST /api/v1/projects/{project}`: changes how many releases hosts keep
/// and how the project builds (branches, tags, webhook secret). A new
/// repository is the administrator's to set, as at creation: a repository
/// URL can reach the server's own files. The host scope has its own
/// (administrators') route.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}",
    tag = "projects",
    params(("project" = String, Path)),
    request_body = UpdateProject,
    responses((status = 200, body = ProjectInfo)),
)]
pub async fn update(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(project): Path<String>,
    Json(req): Json<UpdateProject>,
) -> AppResult<Json<ProjectInfo>> {
    Ok(Json(project::update(&state, &caller, &project, req).await?))
}

/// `DELETE /api/v1/projects/{project}` (administrators): the project and its
/// environments are deleted, their history kept (deployments, builds,
/// releases and the audit trail stay readable, `ferry deployments P`
/// included); hosts stop being given its releases and keep what they run.
/// The name stays taken.
#[utoipa::path(
    delete,
    path = "/api/v1/projects/{project}",
    tag = "projects",
    params(("project" = String, Path)),
    responses((status = 200, body = ProjectInfo)),
)]
pub async fn delete(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(project): Path<String>,
) -> AppResult<Json<ProjectInfo>> {
    Ok(Json(project::delete(&state, &caller, &project).await?))
}

/// `DELETE /api/v1/projects/{project}/environments/{env}`: owners, and for a
/// production environment the production right (the route's rule). Refused
/// while a deployment runs there; its deployments stay readable; its hosts
/// stop being given its release and keep what they run. The name stays
/// taken.
#[utoipa::path(
    delete,
    path = "/api/v1/projects/{project}/environments/{env}",
    tag = "projects",
    params(("project" = String, Path), ("env" = String, Path)),
    responses((status = 200, body = Object)),
)]
pub async fn delete_env(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((project, env)): Path<(String, String)>,
) -> AppResult<Json<serde_json::Value>> {
    Ok(Json(serde_json::json!({ "deleted": environment::delete(&state, &caller, &project, &env).await? })))
}

/// `GET /api/v1/projects`: the projects the caller may read (every one for
/// the administrator, their memberships for everyone else).
#[utoipa::path(
    get,
    path = "/api/v1/projects",
    tag = "projects",
    responses((status = 200, body = Vec<ProjectInfo>)),
)]
pub async fn list(State(state): State<AppState>, Caller(caller): Caller) -> AppResult<Json<Vec<ProjectInfo>>> {
    Ok(Json(project::list(&state, &caller).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/projects/{project}",
    tag = "projects",
    params(("project" = String, Path)),
    responses((status = 200, body = ProjectInfo)),
)]
pub async fn show(
    State(state): State<AppState>,
    _caller: Caller,
    Path(project): Path<String>,
) -> AppResult<Json<ProjectInfo>> {
    Ok(Json(project::show(&state, &project).await?))
}

/// `PUT /api/v1/projects/{project}/host-scope`: which hosts the project's
/// environments may select (administrators). Every existing environment must
/// already select within the new scope.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/host-scope",
    tag = "projects",
    params(("project" = String, Path)),
    request_body = ferry_proto::api::SetHostScope,
    responses((status = 200, body = ProjectInfo)),
)]
pub async fn set_host_scope(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(project): Path<String>,
    Json(req): Json<ferry_proto::api::SetHostScope>,
) -> AppResult<Json<ProjectInfo>> {
    Ok(Json(project::set_host_scope(&state, &caller, &project, req).await?))
}

#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/environments",
    tag = "projects",
    params(("project" = String, Path)),
    request_body = CreateEnvironment,
    responses((status = 200, body = EnvironmentInfo)),
)]
pub async fn create_env(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(project): Path<String>,
    Json(req): Json<CreateEnvironment>,
) -> AppResult<Json<EnvironmentInfo>> {
    Ok(Json(environment::create(&state, &caller, &project, req).await?))
}

/// `POST /api/v1/projects/{project}/environments/{env}`: changes which hosts
/// the environment selects (inside the project's host scope, overlapping no
/// other environment of the project) and what an offline target means.
/// Hosts it now selects move to it: they take its desired release (see
/// `fleet::adopt`). The hosts of a production environment are changed only
/// with the production right.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/environments/{env}",
    tag = "projects",
    params(("project" = String, Path), ("env" = String, Path)),
    request_body = UpdateEnvironment,
    responses((status = 200, body = EnvironmentInfo)),
)]
pub async fn update_env(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((project, env)): Path<(String, String)>,
    Json(req): Json<UpdateEnvironment>,
) -> AppResult<Json<EnvironmentInfo>> {
    Ok(Json(environment::update(&state, &caller, &project, &env, req).await?))
}

/// `POST /api/v1/projects/{project}/environments/{env}/rollout`: changes the
/// environment's default rollout; options not given keep their value.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/environments/{env}/rollout",
    tag = "projects",
    params(("project" = String, Path), ("env" = String, Path)),
    request_body(content = Object, description = "The rollout options (`ferry_domain::rollout::RolloutOptions`)"),
    responses((status = 200, body = EnvironmentInfo)),
)]
pub async fn set_env_rollout(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((project, env)): Path<(String, String)>,
    Json(options): Json<ferry_domain::rollout::RolloutOptions>,
) -> AppResult<Json<EnvironmentInfo>> {
    Ok(Json(environment::set_rollout(&state, &caller, &project, &env, options).await?))
}

/// `POST /api/v1/projects/{project}/environments/{env}/production`: makes
/// the environment production (deployments to it need the production right)
/// or not.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/environments/{env}/production",
    tag = "projects",
    params(("project" = String, Path), ("env" = String, Path)),
    request_body = SetProduction,
    responses((status = 200, body = EnvironmentInfo)),
)]
pub async fn set_env_production(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((project, env)): Path<(String, String)>,
    Json(req): Json<SetProduction>,
) -> AppResult<Json<EnvironmentInfo>> {
    Ok(Json(environment::set_production(&state, &caller, &project, &env, req).await?))
}

/// `POST /api/v1/projects/{project}/environments/{env}/protection`: whether
/// deployments need an approved request, where requests are tested first
/// (R24), which environment it comes after and whether a requester may pass
/// her own request (R23). What is not given keeps its value.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/environments/{env}/protection",
    tag = "projects",
    params(("project" = String, Path), ("env" = String, Path)),
    request_body = SetProtection,
    responses((status = 200, body = EnvironmentInfo)),
)]
pub async fn set_env_protection(
    State(state): State<AppState>,
    Path((project, env)): Path<(String, String)>,
    Json(req): Json<SetProtection>,
) -> AppResult<Json<EnvironmentInfo>> {
    Ok(Json(environment::set_protection(&state, &project, &env, req).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/projects/{project}/environments",
    tag = "projects",
    params(("project" = String, Path)),
    responses((status = 200, body = Vec<EnvironmentInfo>)),
)]
pub async fn list_envs(
    State(state): State<AppState>,
    _caller: Caller,
    Path(project): Path<String>,
) -> AppResult<Json<Vec<EnvironmentInfo>>> {
    Ok(Json(environment::list(&state, &project).await?))
}

/// Environment x host -> version, with counts per version (R12).
#[utoipa::path(
    get,
    path = "/api/v1/projects/{project}/status",
    tag = "projects",
    params(("project" = String, Path)),
    responses((status = 200, body = ProjectStatus)),
)]
pub async fn status(
    State(state): State<AppState>,
    _caller: Caller,
    Path(project): Path<String>,
) -> AppResult<Json<ProjectStatus>> {
    Ok(Json(status::project(&state, &project).await?))
}
