//! What a host's report means for the rows: the host's actual state, the
//! release it ran, and the deployments that wait for it. One transaction per
//! report.

use ferry_domain::HostDeployState;
use ferry_domain::report::{Activity, ProjectReport};
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
    let (activity, error) = match &report.activity {
        // A note (e.g. a manual rollback on the host) shows where errors do.
        Activity::Idle => ("idle", report.note.as_deref()),
        Activity::Installing { .. } => ("installing", report.note.as_deref()),
        Activity::Failed { error, .. } => ("failed", Some(error.as_str())),
    };
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
    .bind(activity)
    .bind(error)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if let (Activity::Idle, Some(c)) = (&report.activity, current) {
        history::record_ran(&mut tx, host_id, project_id, c.release_id, now).await?;
    }

    let open = sqlx::query(
        "SELECT d.id, COALESCE(dh.release_id, d.release_id), dh.state, COALESCE(dh.started_at, d.created_at) \
         FROM deployment_hosts dh \
         JOIN deployments d ON d.id = dh.deployment_id \
         WHERE dh.host_id = ? AND d.project_id = ? AND d.status = 'running' AND dh.state IN ('pending', 'running')",
    )
    .bind(host_id)
    .bind(project_id)
    .fetch_all(&mut *tx)
    .await?;
    let mut changed = Vec::new();
    for row in open {
        let deployment_id: i64 = row.try_get(0)?;
        let release_id: i64 = row.try_get(1)?;
        let state: HostDeployState = parse(&row.try_get::<String, _>(2)?)?;
        let started_at: i64 = row.try_get(3)?;
        // Made before the agent saw this host's batch start (e.g. the same
        // release deployed again while the agent was busy): it says
        // nothing of this deployment.
        if report.desired_since != 0 && report.desired_since < started_at {
            continue;
        }
        // A host can fail *on* the release (a health check with
        // `rollback = false`), and be busy activating the release that
        // `current` already names (a redeploy): the activity decides first.
        let (next, error) = match &report.activity {
            Activity::Failed { release_id: r, error } if *r == release_id => {
                (HostDeployState::Failed, Some(error.clone()))
            }
            Activity::Installing { release_id: r } if *r == release_id => (HostDeployState::Running, None),
            _ if current.is_some_and(|c| c.release_id == release_id) => (HostDeployState::Succeeded, None),
            _ => continue,
        };
        if !state.can_move_to(next) {
            continue;
        }
        let transfer = report.transfer.filter(|t| t.release_id == release_id);
        sqlx::query(
            "UPDATE deployment_hosts SET state = ?, error = ?, started_at = COALESCE(started_at, ?), \
             finished_at = CASE WHEN ? THEN ? ELSE NULL END, \
             bytes_downloaded = COALESCE(?, bytes_downloaded), bytes_reused = COALESCE(?, bytes_reused) \
             WHERE deployment_id = ? AND host_id = ?",
        )
        .bind(next.as_str())
        .bind(error)
        .bind(now)
        .bind(next.is_terminal())
        .bind(now)
        .bind(transfer.map(|t| i64::try_from(t.bytes_downloaded).unwrap_or(i64::MAX)))
        .bind(transfer.map(|t| i64::try_from(t.bytes_reused).unwrap_or(i64::MAX)))
        .bind(deployment_id)
        .bind(host_id)
        .execute(&mut *tx)
        .await?;
        changed.push(deployment_id);
    }
    tx.commit().await?;
    Ok(changed)
}
