//! Notifications (R28): rules, the outbox and the delivery log.

use async_trait::async_trait;

use crate::Result;
use crate::model::*;

/// Notification rules, the outbox of notifications waiting to be delivered,
/// and every delivery attempt.
#[async_trait]
pub trait Notifications: Send + Sync {
    /// Adds a notification rule to the project and returns it.
    ///
    /// Concurrency: One statement; the rule is read back after it.
    async fn add_notification_rule(
        &self,
        project: &Project,
        new: &NewNotificationRule,
        now: i64,
    ) -> Result<NotificationRule>;

    /// A project's rules, oldest first.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn notification_rules(&self, project: &Project) -> Result<Vec<NotificationRule>>;

    /// Removes a rule of the project, giving up on what it still had to
    /// deliver; false if the project has no such rule. What it delivered
    /// stays in the log.
    ///
    /// Concurrency: One transaction: the rule goes and its pending notifications fail together;
    /// exactly one of concurrent callers gets `true`.
    async fn remove_notification_rule(&self, project: &Project, id: i64) -> Result<bool>;

    /// Records these notifications of `event` in one transaction, due at
    /// once; one whose rule was removed meanwhile is left out. Returns the
    /// ids of those recorded.
    ///
    /// Concurrency: One transaction: all of an event's notifications or none.
    async fn enqueue_notifications(
        &self,
        project_id: i64,
        event: &str,
        items: &[NewNotification],
        now: i64,
    ) -> Result<Vec<i64>>;

    /// Records an attempt and what follows from it, in one transaction.
    /// Refused for a notification that is not waiting (delivered, given up).
    ///
    /// Concurrency: One transaction: the attempt is logged and the row
    /// rescheduled or ended together.
    async fn record_notification_attempt(
        &self,
        id: i64,
        attempt: &NotificationAttempt,
        outcome: NotificationOutcome,
    ) -> Result<()>;

    /// A project's notifications, newest first, at most `limit`, each with
    /// its attempts.
    ///
    /// Concurrency: Read-only; may be stale by the time it returns.
    async fn notification_log(&self, project: &Project, limit: u32) -> Result<Vec<NotificationLogRow>>;
}
