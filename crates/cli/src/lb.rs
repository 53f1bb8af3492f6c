//! `ferry env lb set|show|unset` (the load balancer in front of an
//! environment) and `ferry lb drain|ready` (taking hosts out of it and back,
//! for maintenance by hand).

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use ferry_proto::api::{LbChange, LbHosts, LbProgressInfo, LoadBalancerInfo, SetLoadBalancer};

use crate::output::{table, time};
use crate::{Client, Output};

/// How often a drain or ready asks whether the load-balancer hosts applied it.
const POLL: Duration = Duration::from_millis(200);

fn path(project: &str, env: &str) -> String {
    format!("/api/v1/projects/{project}/environments/{env}/lb")
}

/// `ferry env lb set`.
pub async fn set(c: &Client, project: &str, env: &str, req: SetLoadBalancer, out: Output) -> Result<()> {
    let info: LoadBalancerInfo = c.post(&path(project, env), &req).await?;
    out.print(&info, describe)
}

/// `ferry env lb show`.
pub async fn show(c: &Client, project: &str, env: &str, out: Output) -> Result<()> {
    let info: LoadBalancerInfo = c.get(&path(project, env)).await?;
    out.print(&info, describe)
}

/// `ferry env lb unset`.
pub async fn unset(c: &Client, project: &str, env: &str) -> Result<()> {
    let _: serde_json::Value = c.delete(&path(project, env)).await?;
    println!(
        "removed the load balancer of {project}/{env}; the balancer keeps the state its hosts last gave it \
         (for nginx, the upstream file stays)"
    );
    Ok(())
}

fn describe(lb: &LoadBalancerInfo) -> String {
    let status = if lb.applied { "applied" } else { "not applied yet" };
    let mut text = format!(
        "load balancer of {}/{}: {} on the hosts {}, backend address {}\ngeneration {} ({status}), set by {} at {}\n",
        lb.project,
        lb.env,
        lb.driver,
        lb.select,
        lb.backend,
        lb.generation,
        lb.updated_by,
        time(&lb.updated_at)
    );
    let options: Vec<String> = lb.options.iter().map(|(k, v)| format!("--{k} '{v}'")).collect();
    text.push_str(&format!("options: {}\n\n", options.join(" ")));
    let rows = lb
        .backends
        .iter()
        .map(|b| {
            vec![
                b.host.clone(),
                b.address.clone().unwrap_or("?".into()),
                if b.drained { "drained".into() } else { "serving".into() },
                if b.online { "online".into() } else { "OFFLINE".into() },
            ]
        })
        .collect();
    text.push_str(&table(&["BACKEND", "ADDRESS", "BALANCER", "HOST"], rows));
    text.push('\n');
    let rows = lb
        .lb_hosts
        .iter()
        .map(|h| {
            vec![
                h.host.clone(),
                if h.online { "online".into() } else { "OFFLINE".into() },
                h.applied_generation.map(|g| g.to_string()).unwrap_or("-".into()),
                h.applied_at.as_deref().map(time).unwrap_or("-".into()),
                h.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    text.push_str(&table(&["LB HOST", "STATE", "APPLIED", "AT", "ERROR"], rows));
    if !lb.errors.is_empty() {
        text.push_str("\nproblems:\n");
        for e in &lb.errors {
            text.push_str(&format!("  {e}\n"));
        }
    }
    text
}

/// `ferry lb drain` (`drain` true) and `ferry lb ready`: records the change,
/// then unless `wait` is `None` waits until every load-balancer host applied
/// it, failing on an error a host reports or after `wait`.
pub async fn change(
    c: &Client,
    project: &str,
    env: &str,
    hosts: Vec<String>,
    drain: bool,
    wait: Option<Duration>,
    out: Output,
) -> Result<()> {
    let action = if drain { "drain" } else { "ready" };
    let names = hosts.join(", ");
    let change: LbChange = c.post(&format!("{}/{action}", path(project, env)), &LbHosts { hosts }).await?;
    let what = if drain { "out of" } else { "back into" };
    if out == Output::Table {
        println!("{names}: {what} the load balancer of {project}/{env} (generation {})", change.generation);
    }
    let Some(wait) = wait else {
        if out == Output::Json {
            out.print(&change, |_| String::new())?;
        }
        return Ok(());
    };
    let started = Instant::now();
    let progress_path = format!("{}/applied?generation={}", path(project, env), change.generation);
    loop {
        let p: LbProgressInfo = c.get(&progress_path).await?;
        if !p.errors.is_empty() {
            bail!(
                "generation {} of the load balancer of {project}/{env} is recorded but not applied: {}",
                change.generation,
                p.errors.join("; ")
            );
        }
        if p.done {
            let by: Vec<&str> = p.lb_hosts.iter().map(|h| h.host.as_str()).collect();
            return out.print(&p, |_| format!("applied by {}\n", by.join(", ")));
        }
        if started.elapsed() > wait {
            let waiting: Vec<String> = p
                .lb_hosts
                .iter()
                .filter(|h| h.applied_generation.is_none_or(|g| g < change.generation))
                .map(|h| if h.online { h.host.clone() } else { format!("{} (offline)", h.host) })
                .collect();
            bail!(
                "generation {} of the load balancer of {project}/{env} is recorded, but {} did not apply it within \
                 {} s; see `ferry env lb show {project} {env}`",
                change.generation,
                waiting.join(", "),
                wait.as_secs()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}
