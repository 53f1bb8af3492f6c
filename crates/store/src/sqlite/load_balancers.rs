//! Load balancers on SQLite: `load_balancers`, `lb_drained`, `lb_generations`, `lb_applied`.

use super::*;

#[async_trait]
impl LoadBalancers for SqliteDatabase {
    async fn set_load_balancer(&self, env: &Environment, lb: &NewLoadBalancer, now: i64) -> Result<u64> {
        let options = serde_json::to_string(&lb.options).map_err(|e| StoreError::Backend(e.to_string()))?;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "INSERT INTO load_balancers (env_id, driver, selector, backend, options, updated_by, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (env_id) DO UPDATE SET driver = excluded.driver, \
             selector = excluded.selector, backend = excluded.backend, options = excluded.options, \
             updated_by = excluded.updated_by, updated_at = excluded.updated_at",
        )
        .bind(env.id)
        .bind(&lb.driver)
        .bind(&lb.selector)
        .bind(&lb.backend)
        .bind(options)
        .bind(&lb.updated_by)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let generation = bump_generation(&mut tx, env.id).await?;
        tx.commit().await?;
        Ok(generation)
    }

    async fn unset_load_balancer(&self, env: &Environment) -> Result<bool> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let removed = sqlx::query("DELETE FROM load_balancers WHERE env_id = ?")
            .bind(env.id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        if removed {
            sqlx::query("DELETE FROM lb_drained WHERE env_id = ?").bind(env.id).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM lb_applied WHERE env_id = ?").bind(env.id).execute(&mut *tx).await?;
            bump_generation(&mut tx, env.id).await?;
        }
        tx.commit().await?;
        Ok(removed)
    }

    async fn load_balancer(&self, env: &Environment) -> Result<Option<LoadBalancer>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{LB_SELECT} WHERE lb.env_id = ?")))
            .bind(env.id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| lb_row(&r)).transpose()
    }

    async fn load_balancers(&self) -> Result<Vec<LoadBalancer>> {
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(format!("{LB_SELECT} ORDER BY lb.env_id"))).fetch_all(&self.pool).await?;
        rows.iter().map(lb_row).collect()
    }

    async fn set_drained(&self, env: &Environment, host_ids: &[i64], drained: bool, now: i64) -> Result<Option<u64>> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT env_id FROM load_balancers WHERE env_id = ?")
            .bind(env.id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Ok(None);
        }
        let mut changed = 0;
        for host_id in host_ids {
            let done = if drained {
                sqlx::query(
                    "INSERT INTO lb_drained (env_id, host_id, drained_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                )
                .bind(env.id)
                .bind(host_id)
                .bind(now)
                .execute(&mut *tx)
                .await?
            } else {
                sqlx::query("DELETE FROM lb_drained WHERE env_id = ? AND host_id = ?")
                    .bind(env.id)
                    .bind(host_id)
                    .execute(&mut *tx)
                    .await?
            };
            changed += done.rows_affected();
        }
        let generation = if changed > 0 {
            bump_generation(&mut tx, env.id).await?
        } else {
            let current: Option<i64> = sqlx::query_scalar("SELECT generation FROM lb_generations WHERE env_id = ?")
                .bind(env.id)
                .fetch_optional(&mut *tx)
                .await?;
            current.unwrap_or(0).try_into().unwrap_or(0)
        };
        tx.commit().await?;
        Ok(Some(generation))
    }

    async fn record_lb_applied(
        &self,
        host_id: i64,
        project: &str,
        env: &str,
        generation: u64,
        error: Option<&str>,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO lb_applied (env_id, host_id, generation, error, applied_at) \
             SELECT e.id, ?, ?, ?, ? FROM environments e JOIN projects p ON p.id = e.project_id \
             WHERE p.name = ? AND e.name = ? \
             ON CONFLICT (env_id, host_id) DO UPDATE SET generation = excluded.generation, error = excluded.error, \
             applied_at = excluded.applied_at",
        )
        .bind(host_id)
        .bind(i64::try_from(generation).unwrap_or(i64::MAX))
        .bind(error)
        .bind(now)
        .bind(project)
        .bind(env)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn lb_applied(&self, env_id: i64) -> Result<Vec<LbAppliedRow>> {
        let rows = sqlx::query(
            "SELECT host_id, generation, error, applied_at FROM lb_applied WHERE env_id = ? ORDER BY host_id",
        )
        .bind(env_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LbAppliedRow {
                    host_id: r.try_get(0)?,
                    generation: r.try_get::<i64, _>(1)?.try_into().unwrap_or(0),
                    error: r.try_get(2)?,
                    applied_at: r.try_get(3)?,
                })
            })
            .collect()
    }
}
