//! The one long-lived connection to the server (R1), kept up for as long as
//! the agent runs: reconnects with exponential backoff and full jitter, so a
//! fleet that lost its server does not come back in one burst.

use std::sync::Arc;
use std::time::Duration;

use ferry_domain::retry::backoff_delay;
use ferry_proto::FERRY_VERSION;
use ferry_proto::agent::{AgentMsg, DesiredState, PROTOCOL_VERSION, ServerMsg, UpgradeOrder};
use futures_util::{SinkExt, StreamExt};
use rand::RngExt;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::AgentConfig;
use crate::credential::Credential;
use crate::upgrade::{self, Identity};

/// The agent's side of self-upgrade on the connection.
pub struct UpgradeLink {
    /// What this agent runs, announced in its hello.
    pub me: Identity,
    /// Orders for the converger, which carries them out between passes.
    pub orders: watch::Sender<Option<UpgradeOrder>>,
}

const BACKOFF_BASE: Duration = Duration::from_millis(500);
const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// Runs forever: connect, serve, and reconnect after a pause.
pub async fn run(
    config: AgentConfig,
    tls: Arc<rustls::ClientConfig>,
    cred: Credential,
    desired: watch::Sender<Option<DesiredState>>,
    mut reports: mpsc::UnboundedReceiver<AgentMsg>,
    connected: watch::Sender<u64>,
    link: UpgradeLink,
) {
    let mut attempt = 0u32;
    loop {
        let started = std::time::Instant::now();
        match session(&config, &tls, &cred, &desired, &mut reports, &connected, &link).await {
            Ok(()) => tracing::info!("server closed the connection"),
            Err(e) => tracing::warn!("connection to {}: {e}", config.server),
        }
        // A session that lasted a while resets the backoff.
        if started.elapsed() > Duration::from_secs(30) {
            attempt = 0;
        }
        let delay = backoff_delay(attempt, BACKOFF_BASE, BACKOFF_CAP, rand::rng().random::<f64>());
        attempt = attempt.saturating_add(1);
        tracing::info!("reconnecting in {:.1} s", delay.as_secs_f64());
        tokio::time::sleep(delay).await;
    }
}

fn ws_url(server: &str) -> String {
    let base = server.trim_end_matches('/');
    let base = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_string()
    };
    format!("{base}/api/v1/agent/connect")
}

async fn session(
    config: &AgentConfig,
    tls: &Arc<rustls::ClientConfig>,
    cred: &Credential,
    desired: &watch::Sender<Option<DesiredState>>,
    reports: &mut mpsc::UnboundedReceiver<AgentMsg>,
    connected: &watch::Sender<u64>,
    link: &UpgradeLink,
) -> Result<(), String> {
    let mut request = ws_url(&config.server).into_client_request().map_err(|e| e.to_string())?;
    let auth = format!("Bearer {}", cred.token).parse().map_err(|_| "credential is not a valid header".to_string())?;
    request.headers_mut().insert("authorization", auth);
    // No Nagle: messages are small and often back to back (an install's last
    // log lines, then its report); the second would wait for a delayed ACK.
    // The connector is only used for wss://; it trusts what the HTTP client
    // trusts.
    let connector = tokio_tungstenite::Connector::Rustls(tls.clone());
    let connect = tokio_tungstenite::connect_async_tls_with_config(request, None, true, Some(connector));
    let (ws, _) = tokio::time::timeout(Duration::from_secs(15), connect)
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| ferry_tls::untrusted_certificate(&e).unwrap_or_else(|| e.to_string()))?;
    let (mut tx, mut rx) = ws.split();
    let hello = AgentMsg::Hello {
        protocol: PROTOCOL_VERSION,
        agent_version: FERRY_VERSION.into(),
        tags: config.tags.clone(),
        address: config.address.clone(),
        binary_digest: Some(link.me.sha256.clone()).filter(|d| !d.is_empty()),
        binary_version: link.me.version.clone(),
    };
    send(&mut tx, &hello).await?;

    let mut heartbeat = tokio::time::interval(Duration::from_secs(5));
    let mut silence_limit = Duration::from_secs(15);
    let mut last_heard = tokio::time::Instant::now();
    // Whether the server said it stores deployment logs; until its Welcome,
    // messages wait in the channel.
    let mut accepts_log: Option<bool> = None;
    loop {
        tokio::select! {
            msg = rx.next() => {
                let msg = match msg {
                    None => return Ok(()),
                    Some(Err(e)) => return Err(e.to_string()),
                    Some(Ok(m)) => m,
                };
                last_heard = tokio::time::Instant::now();
                let Message::Text(text) = msg else { continue };
                match serde_json::from_str::<ServerMsg>(&text) {
                    Ok(ServerMsg::Welcome { host, heartbeat_interval_ms, accepts_log: logs, signing_key }) => {
                        if let Some(key) = &signing_key {
                            crate::credential::remember_signing_key(&config.root, key);
                        }
                        // The server took this binary's hello: an upgrade to it stands.
                        upgrade::confirm(&config.root, &link.me);
                        if let Some(f) = upgrade::failure_to_report(&config.root) {
                            let msg = AgentMsg::UpgradeFailed { sha256: f.sha256, version: f.version, error: f.error };
                            send(&mut tx, &msg).await?;
                        }
                        accepts_log = Some(logs);
                        let every = Duration::from_millis(heartbeat_interval_ms.max(100));
                        heartbeat = tokio::time::interval(every);
                        silence_limit = every * 3;
                        tracing::info!(%host, "connected to the server");
                        // Ask the converger for a full report on this connection.
                        connected.send_modify(|n| *n += 1);
                    }
                    Ok(ServerMsg::Desired(state)) => { desired.send_replace(Some(state)); }
                    Ok(ServerMsg::Upgrade(order)) => {
                        if link.orders.borrow().as_ref() != Some(&order) {
                            link.orders.send_replace(Some(order));
                        }
                    }
                    Ok(ServerMsg::Refused { reason }) => return Err(format!("refused by the server: {reason}")),
                    Err(e) => tracing::warn!("unreadable message from the server: {e}"),
                }
            }
            report = reports.recv(), if accepts_log.is_some() => {
                let Some(report) = report else { return Ok(()) };
                if matches!(report, AgentMsg::Log { .. }) && accepts_log != Some(true) {
                    // An older server would only warn about each of them.
                    continue;
                }
                send(&mut tx, &report).await?;
            }
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > silence_limit {
                    return Err(format!("nothing heard from the server for {} s", last_heard.elapsed().as_secs()));
                }
                send(&mut tx, &AgentMsg::Heartbeat).await?;
                // A ping makes the server answer, proving the path both ways.
                tx.send(Message::Ping(Default::default())).await.map_err(|e| e.to_string())?;
            }
        }
    }
}

async fn send<S>(tx: &mut S, msg: &AgentMsg) -> Result<(), String>
where
    S: futures_util::Sink<Message> + Unpin,
    S::Error: std::fmt::Display,
{
    let text = serde_json::to_string(msg).map_err(|e| e.to_string())?;
    tx.send(Message::Text(text.into())).await.map_err(|e| e.to_string())
}
