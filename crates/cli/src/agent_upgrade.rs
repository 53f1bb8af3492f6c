//! `ferry agent-upgrade`: agent binaries on the server, and upgrading an
//! environment's agents to one of them.

use std::path::Path;

use anyhow::{Context, Result};
use ferry_proto::api::{AgentBinaryInfo, AgentUpgradeInfo, SetAgentUpgrade};

use crate::output::{bytes, table, time};
use crate::{Client, Output};

/// The first 12 hex digits of a digest, as tables show it.
pub fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

/// `ferry agent-upgrade upload FILE --version V`: streams the file; the
/// server computes its SHA-256 and signs it.
pub async fn upload(c: &Client, file: &Path, version: &str, out: Output) -> Result<()> {
    let data = tokio::fs::read(file).await.with_context(|| format!("reading {}", file.display()))?;
    let path = format!("/api/v1/agent-binaries?version={}", crate::client::percent_encode(version));
    let resp = c
        .http
        .post(c.url(&path))
        .bearer_auth(c.token())
        .header("content-type", "application/octet-stream")
        .body(data)
        .send()
        .await;
    let info: AgentBinaryInfo = crate::client::decode(&path, resp).await?;
    out.print(&info, |b| {
        format!("uploaded agent binary {} ({}, sha256 {})\n", b.version, bytes(b.size.max(0) as u64), b.sha256)
    })
}

/// `ferry agent-upgrade list`.
pub async fn list(c: &Client, out: Output) -> Result<()> {
    let list: Vec<AgentBinaryInfo> = c.get("/api/v1/agent-binaries").await?;
    out.print(&list, |l| {
        table(
            &["VERSION", "SHA256", "SIZE", "UPLOADED BY", "UPLOADED AT"],
            l.iter()
                .map(|b| {
                    vec![
                        b.version.clone(),
                        b.sha256.clone(),
                        bytes(b.size.max(0) as u64),
                        b.uploaded_by.clone(),
                        time(&b.uploaded_at),
                    ]
                })
                .collect(),
        )
    })
}

/// `ferry agent-upgrade set PROJECT ENV VERSION`.
pub async fn set(c: &Client, project: &str, env: &str, version: &str, out: Output) -> Result<()> {
    let path = format!("/api/v1/projects/{project}/environments/{env}/agent-upgrade");
    let info: AgentUpgradeInfo = c.post(&path, &SetAgentUpgrade { version: version.to_string() }).await?;
    out.print(&info, status_text)
}

/// `ferry agent-upgrade status PROJECT ENV`.
pub async fn status(c: &Client, project: &str, env: &str, out: Output) -> Result<()> {
    let path = format!("/api/v1/projects/{project}/environments/{env}/agent-upgrade");
    let info: AgentUpgradeInfo = c.get(&path).await?;
    out.print(&info, status_text)
}

fn status_text(u: &AgentUpgradeInfo) -> String {
    let mut s = format!(
        "agent upgrade {} of {}/{} to {} ({}): {}{}\n",
        u.id,
        u.project,
        u.env,
        u.version,
        short(&u.sha256),
        u.status,
        u.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default()
    );
    s.push_str(&table(
        &["HOST", "BATCH", "RUNNING", "TARGET", "STATE", "ERROR"],
        u.hosts
            .iter()
            .map(|h| {
                vec![
                    h.host.clone(),
                    h.batch.to_string(),
                    match (&h.running_version, &h.running_digest) {
                        (v, Some(d)) => format!("{} ({})", v.as_deref().unwrap_or("-"), short(d)),
                        _ => "-".into(),
                    },
                    u.version.clone(),
                    h.state.clone(),
                    h.error.clone().unwrap_or_default(),
                ]
            })
            .collect(),
    ));
    s
}
