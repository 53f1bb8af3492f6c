//! `/api/v1/audit`: reading the audit trail (R27) and verifying it (the work
//! is `audit_chain.rs`'s: it holds the key). Entries are written by the layer
//! in crates/server `audit.rs`, never by a handler.

use axum::Json;
use axum::extract::{Path, Query, State};
use ferry_proto::api::{AuditEntryInfo, AuditQuery, AuditVerification, AuditVerifyQuery};

use crate::AppState;
use crate::app::audit;
use crate::auth::Caller;
use crate::error::AppResult;

/// `GET`: entries, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "audit",
    params(AuditQuery),
    responses((status = 200, body = Vec<AuditEntryInfo>)),
)]
pub async fn list(
    State(state): State<AppState>,
    Caller(_caller): Caller,
    Query(q): Query<AuditQuery>,
) -> AppResult<Json<Vec<AuditEntryInfo>>> {
    Ok(Json(audit::entries(&state, q).await?))
}

/// `GET /api/v1/projects/{project}/audit`: the entries of one project, for
/// its owners (the route's rule); the rest of the query as for [`list`].
#[utoipa::path(
    get,
    path = "/api/v1/projects/{project}/audit",
    tag = "audit",
    params(("project" = String, Path), AuditQuery),
    responses((status = 200, body = Vec<AuditEntryInfo>)),
)]
pub async fn list_project(
    State(state): State<AppState>,
    _caller: Caller,
    Path(project): Path<String>,
    Query(q): Query<AuditQuery>,
) -> AppResult<Json<Vec<AuditEntryInfo>>> {
    Ok(Json(audit::project_entries(&state, &project, q).await?))
}

/// `GET /api/v1/audit/verify[?checkpoint=SEQ:HASH]`: recomputes the chain
/// from the first entry, checks it reaches the server's checkpoint (and the
/// one given), and names the first thing that does not match.
#[utoipa::path(
    get,
    path = "/api/v1/audit/verify",
    tag = "audit",
    params(AuditVerifyQuery),
    responses((status = 200, body = AuditVerification)),
)]
pub async fn verify(
    State(state): State<AppState>,
    Caller(_caller): Caller,
    Query(q): Query<AuditVerifyQuery>,
) -> AppResult<Json<AuditVerification>> {
    Ok(Json(audit::verify(&state, q.checkpoint.as_deref()).await?))
}
