//! `ferry lock|unlock|locks` and `ferry release mark-bad|mark-good`: what
//! stops a deployment before it starts.

use anyhow::Result;
use ferry_proto::api::{CreateFreeze, LockInfo, LockKind, MarkBad, ReleaseInfo};

use crate::output::{table, time};
use crate::{Client, Output};

/// `ferry lock PROJECT ENV --reason TEXT --for DURATION`.
pub async fn lock(c: &Client, project: &str, env: &str, req: CreateFreeze, out: Output) -> Result<()> {
    let l: LockInfo = c.post(&format!("/api/v1/projects/{project}/environments/{env}/freeze"), &req).await?;
    out.print(&l, |l| {
        format!(
            "froze {}/{} until {}: {}\ndeployments there are refused until then, or until `ferry unlock {} {}`\n",
            l.project,
            l.env,
            l.expires_at.as_deref().map(time).unwrap_or_default(),
            l.reason,
            l.project,
            l.env
        )
    })
}

/// `ferry unlock PROJECT ENV`.
pub async fn unlock(c: &Client, project: &str, env: &str, out: Output) -> Result<()> {
    let l: LockInfo = c.delete(&format!("/api/v1/projects/{project}/environments/{env}/freeze")).await?;
    out.print(&l, |l| format!("lifted the freeze of {}/{} (taken by {}: {})\n", l.project, l.env, l.owner, l.reason))
}

/// `ferry locks [PROJECT]`.
pub async fn locks(c: &Client, project: Option<&str>, out: Output) -> Result<()> {
    let path = match project {
        Some(p) => format!("/api/v1/locks?project={p}"),
        None => "/api/v1/locks".to_string(),
    };
    let list: Vec<LockInfo> = c.get(&path).await?;
    out.print(&list, |l| {
        if l.is_empty() {
            return "no environment is locked: no freeze in force, no deployment running\n".to_string();
        }
        table(
            &["PROJECT", "ENV", "LOCK", "OWNER", "SINCE", "UNTIL", "REASON"],
            l.iter()
                .map(|l| {
                    vec![
                        l.project.clone(),
                        l.env.clone(),
                        match (l.kind, l.deployment) {
                            (LockKind::Deployment, Some(id)) => format!("deployment {id}"),
                            (LockKind::Deployment, None) => "deployment".into(),
                            (LockKind::Freeze, _) => "freeze".into(),
                        },
                        l.owner.clone(),
                        time(&l.since),
                        l.expires_at.as_deref().map(time).unwrap_or_else(|| "it ends".into()),
                        l.reason.clone(),
                    ]
                })
                .collect(),
        )
    })
}

/// `ferry release mark-bad PROJECT VERSION --reason TEXT`.
pub async fn mark_bad(c: &Client, project: &str, version: &str, reason: String, out: Output) -> Result<()> {
    let r: ReleaseInfo =
        c.post(&format!("/api/v1/projects/{project}/releases/{version}/bad"), &MarkBad { reason }).await?;
    out.print(&r, |r| {
        let reason = r.bad.as_ref().map(|m| m.reason.as_str()).unwrap_or_default();
        format!(
            "marked {} {} bad: {reason}\nrollbacks skip it; deploying it is refused unless --force; hosts running it \
             keep it until you deploy or roll back\n",
            r.project, r.version
        )
    })
}

/// `ferry release mark-good PROJECT VERSION`.
pub async fn mark_good(c: &Client, project: &str, version: &str, out: Output) -> Result<()> {
    let r: ReleaseInfo = c.delete(&format!("/api/v1/projects/{project}/releases/{version}/bad")).await?;
    out.print(&r, |r| format!("{} {} is no longer marked bad\n", r.project, r.version))
}
