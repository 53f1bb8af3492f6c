//! Agent binaries and agent upgrades (R33): uploading a binary (signed by
//! the server's key), listing them, and starting or reading an
//! environment's upgrade. Stepping an upgrade and what agents are told is
//! `crate::agent_upgrade`'s.

use std::path::Path;

use ferry_domain::rfc3339_from_millis;
use ferry_domain::rollout::{PlanHost, plan};
use ferry_proto::api::{AgentBinaryInfo, AgentUpgradeHostInfo, AgentUpgradeInfo, SetAgentUpgrade};
use ferry_store::{AgentBinary, AgentUpgrade, NewAgentBinary, User};
use futures_util::{Stream, StreamExt};
use sha2::{Digest as _, Sha256};

use crate::error::{AppError, AppResult};
use crate::{AppState, fleet, now_ms};

/// The largest agent binary accepted.
const MAX_BINARY: u64 = 1024 * 1024 * 1024;

fn binary_info(b: AgentBinary) -> AgentBinaryInfo {
    AgentBinaryInfo {
        version: b.version,
        sha256: b.sha256,
        size: b.size,
        uploaded_by: b.uploaded_by,
        uploaded_at: rfc3339_from_millis(b.uploaded_at),
    }
}

fn internal(e: impl std::fmt::Display) -> AppError {
    AppError::Internal(e.to_string())
}

/// Refuses a version label that is not one, or is taken, before the upload
/// is read.
pub(crate) async fn check_new_version(state: &AppState, version: &str) -> AppResult<()> {
    ferry_domain::validate_version(version)?;
    match state.db.agent_binary(version).await {
        Ok(b) => Err(AppError::Conflict(format!("agent binary version '{}' already exists ({})", b.version, b.sha256))),
        Err(_) => Ok(()),
    }
}

/// Stores an agent binary under `version`: hashed as it arrives, fsynced,
/// and signed with the server's key over the digest the server computed.
pub(crate) async fn upload<S, B, E>(
    state: &AppState,
    caller: &User,
    version: &str,
    body: S,
) -> AppResult<AgentBinaryInfo>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    check_new_version(state, version).await?;
    let dir = crate::agent_upgrade::binaries_dir(state);
    tokio::fs::create_dir_all(&dir).await.map_err(internal)?;
    let tmp = dir.join(format!(".upload-{}", crate::auth::new_token("u")));
    let result = receive(&tmp, body).await;
    let (sha256, size) = match result {
        Ok(v) => v,
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
    };
    if size == 0 {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(AppError::BadRequest("the agent binary is empty".into()));
    }
    tokio::fs::rename(&tmp, dir.join(&sha256)).await.map_err(internal)?;
    let new = NewAgentBinary {
        version: version.to_string(),
        signature: state.upgrade_key.sign(&sha256, version),
        sha256,
        size: i64::try_from(size).unwrap_or(i64::MAX),
        uploaded_by: caller.name.clone(),
        uploaded_at: now_ms(),
    };
    let row = state.db.add_agent_binary(&new).await?;
    tracing::info!(version = %row.version, sha256 = %row.sha256, size, by = %caller.name, "agent binary uploaded");
    Ok(binary_info(row))
}

/// Writes the upload to `tmp` (fsynced), answering its SHA-256 and size.
async fn receive<S, B, E>(tmp: &Path, mut stream: S) -> AppResult<(String, u64)>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    use tokio::io::AsyncWriteExt;
    let mut file = tokio::fs::OpenOptions::new().write(true).create_new(true).open(tmp).await.map_err(internal)?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| AppError::BadRequest(format!("upload interrupted: {e}")))?;
        let chunk = chunk.as_ref();
        size += chunk.len() as u64;
        if size > MAX_BINARY {
            return Err(AppError::BadRequest(format!("an agent binary may be at most {MAX_BINARY} bytes")));
        }
        hasher.update(chunk);
        file.write_all(chunk).await.map_err(internal)?;
    }
    file.sync_all().await.map_err(internal)?;
    Ok((hex::encode(hasher.finalize()), size))
}

/// The agent binaries the server holds.
pub(crate) async fn list(state: &AppState) -> AppResult<Vec<AgentBinaryInfo>> {
    Ok(state.db.agent_binaries().await?.into_iter().map(binary_info).collect())
}

fn upgrade_info(u: AgentUpgrade, project: &str, env: &str) -> AgentUpgradeInfo {
    AgentUpgradeInfo {
        id: u.id,
        project: project.to_string(),
        env: env.to_string(),
        version: u.binary.version,
        sha256: u.binary.sha256,
        status: u.status,
        error: u.error,
        created_by: u.created_by,
        hosts: u
            .hosts
            .into_iter()
            .map(|h| AgentUpgradeHostInfo {
                host: h.host,
                batch: h.batch,
                state: h.state.to_string(),
                error: h.error,
                running_version: h.running_version,
                running_digest: h.running_digest,
            })
            .collect(),
    }
}

/// Upgrades the environment's agents to an uploaded binary, batch by batch
/// with the environment's rollout strategy.
pub(crate) async fn set(
    state: &AppState,
    caller: &User,
    project: &str,
    env: &str,
    req: SetAgentUpgrade,
) -> AppResult<AgentUpgradeInfo> {
    let p = state.db.project(project).await?;
    let e = state.db.environment(&p, env).await?;
    let binary = state.db.agent_binary(&req.version).await?;
    let hosts = fleet::env_hosts(state, &e).await?;
    if hosts.is_empty() {
        return Err(AppError::BadRequest(format!("environment '{env}' of '{project}' has no hosts to upgrade")));
    }
    let plan_hosts: Vec<PlanHost<'_>> =
        hosts.iter().map(|h| PlanHost { id: h.id, name: &h.name, tags: &h.tags }).collect();
    let batches = plan(&e.rollout.strategy, &plan_hosts).map_err(|e| AppError::BadRequest(e.to_string()))?;
    let id = state.db.create_agent_upgrade(e.id, binary.id, &batches, &caller.name, now_ms()).await?;
    tracing::info!(%project, %env, version = %binary.version, id, "agent upgrade started");
    crate::agent_upgrade::step(state, id).await?;
    let upgrade = state.db.agent_upgrade(id).await?.ok_or_else(|| AppError::Internal("upgrade vanished".into()))?;
    Ok(upgrade_info(upgrade, project, env))
}

/// The environment's newest agent upgrade.
pub(crate) async fn status(state: &AppState, project: &str, env: &str) -> AppResult<AgentUpgradeInfo> {
    let p = state.db.project(project).await?;
    let e = state.db.environment(&p, env).await?;
    match state.db.latest_agent_upgrade(e.id).await? {
        Some(u) => Ok(upgrade_info(u, project, env)),
        None => Err(AppError::NotFound(format!("no agent upgrade of environment '{env}' of '{project}'"))),
    }
}
