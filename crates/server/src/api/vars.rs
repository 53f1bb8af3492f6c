//! `/api/v1/projects/{project}/vars`: configuration kept out of the
//! repository (R17), per project, environment, host, or host within one
//! environment; the most specific wins (crates/domain `vars.rs`).
//!
//! Secret values are write-only (see `app::vars`): no answer of this module
//! contains one; lists show `***`.

use axum::Json;
use axum::extract::{Path, Query, State};
use ferry_proto::api::{SetVar, VarInfo, VarQuery};

use crate::AppState;
use crate::app::vars;
use crate::auth::Caller;
use crate::error::AppResult;

/// `POST`: sets one variable.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/vars",
    tag = "vars",
    params(("project" = String, Path)),
    request_body = SetVar,
    responses((status = 200, body = VarInfo)),
)]
pub async fn set(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(project): Path<String>,
    Json(req): Json<SetVar>,
) -> AppResult<Json<VarInfo>> {
    Ok(Json(vars::set(&state, &caller, &project, req).await?))
}

/// `GET`: every variable of the project; or, given `env` and/or `host`, the
/// variables such a host sees, each from the scope that wins.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{project}/vars",
    tag = "vars",
    params(("project" = String, Path), VarQuery),
    responses((status = 200, body = Vec<VarInfo>)),
)]
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
    Path(project): Path<String>,
    Query(q): Query<VarQuery>,
) -> AppResult<Json<Vec<VarInfo>>> {
    Ok(Json(vars::list(&state, &project, q).await?))
}

/// `DELETE /api/v1/projects/{project}/vars/{key}`: removes the variable of
/// exactly this scope; answers with what was removed.
#[utoipa::path(
    delete,
    path = "/api/v1/projects/{project}/vars/{key}",
    tag = "vars",
    params(("project" = String, Path), ("key" = String, Path), VarQuery),
    responses((status = 200, body = VarInfo)),
)]
pub async fn unset(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((project, key)): Path<(String, String)>,
    Query(q): Query<VarQuery>,
) -> AppResult<Json<VarInfo>> {
    Ok(Json(vars::unset(&state, &caller, &project, &key, q).await?))
}
