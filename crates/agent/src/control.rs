//! The agent's local control socket, `<root>/.ferry/agent.sock` (mode
//! 0600: only the agent's own user may use it), behind `ferry svc`.
//!
//! One request per connection: a JSON line in, a JSON line out.

use std::path::{Path, PathBuf};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::supervisor::{Action, ServiceStatus, Supervisor};

/// What `ferry svc` asks.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Request {
    /// `None` asks for the status.
    pub action: Option<Action>,
    /// Required for actions; for the status, `None` means every project.
    pub project: Option<String>,
}

/// The agent's answer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Response {
    pub services: Vec<ServiceStatus>,
    pub error: Option<String>,
}

pub fn socket_path(root: &Path) -> PathBuf {
    root.join(".ferry").join("agent.sock")
}

/// Listens on the control socket until the returned task is aborted.
pub fn serve(root: &Path, supervisor: Supervisor) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(root);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // A socket file left by an agent that died cannot be bound over.
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let supervisor = supervisor.clone();
            tokio::spawn(async move {
                if let Err(e) = answer(stream, &supervisor).await {
                    tracing::debug!("control connection: {e}");
                }
            });
        }
    }))
}

async fn answer(stream: UnixStream, supervisor: &Supervisor) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await?;
    let response = match serde_json::from_str::<Request>(&line) {
        Err(e) => Response { services: Vec::new(), error: Some(format!("bad request: {e}")) },
        Ok(Request { action: None, project }) => {
            Response { services: supervisor.status(project.as_deref()).await, error: None }
        }
        Ok(Request { action: Some(action), project: Some(project) }) => {
            match supervisor.control(&project, action).await {
                Ok(status) => Response { services: vec![status], error: None },
                Err(e) => Response { services: supervisor.status(Some(&project)).await, error: Some(e) },
            }
        }
        Ok(Request { action: Some(_), project: None }) => {
            Response { services: Vec::new(), error: Some("name the project".into()) }
        }
    };
    let mut json = serde_json::to_vec(&response).map_err(std::io::Error::other)?;
    json.push(b'\n');
    write.write_all(&json).await
}

/// Sends one request to the agent running with `root`.
pub async fn request(root: &Path, req: &Request) -> Result<Response, String> {
    let path = socket_path(root);
    let stream = UnixStream::connect(&path).await.map_err(|e| {
        format!("no agent answers at {} ({e}); is `ferry agent --root {}` running?", path.display(), root.display())
    })?;
    let (read, mut write) = stream.into_split();
    let mut json = serde_json::to_vec(req).map_err(|e| e.to_string())?;
    json.push(b'\n');
    write.write_all(&json).await.map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await.map_err(|e| e.to_string())?;
    serde_json::from_str(&line).map_err(|e| format!("unexpected answer from the agent: {e}"))
}
