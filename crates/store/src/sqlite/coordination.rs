//! Leases, claims and wake-ups in the SQLite file. Every write is one
//! `BEGIN IMMEDIATE` transaction or one statement, so the file's write lock
//! makes each check-and-take atomic across processes.

use super::*;

/// How long a published wake-up is kept: far longer than any reader's poll
/// period, short enough that the table stays small.
const WAKE_KEEP_MS: i64 = 5 * 60 * 1000;

#[async_trait]
impl Coordination for SqliteDatabase {
    async fn claim_lease(&self, name: &str, holder: &str, now: i64, ttl_ms: i64) -> Result<bool> {
        // One statement: insert, or take over a row that is ours or expired.
        let taken = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET holder = ?2, expires_at = ?3 \
             WHERE leases.holder = ?2 OR leases.expires_at <= ?4",
        )
        .bind(name)
        .bind(holder)
        .bind(now.saturating_add(ttl_ms))
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(taken.rows_affected() == 1)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM leases WHERE name = ? AND holder = ?")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn claim_build(&self, holder: &str, now: i64, ttl_ms: i64) -> Result<Option<Build>> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let id: Option<i64> = sqlx::query_scalar(
            "SELECT b.id FROM builds b WHERE b.status = 'queued' AND NOT EXISTS \
             (SELECT 1 FROM builds r WHERE r.project_id = b.project_id AND r.status = 'running') ORDER BY b.id LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else { return Ok(None) };
        sqlx::query(
            "UPDATE builds SET status = 'running', started_at = ?, lease_holder = ?, lease_expires_at = ? \
             WHERE id = ? AND status = 'queued'",
        )
        .bind(now)
        .bind(holder)
        .bind(now.saturating_add(ttl_ms))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.build(id).await.map(Some)
    }

    async fn renew_build_leases(&self, holder: &str, now: i64, ttl_ms: i64) -> Result<u64> {
        let done = sqlx::query("UPDATE builds SET lease_expires_at = ? WHERE status = 'running' AND lease_holder = ?")
            .bind(now.saturating_add(ttl_ms))
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn fail_expired_builds(&self, reason: &str, now: i64) -> Result<Vec<i64>> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "UPDATE builds SET status = 'failed', error = ?, finished_at = ? \
             WHERE status = 'running' AND COALESCE(lease_expires_at, 0) <= ? RETURNING id",
        )
        .bind(reason)
        .bind(now)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        Ok(ids)
    }

    async fn claim_due_notifications(
        &self,
        holder: &str,
        now: i64,
        ttl_ms: i64,
        limit: u32,
    ) -> Result<Vec<DueNotification>> {
        // Moving next_attempt_at past the claim's end is the claim: the row
        // is not due for anyone until then, or until an attempt is recorded.
        let ids: Vec<i64> = sqlx::query_scalar(
            "UPDATE notifications SET claimed_by = ?, next_attempt_at = ? WHERE id IN \
             (SELECT id FROM notifications WHERE status = 'pending' AND next_attempt_at <= ? \
              ORDER BY next_attempt_at, id LIMIT ?) RETURNING id",
        )
        .bind(holder)
        .bind(now.saturating_add(ttl_ms))
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut ids = ids;
        ids.sort_unstable();
        notify::claimed(&self.pool, holder, &ids).await
    }

    async fn publish_wake(&self, topic: &str, now: i64) -> Result<i64> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("DELETE FROM wakes WHERE at < ?").bind(now.saturating_sub(WAKE_KEEP_MS)).execute(&mut *tx).await?;
        let seq: i64 = sqlx::query_scalar("INSERT INTO wakes (topic, at) VALUES (?, ?) RETURNING seq")
            .bind(topic)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(seq)
    }

    async fn wakes_after(&self, seq: i64, limit: u32) -> Result<Vec<(i64, String)>> {
        let rows = sqlx::query_as("SELECT seq, topic FROM wakes WHERE seq > ? ORDER BY seq LIMIT ?")
            .bind(seq)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows)
    }

    async fn latest_wake(&self) -> Result<i64> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM wakes").fetch_one(&self.pool).await?;
        Ok(seq.unwrap_or(0))
    }
}
