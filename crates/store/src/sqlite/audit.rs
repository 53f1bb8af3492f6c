//! The audit trail on SQLite: `audit_log`, chained entry by entry.

use super::*;

#[async_trait]
impl Audit for SqliteDatabase {
    async fn append_audit(&self, e: &NewAuditEntry, key: &AuditKey) -> Result<AuditEntry> {
        // BEGIN IMMEDIATE: two appends at once must not both chain to the
        // same last entry.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let last: Option<(i64, String)> = sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
        let (last_seq, prev_hash) = last.unwrap_or_else(|| (0, GENESIS_HASH.to_string()));
        let record = AuditRecord {
            seq: last_seq + 1,
            at: e.at,
            actor: e.actor.clone(),
            source: e.source.clone(),
            action: e.action.clone(),
            object: e.object.clone(),
            outcome: e.outcome.clone(),
            summary: e.summary.clone(),
        };
        let hash = key.entry_hash(&prev_hash, &record);
        let scheme = Scheme::Keyed.as_str();
        sqlx::query(
            "INSERT INTO audit_log (seq, at, actor, source, action, object, outcome, summary, prev_hash, hash, scheme) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(record.seq)
        .bind(record.at)
        .bind(&record.actor)
        .bind(&record.source)
        .bind(&record.action)
        .bind(&record.object)
        .bind(&record.outcome)
        .bind(&record.summary)
        .bind(&prev_hash)
        .bind(&hash)
        .bind(scheme)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(AuditEntry { record, scheme: scheme.to_string(), prev_hash, hash })
    }

    async fn audit_log(&self, f: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let mut sql = format!("{AUDIT_SELECT} WHERE 1 = 1");
        if f.project.is_some() {
            // The object is `key=value` pairs separated by spaces.
            sql.push_str(" AND (' ' || object || ' ') LIKE ? ESCAPE '\\'");
        }
        if f.actor.is_some() {
            sql.push_str(" AND actor = ?");
        }
        if f.since.is_some() {
            sql.push_str(" AND at >= ?");
        }
        sql.push_str(" ORDER BY seq DESC LIMIT ?");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(p) = &f.project {
            q = q.bind(format!("% project={} %", like_escape(p)));
        }
        if let Some(a) = &f.actor {
            q = q.bind(a.clone());
        }
        if let Some(t) = f.since {
            q = q.bind(t);
        }
        q.bind(i64::from(f.limit)).fetch_all(&self.pool).await?.iter().map(audit_row).collect()
    }

    async fn audit_chain(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>> {
        sqlx::query(sqlx::AssertSqlSafe(format!("{AUDIT_SELECT} WHERE seq > ? ORDER BY seq LIMIT ?")))
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(audit_row)
            .collect()
    }

    async fn audit_head(&self) -> Result<Option<AuditEntry>> {
        sqlx::query(sqlx::AssertSqlSafe(format!("{AUDIT_SELECT} ORDER BY seq DESC LIMIT 1")))
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(audit_row)
            .transpose()
    }

    async fn audit_first_with_scheme(&self, scheme: &str) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar("SELECT MIN(seq) FROM audit_log WHERE scheme = ?")
            .bind(scheme)
            .fetch_one(&self.pool)
            .await?)
    }
}
