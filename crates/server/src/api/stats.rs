//! Deployment statistics (R29): the store's rows, `ferry_domain::stats`'s
//! arithmetic.

use axum::Json;
use axum::extract::{Path, Query, State};
use ferry_proto::api::ProjectStats;

use crate::AppState;
use crate::app::stats;
use crate::auth::Caller;
use crate::error::AppResult;

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Only this environment.
    env: Option<String>,
    /// Deployments created at or after this time (milliseconds since the
    /// epoch); 30 days ago by default.
    since_ms: Option<i64>,
}

/// `GET /api/v1/projects/{project}/stats[?env=E][&since_ms=T]`.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{project}/stats",
    tag = "stats",
    params(("project" = String, Path), StatsQuery),
    responses((status = 200, body = ProjectStats)),
)]
pub async fn show(
    State(state): State<AppState>,
    _caller: Caller,
    Path(project): Path<String>,
    Query(q): Query<StatsQuery>,
) -> AppResult<Json<ProjectStats>> {
    Ok(Json(stats::project(&state, &project, q.env.as_deref(), q.since_ms).await?))
}
