//! Builds on SQLite: the queue, logs and webhook deliveries.

use super::*;

#[async_trait]
impl Builds for SqliteDatabase {
    async fn create_build(&self, new: &NewBuild, now: i64) -> Result<Build> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO builds (project_id, number, git_ref, status, trigger, requested_by, retry_of, created_at, \
             pushed_commit) \
             VALUES (?1, (SELECT COALESCE(MAX(number), 0) + 1 FROM builds WHERE project_id = ?1), ?2, 'queued', ?3, ?4, \
             ?5, ?6, ?7) RETURNING id",
        )
        .bind(new.project_id)
        .bind(&new.git_ref)
        .bind(&new.trigger)
        .bind(&new.requested_by)
        .bind(new.retry_of)
        .bind(now)
        .bind(&new.pushed_commit)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        self.build(id).await
    }

    async fn build(&self, id: i64) -> Result<Build> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{BUILD_SELECT} WHERE b.id = ?")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| build_row(&r)).transpose()?.ok_or_else(|| StoreError::NotFound(format!("build {id}")))
    }

    async fn build_by_number(&self, project: &Project, number: i64) -> Result<Build> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{BUILD_SELECT} WHERE b.project_id = ? AND b.number = ?")))
            .bind(project.id)
            .bind(number)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| build_row(&r))
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("build {number} of project '{}'", project.name)))
    }

    async fn builds(&self, project: &Project, limit: u32) -> Result<Vec<Build>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{BUILD_SELECT} WHERE b.project_id = ? ORDER BY b.number DESC LIMIT ?"
        )))
        .bind(project.id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(build_row).collect()
    }

    async fn latest_succeeded_build(&self, project: &Project) -> Result<Option<Build>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{BUILD_SELECT} WHERE b.project_id = ? AND b.status = 'succeeded' ORDER BY b.number DESC LIMIT 1"
        )))
        .bind(project.id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| build_row(&r)).transpose()
    }

    async fn queued_build_count(&self) -> Result<u64> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM builds WHERE status = 'queued'").fetch_one(&self.pool).await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn set_build_commit(&self, id: i64, c: &BuildCommit) -> Result<()> {
        sqlx::query(
            "UPDATE builds SET commit_sha = ?, branch = ?, tag = ?, author = ?, message = ?, committed_at = ? WHERE id = ?",
        )
        .bind(&c.sha)
        .bind(c.branch.as_deref())
        .bind(c.tag.as_deref())
        .bind(&c.author)
        .bind(&c.message)
        .bind(c.committed_at)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn finish_build(&self, id: i64, outcome: &BuildOutcome, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE builds SET status = ?, error = ?, version = COALESCE(?, version), release_id = ?, finished_at = ? \
             WHERE id = ? AND status IN ('queued', 'running')",
        )
        .bind(outcome.status.as_str())
        .bind(outcome.error.as_deref())
        .bind(outcome.version.as_deref())
        .bind(outcome.release_id)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn cancel_build(&self, id: i64, now: i64) -> Result<Build> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "UPDATE builds SET status = 'canceled', finished_at = ?, error = 'canceled before it started' \
             WHERE id = ? AND status = 'queued'",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE builds SET cancel_requested = 1 WHERE id = ? AND status = 'running'")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.build(id).await
    }

    async fn append_build_log(&self, id: i64, lines: &[(i64, String, String)]) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM build_logs WHERE build_id = ?")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        for (at, stream, line) in lines {
            seq += 1;
            sqlx::query("INSERT INTO build_logs (build_id, seq, at, stream, line) VALUES (?, ?, ?, ?, ?)")
                .bind(id)
                .bind(seq)
                .bind(at)
                .bind(stream)
                .bind(line)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn build_log(&self, id: i64, after: i64, limit: u32) -> Result<Vec<LogLine>> {
        let rows = sqlx::query(
            "SELECT seq, at, stream, line FROM build_logs WHERE build_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(id)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok(LogLine { seq: r.try_get(0)?, at: r.try_get(1)?, stream: r.try_get(2)?, line: r.try_get(3)? }))
            .collect()
    }

    async fn record_delivery(&self, project_id: i64, forge: &str, delivery_id: &str, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO webhook_deliveries (project_id, forge, delivery_id, received_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT DO NOTHING",
        )
        .bind(project_id)
        .bind(forge)
        .bind(delivery_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}
