//! Agent self-upgrade: the agent binaries the server holds, the key they are
//! signed with, and the upgrade of an environment's agents batch by batch.
//!
//! - **Binaries** are uploaded by an administrator (`app::agent_upgrade`;
//!   they run as root on every host), stored in `DATA/agent-binaries/<sha256>` with the SHA-256 the
//!   server computed while receiving them, and signed with the server's
//!   Ed25519 key (`DATA/agent-signing.key`, 0600, made once). Agents learn
//!   the public key at enrolment (or, enrolled earlier, in the `Welcome` of
//!   their authenticated channel) and run a binary only when its bytes hash
//!   to the signed digest: a file swapped or altered on the server's disk is
//!   refused by every agent.
//! - **An upgrade** (`app::agent_upgrade::set`) plans the environment's hosts in batches with
//!   its rollout strategy (`ferry_domain::rollout::plan`) and records them;
//!   `step` asks `ferry_domain::agent_upgrade::next_step` and applies it:
//!   a batch's hosts are told to upgrade (`ServerMsg::Upgrade`, sent on every
//!   desired-state push while they are upgrading), a host is done when it
//!   says hello running the binary, failed when its agent reports the upgrade
//!   failed; one failed host ends the upgrade as failed and later batches
//!   are never told.
//!
//! Never: serve a binary to a host that is not upgrading to it, take a
//! host's word about another host, or send an order whose signature the
//! server did not make.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use ferry_domain::agent_upgrade::{HostUpgradeState, UpgradeStep, next_step, signed_message};
use ferry_proto::agent::UpgradeOrder;
use ferry_store::{AgentBinary, AgentUpgrade, Host};
use ring::signature::{Ed25519KeyPair, KeyPair};

use crate::auth::AgentCaller;
use crate::error::{AppError, AppResult};
use crate::{AppState, now_ms};

/// Errors loading or making the signing key.
#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is not an Ed25519 key made by Ferry: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// The server's Ed25519 key pair for agent binaries.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    /// The public key, hex.
    pub public_hex: String,
}

impl SigningKey {
    /// Loads `DATA/agent-signing.key`, or makes it on the first start.
    pub fn load_or_create(data: &Path) -> Result<SigningKey, SigningKeyError> {
        let path = data.join("agent-signing.key");
        let io = |source| SigningKeyError::Io { path: path.clone(), source };
        let pkcs8 = match std::fs::read_to_string(&path) {
            Ok(text) => hex::decode(text.trim())
                .map_err(|e| SigningKeyError::Corrupt { path: path.clone(), reason: e.to_string() })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let rng = ring::rand::SystemRandom::new();
                let doc = Ed25519KeyPair::generate_pkcs8(&rng)
                    .map_err(|e| SigningKeyError::Corrupt { path: path.clone(), reason: e.to_string() })?;
                crate::init::write_secret(&path, &hex::encode(doc.as_ref())).map_err(io)?;
                doc.as_ref().to_vec()
            }
            Err(e) => return Err(io(e)),
        };
        let pair = Ed25519KeyPair::from_pkcs8(&pkcs8)
            .map_err(|e| SigningKeyError::Corrupt { path: path.clone(), reason: e.to_string() })?;
        let public_hex = hex::encode(pair.public_key().as_ref());
        Ok(SigningKey { pair, public_hex })
    }

    /// The signature of a binary's digest and version, hex.
    pub(crate) fn sign(&self, sha256: &str, version: &str) -> String {
        hex::encode(self.pair.sign(&signed_message(sha256, version)).as_ref())
    }
}

/// Where the agent binaries are kept, by their SHA-256.
pub(crate) fn binaries_dir(state: &AppState) -> PathBuf {
    state.config.data_dir.join("agent-binaries")
}

/// Moves an upgrade on: starts its next batch, or ends it. A host that
/// already runs the target when its batch starts is done at once.
pub async fn step(state: &AppState, id: i64) -> AppResult<()> {
    loop {
        let Some(upgrade) = state.db.agent_upgrade(id).await? else { return Ok(()) };
        if upgrade.status != "running" {
            return Ok(());
        }
        let mut moved = false;
        for h in &upgrade.hosts {
            if h.state == HostUpgradeState::Upgrading && h.running_digest.as_deref() == Some(&upgrade.binary.sha256) {
                let from = [HostUpgradeState::Upgrading];
                moved |= state
                    .db
                    .set_agent_upgrade_host(id, h.host_id, &from, HostUpgradeState::Done, None, now_ms())
                    .await?;
            }
        }
        if moved {
            continue;
        }
        if !one_step(state, upgrade).await? {
            return Ok(());
        }
    }
}

/// Applies the next step; answers whether to look again (a batch started).
async fn one_step(state: &AppState, upgrade: AgentUpgrade) -> AppResult<bool> {
    let id = upgrade.id;
    let hosts: Vec<(u32, HostUpgradeState)> = upgrade.hosts.iter().map(|h| (h.batch, h.state)).collect();
    let again = matches!(next_step(&hosts), UpgradeStep::StartBatch(_));
    match next_step(&hosts) {
        UpgradeStep::Wait => {}
        UpgradeStep::StartBatch(batch) => {
            let started = state.db.start_agent_upgrade_batch(id, batch, now_ms()).await?;
            tracing::info!(id, batch, hosts = started.len(), "agent upgrade: batch started");
            state.hub.wake(started);
        }
        UpgradeStep::Succeeded => {
            state.db.finish_agent_upgrade(id, true, None, now_ms()).await?;
            tracing::info!(id, "agent upgrade succeeded");
        }
        UpgradeStep::Failed => {
            let why = upgrade
                .hosts
                .iter()
                .find(|h| h.state == HostUpgradeState::Failed)
                .map(|h| format!("host '{}': {}", h.host, h.error.as_deref().unwrap_or("failed")))
                .unwrap_or_else(|| "a host failed".into());
            state.db.finish_agent_upgrade(id, false, Some(&why), now_ms()).await?;
            tracing::warn!(id, "agent upgrade failed: {why}");
        }
    }
    state.hub.changed(None);
    Ok(again)
}

/// A host's agent said hello: records what it runs; a host upgrading to the
/// binary it now runs is done, and one whose agent cannot upgrade itself
/// (no digest: it predates self-upgrade) has failed.
pub async fn hello(state: &AppState, host: &Host, digest: Option<&str>, version: Option<&str>) -> AppResult<()> {
    state.db.set_host_binary(host.id, version, digest).await?;
    settle(state, host, digest).await
}

/// Moves the host's rows of running upgrades on what its connected agent
/// runs: done when it runs the target, failed when it cannot upgrade itself
/// (it would never understand the order).
pub async fn settle(state: &AppState, host: &Host, digest: Option<&str>) -> AppResult<()> {
    for upgrade in state.db.running_agent_upgrades_of_host(host.id).await? {
        let upgrading = HostUpgradeState::Upgrading;
        let (to, error) = match digest {
            Some(d) if d == upgrade.binary.sha256 => (HostUpgradeState::Done, None),
            Some(_) => continue,
            None => (HostUpgradeState::Failed, Some("this agent predates self-upgrade: upgrade it by hand")),
        };
        if state.db.set_agent_upgrade_host(upgrade.id, host.id, &[upgrading], to, error, now_ms()).await? {
            step(state, upgrade.id).await?;
        }
    }
    Ok(())
}

/// How long a host may stay upgrading before the server gives up on it (the
/// host went away; its own guard answers within its `--upgrade-timeout`).
const HOST_UPGRADE_TIMEOUT_MS: i64 = 10 * 60 * 1000;

/// Fails hosts that have been upgrading for too long, so that an upgrade
/// whose host went away ends instead of blocking the environment's next one.
pub async fn sweep(state: &AppState) {
    let stale = match state.db.stale_agent_upgrade_hosts(now_ms() - HOST_UPGRADE_TIMEOUT_MS).await {
        Ok(rows) => rows,
        Err(e) => return tracing::error!("checking agent upgrades: {e}"),
    };
    for (upgrade_id, host_id) in stale {
        let error = "the host did not come back running the new binary within 10 minutes";
        let from = [HostUpgradeState::Upgrading];
        let moved = state.db.set_agent_upgrade_host(
            upgrade_id,
            host_id,
            &from,
            HostUpgradeState::Failed,
            Some(error),
            now_ms(),
        );
        match moved.await {
            Ok(true) => {
                if let Err(e) = step(state, upgrade_id).await {
                    tracing::error!("agent upgrade {upgrade_id}: {e}");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::error!("agent upgrade {upgrade_id}: {e}"),
        }
    }
}

/// The host's agent reports that its upgrade to `sha256` failed. Only its
/// own row of a running upgrade to exactly that binary moves.
pub async fn failed(state: &AppState, host: &Host, sha256: &str, error: &str) -> AppResult<()> {
    for upgrade in state.db.running_agent_upgrades_of_host(host.id).await? {
        if upgrade.binary.sha256 != sha256 {
            continue;
        }
        let from = [HostUpgradeState::Upgrading];
        if state
            .db
            .set_agent_upgrade_host(upgrade.id, host.id, &from, HostUpgradeState::Failed, Some(error), now_ms())
            .await?
        {
            tracing::warn!(host = %host.name, "agent upgrade failed on the host: {error}");
            step(state, upgrade.id).await?;
        }
    }
    Ok(())
}

/// The binary this host is upgrading to, if any, and that it does not run yet.
async fn target(state: &AppState, host: &Host) -> AppResult<Option<AgentBinary>> {
    for upgrade in state.db.running_agent_upgrades_of_host(host.id).await? {
        let mine = upgrade.hosts.iter().find(|h| h.host_id == host.id);
        if mine.is_some_and(|h| h.state == HostUpgradeState::Upgrading) {
            return Ok(Some(upgrade.binary));
        }
    }
    Ok(None)
}

/// The order to send a host with its desired state, while it is upgrading.
pub async fn order_for(state: &AppState, host: &Host, running: Option<&str>) -> AppResult<Option<UpgradeOrder>> {
    let Some(b) = target(state, host).await? else { return Ok(None) };
    if running == Some(b.sha256.as_str()) {
        return Ok(None);
    }
    Ok(Some(UpgradeOrder {
        version: b.version,
        sha256: b.sha256,
        size: u64::try_from(b.size).unwrap_or(0),
        signature: b.signature,
    }))
}

/// `GET /api/v1/agent/binary`: the binary the asking host is upgrading to,
/// and nothing else.
pub async fn download(State(state): State<AppState>, AgentCaller(host): AgentCaller) -> AppResult<Response> {
    let Some(b) = target(&state, &host).await? else {
        return Err(AppError::Forbidden(format!("host '{}' is not upgrading its agent", host.name)));
    };
    let path = binaries_dir(&state).join(&b.sha256);
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| AppError::NotFound(format!("agent binary {} is not on the server's disk: {e}", b.version)))?;
    let stream = tokio_util::io::ReaderStream::new(file);
    Response::builder()
        .header("content-type", "application/octet-stream")
        .body(Body::from_stream(stream))
        .map_err(|e| AppError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_signing_key_is_made_once_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = SigningKey::load_or_create(dir.path()).unwrap();
        let path = dir.path().join("agent-signing.key");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let again = SigningKey::load_or_create(dir.path()).unwrap();
        assert_eq!(first.public_hex, again.public_hex);
        // What it signs verifies with its public key, for that digest and label only.
        let sig = hex::decode(first.sign("aa", "v1")).unwrap();
        let public =
            ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, hex::decode(&first.public_hex).unwrap());
        assert!(public.verify(&signed_message("aa", "v1"), &sig).is_ok());
        assert!(public.verify(&signed_message("aa", "v2"), &sig).is_err());
        // A damaged key file stops the start, naming it.
        std::fs::write(&path, "not a key").unwrap();
        let err = SigningKey::load_or_create(dir.path()).err().unwrap().to_string();
        assert!(err.contains("agent-signing.key"), "{err}");
    }
}
