//! The Ferry agent: one per host.
//!
//! It enrols once with a join token (`credential`), then holds one
//! WebSocket to the server (`connection`) that carries heartbeats and reports
//! up and desired state down. The `converge` task brings the host to its
//! desired state and keeps it there: it installs releases through the host's
//! content store (`objects`) into the Capistrano layout (`layout`) and
//! switches `current` atomically. Each install writes a deployment log
//! (`deploy_log`): hook output and its own steps, sent up the same connection.
//! On a load-balancer host, the same task drives the local balancer (`lb`):
//! nginx, HAProxy or a command, as the server's desired state says.
//! Asked to, the agent replaces its own executable with a binary the server
//! signed and executes it in place (`upgrade`), with a guard from the old
//! binary that goes back when the new one does not connect.
//!
//! Architecture invariants:
//! - `current` only ever points at a complete, verified release directory;
//!   every step before the final rename can die at any moment and the next
//!   start cleans up after it.
//! - The filesystem is the agent's state: what `current` points at is what is
//!   reported. No local database to drift from the truth.
//! - One install at a time per agent, so content-store garbage collection
//!   never races an install.

pub mod beneath;
pub mod client;
pub mod config;
mod connection;
pub mod control;
mod converge;
pub mod credential;
mod deploy_log;
pub mod fallback;
mod health;
mod hooks;
pub mod layout;
pub mod lb;
pub mod objects;
pub mod supervisor;
pub mod upgrade;

use std::path::PathBuf;
use std::time::Duration;

use ferry_domain::Tags;
use tokio::sync::{mpsc, watch};

/// How an agent is started.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// `http://host:port` or `https://host:port` of the server.
    pub server: String,
    /// CA certificates (PEM) trusted for an https server besides the public
    /// web roots: a private CA or the server's self-signed certificate.
    pub ca_cert: Option<PathBuf>,
    /// Needed only for the first start; afterwards the stored credential is used.
    pub join_token: Option<String>,
    pub name: String,
    pub tags: Tags,
    /// Where load balancers reach this host (`FERRY_HOST_ADDRESS`); `None`
    /// lets the server use the address the agent connects from.
    pub address: Option<String>,
    /// Everything the agent writes lives under this directory.
    pub root: PathBuf,
    /// How often the host is re-checked against its desired state even when
    /// nothing changed (R2).
    pub check_interval: Duration,
    /// How services are run (R34).
    pub service_defaults: config::ServiceDefaults,
    /// How long a new agent binary has to connect to the server after an
    /// upgrade before the guard goes back to the old one; `None`: this agent
    /// does not replace its executable (it runs inside `ferry dev`, whose
    /// process is not the agent's alone), and refuses upgrade orders.
    pub upgrade_timeout: Option<Duration>,
}

/// Errors that stop the agent from starting.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    // Transparent: with "{0}" anyhow would print the message twice, as the error and as its source.
    #[error(transparent)]
    Credential(#[from] credential::CredentialError),
    #[error("cannot prepare {path}: {source}")]
    Root { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Objects(#[from] ferry_artifact::BlobError),
    #[error("--ca-cert: {0}")]
    Tls(ferry_tls::TlsError),
    #[error("{0}")]
    Locked(String),
}

/// Milliseconds since the epoch, for the times the agent records.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Runs the agent until `shutdown` resolves.
pub async fn run(config: AgentConfig, shutdown: impl std::future::Future<Output = ()>) -> Result<(), AgentError> {
    let dot = config.root.join(".ferry");
    std::fs::create_dir_all(&dot).map_err(|source| AgentError::Root { path: dot.clone(), source })?;
    // One agent per root, whoever started it (systemd, an upgrade's guard, a
    // person): the lock is held until the process ends or execs.
    let root = config.root.clone();
    let _lock = tokio::task::spawn_blocking(move || upgrade::lock_root(&root, Duration::from_secs(30)))
        .await
        .map_err(|e| AgentError::Locked(e.to_string()))?
        .map_err(AgentError::Locked)?;
    let root = config.root.clone();
    let me = tokio::task::spawn_blocking(move || upgrade::identity(&root)).await.unwrap_or_default();
    ferry_tls::install_crypto_provider();
    // One TLS configuration for the HTTP calls and the WebSocket: the same
    // certificates are trusted on both.
    let tls = std::sync::Arc::new(ferry_tls::client_config(config.ca_cert.as_deref()).map_err(AgentError::Tls)?);
    let http = client::http_client(&tls);
    let cred = credential::load_or_enroll(&http, &config).await?;
    let objects = objects::ObjectStore::open(&config.root)?;
    layout::clean_partials(&config.root);
    tracing::info!(host = %cred.host, server = %config.server, root = %config.root.display(), "agent starting");

    let (desired_tx, desired_rx) = watch::channel(None);
    let (report_tx, report_rx) = mpsc::unbounded_channel();
    let (connected_tx, connected_rx) = watch::channel(0u64);
    let (orders_tx, orders_rx) = watch::channel(None);
    let api = client::AgentApi::new(http, config.server.clone(), cred.token.clone());
    let upgrader = upgrade::Upgrader {
        root: config.root.clone(),
        api: api.clone(),
        me: me.clone(),
        timeout: config.upgrade_timeout,
    };
    if let Err(e) = config.service_defaults.save(&config.root) {
        tracing::warn!("recording the service defaults: {e}");
    }
    let supervisor = supervisor_for(&config.root, &config.service_defaults);
    let control = control::serve(&config.root, supervisor.clone())
        .map_err(|source| AgentError::Root { path: control::socket_path(&config.root), source })?;

    let converger = tokio::spawn(converge::run(converge::Converger {
        root: config.root.clone(),
        objects,
        api,
        desired: desired_rx,
        connected: connected_rx,
        reports: report_tx,
        check_interval: config.check_interval,
        supervisor,
        service_defaults: config.service_defaults.clone(),
        upgrade_orders: orders_rx,
        upgrader,
    }));
    let link = connection::UpgradeLink { me, orders: orders_tx };
    let conn = connection::run(config.clone(), tls, cred, desired_tx, report_rx, connected_tx, link);
    tokio::select! {
        _ = conn => {}
        _ = shutdown => tracing::info!("agent stopping"),
    }
    converger.abort();
    control.abort();
    // Services keep running: the next agent adopts them.
    Ok(())
}

/// The supervisor of the services under `root`, reading each one's spec from
/// the active release on disk.
pub fn supervisor_for(root: &std::path::Path, defaults: &config::ServiceDefaults) -> supervisor::Supervisor {
    let (root2, defaults) = (root.to_path_buf(), defaults.clone());
    supervisor::Supervisor::start(
        root,
        std::sync::Arc::new(move |project| config::service_spec(&root2, project, &defaults)),
    )
}
