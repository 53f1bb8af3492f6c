//! Deployments on SQLite: the trait's methods, each handing its transaction to `rollout`, `report`, `deploy_log` or a query of its own.

use super::*;

#[async_trait]
impl Deployments for SqliteDatabase {
    async fn create_deployment(&self, new: NewDeployment, now: i64) -> Result<i64> {
        rollout::create(&self.pool, new, now).await
    }

    async fn advance_deployment(&self, id: i64, now: i64) -> Result<Advanced> {
        rollout::advance(&self.pool, id, now).await
    }

    async fn control_deployment(&self, id: i64, control: RolloutControl, now: i64) -> Result<()> {
        rollout::control(&self.pool, id, control, now).await
    }

    async fn peek_deployment(&self, id: i64, now: i64) -> Result<Option<(Step, Vec<i64>)>> {
        rollout::peek(&self.pool, id, now).await
    }

    async fn hold_deployment(&self, id: i64, hold: &Note, now: i64) -> Result<()> {
        rollout::set_hold(&self.pool, id, hold, now).await
    }

    async fn rollout_drained(&self, id: i64) -> Result<Vec<i64>> {
        let json: String = sqlx::query_scalar("SELECT lb_drained FROM deployments WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("deployment {id}")))?;
        serde_json::from_str(&json).map_err(|e| StoreError::Backend(format!("deployment {id} lb_drained: {e}")))
    }

    async fn set_rollout_drained(&self, id: i64, hosts: &[i64]) -> Result<()> {
        let json = serde_json::to_string(hosts).map_err(|e| StoreError::Backend(e.to_string()))?;
        sqlx::query("UPDATE deployments SET lb_drained = ? WHERE id = ?")
            .bind(json)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn running_deployments(&self) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar("SELECT id FROM deployments WHERE status = 'running' ORDER BY id")
            .fetch_all(&self.pool)
            .await?)
    }

    async fn deployment_events(&self, id: i64) -> Result<Vec<DeploymentEvent>> {
        let rows = sqlx::query("SELECT at, what FROM deployment_events WHERE deployment_id = ? ORDER BY seq")
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok(DeploymentEvent { at: r.try_get(0)?, what: Note::from_stored(&r.try_get::<String, _>(1)?) }))
            .collect()
    }

    async fn deployment(&self, id: i64) -> Result<DeploymentRow> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{DEPLOYMENT_SELECT} WHERE d.id = ?")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| deployment_row(&r)).transpose()?.ok_or_else(|| StoreError::NotFound(format!("deployment {id}")))
    }

    async fn deployment_hosts(&self, id: i64) -> Result<Vec<DeploymentHostRow>> {
        let rows = sqlx::query(
            "SELECT h.name, dh.release_name, dh.state, dh.started_at, dh.finished_at, dh.error, dh.bytes_downloaded, \
             dh.bytes_reused, dh.batch, r.id, r.version, rf.version FROM deployment_hosts dh \
             JOIN hosts h ON h.id = dh.host_id JOIN deployments d ON d.id = dh.deployment_id \
             JOIN releases r ON r.id = COALESCE(dh.release_id, d.release_id) \
             LEFT JOIN releases rf ON rf.id = dh.from_release_id \
             WHERE dh.deployment_id = ? ORDER BY dh.batch, h.name",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DeploymentHostRow {
                    host: r.try_get(0)?,
                    release_name: r.try_get(1)?,
                    state: parse(&r.try_get::<String, _>(2)?)?,
                    started_at: r.try_get(3)?,
                    finished_at: r.try_get(4)?,
                    error: r.try_get::<Option<String>, _>(5)?.as_deref().map(Note::from_stored),
                    bytes_downloaded: r.try_get::<i64, _>(6)?.try_into().unwrap_or(0),
                    bytes_reused: r.try_get::<i64, _>(7)?.try_into().unwrap_or(0),
                    batch: r.try_get::<i64, _>(8)?.try_into().unwrap_or(0),
                    release_id: r.try_get(9)?,
                    version: r.try_get(10)?,
                    from_version: r.try_get(11)?,
                })
            })
            .collect()
    }

    async fn deployments(&self, project: &Project, limit: u32) -> Result<Vec<DeploymentRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{DEPLOYMENT_SELECT} WHERE d.project_id = ? ORDER BY d.id DESC LIMIT ?"
        )))
        .bind(project.id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(deployment_row).collect()
    }

    async fn lock_holders(&self, project: Option<&Project>) -> Result<Vec<DeploymentRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{DEPLOYMENT_SELECT} WHERE d.status = 'running' AND (?1 IS NULL OR d.project_id = ?1) ORDER BY d.id"
        )))
        .bind(project.map(|p| p.id))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(deployment_row).collect()
    }

    async fn deployment_facts(
        &self,
        project: &Project,
        env: Option<&Environment>,
        since: i64,
    ) -> Result<Vec<DeploymentFacts>> {
        let rows = sqlx::query(
            "SELECT d.id, e.name AS env, d.kind, d.status, d.created_at, d.finished_at, d.emergency, r.committed_at \
             FROM deployments d JOIN environments e ON e.id = d.env_id JOIN releases r ON r.id = d.release_id \
             WHERE d.project_id = ?1 AND (?2 IS NULL OR d.env_id = ?2) AND d.created_at >= ?3 ORDER BY d.id",
        )
        .bind(project.id)
        .bind(env.map(|e| e.id))
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DeploymentFacts {
                    id: r.try_get("id")?,
                    env: r.try_get("env")?,
                    kind: parse::<DeploymentKind>(&r.try_get::<String, _>("kind")?)?,
                    status: parse::<DeploymentStatus>(&r.try_get::<String, _>("status")?)?,
                    created_at: r.try_get("created_at")?,
                    finished_at: r.try_get("finished_at")?,
                    emergency: r.try_get::<i64, _>("emergency")? != 0,
                    committed_at: r.try_get("committed_at")?,
                })
            })
            .collect()
    }

    async fn environment_history(&self, env: &Environment) -> Result<Vec<DeploymentRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{DEPLOYMENT_SELECT} WHERE d.env_id = ? AND d.status != 'running' ORDER BY d.id DESC"
        )))
        .bind(env.id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(deployment_row).collect()
    }

    async fn fail_offline_targets(&self, now: i64, heartbeat_interval_ms: i64) -> Result<Vec<i64>> {
        fleet::fail_offline_targets(&self.pool, now, heartbeat_interval_ms).await
    }

    async fn append_deployment_log(
        &self,
        host_id: i64,
        project: &str,
        release_id: i64,
        lines: &[AgentLogLine],
        now: i64,
    ) -> Result<Option<i64>> {
        deploy_log::append(&self.pool, host_id, project, release_id, lines, now).await
    }

    async fn deployment_log(
        &self,
        deployment_id: i64,
        host: Option<&str>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<DeploymentLogLine>> {
        deploy_log::read(&self.pool, deployment_id, host, after, limit).await
    }
}
