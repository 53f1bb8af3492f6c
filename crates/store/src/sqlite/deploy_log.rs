//! Per-host deployment logs: what agents send while a deployment waits for
//! them, kept within each host's line budget.
//!
//! What is kept is `ferry_domain::log::admit`'s decision. Another backend
//! does the same and nothing more, in one transaction (`BEGIN IMMEDIATE`):
//! find the deployment that waits for this release on the host (none: drop
//! the lines), read the host's budget used (its output and Ferry lines,
//! marker excluded), its marker and the log's last sequence number, call
//! `admit`, insert the kept lines and write the marker. The read before the
//! transaction only spares the write lock for lines nobody waits for.

use ferry_domain::log::{self, LogBudget, Marker, MarkerWrite};
use ferry_domain::report::LogLine as AgentLogLine;
use sqlx::{Row, SqlitePool};

use crate::Result;
use crate::model::DeploymentLogLine;

/// Appends a host's lines to the deployment that waits for this release on
/// it, if one does; returns that deployment.
pub(super) async fn append(
    pool: &SqlitePool,
    host_id: i64,
    project: &str,
    release_id: i64,
    lines: &[AgentLogLine],
    now: i64,
) -> Result<Option<i64>> {
    if lines.is_empty() {
        return Ok(None);
    }
    const TAKING: &str = "SELECT d.id FROM deployment_hosts dh JOIN deployments d ON d.id = dh.deployment_id \
         JOIN projects p ON p.id = d.project_id WHERE dh.host_id = ? AND p.name = ? \
         AND COALESCE(dh.release_id, d.release_id) = ? \
         AND d.status = 'running' AND dh.state IN ('pending', 'running') ORDER BY d.id DESC LIMIT 1";
    // Lines no deployment waits for (a new host adopting its environment's
    // release, a retry after a failure) cost a read, not the write lock.
    let waiting: Option<i64> =
        sqlx::query_scalar(TAKING).bind(host_id).bind(project).bind(release_id).fetch_optional(pool).await?;
    if waiting.is_none() {
        return Ok(None);
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    // Again under the lock: the host's row may have ended meanwhile.
    let deployment_id: Option<i64> =
        sqlx::query_scalar(TAKING).bind(host_id).bind(project).bind(release_id).fetch_optional(&mut *tx).await?;
    let Some(deployment_id) = deployment_id else { return Ok(None) };

    // What this host has used of its budget, and its marker if it has one.
    let used = sqlx::query(
        "SELECT COALESCE(SUM(stream != 'ferry'), 0), COALESCE(SUM(stream = 'ferry'), 0) FROM deployment_logs \
         WHERE deployment_id = ? AND host_id = ? AND dropped IS NULL",
    )
    .bind(deployment_id)
    .bind(host_id)
    .fetch_one(&mut *tx)
    .await?;
    let budget = LogBudget {
        output: used.try_get::<i64, _>(0)?.try_into().unwrap_or(0),
        ferry: used.try_get::<i64, _>(1)?.try_into().unwrap_or(0),
    };
    let marker = sqlx::query(
        "SELECT seq, dropped FROM deployment_logs WHERE deployment_id = ? AND host_id = ? AND dropped IS NOT NULL",
    )
    .bind(deployment_id)
    .bind(host_id)
    .fetch_optional(&mut *tx)
    .await?;
    let marker = marker
        .map(|row| -> Result<Marker> {
            Ok(Marker { seq: row.try_get(0)?, dropped: u64::try_from(row.try_get::<i64, _>(1)?).unwrap_or(0) })
        })
        .transpose()?;
    let last_seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM deployment_logs WHERE deployment_id = ?")
        .bind(deployment_id)
        .fetch_one(&mut *tx)
        .await?;

    let writes = log::admit(budget, marker, last_seq, lines, now);
    for l in &writes.lines {
        sqlx::query(
            "INSERT INTO deployment_logs (deployment_id, seq, host_id, at, stream, line) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(deployment_id)
        .bind(l.seq)
        .bind(host_id)
        .bind(l.at)
        .bind(&l.stream)
        .bind(&l.text)
        .execute(&mut *tx)
        .await?;
    }
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    match writes.marker {
        None => {}
        Some(MarkerWrite::Update { seq, dropped, line }) => {
            sqlx::query("UPDATE deployment_logs SET dropped = ?, line = ? WHERE deployment_id = ? AND seq = ?")
                .bind(count(dropped))
                .bind(line)
                .bind(deployment_id)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
        }
        Some(MarkerWrite::Insert { seq, at, dropped, line }) => {
            sqlx::query(
                "INSERT INTO deployment_logs (deployment_id, seq, host_id, at, stream, line, dropped) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(deployment_id)
            .bind(seq)
            .bind(host_id)
            .bind(at)
            .bind(log::FERRY)
            .bind(line)
            .bind(count(dropped))
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(Some(deployment_id))
}

/// A deployment's log after sequence number `after`, of one host or all.
pub(super) async fn read(
    pool: &SqlitePool,
    deployment_id: i64,
    host: Option<&str>,
    after: i64,
    limit: u32,
) -> Result<Vec<DeploymentLogLine>> {
    let rows = sqlx::query(
        "SELECT l.seq, h.name, l.at, l.stream, l.line FROM deployment_logs l JOIN hosts h ON h.id = l.host_id \
         WHERE l.deployment_id = ?1 AND l.seq > ?2 \
         AND (?3 IS NULL OR l.host_id = (SELECT id FROM hosts WHERE name = ?3)) ORDER BY l.seq LIMIT ?4",
    )
    .bind(deployment_id)
    .bind(after)
    .bind(host)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(DeploymentLogLine {
                seq: r.try_get(0)?,
                host: r.try_get(1)?,
                at: r.try_get(2)?,
                stream: r.try_get(3)?,
                line: r.try_get(4)?,
            })
        })
        .collect()
}
