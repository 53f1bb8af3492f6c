//! What ran on each host, in order: the facts a rollback per host is chosen
//! from (R9, R11).

use sqlx::{Row, SqliteConnection, SqlitePool};

use crate::Result;
use crate::model::HostPastRow;

/// Rows kept per host and project: far more than any rollback looks back.
const KEEP: i64 = 100;

/// Records that `release` runs successfully on the host, unless it is
/// already the newest record. Only a release of the project counts: the
/// agent's report is not trusted to name another project's release.
pub(super) async fn record_ran(
    conn: &mut SqliteConnection,
    host: i64,
    project: i64,
    release: i64,
    now: i64,
) -> Result<()> {
    let newest: Option<i64> = sqlx::query_scalar(
        "SELECT release_id FROM host_releases_ran WHERE host_id = ? AND project_id = ? ORDER BY seq DESC LIMIT 1",
    )
    .bind(host)
    .bind(project)
    .fetch_optional(&mut *conn)
    .await?;
    if newest == Some(release) {
        return Ok(());
    }
    let added = sqlx::query(
        "INSERT INTO host_releases_ran (host_id, project_id, release_id, ran_at) \
         SELECT ?, ?, id, ? FROM releases WHERE id = ? AND project_id = ?",
    )
    .bind(host)
    .bind(project)
    .bind(now)
    .bind(release)
    .bind(project)
    .execute(&mut *conn)
    .await?;
    if added.rows_affected() > 0 {
        sqlx::query(
            "DELETE FROM host_releases_ran WHERE host_id = ?1 AND project_id = ?2 AND seq <= \
             (SELECT seq FROM host_releases_ran WHERE host_id = ?1 AND project_id = ?2 \
              ORDER BY seq DESC LIMIT 1 OFFSET ?3)",
        )
        .bind(host)
        .bind(project)
        .bind(KEEP)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Per host: its desired release of the project and what ran, newest first.
pub(super) async fn hosts_past(pool: &SqlitePool, project: i64) -> Result<Vec<HostPastRow>> {
    let desired = sqlx::query("SELECT host_id, release_id FROM host_desired WHERE project_id = ?")
        .bind(project)
        .fetch_all(pool)
        .await?;
    let ran = sqlx::query(
        "SELECT host_id, release_id FROM host_releases_ran WHERE project_id = ? ORDER BY host_id, seq DESC",
    )
    .bind(project)
    .fetch_all(pool)
    .await?;
    let mut out: std::collections::BTreeMap<i64, HostPastRow> = std::collections::BTreeMap::new();
    let row = |host_id| HostPastRow { host_id, desired_release_id: None, ran: Vec::new() };
    for r in &desired {
        let host: i64 = r.try_get(0)?;
        out.entry(host).or_insert_with(|| row(host)).desired_release_id = Some(r.try_get(1)?);
    }
    for r in &ran {
        let host: i64 = r.try_get(0)?;
        out.entry(host).or_insert_with(|| row(host)).ran.push(r.try_get(1)?);
    }
    Ok(out.into_values().collect())
}
