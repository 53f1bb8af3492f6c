//! The fleet can change: environments' selectors and offline policies,
//! retiring hosts, moving a host's desired state to the environment that now
//! selects it, and failing offline targets by their deployment's policy.

use ferry_domain::OfflinePolicy;
use ferry_domain::offline::{StartedTarget, offline_failure};
use sqlx::{Row, SqlitePool};

use super::parse;
use crate::model::*;
use crate::{Result, StoreError};

pub(super) async fn set_selector(pool: &SqlitePool, env: &Environment, selector: &str) -> Result<()> {
    sqlx::query("UPDATE environments SET selector = ? WHERE id = ?").bind(selector).bind(env.id).execute(pool).await?;
    Ok(())
}

pub(super) async fn set_offline_policy(pool: &SqlitePool, env: &Environment, policy: OfflinePolicy) -> Result<()> {
    sqlx::query("UPDATE environments SET offline_policy = ? WHERE id = ?")
        .bind(policy.as_str())
        .bind(env.id)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn retire_host(pool: &SqlitePool, name: &str, now: i64) -> Result<i64> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let id: i64 = sqlx::query_scalar("SELECT id FROM hosts WHERE name = ? AND retired_at IS NULL")
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("host '{name}'")))?;
    let busy: Option<i64> = sqlx::query_scalar(
        "SELECT d.id FROM deployment_hosts dh JOIN deployments d ON d.id = dh.deployment_id \
         WHERE dh.host_id = ? AND d.status = 'running' AND dh.state IN ('queued', 'pending', 'running') LIMIT 1",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(d) = busy {
        return Err(StoreError::Refused(format!(
            "host '{name}' is a target of running deployment {d}: wait for it to end or cancel it \
             (ferry deployment cancel {d}) first"
        )));
    }
    // The row stays for the history that names it; `~` is never in a host
    // name, so the new name is free and nothing can enrol under the old row's.
    sqlx::query(
        "UPDATE hosts SET name = name || '~' || id, retired_at = ?, online = 0, \
         token_hash = 'retired:' || id WHERE id = ?",
    )
    .bind(now)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM host_desired WHERE host_id = ?").bind(id).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(id)
}

pub(super) async fn move_host_to_env(pool: &SqlitePool, host_id: i64, env: &Environment, now: i64) -> Result<bool> {
    let Some(release_id) = env.desired_release_id else {
        return Ok(false);
    };
    let done = sqlx::query(
        "INSERT INTO host_desired (host_id, project_id, env_id, release_id, updated_at) VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT (host_id, project_id) DO UPDATE SET env_id = excluded.env_id, \
         release_id = excluded.release_id, updated_at = excluded.updated_at WHERE host_desired.env_id <> excluded.env_id",
    )
    .bind(host_id)
    .bind(env.project_id)
    .bind(env.id)
    .bind(release_id)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn fail_offline_targets(pool: &SqlitePool, now: i64, heartbeat_interval_ms: i64) -> Result<Vec<i64>> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let rows = sqlx::query(
        "SELECT dh.deployment_id, dh.host_id, h.last_seen_at, COALESCE(dh.started_at, d.created_at), \
         d.offline_timeout_ms, d.offline_policy FROM deployment_hosts dh \
         JOIN deployments d ON d.id = dh.deployment_id JOIN hosts h ON h.id = dh.host_id \
         WHERE d.status = 'running' AND dh.state IN ('pending', 'running') AND h.online = 0",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut changed = Vec::new();
    for row in rows {
        let deployment_id: i64 = row.try_get(0)?;
        let host_id: i64 = row.try_get(1)?;
        let target = StartedTarget { online: false, last_seen_at: row.try_get(2)?, started_at: row.try_get(3)? };
        let policy: OfflinePolicy = parse(&row.try_get::<String, _>(5)?)?;
        let Some(why) = offline_failure(policy, target, now, row.try_get(4)?, heartbeat_interval_ms) else {
            continue;
        };
        sqlx::query(
            "UPDATE deployment_hosts SET state = 'failed', finished_at = ?, error = ? \
             WHERE deployment_id = ? AND host_id = ? AND state IN ('pending', 'running')",
        )
        .bind(now)
        .bind(why.to_stored())
        .bind(deployment_id)
        .bind(host_id)
        .execute(&mut *tx)
        .await?;
        if !changed.contains(&deployment_id) {
            changed.push(deployment_id);
        }
    }
    tx.commit().await?;
    Ok(changed)
}

pub(super) async fn update_project(
    pool: &SqlitePool,
    project: &Project,
    keep_releases: u32,
    source: Option<&ProjectSource>,
) -> Result<()> {
    let branches = serde_json::to_string(&source.map(|s| s.branches.clone()).unwrap_or_default())
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    sqlx::query(
        "UPDATE projects SET keep_releases = ?, repo_url = ?, webhook_secret = ?, branches = ?, push_tags = ? \
         WHERE id = ?",
    )
    .bind(i64::from(keep_releases))
    .bind(source.map(|s| s.repo_url.as_str()))
    .bind(source.and_then(|s| s.webhook_secret.as_ref()).map(|s| s.expose()))
    .bind(branches)
    .bind(source.is_some_and(|s| s.push_tags))
    .bind(project.id)
    .execute(pool)
    .await?;
    Ok(())
}

/// The running deployment of a project (or of one of its environments), if any.
async fn running_deployment(
    conn: &mut sqlx::SqliteConnection,
    project_id: i64,
    env_id: Option<i64>,
) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM deployments WHERE project_id = ? AND (? IS NULL OR env_id = ?) AND status = 'running' LIMIT 1",
    )
    .bind(project_id)
    .bind(env_id)
    .bind(env_id)
    .fetch_optional(&mut *conn)
    .await?)
}

pub(super) async fn delete_project(pool: &SqlitePool, project: &Project, now: i64) -> Result<()> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    if let Some(d) = running_deployment(&mut tx, project.id, None).await? {
        return Err(StoreError::Refused(format!(
            "project '{}' has a running deployment ({d}): wait for it to end or cancel it \
             (ferry deployment cancel {d}) first",
            project.name
        )));
    }
    let build: Option<i64> = sqlx::query_scalar(
        "SELECT number FROM builds WHERE project_id = ? AND status IN ('queued', 'running') LIMIT 1",
    )
    .bind(project.id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(n) = build {
        return Err(StoreError::Refused(format!(
            "project '{}' has a queued or running build ({n}): cancel it (ferry build cancel {} {n}) first",
            project.name, project.name
        )));
    }
    let done = sqlx::query("UPDATE projects SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL")
        .bind(now)
        .bind(project.id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("project '{}'", project.name)));
    }
    let envs: Vec<i64> = sqlx::query_scalar("SELECT id FROM environments WHERE project_id = ? AND deleted_at IS NULL")
        .bind(project.id)
        .fetch_all(&mut *tx)
        .await?;
    for env in envs {
        forget_environment(&mut tx, env, now).await?;
    }
    sqlx::query("DELETE FROM host_desired WHERE project_id = ?").bind(project.id).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn delete_environment(pool: &SqlitePool, env: &Environment, now: i64) -> Result<()> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    if let Some(d) = running_deployment(&mut tx, env.project_id, Some(env.id)).await? {
        return Err(StoreError::Refused(format!(
            "environment '{}' of project '{}' has a running deployment ({d}): wait for it to end or cancel it \
             (ferry deployment cancel {d}) first",
            env.name, env.project
        )));
    }
    let done = sqlx::query("SELECT id FROM environments WHERE id = ? AND deleted_at IS NULL")
        .bind(env.id)
        .fetch_optional(&mut *tx)
        .await?;
    if done.is_none() {
        return Err(StoreError::NotFound(format!("environment '{}' of project '{}'", env.name, env.project)));
    }
    forget_environment(&mut tx, env.id, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Marks an environment deleted and undoes what it gives hosts: their
/// desired release from it, its load balancer; environments tested on it
/// are tested nowhere.
async fn forget_environment(conn: &mut sqlx::SqliteConnection, env_id: i64, now: i64) -> Result<()> {
    sqlx::query("UPDATE environments SET deleted_at = ? WHERE id = ?")
        .bind(now)
        .bind(env_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE environments SET staging_env_id = NULL WHERE staging_env_id = ?")
        .bind(env_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM host_desired WHERE env_id = ?").bind(env_id).execute(&mut *conn).await?;
    for table in ["load_balancers", "lb_drained", "lb_applied"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE env_id = ?")))
            .bind(env_id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
