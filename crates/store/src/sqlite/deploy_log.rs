//! Per-host deployment logs: what agents send while a deployment waits for
//! them, kept within each host's line budget.

use ferry_domain::log::{self, LogBudget};
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
    let mut budget = LogBudget {
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
    let mut seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM deployment_logs WHERE deployment_id = ?")
        .bind(deployment_id)
        .fetch_one(&mut *tx)
        .await?;

    let mut dropped = 0u64;
    for l in lines {
        if !budget.admit(&l.stream) {
            dropped += 1;
            continue;
        }
        // The agent bounds lines too; the server does not rely on it.
        let stream: String = l.stream.chars().take(32).collect();
        let mut text = l.text.clone();
        log::cut_line(&mut text);
        seq += 1;
        sqlx::query(
            "INSERT INTO deployment_logs (deployment_id, seq, host_id, at, stream, line) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(deployment_id)
        .bind(seq)
        .bind(host_id)
        .bind(if l.at_ms > 0 { l.at_ms } else { now })
        .bind(stream)
        .bind(text)
        .execute(&mut *tx)
        .await?;
    }
    if dropped > 0 {
        match marker {
            Some(row) => {
                let marker_seq: i64 = row.try_get(0)?;
                let total = u64::try_from(row.try_get::<i64, _>(1)?).unwrap_or(0).saturating_add(dropped);
                sqlx::query("UPDATE deployment_logs SET dropped = ?, line = ? WHERE deployment_id = ? AND seq = ?")
                    .bind(i64::try_from(total).unwrap_or(i64::MAX))
                    .bind(log::dropped_marker(total))
                    .bind(deployment_id)
                    .bind(marker_seq)
                    .execute(&mut *tx)
                    .await?;
            }
            None => {
                seq += 1;
                sqlx::query(
                    "INSERT INTO deployment_logs (deployment_id, seq, host_id, at, stream, line, dropped) \
                     VALUES (?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(deployment_id)
                .bind(seq)
                .bind(host_id)
                .bind(now)
                .bind(log::FERRY)
                .bind(log::dropped_marker(dropped))
                .bind(i64::try_from(dropped).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await?;
            }
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
