//! Notifications (R28): where a deployment or a build ends, the event goes
//! into the store's outbox, one notification per rule that wants it; a
//! background task delivers them as JSON POSTs signed with the rule's secret
//! (HMAC-SHA256 of the body), tries again with backoff
//! (`ferry_domain::notify::retry_at`) and records every attempt. The outbox
//! is in the database, so a restarted server goes on delivering.

use std::time::Duration;

use ferry_domain::notify::retry_at;
use ferry_domain::rfc3339_from_millis;
use ferry_store::{DueNotification, NotificationAttempt, NotificationOutcome};

use crate::{AppState, now_ms};

/// `sha256=<hex>`: the HMAC-SHA256 of the body with the rule's secret.
pub const SIGNATURE_HEADER: &str = "x-ferry-signature";
/// The event's name.
pub const EVENT_HEADER: &str = "x-ferry-event";
/// The notification's id: the same on every attempt, for receivers that
/// must not act twice.
pub const DELIVERY_HEADER: &str = "x-ferry-delivery";

/// How long a receiver may take to answer.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the outbox is looked at.
const POLL: Duration = Duration::from_millis(250);

/// The associated data of a notification rule's secret.
pub fn notify_context(project: &str, url: &str) -> String {
    format!("notify\0{project}\0{url}")
}

/// The signature header's value for `body`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", crate::webhook::sign(secret, body))
}

/// Queues `event` of a project for every rule that wants it. Never fails
/// the caller: what ended has ended, whether anyone hears of it or not.
pub async fn emit(state: &AppState, project: &str, event: &str, subject: serde_json::Value) {
    let result = async {
        let p = state.db.project(project).await?;
        let body = serde_json::json!({
            "event": event,
            "project": project,
            "at": rfc3339_from_millis(now_ms()),
            "data": subject,
        });
        state.db.enqueue_notifications(p.id, event, &body.to_string(), now_ms()).await
    }
    .await;
    if let Err(e) = result {
        tracing::error!(project, event, "queueing notifications: {e}");
    }
}

/// Delivers due notifications until `stop`.
pub async fn run_delivery(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let http = match reqwest::Client::builder().timeout(ATTEMPT_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("notifications are off: building the HTTP client: {e}");
            return;
        }
    };
    loop {
        match state.db.due_notifications(now_ms(), 50).await {
            Ok(due) => {
                for n in due {
                    deliver(&state, &http, n).await;
                }
            }
            Err(e) => tracing::error!("reading due notifications: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = stop.changed() => return,
        }
    }
}

/// One attempt, recorded with what follows from it.
async fn deliver(state: &AppState, http: &reqwest::Client, n: DueNotification) {
    let made = n.attempts + 1;
    let mut req = http
        .post(&n.webhook_url)
        .header("content-type", "application/json")
        .header(EVENT_HEADER, &n.event)
        .header(DELIVERY_HEADER, n.id.to_string())
        .body(n.payload.clone());
    let mut refused = None;
    if let Some(sealed) = &n.secret {
        match state.secrets.open(sealed.expose(), &notify_context(&n.project, &n.webhook_url)) {
            Ok(secret) => req = req.header(SIGNATURE_HEADER, sign(secret.expose(), n.payload.as_bytes())),
            Err(e) => refused = Some(format!("cannot open the rule's secret: {e}")),
        }
    }
    let (status_code, error) = match refused {
        // An unsigned body must not go where a signed one is expected.
        Some(error) => (None, Some(error)),
        None => match req.send().await {
            Ok(resp) if resp.status().is_success() => (Some(resp.status().as_u16()), None),
            Ok(resp) => (Some(resp.status().as_u16()), Some(format!("the receiver answered {}", resp.status()))),
            Err(e) => (None, Some(format!("sending: {e}"))),
        },
    };
    let now = now_ms();
    let outcome = match &error {
        None => NotificationOutcome::Delivered,
        Some(_) => retry_at(made, now).map_or(NotificationOutcome::GaveUp, NotificationOutcome::RetryAt),
    };
    if let Some(e) = &error {
        tracing::warn!(notification = n.id, attempt = made, url = %n.webhook_url, "notification not delivered: {e}");
    }
    let attempt = NotificationAttempt { at: now, status_code, error };
    if let Err(e) = state.db.record_notification_attempt(n.id, &attempt, outcome).await {
        tracing::error!(notification = n.id, "recording a delivery attempt: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_in_hex() {
        // RFC 4231, test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
