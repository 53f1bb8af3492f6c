//! Health on SQLite: one query answers `ping`; the pool's counters answer `pool_use`.

use super::*;

#[async_trait]
impl Health for SqliteDatabase {
    async fn ping(&self) -> Result<()> {
        sqlx::query_scalar::<_, i64>("SELECT 1").fetch_one(&self.pool).await?;
        Ok(())
    }

    fn pool_use(&self) -> Option<PoolUse> {
        let (size, idle) = (self.pool.size(), u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX));
        Some(PoolUse { in_use: size.saturating_sub(idle), idle, max: self.pool.options().get_max_connections() })
    }
}
