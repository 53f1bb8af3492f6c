//! Freezes, bad marks and the environment lock, checked again inside the
//! transaction that creates a deployment.
//!
//! The decision is `ferry_domain::guards::check`'s. Another backend does the
//! same and nothing more, inside the creating transaction: read the
//! environment's freeze in force, the release (for its bad mark) and the
//! environment's running deployment, call `check`, turn a refusal into its
//! `StoreError`, and record the overrides on the new deployment's row.

use ferry_domain::guards::{self, Flags, Overrides, Refusal};

use super::{FREEZE_IN_FORCE, FREEZE_SELECT, RELEASE_COLS, freeze_row, release_row};
use crate::model::NewDeployment;
use crate::{Result, StoreError};

/// Inside the transaction that creates a deployment: refuses it when its
/// environment is frozen or its release is marked bad, unless the deployment
/// says to go ahead anyway, and when `running` (the environment's running
/// deployment) holds the lock, unless it is an emergency. Checked here, not
/// only by the server beforehand, so that a freeze or a mark made a moment
/// earlier is never missed.
pub(super) async fn check_guards(
    conn: &mut sqlx::SqliteConnection,
    new: &NewDeployment,
    running: Option<i64>,
    now: i64,
) -> Result<Overrides> {
    let freeze = sqlx::query(sqlx::AssertSqlSafe(format!("{FREEZE_SELECT} WHERE f.env_id = ? AND {FREEZE_IN_FORCE}")))
        .bind(new.env_id)
        .bind(now)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| freeze_row(&r))
        .transpose()?;
    let release = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {RELEASE_COLS} FROM releases WHERE id = ?")))
        .bind(new.release_id)
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| release_row(&r))
        .transpose()?;
    let mark = release.as_ref().and_then(|r| r.bad.as_ref());
    let flags = Flags { ignore_freeze: new.ignore_freeze, forced: new.forced, emergency: new.emergency };
    match guards::check(freeze.as_ref().map(|f| &f.freeze), mark, running, flags, now) {
        Ok(overrides) => Ok(overrides),
        Err(Refusal::Frozen(_)) => match freeze {
            Some(row) => Err(StoreError::Frozen { project: row.project, env: row.env, freeze: row.freeze }),
            None => Err(StoreError::Backend("a freeze refused without a freeze".into())),
        },
        Err(Refusal::MarkedBad(mark)) => {
            let mark = mark.clone();
            let Some(release) = release else {
                return Err(StoreError::Backend("a bad mark refused without a release".into()));
            };
            let project: String = sqlx::query_scalar("SELECT name FROM projects WHERE id = ?")
                .bind(release.project_id)
                .fetch_one(&mut *conn)
                .await?;
            Err(StoreError::MarkedBad { project, version: release.version, mark })
        }
        Err(Refusal::Locked { running }) => Err(StoreError::Locked { running }),
    }
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
