//! Environments in order (R23): which environment comes after which, and
//! the facts the promotion gate decides from. Each function is one
//! statement.

use sqlx::{Row, SqlitePool};

use crate::model::Environment;
use crate::{Result, StoreError};

pub(super) async fn set_order(
    pool: &SqlitePool,
    env: &Environment,
    after_env_id: Option<i64>,
    self_test: bool,
) -> Result<()> {
    sqlx::query("UPDATE environments SET after_env_id = ?, self_test = ? WHERE id = ?")
        .bind(after_env_id)
        .bind(self_test)
        .bind(env.id)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn succeeded_hosts(pool: &SqlitePool, env: &Environment, release_id: i64) -> Result<Vec<i64>> {
    let rows = sqlx::query(
        "SELECT DISTINCT dh.host_id FROM deployment_hosts dh JOIN deployments d ON d.id = dh.deployment_id \
         WHERE d.env_id = ? AND COALESCE(dh.release_id, d.release_id) = ? AND dh.state = 'succeeded' ORDER BY dh.host_id",
    )
    .bind(env.id)
    .bind(release_id)
    .fetch_all(pool)
    .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

pub(super) async fn set_request_skip(pool: &SqlitePool, request_id: i64) -> Result<()> {
    let done = sqlx::query("UPDATE release_requests SET skip_promotion = 1 WHERE id = ?")
        .bind(request_id)
        .execute(pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("request {request_id}")));
    }
    Ok(())
}

pub(super) async fn request_skips(pool: &SqlitePool, request_id: i64) -> Result<bool> {
    let row = sqlx::query("SELECT skip_promotion FROM release_requests WHERE id = ?")
        .bind(request_id)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("request {request_id}")))?;
    Ok(row.try_get::<i64, _>(0)? != 0)
}
