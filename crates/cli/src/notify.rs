//! `ferry notify add|list|remove` and `ferry notifications log`: a project's
//! events sent to webhooks (R28).

use anyhow::Result;
use ferry_proto::api::{AddNotificationRule, NotificationInfo, NotificationRuleInfo};

use crate::output::{table, time};
use crate::{Client, Output};

/// `ferry notify add PROJECT --event E,... --webhook URL [--secret S|-]`.
pub async fn add(c: &Client, project: &str, req: AddNotificationRule, out: Output) -> Result<()> {
    let r: NotificationRuleInfo = c.post(&format!("/api/v1/projects/{project}/notifications"), &req).await?;
    out.print(&r, |r| {
        format!(
            "rule {}: {} of {} go to {}{}\n",
            r.id,
            r.events.join(", "),
            r.project,
            r.webhook,
            if r.secret_set { ", signed (x-ferry-signature)" } else { ", unsigned" }
        )
    })
}

fn rules_table(rules: &[NotificationRuleInfo]) -> String {
    if rules.is_empty() {
        return "no notification rules\n".into();
    }
    table(
        &["ID", "EVENTS", "WEBHOOK", "SIGNED", "BY", "SINCE"],
        rules
            .iter()
            .map(|r| {
                vec![
                    r.id.to_string(),
                    r.events.join(","),
                    r.webhook.clone(),
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
            text.push_str(&format!("{}  {}  {}  {}  {}\n", n.id, time(&n.created_at), n.event, n.status, n.webhook));
            for (i, a) in n.attempts.iter().enumerate() {
                let code = a.status_code.map(|c| c.to_string()).unwrap_or_else(|| "-".into());
                let what = a.error.as_deref().unwrap_or("delivered");
                text.push_str(&format!("    attempt {}  {}  {code}  {what}\n", i + 1, time(&a.at)));
            }
        }
        text
    })
}
