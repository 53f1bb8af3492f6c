//! `ferry request ...` (R24) and `ferry env update --require-approval|--staging`.

use anyhow::{Context, Result};
use ferry_proto::api::{CreateRequest, EnvironmentInfo, RequestActionBody, RequestInfo, SetProtection};

use crate::output::{table, time};
use crate::{Client, Output};

/// `ferry env update PROJECT ENV --require-approval true|false --staging ENV|none`.
pub async fn env_set_protection(c: &Client, project: &str, env: &str, req: SetProtection, out: Output) -> Result<()> {
    let path = format!("/api/v1/projects/{project}/environments/{env}/protection");
    let e: EnvironmentInfo = c.post(&path, &req).await?;
    out.print(&e, |e| {
        let approval = if e.requires_approval {
            "deployments need an approved release request"
        } else {
            "deployments need no approval"
        };
        let staging = match &e.staging {
            Some(s) => format!("requests are tested on {s} first"),
            None => "requests are tested nowhere first".into(),
        };
        let after = match &e.after {
            Some(a) => format!("versions come from {a} (succeeded on all its hosts)"),
            None => "comes after no environment".into(),
        };
        let self_test =
            if e.self_test { "requesters may pass their own requests" } else { "someone else passes a request" };
        format!("{}/{}: {approval}; {staging}; {after}; {self_test}\n", e.project, e.name)
    })
}

/// `ferry request create PROJECT ENV ...`.
pub async fn create(c: &Client, project: &str, req: CreateRequest, out: Output) -> Result<()> {
    let r: RequestInfo = c.post(&format!("/api/v1/projects/{project}/requests"), &req).await?;
    out.print(&r, |r| {
        let mut text = format!("request {}: {} {} to {}/{}, {}\n", r.id, r.kind, r.version, r.project, r.env, r.state);
        if let Some(note) = r.history.iter().rev().find(|e| e.action == "staging").and_then(|e| e.note.as_deref()) {
            text.push_str(&format!("staging: {note}\n"));
        }
        text.push_str(&format!("waiting for {}\n", r.waiting_for));
        text
    })
}

/// `ferry request list [PROJECT] [--state S] [--mine] [--waiting]`.
pub async fn list(
    c: &Client,
    project: Option<&str>,
    state: Option<&str>,
    mine: bool,
    waiting: bool,
    out: Output,
) -> Result<()> {
    let mut query = vec![format!("mine={mine}"), format!("waiting={waiting}")];
    if let Some(s) = state {
        query.push(format!("state={s}"));
    }
    let path = match project {
        Some(p) => format!("/api/v1/projects/{p}/requests?{}", query.join("&")),
        None => format!("/api/v1/requests?{}", query.join("&")),
    };
    let list: Vec<RequestInfo> = c.get(&path).await?;
    out.print(&list, |list| {
        if list.is_empty() {
            return "no requests\n".into();
        }
        let rows = list
            .iter()
            .map(|r| {
                vec![
                    r.id.to_string(),
                    format!("{}/{}", r.project, r.env),
                    r.kind.to_string(),
                    r.version.clone(),
                    r.state.to_string(),
                    r.requester.clone(),
                    time(&r.updated_at),
                    r.reason.clone(),
                ]
            })
            .collect();
        table(&["ID", "PROJECT/ENV", "KIND", "VERSION", "STATE", "REQUESTER", "UPDATED", "REASON"], rows)
    })
}

/// `ferry request show ID`: where it stands, its deployments, its history.
pub async fn show(c: &Client, id: i64, out: Output) -> Result<()> {
    let r: RequestInfo = c.get(&format!("/api/v1/requests/{id}")).await?;
    out.print(&r, describe)
}

fn describe(r: &RequestInfo) -> String {
    let build = r.build.map(|b| format!(" (build {b})")).unwrap_or_default();
    let mut text = format!(
        "request {}: {} {}{build} to {}/{}\nstate: {}\nrequested by {} at {}: {}\n",
        r.id,
        r.kind,
        r.version,
        r.project,
        r.env,
        r.state,
        r.requester,
        time(&r.created_at),
        r.reason
    );
    if let Some(s) = &r.staging {
        text.push_str(&format!("tested on: {s}\n"));
    }
    text.push_str(&format!("waiting for: {}\n", r.waiting_for));
    if !r.deployments.is_empty() {
        text.push_str("\ndeployments:\n");
        let rows = r
            .deployments
            .iter()
            .map(|d| {
                vec![d.id.to_string(), d.env.clone(), d.version.clone(), d.status.to_string(), time(&d.created_at)]
            })
            .collect();
        text.push_str(&table(&["ID", "ENV", "VERSION", "STATUS", "STARTED"], rows));
    }
    text.push_str("\nhistory:\n");
    let rows = r
        .history
        .iter()
        .map(|e| {
            let change = match e.from {
                Some(from) if from == e.to => e.to.to_string(),
                Some(from) => format!("{from} -> {}", e.to),
                None => e.to.to_string(),
            };
            let mut note = e.note.clone().unwrap_or_default();
            if let (Some(d), false) = (e.deployment, note.contains("deployment")) {
                note = format!("{note} (deployment {d})").trim().to_string();
            }
            vec![time(&e.at), e.actor.clone(), e.action.clone(), change, e.version.clone().unwrap_or_default(), note]
        })
        .collect();
    text.push_str(&table(&["WHEN", "WHO", "ACTION", "STATE", "VERSION", "NOTE"], rows));
    text
}

/// `ferry request pass|send-back|resubmit|approve|reject|withdraw ID`.
pub async fn act(c: &Client, id: i64, action: &str, body: &RequestActionBody, out: Output) -> Result<()> {
    let r: RequestInfo = c.post(&format!("/api/v1/requests/{id}/{action}"), body).await?;
    out.print(&r, |r| {
        let mut text = format!("request {}: {}\n", r.id, r.state);
        if action == "resubmit"
            && let Some(note) = r.history.iter().rev().find(|e| e.action == "staging").and_then(|e| e.note.as_deref())
        {
            text.push_str(&format!("staging: {note}\n"));
        }
        text.push_str(&format!("waiting for {}\n", r.waiting_for));
        text
    })
}

/// `ferry request release ID [--wait]`: starts the deployment, and with
/// `--wait` follows it as `ferry deploy --wait` does.
pub async fn release(c: &Client, id: i64, wait: bool, out: Output) -> Result<()> {
    let r: RequestInfo = c.post(&format!("/api/v1/requests/{id}/release"), &RequestActionBody::default()).await?;
    let deployment = r
        .deployments
        .iter()
        .find(|d| d.env == r.env)
        .with_context(|| format!("request {id} is {} but shows no deployment", r.state))?;
    if out == Output::Table {
        println!("request {}: releasing {} to {}/{}", r.id, r.version, r.project, r.env);
    }
    let d = c.get(&format!("/api/v1/deployments/{}", deployment.id)).await?;
    crate::commands::started(c, d, wait, out).await
}
