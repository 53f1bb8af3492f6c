//! Reading the audit trail (R27): its entries, filtered, for the
//! administrators (everything) and a project's owners (their project's).
//! Entries are written by the layer in `crate::audit`, never here.

use ferry_domain::audit::Checkpoint;
use ferry_domain::rfc3339_from_millis;
use ferry_proto::api::{AuditEntryInfo, AuditQuery, AuditVerification};
use ferry_store::{AuditEntry, AuditFilter};

use crate::AppState;
use crate::error::{AppError, AppResult};

/// Entries matching the query, newest first.
pub(crate) async fn entries(state: &AppState, q: AuditQuery) -> AppResult<Vec<AuditEntryInfo>> {
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
    Ok(rows.iter().map(entry_info).collect())
}

/// The entries of one project (which must exist: an owner's role was
/// checked against it); the rest of the query as for [`entries`].
pub(crate) async fn project_entries(
    state: &AppState,
    project: &str,
    mut q: AuditQuery,
) -> AppResult<Vec<AuditEntryInfo>> {
    let project = state.db.project(project).await?;
    q.project = Some(project.name);
    entries(state, q).await
}

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

/// Recomputes the audit chain from the first entry, checks it reaches the
/// server's checkpoint (and the one given), and names the first thing that
/// does not match.
pub(crate) async fn verify(state: &AppState, checkpoint: Option<&str>) -> AppResult<AuditVerification> {
    let given = match checkpoint.map(str::trim).filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(c.parse::<Checkpoint>().map_err(|e| AppError::BadRequest(format!("checkpoint: {e}")))?),
    };
    let v = state.audit.verify(state.db.as_ref(), given).await.map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(v)
}
