//! Releases and project blobs on SQLite.

use super::*;

#[async_trait]
impl Releases for SqliteDatabase {
    async fn add_project_blobs(&self, project_id: i64, digests: &[ferry_domain::Digest]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for d in digests {
            sqlx::query("INSERT OR IGNORE INTO project_blobs (project_id, digest) VALUES (?, ?)")
                .bind(project_id)
                .bind(d.to_hex())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn project_blobs_missing(
        &self,
        project_id: i64,
        digests: &[ferry_domain::Digest],
    ) -> Result<Vec<ferry_domain::Digest>> {
        let mut held = std::collections::HashSet::new();
        // A release has thousands of blobs: asked in chunks, one query each.
        for chunk in digests.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(",");
            let sql = format!("SELECT digest FROM project_blobs WHERE project_id = ? AND digest IN ({marks})");
            let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql)).bind(project_id);
            for d in chunk {
                q = q.bind(d.to_hex());
            }
            held.extend(q.fetch_all(&self.pool).await?);
        }
        let mut seen = std::collections::HashSet::new();
        Ok(digests.iter().filter(|d| !held.contains(&d.to_hex()) && seen.insert(**d)).copied().collect())
    }

    async fn create_release(&self, new: NewRelease, now: i64) -> Result<Release> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO releases (project_id, version, branch, committer, manifest_digest, file_count, total_size, \
             created_by, created_at, build_id, commit_sha, committed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             RETURNING id",
        )
        .bind(new.project_id)
        .bind(&new.version)
        .bind(&new.branch)
        .bind(&new.committer)
        .bind(new.manifest_digest.to_hex())
        .bind(i64::try_from(new.file_count).unwrap_or(i64::MAX))
        .bind(i64::try_from(new.total_size).unwrap_or(i64::MAX))
        .bind(&new.created_by)
        .bind(now)
        .bind(new.origin.as_ref().map(|o| o.build_id))
        .bind(new.origin.as_ref().map(|o| o.commit_sha.as_str()))
        .bind(new.origin.as_ref().and_then(|o| o.committed_at))
        .fetch_one(&self.pool)
        .await
        .map_err(conflict(format!("version '{}'", new.version)))?;
        self.release_by_id(id).await
    }

    async fn release(&self, project: &Project, version: &str) -> Result<Release> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RELEASE_COLS} FROM releases WHERE project_id = ? AND version = ?"
        )))
        .bind(project.id)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| release_row(&r))
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("version '{version}' of project '{}'", project.name)))
    }

    async fn release_by_id(&self, id: i64) -> Result<Release> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {RELEASE_COLS} FROM releases WHERE id = ?")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| release_row(&r)).transpose()?.ok_or_else(|| StoreError::NotFound(format!("release {id}")))
    }

    async fn releases(&self, project: &Project) -> Result<Vec<Release>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RELEASE_COLS} FROM releases WHERE project_id = ? ORDER BY id DESC"
        )))
        .bind(project.id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(release_row).collect()
    }

    async fn set_release_mark(&self, release_id: i64, mark: Option<&BadMark>) -> Result<Release> {
        let done = sqlx::query("UPDATE releases SET bad_by = ?, bad_reason = ?, bad_at = ? WHERE id = ?")
            .bind(mark.map(|m| m.by.as_str()))
            .bind(mark.map(|m| m.reason.as_str()))
            .bind(mark.map(|m| m.at))
            .bind(release_id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("release {release_id}")));
        }
        self.release_by_id(release_id).await
    }

    async fn release_succeeded_hosts(&self, env: &Environment, release_id: i64) -> Result<Vec<i64>> {
        promotion::succeeded_hosts(&self.pool, env, release_id).await
    }
}
