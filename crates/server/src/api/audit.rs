//! `/api/v1/audit`: reading the audit trail (R27) and recomputing its hash
//! chain. Entries are written by the layer in crates/server `audit.rs`,
//! never by a handler.

use axum::Json;
use axum::extract::{Query, State};
use ferry_domain::audit::ChainVerifier;
use ferry_domain::rfc3339_from_millis;
use ferry_proto::api::{AuditBreak, AuditEntryInfo, AuditQuery, AuditVerification};
use ferry_store::{AuditEntry, AuditFilter};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

/// Entries read per page while verifying.
const VERIFY_PAGE: u32 = 1000;

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
pub async fn list(
    State(state): State<AppState>,
    Caller(_caller): Caller,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Vec<AuditEntryInfo>>> {
    let since = match q.since.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(t) => {
            let at = humantime::parse_rfc3339_weak(t)
                .map_err(|e| ApiError::BadRequest(format!("since: '{t}' is not an RFC 3339 time: {e}")))?;
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

/// `GET /api/v1/audit/verify`: recomputes the chain from the first entry and
/// names the first entry that does not match.
pub async fn verify(State(state): State<AppState>, Caller(_caller): Caller) -> ApiResult<Json<AuditVerification>> {
    let mut verifier = ChainVerifier::new();
    let mut after = 0;
    let mut broken = None;
    'pages: loop {
        let page = state.db.audit_chain(after, VERIFY_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.record.seq;
        for e in &page {
            if let Err(b) = verifier.push(&e.record, &e.prev_hash, &e.hash) {
                broken = Some(AuditBreak { seq: b.seq(), kind: b.kind().into(), message: b.to_string() });
                break 'pages;
            }
        }
    }
    let head = verifier.head();
    Ok(Json(AuditVerification {
        ok: broken.is_none(),
        verified: verifier.count(),
        head_seq: head.map(|(s, _)| s),
        head_hash: head.map(|(_, h)| h.to_string()),
        broken,
    }))
}
