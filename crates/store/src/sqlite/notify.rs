//! Notifications (R28): rules, and the outbox a delivery task works through.
//! Each function is one statement or one transaction.

use ferry_domain::Secret;
use ferry_domain::notify::{Channel, NotifyError};
use sqlx::{Row, SqlitePool};

use super::*;
use crate::model::*;
use crate::{Result, StoreError};

fn events_from(json: &str) -> Result<Vec<String>> {
    list_from("events", json)
}

fn list_from(what: &str, json: &str) -> Result<Vec<String>> {
    serde_json::from_str(json).map_err(|e| StoreError::Backend(format!("bad {what} in database: {e}")))
}

fn list_to(list: &[String]) -> Result<String> {
    serde_json::to_string(list).map_err(|e| StoreError::Backend(e.to_string()))
}

fn channel(r: &sqlx::sqlite::SqliteRow) -> Result<Channel> {
    r.try_get::<String, _>("kind")?.parse().map_err(|e: NotifyError| StoreError::Backend(format!("bad kind: {e}")))
}

fn rule_row(r: &sqlx::sqlite::SqliteRow) -> Result<NotificationRule> {
    Ok(NotificationRule {
        id: r.try_get("id")?,
        project: r.try_get("project")?,
        events: events_from(&r.try_get::<String, _>("events")?)?,
        kind: channel(r)?,
        webhook_url: r.try_get("webhook_url")?,
        recipients: list_from("recipients", &r.try_get::<String, _>("recipients")?)?,
        secret: r.try_get::<Option<String>, _>("secret")?.map(Secret::new),
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
    })
}

const RULE_SELECT: &str = "SELECT n.id, p.name AS project, n.events, n.kind, n.webhook_url, n.recipients, n.secret, \
     n.created_by, n.created_at FROM notification_rules n JOIN projects p ON p.id = n.project_id";

pub(super) async fn add_rule(
    pool: &SqlitePool,
    project: &Project,
    new: &NewNotificationRule,
    now: i64,
) -> Result<NotificationRule> {
    let events = serde_json::to_string(&new.events).map_err(|e| StoreError::Backend(e.to_string()))?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO notification_rules (project_id, events, kind, webhook_url, recipients, secret, created_by, \
         created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(project.id)
    .bind(events)
    .bind(new.kind.as_str())
    .bind(&new.webhook_url)
    .bind(list_to(&new.recipients)?)
    .bind(new.secret.as_ref().map(|s| s.expose()))
    .bind(&new.created_by)
    .bind(now)
    .fetch_one(pool)
    .await?;
    let row =
        sqlx::query(sqlx::AssertSqlSafe(format!("{RULE_SELECT} WHERE n.id = ?"))).bind(id).fetch_one(pool).await?;
    rule_row(&row)
}

pub(super) async fn rules(pool: &SqlitePool, project: &Project) -> Result<Vec<NotificationRule>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{RULE_SELECT} WHERE n.project_id = ? ORDER BY n.id")))
        .bind(project.id)
        .fetch_all(pool)
        .await?;
    rows.iter().map(rule_row).collect()
}

pub(super) async fn remove_rule(pool: &SqlitePool, project: &Project, id: i64) -> Result<bool> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let removed = sqlx::query("DELETE FROM notification_rules WHERE id = ? AND project_id = ?")
        .bind(id)
        .bind(project.id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        > 0;
    if removed {
        // Nobody wants what was still on its way there.
        sqlx::query(
            "UPDATE notifications SET status = 'failed', next_attempt_at = NULL WHERE rule_id = ? AND status = 'pending'",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(removed)
}

pub(super) async fn enqueue(
    pool: &SqlitePool,
    project_id: i64,
    event: &str,
    items: &[NewNotification],
    now: i64,
) -> Result<Vec<i64>> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let mut ids = Vec::new();
    for n in items {
        // A rule removed since the caller read it wants nothing more.
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO notifications (project_id, rule_id, kind, webhook_url, recipients, skipped, event, payload, \
             status, next_attempt_at, created_at) \
             SELECT ?, id, ?, ?, ?, ?, ?, ?, 'pending', ?, ? FROM notification_rules WHERE id = ? AND project_id = ? \
             RETURNING id",
        )
        .bind(project_id)
        .bind(n.kind.as_str())
        .bind(&n.webhook_url)
        .bind(list_to(&n.recipients)?)
        .bind(list_to(&n.skipped)?)
        .bind(event)
        .bind(&n.payload)
        .bind(now)
        .bind(now)
        .bind(n.rule_id)
        .bind(project_id)
        .fetch_optional(&mut *tx)
        .await?;
        ids.extend(id);
    }
    tx.commit().await?;
    Ok(ids)
}

/// The pending notifications among `ids` that `holder` has claimed, in the
/// order of `ids`.
pub(super) async fn claimed(pool: &SqlitePool, holder: &str, ids: &[i64]) -> Result<Vec<DueNotification>> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let row = sqlx::query(
            "SELECT n.id, p.name AS project, n.event, n.payload, n.attempts, n.kind, n.webhook_url, n.recipients, r.secret \
             FROM notifications n JOIN projects p ON p.id = n.project_id \
             JOIN notification_rules r ON r.id = n.rule_id \
             WHERE n.id = ? AND n.status = 'pending' AND n.claimed_by = ?",
        )
        .bind(id)
        .bind(holder)
        .fetch_optional(pool)
        .await?;
        if let Some(r) = row {
            out.push(due_row(&r)?);
        }
    }
    Ok(out)
}

fn due_row(r: &sqlx::sqlite::SqliteRow) -> Result<DueNotification> {
    Ok(DueNotification {
        id: r.try_get("id")?,
        project: r.try_get("project")?,
        event: r.try_get("event")?,
        payload: r.try_get("payload")?,
        attempts: u32::try_from(r.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
        kind: channel(r)?,
        webhook_url: r.try_get("webhook_url")?,
        recipients: list_from("recipients", &r.try_get::<String, _>("recipients")?)?,
        secret: r.try_get::<Option<String>, _>("secret")?.map(Secret::new),
    })
}

pub(super) async fn record_attempt(
    pool: &SqlitePool,
    id: i64,
    attempt: &NotificationAttempt,
    outcome: NotificationOutcome,
) -> Result<()> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let (status, next) = match outcome {
        NotificationOutcome::Delivered => ("delivered", None),
        NotificationOutcome::RetryAt(at) => ("pending", Some(at)),
        NotificationOutcome::GaveUp => ("failed", None),
    };
    let n: i64 = sqlx::query_scalar(
        "UPDATE notifications SET attempts = attempts + 1, status = ?, next_attempt_at = ? \
         WHERE id = ? AND status = 'pending' RETURNING attempts",
    )
    .bind(status)
    .bind(next)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| StoreError::Refused(format!("notification {id} is not waiting for delivery")))?;
    sqlx::query(
        "INSERT INTO notification_attempts (notification_id, attempt, at, status_code, error) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(id)
    .bind(n)
    .bind(attempt.at)
    .bind(attempt.status_code.map(i64::from))
    .bind(&attempt.error)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn log(pool: &SqlitePool, project: &Project, limit: u32) -> Result<Vec<NotificationLogRow>> {
    let rows = sqlx::query(
        "SELECT id, event, kind, webhook_url, recipients, skipped, status, created_at FROM notifications \
         WHERE project_id = ? \
         ORDER BY id DESC LIMIT ?",
    )
    .bind(project.id)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let id: i64 = r.try_get("id")?;
        let attempts = sqlx::query(
            "SELECT at, status_code, error FROM notification_attempts WHERE notification_id = ? ORDER BY attempt",
        )
        .bind(id)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|a| {
            Ok(NotificationAttempt {
                at: a.try_get("at")?,
                status_code: a.try_get::<Option<i64>, _>("status_code")?.and_then(|c| u16::try_from(c).ok()),
                error: a.try_get("error")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        out.push(NotificationLogRow {
            id,
            event: r.try_get("event")?,
            kind: channel(r)?,
            webhook_url: r.try_get("webhook_url")?,
            recipients: list_from("recipients", &r.try_get::<String, _>("recipients")?)?,
            skipped: list_from("skipped", &r.try_get::<String, _>("skipped")?)?,
            status: r.try_get("status")?,
            created_at: r.try_get("created_at")?,
            attempts,
        });
    }
    Ok(out)
}

#[async_trait]
impl Notifications for SqliteDatabase {
    async fn add_notification_rule(
        &self,
        project: &Project,
        new: &NewNotificationRule,
        now: i64,
    ) -> Result<NotificationRule> {
        notify::add_rule(&self.pool, project, new, now).await
    }

    async fn notification_rules(&self, project: &Project) -> Result<Vec<NotificationRule>> {
        notify::rules(&self.pool, project).await
    }

    async fn remove_notification_rule(&self, project: &Project, id: i64) -> Result<bool> {
        notify::remove_rule(&self.pool, project, id).await
    }

    async fn enqueue_notifications(
        &self,
        project_id: i64,
        event: &str,
        items: &[NewNotification],
        now: i64,
    ) -> Result<Vec<i64>> {
        notify::enqueue(&self.pool, project_id, event, items, now).await
    }

    async fn record_notification_attempt(
        &self,
        id: i64,
        attempt: &NotificationAttempt,
        outcome: NotificationOutcome,
    ) -> Result<()> {
        notify::record_attempt(&self.pool, id, attempt, outcome).await
    }

    async fn notification_log(&self, project: &Project, limit: u32) -> Result<Vec<NotificationLogRow>> {
        notify::log(&self.pool, project, limit).await
    }
}

#[cfg(test)]
mod tests {
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

    use super::*;
    use crate::sqlite::{MIGRATIONS, SqliteDatabase};

    /// Rules, notifications and users written before channels existed stay
    /// valid: webhooks, with nobody addressed and no address.
    #[tokio::test]
    async fn rows_from_before_channels_are_webhooks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ferry.db");
        let options = SqliteConnectOptions::new().filename(&path).create_if_missing(true);
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await.unwrap();
        sqlx::query("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER)")
            .execute(&pool)
            .await
            .unwrap();
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v <= 11) {
            sqlx::raw_sql(sqlx::AssertSqlSafe(*sql)).execute(&pool).await.unwrap();
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)")
                .bind(version)
                .execute(&pool)
                .await
                .unwrap();
        }
        for sql in [
            "INSERT INTO projects (id, name, keep_releases, created_at) VALUES (1, 'web', 5, 1)",
            "INSERT INTO users (name, is_admin, created_at) VALUES ('ann', 0, 1)",
            "INSERT INTO notification_rules (project_id, events, webhook_url, created_by, created_at) \
             VALUES (1, '[\"deploy.finished\"]', 'http://a', 'admin', 1)",
            "INSERT INTO notifications (project_id, rule_id, webhook_url, event, payload, status, created_at) \
             VALUES (1, 1, 'http://a', 'deploy.finished', '{}', 'delivered', 2)",
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await.unwrap();
        }
        pool.close().await;

        let db = SqliteDatabase::open(&path).await.unwrap();
        let p = db.project("web").await.unwrap();
        let rules = db.notification_rules(&p).await.unwrap();
        assert_eq!(
            (rules[0].kind, rules[0].webhook_url.as_str(), rules[0].recipients.len()),
            (Channel::Webhook, "http://a", 0)
        );
        let log = db.notification_log(&p, 10).await.unwrap();
        assert_eq!((log[0].kind, log[0].recipients.len(), log[0].skipped.len()), (Channel::Webhook, 0, 0));
        assert_eq!(db.user("ann").await.unwrap().email, None);
    }
}
