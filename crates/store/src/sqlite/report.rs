//! What a host's report means for the rows: the host's actual state, the
//! release it ran, and the deployments that wait for it. One transaction
//! (`BEGIN IMMEDIATE`) per report; the meaning is
//! `ferry_domain::report::{actual, interpret}`'s. Another backend does the
//! same and nothing more: find the project by name (none: nothing to do),
//! upsert `host_actual` from `actual` (and record the release that ran),
//! read the host's pending and running rows of the project's running
//! deployments, and write each update `interpret` returns.

use ferry_domain::HostDeployState;
use ferry_domain::report::{self, OpenRow, ProjectReport};
use sqlx::{Row, SqlitePool};

use super::{history, parse};
use crate::Result;

/// Records one project's report from a host; returns the deployments whose
/// host rows changed.
pub(super) async fn apply(pool: &SqlitePool, host_id: i64, report: &ProjectReport, now: i64) -> Result<Vec<i64>> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let Some(project_id): Option<i64> = sqlx::query_scalar("SELECT id FROM projects WHERE name = ?")
        .bind(&report.project)
        .fetch_optional(&mut *tx)
        .await?
    else {
        return Ok(Vec::new());
    };
    let actual = report::actual(report);
    let current = report.current.as_ref();
    sqlx::query(
        "INSERT INTO host_actual (host_id, project_id, release_id, release_name, version, activity, error, \
         updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (host_id, project_id) DO UPDATE SET \
         release_id = excluded.release_id, release_name = excluded.release_name, version = excluded.version, \
         activity = excluded.activity, error = excluded.error, updated_at = excluded.updated_at",
    )
    .bind(host_id)
    .bind(project_id)
    .bind(current.map(|c| c.release_id))
    .bind(current.map(|c| c.release_name.as_str()))
    .bind(current.map(|c| c.version.as_str()))
    .bind(actual.activity)
    .bind(&actual.error)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if let Some(release) = actual.ran {
        history::record_ran(&mut tx, host_id, project_id, release, now).await?;
    }

    let open = sqlx::query(
        "SELECT d.id, dh.release_id, d.release_id, dh.state, dh.started_at, d.created_at \
         FROM deployment_hosts dh \
         JOIN deployments d ON d.id = dh.deployment_id \
         WHERE dh.host_id = ? AND d.project_id = ? AND d.status = 'running' AND dh.state IN ('pending', 'running')",
    )
    .bind(host_id)
    .bind(project_id)
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(|row| {
        Ok(OpenRow {
            deployment: row.try_get(0)?,
            release_id: row.try_get(1)?,
            deployment_release_id: row.try_get(2)?,
            state: parse::<HostDeployState>(&row.try_get::<String, _>(3)?)?,
            started_at: row.try_get(4)?,
            created_at: row.try_get(5)?,
        })
    })
    .collect::<Result<Vec<_>>>()?;
    let mut changed = Vec::new();
    for u in report::interpret(report, &open, now) {
        sqlx::query(
            "UPDATE deployment_hosts SET state = ?, error = ?, started_at = ?, finished_at = ?, \
             bytes_downloaded = COALESCE(?, bytes_downloaded), bytes_reused = COALESCE(?, bytes_reused) \
             WHERE deployment_id = ? AND host_id = ?",
        )
        .bind(u.state.as_str())
        .bind(u.error.as_ref().map(ferry_domain::status::Note::to_stored))
        .bind(u.started_at)
        .bind(u.finished_at)
        .bind(u.bytes_downloaded)
        .bind(u.bytes_reused)
        .bind(u.deployment)
        .bind(host_id)
        .execute(&mut *tx)
        .await?;
        changed.push(u.deployment);
    }
    tx.commit().await?;
    Ok(changed)
}
