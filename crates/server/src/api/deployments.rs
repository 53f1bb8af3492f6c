//! Deployments and rollbacks (R4, R9-R11, R19).

use axum::Json;
use axum::extract::{Path, Query, State};
use ferry_domain::validate_version;
use ferry_proto::api::{CreateDeployment, DeploymentInfo};

use super::ListQuery;
use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::fleet;

pub async fn create(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(project): Path<String>,
    Json(req): Json<CreateDeployment>,
) -> ApiResult<Json<DeploymentInfo>> {
    if let Some(v) = &req.version {
        validate_version(v)?;
    }
    Ok(Json(fleet::create_deployment(&state, &user, &project, req).await?))
}

pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
    Path(project): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<DeploymentInfo>>> {
    let project = state.db.project(&project).await?;
    let rows = state.db.deployments(&project, q.limit()).await?;
    Ok(Json(rows.into_iter().map(fleet::deployment_summary).collect()))
}

pub async fn show(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Json<DeploymentInfo>> {
    Ok(Json(fleet::deployment_info(&state, id).await?))
}
