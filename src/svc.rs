//! `ferry svc`: the operator's view of the services the local agent
//! supervises, over the agent's control socket; logs are read straight from
//! `shared/log/`, so they work with the agent down.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
use ferry_agent::control::{self, Request};
use ferry_agent::supervisor::{Action, STDERR_LOG, STDOUT_LOG, ServiceStatus};
use ferry_cli::Output;

use crate::args::{SvcArgs, SvcCmd};

pub async fn run(args: SvcArgs, output: Output) -> Result<()> {
    let root = args.root.unwrap_or_default();
    let (action, project) = match args.action {
        SvcCmd::Logs { project, lines, stream, follow } => {
            return logs(&root, &project, lines, stream.as_deref(), follow).await;
        }
        SvcCmd::Status { project } => (None, project),
        SvcCmd::Start { project } => (Some(Action::Start), Some(project)),
        SvcCmd::Stop { project } => (Some(Action::Stop), Some(project)),
        SvcCmd::Restart { project } => (Some(Action::Restart), Some(project)),
    };
    let resp =
        control::request(&root, &Request { action, project: project.clone() }).await.map_err(anyhow::Error::msg)?;
    output.print(&resp.services, |services| table(services))?;
    if let Some(e) = resp.error {
        bail!("{e}");
    }
    if action.is_none() && project.is_some() && resp.services.is_empty() {
        bail!("no service is known for that project on this host");
    }
    Ok(())
}

fn table(services: &[ServiceStatus]) -> String {
    let rows = services
        .iter()
        .map(|s| {
            vec![
                s.project.clone(),
                s.state.clone(),
                s.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                s.uptime_secs
                    .map(|u| humantime::format_duration(Duration::from_secs(u)).to_string())
                    .unwrap_or_else(|| "-".into()),
                s.restarts.to_string(),
                s.last_exit.clone().unwrap_or_else(|| "-".into()),
                s.release.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    ferry_cli::output::table(&["PROJECT", "STATE", "PID", "UPTIME", "RESTARTS", "LAST EXIT", "RELEASE"], rows)
}

async fn logs(root: &Path, project: &str, lines: usize, stream: Option<&str>, follow: bool) -> Result<()> {
    let dir =
        ferry_agent::layout::ProjectLayout::new(root, project).shared_dir().join(ferry_agent::supervisor::LOG_DIR);
    let files: Vec<(&str, std::path::PathBuf)> = [("stdout", STDOUT_LOG), ("stderr", STDERR_LOG)]
        .into_iter()
        .filter(|(name, _)| stream.is_none_or(|s| s == *name))
        .map(|(name, file)| (name, dir.join(file)))
        .collect();
    if files.iter().all(|(_, f)| !f.exists()) {
        bail!("no service output for '{project}' under {}", dir.display());
    }
    // The service's user owns these files: read without following a link.
    let log_dir = ferry_agent::supervisor::open_log_dir(&dir, false)?;
    let mut offsets = Vec::new();
    for (name, file) in &files {
        let file_name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let tail = ferry_agent::supervisor::tail_lines(&log_dir, file_name, 0, lines);
        for line in tail {
            println!("{}{line}", if *name == "stderr" && stream.is_none() { "stderr: " } else { "" });
        }
        offsets.push(std::fs::metadata(file).map(|m| m.len()).unwrap_or(0));
    }
    if !follow {
        return Ok(());
    }
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        for ((name, file), offset) in files.iter().zip(offsets.iter_mut()) {
            let len = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
            if len < *offset {
                *offset = 0; // rotated
            }
            if len == *offset {
                continue;
            }
            let file_name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let mut f = log_dir.open_read(std::path::Path::new(file_name))?;
            f.seek(SeekFrom::Start(*offset))?;
            let mut buf = Vec::new();
            f.read_to_end(&mut buf)?;
            *offset += buf.len() as u64;
            let text = String::from_utf8_lossy(&buf);
            let mut out = std::io::stdout().lock();
            for line in text.lines() {
                writeln!(out, "{}{line}", if *name == "stderr" && stream.is_none() { "stderr: " } else { "" })?;
            }
        }
    }
}

/// After a manual rollback: the agent restarts the service on the release
/// now active; with no agent running, this command does it itself and the
/// agent adopts the process when it starts.
pub async fn restart_after_rollback(root: &Path, project: &str) -> Result<String> {
    let req = Request { action: Some(Action::Restart), project: Some(project.to_string()) };
    match control::request(root, &req).await {
        Ok(resp) => match resp.error {
            Some(e) if e.contains("has no [service]") => Ok("no service to restart".into()),
            Some(e) => bail!("the agent could not restart the service: {e}"),
            None => Ok(describe(resp.services.first())),
        },
        Err(_) => {
            let defaults = ferry_agent::config::ServiceDefaults::load(root);
            let supervisor = ferry_agent::supervisor_for(root, &defaults);
            supervisor.deploy(project).await.map_err(|e| anyhow::anyhow!("restarting the service: {e}"))?;
            Ok(describe(supervisor.status(Some(project)).await.first()))
        }
    }
}

fn describe(status: Option<&ServiceStatus>) -> String {
    match status {
        Some(ServiceStatus { pid: Some(pid), .. }) => format!("service restarted (pid {pid})"),
        Some(_) | None => "no service to restart".into(),
    }
}
