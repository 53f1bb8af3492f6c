//! The Ferry control-plane server.
//!
//! It owns the HTTP API (`api`), the agent channel (`agent_channel`), and
//! the rules that turn a deploy request into desired state for hosts
//! (`fleet`), the load balancers in front of environments (`lb`), the
//! key that seals secrets at rest (`secrets`), and the audit trail every API
//! request passes through (`audit`; its key and checkpoint: `audit_chain`).
//! It holds no state of its own that matters across a restart:
//! everything is in the [`Database`](ferry_store::Database), the
//! [`ArtifactStore`](ferry_store::ArtifactStore) and a few files of the data
//! directory (tokens, keys, the audit checkpoint). What it keeps in memory are
//! the open agent connections (`hub`) and the audit checkpoint it last wrote.
//!
//! Entry point: [`Server::start`] binds, initialises the data directory, and
//! returns a handle; tests and `ferry dev` run it in-process, `ferry server`
//! runs it until a signal.

mod access;
mod agent_channel;
mod agent_upgrade;
mod api;
mod app;
mod audit;
mod audit_chain;
mod auth;
mod build;
/// How builds are walled off from the server.
pub use build::sandbox as build_sandbox;
mod error;
mod fleet;
mod guards;
mod http_error;
mod hub;
mod init;
mod lb;
mod metrics;
mod notify;
mod plan;
mod promotion;
mod release;
mod replica;
mod rollout;
mod secrets;
mod service_health;
mod state;
#[cfg(test)]
mod testing;
mod ticker;
mod tls;
mod ui;
/// Public so that its payload parsers can be fuzzed (`fuzz/`) as the API
/// calls them.
pub mod webhook;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ferry_store::{ArtifactStore, Database, LocalArtifactStore, sqlite::SqliteDatabase};
use tokio::net::TcpListener;

pub use init::InitOutcome;
pub use notify::SmtpSettings;
pub(crate) use state::AppState;
pub use state::{ServerConfig, TlsFiles};

/// What the server does when a deployment ends, beyond the orchestrator's
/// own bookkeeping (`state::DeploymentEnded`): wired here, at the root, so
/// that `rollout` and `request` do not depend on each other both ways.
pub(crate) fn deployment_ended(state: AppState, id: i64) -> futures_util::future::BoxFuture<'static, ()> {
    Box::pin(async move { app::request::deployment_ended(&state, id).await })
}

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `reason` is not a `source`: the message says it once, and callers
    /// that print the error chain do not repeat it.
    #[error("cannot use data directory {path}: {reason}")]
    DataDir { path: PathBuf, reason: std::io::Error },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] ferry_store::StoreError),
    #[error("secrets: {0}")]
    Secrets(#[from] secrets::SecretError),
    #[error("audit trail: {0}")]
    Audit(#[from] audit_chain::AuditError),
    #[error("agent signing key: {0}")]
    SigningKey(#[from] agent_upgrade::SigningKeyError),
    #[error(transparent)]
    PublicUrl(#[from] ferry_domain::notify::NotifyError),
    #[error("the metrics token must be at least {MIN_METRICS_TOKEN} characters long")]
    MetricsToken,
    #[error("SMTP settings: {0}")]
    Smtp(String),
    /// Transparent: the message already names the file.
    #[error(transparent)]
    Tls(#[from] ferry_tls::TlsError),
}

/// The shortest metrics token accepted: it guards what the fleet does.
pub const MIN_METRICS_TOKEN: usize = 16;

/// Everything the server keeps is written below the data directory: a
/// read-only one (a read-only mount, wrong permissions) stops the start here,
/// naming it, instead of failing later in the database or a token file.
fn check_writable(data: &std::path::Path) -> Result<(), StartError> {
    let probe = data.join(format!(".write-check-{}", std::process::id()));
    let written = std::fs::write(&probe, b"").and_then(|()| std::fs::remove_file(&probe));
    written.map_err(|e| StartError::DataDir {
        path: data.to_path_buf(),
        reason: std::io::Error::new(e.kind(), format!("it is not writable ({e})")),
    })
}

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    pub url: String,
    pub init: InitOutcome,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    /// The TLS certificate in service, when serving HTTPS.
    certificate: Option<Arc<ferry_tls::ServerCertificate>>,
}

impl Server {
    /// Opens the data directory, binds the listener and starts serving.
    pub async fn start(mut config: ServerConfig) -> Result<Server, StartError> {
        ferry_tls::install_crypto_provider();
        // An unreadable certificate or key stops the start before anything
        // is touched, naming the file.
        let certificate = config
            .tls
            .as_ref()
            .map(|f| ferry_tls::ServerCertificate::load(&f.cert, &f.key).map(Arc::new))
            .transpose()?;
        let tls = certificate.clone().map(ferry_tls::server_config).transpose()?;
        if let Some(c) = &certificate {
            tracing::info!("serving the TLS certificate {}: {}", c.cert_path().display(), c.info());
        }
        if tls.is_some() {
            // Browsers reach this server over https only: the session
            // cookie must never go out over plain HTTP.
            config.secure_cookies = true;
        }
        // A bad public URL or metrics token stops the start before anything
        // is touched.
        let public_url = config.public_url.as_deref().map(ferry_domain::notify::check_public_url).transpose()?;
        if config.metrics_token.as_ref().is_some_and(|t| t.len() < MIN_METRICS_TOKEN) {
            return Err(StartError::MetricsToken);
        }
        let data = &config.data_dir;
        // Bad SMTP settings stop the start, before anything is touched.
        let mailer = config.smtp.as_ref().map(notify::Mailer::new).transpose().map_err(StartError::Smtp)?;
        if let Some(m) = &mailer {
            tracing::info!("e-mail notifications go out through {}", m.describe());
        }
        std::fs::create_dir_all(data).map_err(|reason| StartError::DataDir { path: data.clone(), reason })?;
        check_writable(data)?;
        // A database file the server cannot open (permissions, a read-only
        // file) is named, not just "unable to open database file".
        let db_path = data.join("ferry.db");
        let db: Arc<dyn Database> = Arc::new(SqliteDatabase::open(&db_path).await.map_err(|e| {
            StartError::DataDir { path: db_path.clone(), reason: std::io::Error::other(e.to_string()) }
        })?);
        let artifacts: Arc<dyn ArtifactStore> = Arc::new(LocalArtifactStore::open(data.join("artifacts"))?);
        let init = init::initialise(db.as_ref(), data).await?;
        let secrets = secrets::SecretKey::load_or_create(db.as_ref(), data).await?;
        secrets::seal_plaintext_webhook_secrets(db.as_ref(), &secrets).await?;
        let audit = audit_chain::AuditChain::open(db.as_ref(), data).await?;
        let upgrade_key = agent_upgrade::SigningKey::load_or_create(data)?;
        // Builds whose server stopped (their lease expired) end now; those of
        // a process killed a moment ago end on the replica task's next sweeps.
        let orphans = db.fail_expired_builds(replica::STOPPED, now_ms()).await?;
        if !orphans.is_empty() {
            tracing::warn!(?orphans, "builds whose server stopped were marked failed");
        }

        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Bind { addr: config.listen, source })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind { addr: config.listen, source })?;
        let url = format!("{}://{addr}", if tls.is_some() { "https" } else { "http" });
        // Written by rename: whoever waits for the file (tests, scripts)
        // must never read half of it.
        let url_file = data.join("server.url");
        let partial = data.join("server.url.partial");
        std::fs::write(&partial, format!("{url}\n"))
            .and_then(|()| std::fs::rename(&partial, &url_file))
            .map_err(|reason| StartError::DataDir { path: url_file, reason })?;

        let workers = config.build_workers;
        let state = AppState {
            db,
            artifacts,
            hub: hub::Hub::default(),
            builds: build::BuildQueue::default(),
            config: Arc::new(config),
            secrets: Arc::new(secrets),
            audit: Arc::new(audit),
            mailer: mailer.map(Arc::new),
            sign_in_limit: Arc::default(),
            upgrade_key: Arc::new(upgrade_key),
            metrics: Arc::default(),
            public_url: public_url.unwrap_or_else(|| url.clone()).into(),
            on_deployment_ended: deployment_ended,
        };
        let (shutdown, mut stop) = tokio::sync::watch::channel(false);
        // The API under /api/v1, the web interface at /: two route tables,
        // one access check.
        let app = api::router(state.clone())
            .merge(ui::router(state.clone()))
            // Outermost, in one place: every request of both tables is
            // counted by its route template.
            .layer(axum::middleware::from_fn_with_state(state.metrics.clone(), metrics::track_http));
        let ticker = tokio::spawn(ticker::run_ticker(state.clone(), stop.clone()));
        build::start_workers(&state, workers, stop.clone());
        tokio::spawn(notify::run_delivery(state.clone(), stop.clone()));
        tokio::spawn(replica::run(state.clone(), stop.clone()));
        let task = tokio::spawn(async move {
            if let Some(tls) = tls {
                tls::serve(listener, tls, app, stop).await;
                ticker.abort();
                return;
            }
            // The peer's address is where load balancers reach an agent that
            // does not say otherwise (`--address`).
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                tracing::error!("server stopped: {e}");
            }
            ticker.abort();
        });
        tracing::info!("ferry server listening on {url}");
        Ok(Server { addr, url, init, shutdown, task, certificate })
    }

    /// Reads `--tls-cert` and `--tls-key` again (on SIGHUP) and serves the
    /// new pair from the next connection on; connections already made keep
    /// theirs. A bad pair is refused in the log and the old one stays.
    pub fn reload_tls(&self) {
        match &self.certificate {
            Some(c) => tls::reload(c),
            None => tracing::info!("SIGHUP: this server serves no TLS certificate, nothing to reload"),
        }
    }

    /// Stops accepting requests, closes agent connections and waits.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }

    /// Waits until the server stops by itself (it only does on a fatal error).
    pub async fn wait(&mut self) {
        let _ = (&mut self.task).await;
    }
}

/// Milliseconds since the epoch: the server's only clock.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
