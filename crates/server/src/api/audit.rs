//! `/api/v1/audit`: reading the audit trail (R27) and verifying it (the work
//! is `audit_chain.rs`'s: it holds the key). Entries are written by the layer
//! in crates/server `audit.rs`, never by a handler.

use axum::Json;
use axum::extract::{Path, Query, State};
use ferry_domain::audit::Checkpoint;
use ferry_domain::rfc3339_from_millis;
use ferry_proto::api::{AuditEntryInfo, AuditQuery, AuditVerification, AuditVerifyQuery};
use ferry_store::{AuditEntry, AuditFilter};

use crate::AppState;
use crate::app::{AppError, AppResult};
use crate::auth::Caller;

fn entry_info(e: &AuditEntry) -> AuditEntryInfo {
    let r = &e.record;
    AuditEntryInfo {
        seq: r.seq,
        at: rfc3339_from_millis(r.at),
        actor: r.actor.clone(),
        source: r.source.clone(),
        action: r.action.clone(),
        object: r.object.clone(),
        outcome: r.outcome.clone(),
        summary: r.summary.clone(),
        hash: e.hash.clone(),
    }
}

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
    let since = match q.since.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(t) => {
            let at = humantime::parse_rfc3339_weak(t)
                .map_err(|e| AppError::BadRequest(format!("since: '{t}' is not an RFC 3339 time: {e}")))?;
            let ms = at.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
            Some(i64::try_from(ms).unwrap_or(i64::MAX))
        }
    };
    let filter = AuditFilter {
        project: q.project.filter(|p| !p.is_empty()),
        actor: q.user.filter(|u| !u.is_empty()),
        since,
        limit: q.limit.unwrap_or(100).clamp(1, 10_000),
    };
    let rows = state.db.audit_log(&filter).await?;
    Ok(Json(rows.iter().map(entry_info).collect()))
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
    state: State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
    Query(mut q): Query<AuditQuery>,
) -> AppResult<Json<Vec<AuditEntryInfo>>> {
    // The project must exist: an owner's role was checked against it.
    let project = state.db.project(&project).await?;
    q.project = Some(project.name);
    list(state, caller, Query(q)).await
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
    let given = match q.checkpoint.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(c.parse::<Checkpoint>().map_err(|e| AppError::BadRequest(format!("checkpoint: {e}")))?),
    };
    let v = state.audit.verify(state.db.as_ref(), given).await.map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(Json(v))
}
