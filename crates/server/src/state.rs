//! The server's shared state: how it was started (`ServerConfig`) and what
//! every request handler, the orchestrator and the background tasks share
//! (`AppState`). Start-up (`lib.rs`) builds it once; nothing in it is the
//! only copy of anything that matters (see the crate documentation).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ferry_store::{ArtifactStore, Database};

use crate::notify::SmtpSettings;
use crate::{agent_upgrade, audit_chain, auth, build, hub, metrics, notify, secrets};

/// How a server is started.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Holds `ferry.db`, `artifacts/`, `admin.token`, `join.token`, `secrets.key`, `audit.key`, `agent-signing.key`, `agent-binaries/`,
    /// `audit.checkpoint`, `server.url`.
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// How often agents send a heartbeat.
    pub heartbeat_interval: Duration,
    /// A host not heard from for this long is marked offline.
    pub heartbeat_timeout: Duration,
    /// How often the full desired state is sent again to every agent, so
    /// that each agent re-checks its host even when nothing changed (R2).
    pub resync_interval: Duration,
    /// Builds that may run at once (of different projects).
    pub build_workers: usize,
    /// Where e-mail notifications go out; none: e-mail rules are refused.
    pub smtp: Option<SmtpSettings>,
    /// Marks the web interface's session cookie `Secure`: set it when
    /// browsers reach the server over https (behind a proxy that ends TLS).
    /// Always on when the server itself serves TLS.
    pub secure_cookies: bool,
    /// Serve HTTPS with this certificate and key instead of plain HTTP.
    pub tls: Option<TlsFiles>,
    /// How long a web interface session lasts after signing in.
    pub session_ttl: Duration,
    /// How builds are walled off from the server (see `build::sandbox`).
    pub build_wall: build::sandbox::BuildWall,
    /// Where people reach the web interface (behind a proxy it differs from
    /// `listen`): the base of the links in notifications. `None`: the
    /// server's own URL.
    pub public_url: Option<String>,
    /// The bearer token Prometheus scrapes `/metrics` with; administrators'
    /// API tokens are accepted too.
    pub metrics_token: Option<String>,
}

impl ServerConfig {
    pub fn new(data_dir: PathBuf, listen: SocketAddr) -> Self {
        ServerConfig {
            data_dir,
            listen,
            heartbeat_interval: Duration::from_secs(5),
            heartbeat_timeout: Duration::from_secs(15),
            resync_interval: Duration::from_secs(60),
            build_workers: 2,
            smtp: None,
            secure_cookies: false,
            tls: None,
            session_ttl: Duration::from_secs(12 * 3600),
            build_wall: build::sandbox::BuildWall::decide(build::sandbox::Isolation::Auto, "nobody")
                .unwrap_or_else(build::sandbox::BuildWall::Unavailable),
            public_url: None,
            metrics_token: None,
        }
    }
}

/// The server's certificate (chain) and private key, both PEM files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The server's certificate, then any intermediate CA certificates.
    pub cert: PathBuf,
    /// The certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// What follows the end of a deployment outside the orchestrator: the
/// release request it was made for moves on (`request::deployment_ended`).
/// A function given at start-up (`crate::deployment_ended`) rather than a
/// call, so that the orchestrator (`rollout`) does not depend on the request
/// workflow, which depends on it.
pub(crate) type DeploymentEnded = fn(AppState, i64) -> futures_util::future::BoxFuture<'static, ()>;

/// Shared by every request handler.
#[derive(Clone)]
pub(crate) struct AppState {
    pub db: Arc<dyn Database>,
    pub artifacts: Arc<dyn ArtifactStore>,
    pub hub: hub::Hub,
    pub builds: build::BuildQueue,
    pub config: Arc<ServerConfig>,
    /// Seals and opens secret variables and webhook secrets.
    pub secrets: Arc<secrets::SecretKey>,
    /// Appends to the audit trail (keyed, anchored) and verifies it.
    pub audit: Arc<audit_chain::AuditChain>,
    /// Sends e-mail notifications; `None` without SMTP settings.
    pub mailer: Option<Arc<notify::Mailer>>,
    /// Failed sign-ins per address, across users (see `auth::AddressLimit`).
    pub sign_in_limit: Arc<auth::AddressLimit>,
    /// Signs agent binaries (`DATA/agent-signing.key`).
    pub upgrade_key: Arc<agent_upgrade::SigningKey>,
    /// The series of `/metrics`.
    pub metrics: Arc<metrics::Metrics>,
    /// The base of links to web pages (`--public-url`, or the server's own
    /// URL), without a trailing `/`.
    pub public_url: Arc<str>,
    /// Called when a deployment ends (see [`DeploymentEnded`]).
    pub on_deployment_ended: DeploymentEnded,
}
