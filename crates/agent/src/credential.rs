//! The agent's own credential, obtained once with the join token and kept in
//! `<root>/.ferry/agent.json` (mode 0600).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ferry_proto::api::{EnrollAnswer, EnrollRequest};

use crate::AgentConfig;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Credential {
    pub host: String,
    pub token: String,
    /// The server's Ed25519 public key (hex) for agent binaries: from the
    /// enrolment, or kept on first sight from the authenticated channel by
    /// agents enrolled before self-upgrade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<String>,
}

/// The server key stored beside the credential, if any.
pub fn signing_key(root: &Path) -> Option<String> {
    let bytes = std::fs::read(path(root)).ok()?;
    serde_json::from_slice::<Credential>(&bytes).ok()?.signing_key
}

/// Keeps the server's key the first time it is seen; a key already stored
/// is never replaced (a different one is refused and logged).
pub fn remember_signing_key(root: &Path, key: &str) {
    let path = path(root);
    let Some(mut cred) = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Credential>(&b).ok()) else {
        return;
    };
    match &cred.signing_key {
        Some(k) if k == key => {}
        Some(_) => {
            tracing::warn!("the server presents another agent-binary key than the one stored; keeping the stored one")
        }
        None => {
            cred.signing_key = Some(key.to_string());
            match save(&path, &cred) {
                Ok(()) => tracing::info!("stored the server's key for agent binaries"),
                Err(e) => tracing::warn!("storing the server's key: {e}"),
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a valid agent credential file: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("this host has no credential yet under {0}: start the agent once with --join-token")]
    NoJoinToken(PathBuf),
    #[error("enrolment refused by the server: {0}")]
    Refused(String),
    #[error("cannot reach the server to enrol: {0}")]
    Unreachable(String),
    #[error("{path} belongs to host '{stored}', not '{asked}'; use another --root or --name {stored}")]
    OtherHost { path: PathBuf, stored: String, asked: String },
}

/// Where the credential lives under an agent root.
pub fn path(root: &Path) -> PathBuf {
    root.join(".ferry").join("agent.json")
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CredentialError + '_ {
    move |source| CredentialError::Io { path: path.to_path_buf(), source }
}

fn save(path: &Path, cred: &Credential) -> Result<(), CredentialError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let json = serde_json::to_vec_pretty(cred)
        .map_err(|e| CredentialError::Corrupt { path: path.to_path_buf(), reason: e.to_string() })?;
    write_private(path, &json).map_err(io(path))
}

/// Writes `bytes` to `path`, mode 0600, through a temporary file that is
/// fsynced and renamed over it: never readable by others, never half written.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Reads the stored credential, or enrols with the join token and stores it.
pub async fn load_or_enroll(http: &reqwest::Client, config: &AgentConfig) -> Result<Credential, CredentialError> {
    let path = path(&config.root);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let cred: Credential = serde_json::from_slice(&bytes)
                .map_err(|e| CredentialError::Corrupt { path: path.clone(), reason: e.to_string() })?;
            if cred.host != config.name {
                return Err(CredentialError::OtherHost { path, stored: cred.host, asked: config.name.clone() });
            }
            return Ok(cred);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(CredentialError::Io { path, source: e }),
    }
    let Some(join_token) = &config.join_token else {
        return Err(CredentialError::NoJoinToken(path));
    };
    let url = format!("{}/api/v1/agent/enroll", config.server.trim_end_matches('/'));
    let body = EnrollRequest { name: config.name.clone(), tags: config.tags.clone(), join_token: join_token.clone() };
    let resp = http
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|e| CredentialError::Unreachable(crate::client::request_error(&e)))?;
    if !resp.status().is_success() {
        return Err(CredentialError::Refused(crate::client::error_text(resp).await));
    }
    let answer: EnrollAnswer = resp.json().await.map_err(|e| CredentialError::Refused(e.to_string()))?;
    let cred = Credential { host: answer.host, token: answer.token, signing_key: answer.signing_key };
    save(&path, &cred)?;
    tracing::info!(host = %cred.host, "enrolled; credential stored in {}", path.display());
    Ok(cred)
}
