//! `ferry notify add|list|remove` and `ferry notifications log`: a project's
//! events sent to webhooks, e-mail and chats (R28).

use anyhow::Result;
use ferry_proto::api::{AddNotificationRule, NotificationInfo, NotificationRuleInfo};

use crate::output::{table, time};
use crate::{Client, Output};

/// Where a rule sends: its URL, or for e-mail its recipients.
fn target(r: &NotificationRuleInfo) -> String {
    if r.kind == "email" { r.to.join(",") } else { r.webhook.clone() }
}

/// `ferry notify add PROJECT --event E,... [--kind K] (--url URL | --to WHOM) [--secret S|-]`.
pub async fn add(c: &Client, project: &str, req: AddNotificationRule, out: Output) -> Result<()> {
    let r: NotificationRuleInfo = c.post(&format!("/api/v1/projects/{project}/notifications"), &req).await?;
    out.print(&r, |r| {
        let how = match r.kind.as_str() {
            "webhook" if r.secret_set => " (webhook, signed: x-ferry-signature)".to_string(),
            "webhook" => " (webhook, unsigned)".to_string(),
            "email" => " by e-mail".to_string(),
            other => format!(" ({other})"),
        };
        format!("rule {}: {} of {} go to {}{how}\n", r.id, r.events.join(", "), r.project, target(r))
    })
}

fn rules_table(rules: &[NotificationRuleInfo]) -> String {
    if rules.is_empty() {
        return "no notification rules\n".into();
    }
    table(
        &["ID", "EVENTS", "KIND", "TARGET", "SIGNED", "BY", "SINCE"],
        rules
            .iter()
            .map(|r| {
                vec![
                    r.id.to_string(),
                    r.events.join(","),
                    r.kind.clone(),
                    target(r),
                    if r.secret_set { "yes".into() } else { "no".into() },
                    r.created_by.clone(),
                    time(&r.created_at),
                ]
            })
            .collect(),
    )
}

/// `ferry notify list PROJECT`.
pub async fn list(c: &Client, project: &str, out: Output) -> Result<()> {
    let rules: Vec<NotificationRuleInfo> = c.get(&format!("/api/v1/projects/{project}/notifications")).await?;
    out.print(&rules, |r| rules_table(r))
}

/// `ferry notify remove PROJECT ID`.
pub async fn remove(c: &Client, project: &str, id: i64, out: Output) -> Result<()> {
    let rules: Vec<NotificationRuleInfo> = c.delete(&format!("/api/v1/projects/{project}/notifications/{id}")).await?;
    out.print(&rules, |r| format!("removed rule {id}\n{}", rules_table(r)))
}

/// `ferry notifications log PROJECT [--limit N]`: newest first, every attempt.
pub async fn log(c: &Client, project: &str, limit: u32, out: Output) -> Result<()> {
    let list: Vec<NotificationInfo> =
        c.get(&format!("/api/v1/projects/{project}/notifications/log?limit={limit}")).await?;
    out.print(&list, |list| {
        if list.is_empty() {
            return "no notifications\n".into();
        }
        let mut text = String::new();
        for n in list {
            let to = if n.kind == "email" { n.recipients.join(", ") } else { n.webhook.clone() };
            let to = if to.is_empty() { "nobody".to_string() } else { to };
            text.push_str(&format!("{}  {}  {}  {}  {}  {to}\n", n.id, time(&n.created_at), n.event, n.status, n.kind));
            if !n.skipped.is_empty() {
                text.push_str(&format!("    skipped: {}\n", n.skipped.join(", ")));
            }
            for (i, a) in n.attempts.iter().enumerate() {
                let code = a.status_code.map(|c| c.to_string()).unwrap_or_else(|| "-".into());
                let what = a.error.as_deref().unwrap_or("delivered");
                text.push_str(&format!("    attempt {}  {}  {code}  {what}\n", i + 1, time(&a.at)));
            }
        }
        text
    })
}
