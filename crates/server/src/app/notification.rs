//! Notification rules and the delivery log (R28). Delivering is
//! `crate::notify`'s.

use ferry_domain::notify::{Channel, check_url, parse_events, parse_recipients};
use ferry_domain::{Secret, rfc3339_from_millis};
use ferry_proto::api::{AddNotificationRule, NotificationAttemptInfo, NotificationInfo, NotificationRuleInfo};
use ferry_store::{NewNotificationRule, NotificationRule, User};

use crate::AppState;
use crate::error::{AppError, AppResult};
use crate::notify::notify_context;

fn rule_info(r: NotificationRule) -> NotificationRuleInfo {
    NotificationRuleInfo {
        id: r.id,
        project: r.project,
        events: r.events,
        kind: r.kind.to_string(),
        webhook: r.webhook_url,
        to: r.recipients,
        secret_set: r.secret.is_some(),
        created_by: r.created_by,
        created_at: rfc3339_from_millis(r.created_at),
    }
}

/// Adds a rule. Everything is checked before anything is stored: a refused
/// rule changes nothing; a secret is sealed, bound to the project and URL.
pub(crate) async fn add(
    state: &AppState,
    user: &User,
    project: &str,
    req: AddNotificationRule,
) -> AppResult<NotificationRuleInfo> {
    let bad = |e: ferry_domain::notify::NotifyError| AppError::BadRequest(e.to_string());
    let events = parse_events(&req.events.join(",")).map_err(bad)?;
    let kind: Channel = req.kind.as_deref().unwrap_or("webhook").parse().map_err(bad)?;
    let url = req.webhook.trim().to_string();
    let secret = req.secret.filter(|s| !s.is_empty());
    let recipients = match kind {
        Channel::Email => {
            if state.mailer.is_none() {
                return Err(AppError::BadRequest(
                    "e-mail rules need the server's SMTP settings: start `ferry server` with --smtp-url \
                     (and --smtp-from)"
                        .into(),
                ));
            }
            if !url.is_empty() {
                return Err(AppError::BadRequest("an e-mail rule takes --to, not --url".into()));
            }
            if secret.is_some() {
                return Err(AppError::BadRequest("--secret signs webhook bodies; an e-mail rule takes none".into()));
            }
            parse_recipients(&req.to.join(",")).map_err(bad)?.iter().map(ToString::to_string).collect()
        }
        _ => {
            if !req.to.is_empty() {
                return Err(AppError::BadRequest(format!(
                    "--to is for e-mail rules; a {kind} rule posts to its --url"
                )));
            }
            if url.is_empty() {
                return Err(AppError::BadRequest(format!("a {kind} rule needs --url (its incoming-webhook address)")));
            }
            check_url(&url).map_err(bad)?;
            if kind.is_chat() && secret.is_some() {
                return Err(AppError::BadRequest(format!(
                    "--secret signs Ferry's own webhook bodies; a {kind} rule takes none"
                )));
            }
            Vec::new()
        }
    };
    let project = state.db.project(project).await?;
    // Sealed before it reaches the database, bound to the project and URL.
    let secret = match secret {
        Some(s) => Some(Secret::new(
            state
                .secrets
                .seal(&s, &notify_context(&project.name, &url))
                .map_err(|e| AppError::Internal(format!("sealing the secret: {e}")))?,
        )),
        None => None,
    };
    let new = NewNotificationRule { events, kind, webhook_url: url, recipients, secret, created_by: user.name.clone() };
    let rule = state.db.add_notification_rule(&project, &new, crate::now_ms()).await?;
    Ok(rule_info(rule))
}

/// A project's rules.
pub(crate) async fn list(state: &AppState, project: &str) -> AppResult<Vec<NotificationRuleInfo>> {
    let project = state.db.project(project).await?;
    Ok(state.db.notification_rules(&project).await?.into_iter().map(rule_info).collect())
}

/// Removes a rule; returns the rules left.
pub(crate) async fn remove(state: &AppState, project: &str, id: i64) -> AppResult<Vec<NotificationRuleInfo>> {
    let project = state.db.project(project).await?;
    if !state.db.remove_notification_rule(&project, id).await? {
        return Err(AppError::NotFound(format!("project '{}' has no notification rule {id}", project.name)));
    }
    Ok(state.db.notification_rules(&project).await?.into_iter().map(rule_info).collect())
}

/// What was sent, or tried, newest first.
pub(crate) async fn log(state: &AppState, project: &str, limit: u32) -> AppResult<Vec<NotificationInfo>> {
    let project = state.db.project(project).await?;
    let rows = state.db.notification_log(&project, limit).await?;
    Ok(rows
        .into_iter()
        .map(|n| NotificationInfo {
            id: n.id,
            event: n.event,
            kind: n.kind.to_string(),
            webhook: n.webhook_url,
            recipients: n.recipients,
            skipped: n.skipped,
            status: n.status,
            created_at: rfc3339_from_millis(n.created_at),
            attempts: n
                .attempts
                .into_iter()
                .map(|a| NotificationAttemptInfo {
                    at: rfc3339_from_millis(a.at),
                    status_code: a.status_code,
                    error: a.error,
                })
                .collect(),
        })
        .collect())
}
