//! Agent binaries and the upgrades of environments' agents (migration
//! `0022_agent_upgrades.sql`). Each write that moves an upgrade is one
//! transaction.

use ferry_domain::agent_upgrade::HostUpgradeState;
use sqlx::{Row, SqlitePool};

use super::conflict;
use super::*;
use crate::model::{AgentBinary, AgentUpgrade, AgentUpgradeHost, NewAgentBinary};
use crate::{Result, StoreError};

const BINARY_COLS: &str = "id, version, sha256, size, signature, uploaded_by, uploaded_at";

fn binary_row(r: &sqlx::sqlite::SqliteRow) -> Result<AgentBinary> {
    Ok(AgentBinary {
        id: r.try_get("id")?,
        version: r.try_get("version")?,
        sha256: r.try_get("sha256")?,
        size: r.try_get("size")?,
        signature: r.try_get("signature")?,
        uploaded_by: r.try_get("uploaded_by")?,
        uploaded_at: r.try_get("uploaded_at")?,
    })
}

pub(super) async fn add_binary(pool: &SqlitePool, new: &NewAgentBinary) -> Result<AgentBinary> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO agent_binaries (version, sha256, size, signature, uploaded_by, uploaded_at) \
         VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(&new.version)
    .bind(&new.sha256)
    .bind(new.size)
    .bind(&new.signature)
    .bind(&new.uploaded_by)
    .bind(new.uploaded_at)
    .fetch_one(pool)
    .await
    .map_err(conflict(format!("agent binary version '{}'", new.version)))?;
    binary_by(pool, "id = ?", id.to_string()).await
}

async fn binary_by(pool: &SqlitePool, cond: &str, value: String) -> Result<AgentBinary> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {BINARY_COLS} FROM agent_binaries WHERE {cond}")))
        .bind(&value)
        .fetch_optional(pool)
        .await?;
    row.map(|r| binary_row(&r)).transpose()?.ok_or_else(|| StoreError::NotFound(format!("agent binary '{value}'")))
}

pub(super) async fn binary(pool: &SqlitePool, version: &str) -> Result<AgentBinary> {
    binary_by(pool, "version = ?", version.to_string()).await
}

pub(super) async fn binaries(pool: &SqlitePool) -> Result<Vec<AgentBinary>> {
    let rows =
        sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {BINARY_COLS} FROM agent_binaries ORDER BY uploaded_at, id")))
            .fetch_all(pool)
            .await?;
    rows.iter().map(binary_row).collect()
}

pub(super) async fn set_host_binary(
    pool: &SqlitePool,
    host_id: i64,
    version: Option<&str>,
    digest: Option<&str>,
) -> Result<()> {
    sqlx::query("UPDATE hosts SET agent_binary = ?, agent_digest = ? WHERE id = ?")
        .bind(version)
        .bind(digest)
        .bind(host_id)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn create(
    pool: &SqlitePool,
    env_id: i64,
    binary_id: i64,
    batches: &[Vec<i64>],
    by: &str,
    now: i64,
) -> Result<i64> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let running: Option<i64> =
        sqlx::query_scalar("SELECT id FROM agent_upgrades WHERE env_id = ? AND status = 'running'")
            .bind(env_id)
            .fetch_optional(&mut *tx)
            .await?;
    if let Some(id) = running {
        return Err(StoreError::Refused(format!(
            "agent upgrade {id} of this environment is still running; wait for it to end"
        )));
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO agent_upgrades (env_id, binary_id, status, created_by, created_at) \
         VALUES (?, ?, 'running', ?, ?) RETURNING id",
    )
    .bind(env_id)
    .bind(binary_id)
    .bind(by)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    for (i, batch) in batches.iter().enumerate() {
        for host_id in batch {
            sqlx::query(
                "INSERT INTO agent_upgrade_hosts (upgrade_id, host_id, batch, state, updated_at) \
                 VALUES (?, ?, ?, 'queued', ?)",
            )
            .bind(id)
            .bind(host_id)
            .bind(i64::try_from(i + 1).unwrap_or(i64::MAX))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(id)
}

async fn upgrade_where(pool: &SqlitePool, cond: &str, value: i64) -> Result<Option<AgentUpgrade>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT u.id AS uid, u.env_id, u.status, u.error, u.created_by, u.created_at, u.finished_at, \
         b.id, b.version, b.sha256, b.size, b.signature, b.uploaded_by, b.uploaded_at \
         FROM agent_upgrades u JOIN agent_binaries b ON b.id = u.binary_id WHERE {cond} ORDER BY u.id DESC LIMIT 1"
    )))
    .bind(value)
    .fetch_optional(pool)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let id: i64 = r.try_get("uid")?;
    let hosts = sqlx::query(
        "SELECT uh.host_id, h.name, uh.batch, uh.state, uh.error, h.agent_binary, h.agent_digest \
         FROM agent_upgrade_hosts uh JOIN hosts h ON h.id = uh.host_id WHERE uh.upgrade_id = ? \
         ORDER BY uh.batch, h.name",
    )
    .bind(id)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|h| {
        Ok(AgentUpgradeHost {
            host_id: h.try_get(0)?,
            host: h.try_get(1)?,
            batch: u32::try_from(h.try_get::<i64, _>(2)?).unwrap_or(0),
            state: h.try_get::<String, _>(3)?.parse().map_err(StoreError::Backend)?,
            error: h.try_get(4)?,
            running_version: h.try_get(5)?,
            running_digest: h.try_get(6)?,
        })
    })
    .collect::<Result<Vec<_>>>()?;
    Ok(Some(AgentUpgrade {
        id,
        env_id: r.try_get("env_id")?,
        binary: binary_row(&r)?,
        status: r.try_get("status")?,
        error: r.try_get("error")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        finished_at: r.try_get("finished_at")?,
        hosts,
    }))
}

pub(super) async fn latest_for_env(pool: &SqlitePool, env_id: i64) -> Result<Option<AgentUpgrade>> {
    upgrade_where(pool, "u.env_id = ?", env_id).await
}

pub(super) async fn by_id(pool: &SqlitePool, id: i64) -> Result<Option<AgentUpgrade>> {
    upgrade_where(pool, "u.id = ?", id).await
}

pub(super) async fn for_host(pool: &SqlitePool, host_id: i64) -> Result<Vec<AgentUpgrade>> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT u.id FROM agent_upgrades u JOIN agent_upgrade_hosts uh ON uh.upgrade_id = u.id \
         WHERE u.status = 'running' AND uh.host_id = ? ORDER BY u.id",
    )
    .bind(host_id)
    .fetch_all(pool)
    .await?;
    let mut out = Vec::new();
    for id in ids {
        out.extend(by_id(pool, id).await?);
    }
    Ok(out)
}

pub(super) async fn set_host_state(
    pool: &SqlitePool,
    upgrade_id: i64,
    host_id: i64,
    from: &[HostUpgradeState],
    to: HostUpgradeState,
    error: Option<&str>,
    now: i64,
) -> Result<bool> {
    let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
    let placeholders = vec!["?"; from.len()].join(", ");
    let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE agent_upgrade_hosts SET state = ?, error = ?, updated_at = ? \
         WHERE upgrade_id = ? AND host_id = ? AND state IN ({placeholders}) \
         AND upgrade_id IN (SELECT id FROM agent_upgrades WHERE status = 'running')"
    )))
    .bind(to.as_str())
    .bind(error)
    .bind(now)
    .bind(upgrade_id)
    .bind(host_id);
    for f in from {
        q = q.bind(f);
    }
    Ok(q.execute(pool).await?.rows_affected() > 0)
}

pub(super) async fn start_batch(pool: &SqlitePool, upgrade_id: i64, batch: u32, now: i64) -> Result<Vec<i64>> {
    Ok(sqlx::query_scalar(
        "UPDATE agent_upgrade_hosts SET state = 'upgrading', updated_at = ? \
         WHERE upgrade_id = ? AND batch = ? AND state = 'queued' RETURNING host_id",
    )
    .bind(now)
    .bind(upgrade_id)
    .bind(i64::from(batch))
    .fetch_all(pool)
    .await?)
}

pub(super) async fn finish(
    pool: &SqlitePool,
    upgrade_id: i64,
    succeeded: bool,
    error: Option<&str>,
    now: i64,
) -> Result<bool> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let changed = sqlx::query(
        "UPDATE agent_upgrades SET status = ?, error = ?, finished_at = ? WHERE id = ? AND status = 'running'",
    )
    .bind(if succeeded { "succeeded" } else { "failed" })
    .bind(error)
    .bind(now)
    .bind(upgrade_id)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        > 0;
    if changed {
        sqlx::query(
            "UPDATE agent_upgrade_hosts SET state = 'skipped', updated_at = ? WHERE upgrade_id = ? AND state = 'queued'",
        )
        .bind(now)
        .bind(upgrade_id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(changed)
}

pub(super) async fn stale(pool: &SqlitePool, before: i64) -> Result<Vec<(i64, i64)>> {
    Ok(sqlx::query_as(
        "SELECT uh.upgrade_id, uh.host_id FROM agent_upgrade_hosts uh JOIN agent_upgrades u ON u.id = uh.upgrade_id \
         WHERE u.status = 'running' AND uh.state = 'upgrading' AND uh.updated_at < ? ORDER BY uh.upgrade_id, uh.host_id",
    )
    .bind(before)
    .fetch_all(pool)
    .await?)
}

#[async_trait]
impl AgentUpgrades for SqliteDatabase {
    async fn add_agent_binary(&self, new: &NewAgentBinary) -> Result<AgentBinary> {
        agent_upgrade::add_binary(&self.pool, new).await
    }

    async fn agent_binary(&self, version: &str) -> Result<AgentBinary> {
        agent_upgrade::binary(&self.pool, version).await
    }

    async fn agent_binaries(&self) -> Result<Vec<AgentBinary>> {
        agent_upgrade::binaries(&self.pool).await
    }

    async fn set_host_binary(&self, host_id: i64, version: Option<&str>, digest: Option<&str>) -> Result<()> {
        agent_upgrade::set_host_binary(&self.pool, host_id, version, digest).await
    }

    async fn create_agent_upgrade(
        &self,
        env_id: i64,
        binary_id: i64,
        batches: &[Vec<i64>],
        by: &str,
        now: i64,
    ) -> Result<i64> {
        agent_upgrade::create(&self.pool, env_id, binary_id, batches, by, now).await
    }

    async fn latest_agent_upgrade(&self, env_id: i64) -> Result<Option<AgentUpgrade>> {
        agent_upgrade::latest_for_env(&self.pool, env_id).await
    }

    async fn agent_upgrade(&self, id: i64) -> Result<Option<AgentUpgrade>> {
        agent_upgrade::by_id(&self.pool, id).await
    }

    async fn running_agent_upgrades_of_host(&self, host_id: i64) -> Result<Vec<AgentUpgrade>> {
        agent_upgrade::for_host(&self.pool, host_id).await
    }

    async fn set_agent_upgrade_host(
        &self,
        upgrade_id: i64,
        host_id: i64,
        from: &[ferry_domain::agent_upgrade::HostUpgradeState],
        to: ferry_domain::agent_upgrade::HostUpgradeState,
        error: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        agent_upgrade::set_host_state(&self.pool, upgrade_id, host_id, from, to, error, now).await
    }

    async fn stale_agent_upgrade_hosts(&self, before: i64) -> Result<Vec<(i64, i64)>> {
        agent_upgrade::stale(&self.pool, before).await
    }

    async fn start_agent_upgrade_batch(&self, upgrade_id: i64, batch: u32, now: i64) -> Result<Vec<i64>> {
        agent_upgrade::start_batch(&self.pool, upgrade_id, batch, now).await
    }

    async fn finish_agent_upgrade(
        &self,
        upgrade_id: i64,
        succeeded: bool,
        error: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        agent_upgrade::finish(&self.pool, upgrade_id, succeeded, error, now).await
    }
}
