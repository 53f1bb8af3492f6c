//! The fleet can change: environments' selectors and offline policies,
//! retiring hosts, moving a host's desired state to the environment that now
//! selects it, and failing offline targets by their deployment's policy.

use ferry_domain::OfflinePolicy;
use ferry_domain::offline::{StartedTarget, offline_failure};
use sqlx::{Row, SqlitePool};

use super::parse;
use super::*;
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

#[async_trait]
impl Fleet for SqliteDatabase {
    async fn create_join_token(&self, token_hash: &str, tags: &Tags, by: &str, now: i64) -> Result<JoinToken> {
        let json = serde_json::to_string(tags).map_err(|e| StoreError::Backend(e.to_string()))?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO join_tokens (token_hash, tags, created_by, created_at) VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(token_hash)
        .bind(json)
        .bind(by)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(JoinToken { id, tags: tags.clone(), created_by: by.to_string(), created_at: now, revoked_at: None })
    }

    async fn join_token(&self, token_hash: &str) -> Result<Option<JoinToken>> {
        let row = sqlx::query(
            "SELECT id, tags, created_by, created_at, revoked_at FROM join_tokens \
             WHERE token_hash = ? AND revoked_at IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| join_token_row(&r)).transpose()
    }

    async fn join_tokens(&self) -> Result<Vec<JoinToken>> {
        let rows = sqlx::query("SELECT id, tags, created_by, created_at, revoked_at FROM join_tokens ORDER BY id DESC")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(join_token_row).collect()
    }

    async fn revoke_join_token(&self, id: i64, now: i64) -> Result<()> {
        let done = sqlx::query("UPDATE join_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("join token {id}")));
        }
        Ok(())
    }

    async fn set_host_tags(&self, name: &str, new: &Tags) -> Result<Host> {
        let json = serde_json::to_string(new).map_err(|e| StoreError::Backend(e.to_string()))?;
        let done = sqlx::query(
            "UPDATE hosts SET tags = ?1, announced_tags = CASE WHEN announced_tags = ?1 THEN NULL \
             ELSE announced_tags END WHERE name = ?2",
        )
        .bind(json)
        .bind(name)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("host '{name}'")));
        }
        self.host(name).await
    }

    async fn enroll_host(&self, name: &str, tags: &Tags, token_hash: &str, now: i64) -> Result<Host> {
        let tags_json = serde_json::to_string(tags).map_err(|e| StoreError::Backend(e.to_string()))?;
        sqlx::query("INSERT INTO hosts (name, tags, token_hash, enrolled_at) VALUES (?, ?, ?, ?)")
            .bind(name)
            .bind(tags_json)
            .bind(token_hash)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(conflict(format!("host '{name}'")))?;
        self.host(name).await
    }

    async fn host_by_token(&self, token_hash: &str) -> Result<Option<Host>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {HOST_COLS} FROM hosts WHERE token_hash = ? AND retired_at IS NULL"
        )))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| host_row(&r)).transpose()
    }

    async fn host(&self, name: &str) -> Result<Host> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {HOST_COLS} FROM hosts WHERE name = ? AND retired_at IS NULL"
        )))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| host_row(&r)).transpose()?.ok_or_else(|| StoreError::NotFound(format!("host '{name}'")))
    }

    async fn hosts(&self) -> Result<Vec<Host>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {HOST_COLS} FROM hosts WHERE retired_at IS NULL ORDER BY name"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(host_row).collect()
    }

    async fn host_connected(&self, host_id: i64, announced: &Tags, agent_version: &str, now: i64) -> Result<()> {
        let announced = serde_json::to_string(announced).map_err(|e| StoreError::Backend(e.to_string()))?;
        // The enrolled tags stay; what the agent asked for is kept only when
        // it differs from them.
        sqlx::query(
            "UPDATE hosts SET announced_tags = CASE WHEN ?1 = tags THEN NULL ELSE ?1 END, agent_version = ?2, \
             online = 1, last_seen_at = ?3 WHERE id = ?4",
        )
        .bind(announced)
        .bind(agent_version)
        .bind(now)
        .bind(host_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn host_seen(&self, host_id: i64, now: i64) -> Result<()> {
        sqlx::query("UPDATE hosts SET online = 1, last_seen_at = ? WHERE id = ?")
            .bind(now)
            .bind(host_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn host_disconnected(&self, host_id: i64) -> Result<()> {
        sqlx::query("UPDATE hosts SET online = 0 WHERE id = ?").bind(host_id).execute(&self.pool).await?;
        Ok(())
    }

    async fn mark_silent_hosts_offline(&self, seen_before: i64) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar("UPDATE hosts SET online = 0 WHERE online = 1 AND last_seen_at < ? RETURNING id")
            .bind(seen_before)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn desired_for_host(&self, host_id: i64) -> Result<Vec<DesiredRow>> {
        let rows = sqlx::query(
            "SELECT p.name AS project, p.keep_releases, e.name AS env, hd.updated_at AS desired_since, r.id, r.project_id, r.version, r.branch, \
             r.committer, r.manifest_digest, r.file_count, r.total_size, r.created_by, r.created_at, \
             r.build_id, r.commit_sha, r.committed_at, r.bad_by, r.bad_reason, r.bad_at FROM host_desired hd JOIN projects p ON p.id = hd.project_id \
             JOIN environments e ON e.id = hd.env_id JOIN releases r ON r.id = hd.release_id \
             WHERE hd.host_id = ? ORDER BY p.name",
        )
        .bind(host_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DesiredRow {
                    project: r.try_get("project")?,
                    keep_releases: r.try_get::<i64, _>("keep_releases")?.try_into().unwrap_or(5),
                    env: r.try_get("env")?,
                    release: release_row(r)?,
                    desired_since: r.try_get("desired_since")?,
                })
            })
            .collect()
    }

    async fn adopt_host(&self, host_id: i64, env: &Environment, now: i64) -> Result<bool> {
        let Some(release_id) = env.desired_release_id else {
            return Ok(false);
        };
        let done = sqlx::query(
            "INSERT INTO host_desired (host_id, project_id, env_id, release_id, updated_at) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (host_id, project_id) DO NOTHING",
        )
        .bind(host_id)
        .bind(env.project_id)
        .bind(env.id)
        .bind(release_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn hosts_past(&self, project: &Project) -> Result<Vec<HostPastRow>> {
        history::hosts_past(&self.pool, project.id).await
    }

    async fn apply_report(&self, host_id: i64, report: &ProjectReport, now: i64) -> Result<Vec<i64>> {
        report::apply(&self.pool, host_id, report, now).await
    }

    async fn retire_host(&self, name: &str, now: i64) -> Result<i64> {
        fleet::retire_host(&self.pool, name, now).await
    }

    async fn move_host_to_env(&self, host_id: i64, env: &Environment, now: i64) -> Result<bool> {
        fleet::move_host_to_env(&self.pool, host_id, env, now).await
    }

    async fn set_host_address(&self, host_id: i64, address: &str) -> Result<()> {
        sqlx::query("UPDATE hosts SET address = ? WHERE id = ?")
            .bind(address)
            .bind(host_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn record_service_state(
        &self,
        host_id: i64,
        project: &str,
        state: &ServiceState,
        now: i64,
    ) -> Result<Option<ServiceChange>> {
        service::record(&self.pool, host_id, project, state, now).await
    }

    async fn project_host_states(&self, project: &Project) -> Result<Vec<HostStateRow>> {
        let rows = sqlx::query(
            "SELECT h.id, hd.env_id, rd.version, ha.version, ha.release_name, ha.activity, ha.error, \
             ha.service_failing, ha.service_reason, ha.service_stderr, ha.service_since FROM hosts h \
             LEFT JOIN host_desired hd ON hd.host_id = h.id AND hd.project_id = ?1 \
             LEFT JOIN releases rd ON rd.id = hd.release_id \
             LEFT JOIN host_actual ha ON ha.host_id = h.id AND ha.project_id = ?1 \
             WHERE h.retired_at IS NULL AND (hd.host_id IS NOT NULL OR ha.host_id IS NOT NULL) ORDER BY h.name",
        )
        .bind(project.id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HostStateRow {
                    host_id: r.try_get(0)?,
                    desired_env_id: r.try_get(1)?,
                    desired_version: r.try_get(2)?,
                    current_version: r.try_get(3)?,
                    current_release: r.try_get(4)?,
                    activity: r.try_get(5)?,
                    error: r.try_get(6)?,
                    service: match r.try_get::<Option<i64>, _>(7)? {
                        None => None,
                        Some(failing) => Some(ServiceState {
                            failing: failing != 0,
                            reason: r.try_get::<Option<String>, _>(8)?.unwrap_or_default(),
                            stderr: r
                                .try_get::<Option<String>, _>(9)?
                                .and_then(|j| serde_json::from_str(&j).ok())
                                .unwrap_or_default(),
                            since: r.try_get::<Option<i64>, _>(10)?.unwrap_or(0),
                        }),
                    },
                })
            })
            .collect()
    }
}
