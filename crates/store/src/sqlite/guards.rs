//! Freezes and bad marks, checked again inside the transaction that creates
//! a deployment.

use super::{FREEZE_IN_FORCE, FREEZE_SELECT, RELEASE_COLS, freeze_row, release_row};
use crate::model::NewDeployment;
use crate::{Result, StoreError};

/// What a new deployment overrides, found by [`check_guards`] and recorded on
/// its row by [`record_guards`].
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Overrides {
    pub(super) forced: bool,
    pub(super) freeze_ignored: bool,
}

/// Inside the transaction that creates a deployment: refuses it when its
/// environment is frozen or its release is marked bad, unless the deployment
/// says to go ahead anyway. Checked here, not only by the server beforehand,
/// so that a freeze or a mark made a moment earlier is never missed.
pub(super) async fn check_guards(
    conn: &mut sqlx::SqliteConnection,
    new: &NewDeployment,
    now: i64,
) -> Result<Overrides> {
    let mut overrides = Overrides::default();
    let freeze = sqlx::query(sqlx::AssertSqlSafe(format!("{FREEZE_SELECT} WHERE f.env_id = ? AND {FREEZE_IN_FORCE}")))
        .bind(new.env_id)
        .bind(now)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(row) = freeze {
        let row = freeze_row(&row)?;
        if !new.ignore_freeze {
            return Err(StoreError::Frozen { project: row.project, env: row.env, freeze: row.freeze });
        }
        overrides.freeze_ignored = true;
    }
    let release = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {RELEASE_COLS} FROM releases WHERE id = ?")))
        .bind(new.release_id)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(release) = release.map(|r| release_row(&r)).transpose()?
        && let Some(mark) = release.bad
    {
        if !new.forced {
            let project: String = sqlx::query_scalar("SELECT name FROM projects WHERE id = ?")
                .bind(release.project_id)
                .fetch_one(&mut *conn)
                .await?;
            return Err(StoreError::MarkedBad { project, version: release.version, mark });
        }
        overrides.forced = true;
    }
    Ok(overrides)
}

/// Records on a new deployment's row what it went ahead despite.
pub(super) async fn record_guards(
    conn: &mut sqlx::SqliteConnection,
    deployment_id: i64,
    overrides: Overrides,
) -> Result<()> {
    if overrides.forced || overrides.freeze_ignored {
        sqlx::query("UPDATE deployments SET forced = ?, freeze_ignored = ? WHERE id = ?")
            .bind(overrides.forced)
            .bind(overrides.freeze_ignored)
            .bind(deployment_id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
