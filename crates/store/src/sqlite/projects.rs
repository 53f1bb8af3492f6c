//! Projects and environments on SQLite, with freezes and variables.

use super::*;

#[async_trait]
impl Projects for SqliteDatabase {
    async fn create_project(&self, new: &NewProject, now: i64) -> Result<Project> {
        let src = new.source.as_ref();
        let branches = serde_json::to_string(&src.map(|s| s.branches.clone()).unwrap_or_default())
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        sqlx::query(
            "INSERT INTO projects (name, keep_releases, created_at, repo_url, webhook_secret, branches, push_tags, \
             host_scope) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&new.name)
        .bind(i64::from(new.keep_releases))
        .bind(now)
        .bind(src.map(|s| s.repo_url.as_str()))
        .bind(src.and_then(|s| s.webhook_secret.as_ref()).map(|s| s.expose()))
        .bind(branches)
        .bind(src.is_some_and(|s| s.push_tags))
        .bind(&new.host_scope)
        .execute(&self.pool)
        .await
        .map_err(conflict(format!("project '{}'", new.name)))?;
        self.project(&new.name).await
    }

    async fn project(&self, name: &str) -> Result<Project> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PROJECT_COLS} FROM projects WHERE name = ? AND deleted_at IS NULL"
        )))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| project_row(&r)).transpose()?.ok_or_else(|| StoreError::NotFound(format!("project '{name}'")))
    }

    async fn projects(&self) -> Result<Vec<Project>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PROJECT_COLS} FROM projects WHERE deleted_at IS NULL ORDER BY name"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(project_row).collect()
    }

    async fn set_project_host_scope(&self, project: &Project, scope: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE projects SET host_scope = ? WHERE id = ?")
            .bind(scope)
            .bind(project.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_webhook_secret(&self, project: &Project, secret: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE projects SET webhook_secret = ? WHERE id = ?")
            .bind(secret)
            .bind(project.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn create_environment(&self, project: &Project, new: &NewEnvironment, now: i64) -> Result<Environment> {
        sqlx::query(
            "INSERT INTO environments (project_id, name, selector, auto_deploy_branch, created_at, rollout, \
             production, requires_approval, staging_env_id, offline_policy) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(project.id)
        .bind(&new.name)
        .bind(&new.selector)
        .bind(new.auto_deploy_branch.as_deref())
        .bind(now)
        .bind(policy_json(&new.rollout)?)
        .bind(new.production)
        .bind(new.requires_approval)
        .bind(new.staging_env_id)
        .bind(new.offline_policy.as_str())
        .execute(&self.pool)
        .await
        .map_err(conflict(format!("environment '{}' of project '{}'", new.name, project.name)))?;
        self.environment(project, &new.name).await
    }

    async fn environment(&self, project: &Project, name: &str) -> Result<Environment> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{ENV_SELECT} WHERE e.project_id = ? AND e.name = ? AND e.deleted_at IS NULL"
        )))
        .bind(project.id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| env_row(&r))
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("environment '{name}' of project '{}'", project.name)))
    }

    async fn environments(&self, project: &Project) -> Result<Vec<Environment>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{ENV_SELECT} WHERE e.project_id = ? AND e.deleted_at IS NULL ORDER BY e.id"
        )))
        .bind(project.id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(env_row).collect()
    }

    async fn set_environment_rollout(&self, env: &Environment, policy: &RolloutPolicy) -> Result<()> {
        sqlx::query("UPDATE environments SET rollout = ? WHERE id = ?")
            .bind(policy_json(policy)?)
            .bind(env.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_environment_production(&self, env: &Environment, production: bool) -> Result<()> {
        sqlx::query("UPDATE environments SET production = ? WHERE id = ?")
            .bind(production)
            .bind(env.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_environment_protection(
        &self,
        env: &Environment,
        requires_approval: bool,
        staging_env_id: Option<i64>,
    ) -> Result<()> {
        sqlx::query("UPDATE environments SET requires_approval = ?, staging_env_id = ? WHERE id = ?")
            .bind(requires_approval)
            .bind(staging_env_id)
            .bind(env.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn all_environments(&self) -> Result<Vec<Environment>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{ENV_SELECT} WHERE e.deleted_at IS NULL ORDER BY e.id")))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(env_row).collect()
    }

    async fn set_environment_selector(&self, env: &Environment, selector: &str) -> Result<()> {
        fleet::set_selector(&self.pool, env, selector).await
    }

    async fn set_environment_offline_policy(
        &self,
        env: &Environment,
        policy: ferry_domain::OfflinePolicy,
    ) -> Result<()> {
        fleet::set_offline_policy(&self.pool, env, policy).await
    }

    async fn project_including_deleted(&self, name: &str) -> Result<Project> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PROJECT_COLS} FROM projects WHERE name = ? ORDER BY deleted_at IS NULL DESC LIMIT 1"
        )))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| project_row(&r)).transpose()?.ok_or_else(|| StoreError::NotFound(format!("project '{name}'")))
    }

    async fn update_project(
        &self,
        project: &Project,
        keep_releases: u32,
        source: Option<&ProjectSource>,
    ) -> Result<()> {
        fleet::update_project(&self.pool, project, keep_releases, source).await
    }

    async fn delete_project(&self, project: &Project, now: i64) -> Result<()> {
        fleet::delete_project(&self.pool, project, now).await
    }

    async fn delete_environment(&self, env: &Environment, now: i64) -> Result<()> {
        fleet::delete_environment(&self.pool, env, now).await
    }

    async fn freeze_environment(&self, env: &Environment, freeze: &Freeze, now: i64) -> Result<FreezeRow> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // An expired freeze no longer counts: it makes room for the new one.
        sqlx::query("DELETE FROM freezes WHERE env_id = ? AND NOT (created_at <= ? AND expires_at > ?)")
            .bind(env.id)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let inserted =
            sqlx::query("INSERT INTO freezes (env_id, owner, reason, created_at, expires_at) VALUES (?, ?, ?, ?, ?)")
                .bind(env.id)
                .bind(&freeze.owner)
                .bind(&freeze.reason)
                .bind(freeze.since)
                .bind(freeze.until)
                .execute(&mut *tx)
                .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
                let held = sqlx::query(sqlx::AssertSqlSafe(format!("{FREEZE_SELECT} WHERE f.env_id = ?")))
                    .bind(env.id)
                    .fetch_one(&mut *tx)
                    .await?;
                let held = freeze_row(&held)?;
                return Err(StoreError::Frozen { project: held.project, env: held.env, freeze: held.freeze });
            }
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
        Ok(FreezeRow { project: env.project.clone(), env: env.name.clone(), freeze: freeze.clone() })
    }

    async fn unfreeze_environment(&self, env: &Environment, now: i64) -> Result<Option<FreezeRow>> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let held =
            sqlx::query(sqlx::AssertSqlSafe(format!("{FREEZE_SELECT} WHERE f.env_id = ? AND {FREEZE_IN_FORCE}")))
                .bind(env.id)
                .bind(now)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
        let held = held.map(|r| freeze_row(&r)).transpose()?;
        sqlx::query("DELETE FROM freezes WHERE env_id = ?").bind(env.id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(held)
    }

    async fn environment_freeze(&self, env: &Environment, now: i64) -> Result<Option<FreezeRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{FREEZE_SELECT} WHERE f.env_id = ? AND {FREEZE_IN_FORCE}")))
            .bind(env.id)
            .bind(now)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| freeze_row(&r)).transpose()
    }

    async fn freezes(&self, project: Option<&Project>, now: i64) -> Result<Vec<FreezeRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{FREEZE_SELECT} WHERE {FREEZE_IN_FORCE} AND (? IS NULL OR e.project_id = ?) ORDER BY p.name, e.name"
        )))
        .bind(now)
        .bind(now)
        .bind(project.map(|p| p.id))
        .bind(project.map(|p| p.id))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(freeze_row).collect()
    }

    async fn set_var(&self, new: &NewVar, now: i64) -> Result<bool> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // `IS` matches NULL to NULL: the slot "any environment" is one slot.
        let replaced = sqlx::query(
            "UPDATE vars SET value = ?, secret = ?, updated_by = ?, updated_at = ? \
             WHERE project_id = ? AND env_id IS ? AND host_name IS ? AND key = ?",
        )
        .bind(&new.value)
        .bind(new.secret)
        .bind(&new.updated_by)
        .bind(now)
        .bind(new.slot.project_id)
        .bind(new.slot.env_id)
        .bind(new.slot.host.as_deref())
        .bind(&new.key)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if !replaced {
            sqlx::query(
                "INSERT INTO vars (project_id, env_id, host_name, key, value, secret, updated_by, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(new.slot.project_id)
            .bind(new.slot.env_id)
            .bind(new.slot.host.as_deref())
            .bind(&new.key)
            .bind(&new.value)
            .bind(new.secret)
            .bind(&new.updated_by)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(conflict(format!("variable {}", new.key)))?;
        }
        tx.commit().await?;
        Ok(replaced)
    }

    async fn unset_var(&self, slot: &VarSlot, key: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM vars WHERE project_id = ? AND env_id IS ? AND host_name IS ? AND key = ?")
            .bind(slot.project_id)
            .bind(slot.env_id)
            .bind(slot.host.as_deref())
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn vars(&self, project: &Project) -> Result<Vec<VarRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{VAR_SELECT} WHERE v.project_id = ? {VAR_ORDER}")))
            .bind(project.id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(var_row).collect()
    }

    async fn vars_for_host(&self, host_id: i64) -> Result<Vec<VarRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{VAR_SELECT} JOIN host_desired hd ON hd.project_id = v.project_id AND hd.host_id = ?1 \
             WHERE (v.env_id IS NULL OR v.env_id = hd.env_id) \
             AND (v.host_name IS NULL OR v.host_name = (SELECT name FROM hosts WHERE id = ?1 AND retired_at IS NULL)) \
             {VAR_ORDER}"
        )))
        .bind(host_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(var_row).collect()
    }

    async fn set_environment_order(&self, env: &Environment, after_env_id: Option<i64>, self_test: bool) -> Result<()> {
        promotion::set_order(&self.pool, env, after_env_id, self_test).await
    }
}
