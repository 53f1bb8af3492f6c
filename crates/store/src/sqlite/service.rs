//! How a project's service fares on a host after its deploy (R21). One
//! statement per function, in the caller's transaction.

use sqlx::{Row, SqliteConnection, SqlitePool};

use crate::Result;
use crate::model::{ServiceChange, ServiceState};

/// Records what the host says of its service, only for a project desired on
/// it (a host speaks for nothing else), and answers the change when the
/// service started failing or recovered.
pub(super) async fn record(
    pool: &SqlitePool,
    host_id: i64,
    project: &str,
    state: &ServiceState,
    now: i64,
) -> Result<Option<ServiceChange>> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let row = sqlx::query(
        "SELECT ha.service_failing FROM host_actual ha JOIN projects p ON p.id = ha.project_id \
         JOIN host_desired hd ON hd.host_id = ha.host_id AND hd.project_id = ha.project_id \
         WHERE ha.host_id = ? AND p.name = ?",
    )
    .bind(host_id)
    .bind(project)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let was: Option<i64> = row.try_get(0)?;
    let was_failing = was == Some(1);
    let change = match (was_failing, state.failing) {
        (false, true) => Some(ServiceChange::Failing),
        (true, false) => Some(ServiceChange::Recovered),
        _ => None,
    };
    let stderr = serde_json::to_string(&state.stderr).map_err(|e| crate::StoreError::Backend(e.to_string()))?;
    update(&mut tx, host_id, project, state, &stderr, change.is_some() || was.is_none(), now).await?;
    tx.commit().await?;
    Ok(change)
}

async fn update(
    conn: &mut SqliteConnection,
    host_id: i64,
    project: &str,
    state: &ServiceState,
    stderr: &str,
    changed: bool,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE host_actual SET service_failing = ?, service_reason = ?, service_stderr = ?, \
         service_since = CASE WHEN ? THEN ? ELSE service_since END \
         WHERE host_id = ? AND project_id = (SELECT id FROM projects WHERE name = ?)",
    )
    .bind(state.failing)
    .bind(&state.reason)
    .bind(stderr)
    .bind(changed)
    .bind(now)
    .bind(host_id)
    .bind(project)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
