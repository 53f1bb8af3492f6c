//! The agent side of the API: enrolment, the long-lived WebSocket, and the
//! downloads an agent makes to install a release.
//!
//! One connection per agent carries heartbeats, reports and deployment log
//! lines up, desired state down (R1). The server never opens a connection to
//! a host.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::response::Response;
use ferry_domain::validate_name;
use ferry_proto::FERRY_VERSION;
use ferry_proto::agent::{AgentMsg, PROTOCOL_VERSION, ServerMsg};
use ferry_proto::api::{BlobRequest, EnrollAnswer, EnrollRequest};
use ferry_store::Host;

use crate::auth::{self, AGENT_TOKEN_PREFIX, AgentCaller};
use crate::error::{AppError, AppResult};
use crate::{AppState, agent_upgrade, fleet, lb, now_ms};
use ferry_domain::vars::SecretMask;

/// `POST /api/v1/agent/enroll`: a new host presents the join token and gets
/// its own credential.
pub async fn enroll(State(state): State<AppState>, Json(req): Json<EnrollRequest>) -> AppResult<Json<EnrollAnswer>> {
    let expected = state.db.get_setting("join_token_hash").await?.unwrap_or_default();
    let presented = auth::token_hash(req.join_token.trim());
    let tags = if auth::same_hash(&presented, &expected) {
        // The server's own join token: the host's tags are its own choice,
        // once, at enrolment.
        req.tags.clone()
    } else if let Some(limited) = state.db.join_token(&presented).await? {
        allowed_tags(&req.tags, &limited.tags)?
    } else {
        return Err(AppError::Unauthorized("wrong join token".into()));
    };
    validate_name("host name", &req.name)?;
    let token = auth::new_token(AGENT_TOKEN_PREFIX);
    let host =
        state.db.enroll_host(&req.name, &tags, &auth::token_hash(&token), now_ms()).await.map_err(|e| match e {
            ferry_store::StoreError::Conflict(_) => AppError::Conflict(format!(
                "host '{}' is already enrolled; an agent keeps its credential under its --root, so start it with \
                 the same --root, or choose another --name",
                req.name
            )),
            other => other.into(),
        })?;
    tracing::info!(host = %host.name, tags = %host.tags, "host enrolled");
    Ok(Json(EnrollAnswer { host: host.name, token, signing_key: Some(state.upgrade_key.public_hex.clone()) }))
}

/// The tags a host enrolling with a limited join token gets: those it asks
/// for, each of which the token must allow, or the token's when it asks for
/// none.
fn allowed_tags(asked: &ferry_domain::Tags, allowed: &ferry_domain::Tags) -> AppResult<ferry_domain::Tags> {
    if asked.0.is_empty() {
        return Ok(allowed.clone());
    }
    match asked.0.iter().find(|(k, v)| allowed.0.get(*k) != Some(*v)) {
        None => Ok(asked.clone()),
        Some((k, v)) => Err(AppError::Forbidden(format!(
            "this join token allows only the tags {allowed}; {k}={v} is not among them"
        ))),
    }
}

/// The address a request came from, when the server runs with connection
/// information (it does; a router served without it gives `None`).
pub struct Peer(pub Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)))
    }
}

/// `GET /api/v1/agent/connect`: upgrades to the agent WebSocket.
pub async fn connect(
    State(state): State<AppState>,
    AgentCaller(host): AgentCaller,
    Peer(peer): Peer,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| async move {
        let name = host.name.clone();
        if let Err(e) = serve_agent(state, host, peer, socket).await {
            tracing::info!(host = %name, "agent connection ended: {e}");
        }
    })
}

async fn send(socket: &mut WebSocket, msg: &ServerMsg) -> Result<(), String> {
    let text = serde_json::to_string(msg).map_err(|e| e.to_string())?;
    socket.send(Message::Text(text.into())).await.map_err(|e| e.to_string())
}

/// Sends the host its desired state, and answers the mask of the secret
/// values in it: secrets reach a host only in this message, so the masks of
/// every one sent cover whatever the host holds (no lookup per log line).
/// A host upgrading its agent also gets the order, every time, until it
/// comes back running the binary (`running`: the digest it said hello with)
/// or reports that it could not.
async fn send_desired(
    state: &AppState,
    socket: &mut WebSocket,
    host: &Host,
    running: Option<&str>,
) -> Result<SecretMask, String> {
    let (desired, mask) = fleet::desired_state(state, host).await.map_err(|e| e.to_string())?;
    send(socket, &ServerMsg::Desired(desired)).await?;
    if running.is_none() {
        // An agent from before self-upgrade: an upgrade of its host fails
        // at once, with the reason, rather than wait for it forever.
        agent_upgrade::settle(state, host, None).await.map_err(|e| e.to_string())?;
    } else if let Some(order) = agent_upgrade::order_for(state, host, running).await.map_err(|e| e.to_string())? {
        send(socket, &ServerMsg::Upgrade(order)).await?;
    }
    Ok(mask)
}

/// Where load balancers reach the host: the address its agent announced, or
/// else the one it connected from.
fn host_address(host: &Host, announced: Option<&str>, peer: Option<SocketAddr>) -> Option<String> {
    if let Some(text) = announced {
        match ferry_domain::lb::parse_host_address(text) {
            Ok(address) => return Some(address),
            Err(e) => tracing::warn!(host = %host.name, "ignoring the agent's --address: {e}"),
        }
    }
    peer.map(|p| ferry_domain::lb::host_address(p.ip()))
}

/// Masks the host's secrets in what a report says in words (an install's
/// error, which can hold a hook's or the service's last lines; a note).
fn mask_report(mask: &SecretMask, report: &mut ferry_proto::agent::ProjectReport) {
    use ferry_proto::agent::Activity;
    if let Activity::Failed { error, .. } = &mut report.activity {
        *error = mask.apply(error);
    }
    if let Some(note) = &mut report.note {
        *note = mask.apply(note);
    }
}

async fn serve_agent(
    state: AppState,
    host: Host,
    peer: Option<SocketAddr>,
    mut socket: WebSocket,
) -> Result<(), String> {
    // The first message must be Hello, within a reasonable time.
    let hello = tokio::time::timeout(Duration::from_secs(30), socket.recv())
        .await
        .map_err(|_| "no hello within 30 s".to_string())?
        .ok_or("closed before hello")?
        .map_err(|e| e.to_string())?;
    let Message::Text(text) = hello else {
        return Err("first message was not text".into());
    };
    let (announced, agent_version, address, binary_digest, binary_version) =
        match serde_json::from_str::<AgentMsg>(&text) {
            Ok(AgentMsg::Hello { protocol, agent_version, tags, address, binary_digest, binary_version })
                if protocol == PROTOCOL_VERSION =>
            {
                (tags, agent_version, host_address(&host, address.as_deref(), peer), binary_digest, binary_version)
            }
            Ok(AgentMsg::Hello { protocol, .. }) => {
                let reason = format!(
                    "agent protocol {protocol} is not supported by server {FERRY_VERSION} (protocol {PROTOCOL_VERSION})"
                );
                send(&mut socket, &ServerMsg::Refused { reason: reason.clone() }).await?;
                return Err(reason);
            }
            _ => return Err("first message was not a hello".into()),
        };

    let registration = state.hub.register(host.id);
    let result = async {
        // A host's tags decide which projects' releases and secrets it gets:
        // they are the enrolled ones, whatever its agent now asks for.
        state.db.host_connected(host.id, &announced, &agent_version, now_ms()).await.map_err(|e| e.to_string())?;
        if announced != host.tags {
            tracing::warn!(
                host = %host.name, enrolled = %host.tags, asked = %announced,
                "the agent asks for other tags than the host was enrolled with; keeping the enrolled ones \
                 (an administrator changes them with `ferry host tag`)"
            );
        }
        let tags = &host.tags;
        if let Some(address) = &address
            && host.address.as_ref() != Some(address)
        {
            state.db.set_host_address(host.id, address).await.map_err(|e| e.to_string())?;
        }
        fleet::adopt(&state, host.id, tags).await.map_err(|e| e.to_string())?;
        // What it runs now: may complete its part of an agent upgrade.
        agent_upgrade::hello(&state, &host, binary_digest.as_deref(), binary_version.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        // A new backend, or one with a new address, for the balancers in
        // front of its environments.
        lb::backend_connected(&state, tags).await.map_err(|e| e.to_string())?;
        tracing::info!(host = %host.name, %agent_version, "agent connected");
        state.hub.changed(None);
        let interval = u64::try_from(state.config.heartbeat_interval.as_millis()).unwrap_or(5000);
        let welcome = ServerMsg::Welcome {
            host: host.name.clone(),
            heartbeat_interval_ms: interval,
            accepts_log: true,
            signing_key: Some(state.upgrade_key.public_hex.clone()),
        };
        send(&mut socket, &welcome).await?;
        let running = binary_digest.as_deref();
        let mask = send_desired(&state, &mut socket, &host, running).await?;
        agent_loop(&state, &host, &mut socket, &registration, mask, running).await
    }
    .await;
    if state.hub.unregister(host.id, registration.conn_id) {
        let _ = state.db.host_disconnected(host.id).await;
        state.hub.changed(None);
        tracing::info!(host = %host.name, "agent disconnected");
    }
    result
}

async fn agent_loop(
    state: &AppState,
    host: &Host,
    socket: &mut WebSocket,
    registration: &crate::hub::Registration,
    mut mask: SecretMask,
    running: Option<&str>,
) -> Result<(), String> {
    let mut resync = tokio::time::interval(state.config.resync_interval);
    resync.tick().await;
    let silence = state.config.heartbeat_timeout;
    // What the last report said per project, so that the live pages hear
    // of a change, not of every periodic report (each host sends one per
    // project every check).
    let mut last_said: HashMap<String, ferry_proto::agent::ProjectReport> = HashMap::new();
    loop {
        tokio::select! {
            msg = tokio::time::timeout(silence, socket.recv()) => {
                let msg = match msg {
                    Err(_) => return Err(format!("no message for {} s", silence.as_secs())),
                    Ok(None) => return Ok(()),
                    Ok(Some(Err(e))) => return Err(e.to_string()),
                    Ok(Some(Ok(m))) => m,
                };
                let text = match msg {
                    Message::Text(t) => t,
                    Message::Close(_) => return Ok(()),
                    _ => continue,
                };
                match serde_json::from_str::<AgentMsg>(&text) {
                    Ok(AgentMsg::Heartbeat) => {
                        state.db.host_seen(host.id, now_ms()).await.map_err(|e| e.to_string())?;
                    }
                    Ok(AgentMsg::Report(mut report)) => {
                        state.db.host_seen(host.id, now_ms()).await.map_err(|e| e.to_string())?;
                        mask_report(&mask, &mut report);
                        let moved =
                            state.db.apply_report(host.id, &report, now_ms()).await.map_err(|e| e.to_string())?;
                        if let Some(health) = &report.service {
                            crate::service_health::record(state, host, &report.project, health, &mask).await;
                        }
                        // The versions and states the pages show, when they moved.
                        let said = ferry_proto::agent::ProjectReport { desired_since: 0, transfer: None, ..report };
                        if last_said.get(&said.project) != Some(&said) || !moved.is_empty() {
                            state.hub.changed(Some(&said.project));
                            last_said.insert(said.project.clone(), said);
                        }
                        for id in moved {
                            crate::rollout::drive(state, id).await.map_err(|e| e.to_string())?;
                        }
                    }
                    Ok(AgentMsg::Log { project, release_id, lines }) => {
                        // No host_seen: heartbeats keep coming beside the lines,
                        // and a chatty hook should not cost a write per batch.
                        // Losing log lines is better than dropping the connection
                        // that carries the reports.
                        let mut lines = lines;
                        if !mask.is_empty() {
                            for line in &mut lines {
                                line.text = mask.apply(&line.text);
                            }
                        }
                        let stored = state.db.append_deployment_log(host.id, &project, release_id, &lines, now_ms());
                        if let Err(e) = stored.await {
                            tracing::warn!(host = %host.name, %project, "storing deployment log lines: {e}");
                        }
                    }
                    Ok(AgentMsg::LbApplied { project, env, generation, error }) => {
                        state.db.host_seen(host.id, now_ms()).await.map_err(|e| e.to_string())?;
                        lb::record_applied(state, host, &project, &env, generation, error.as_deref())
                            .await
                            .map_err(|e| e.to_string())?;
                        // A rollout may be waiting for exactly this.
                        crate::rollout::sweep(state).await;
                    }
                    Ok(AgentMsg::UpgradeFailed { sha256, version, error }) => {
                        // About this host only: the connection is its credential.
                        let error = mask.apply(&error);
                        tracing::warn!(host = %host.name, %version, "agent upgrade failed: {error}");
                        agent_upgrade::failed(state, host, &sha256, &error).await.map_err(|e| e.to_string())?;
                    }
                    Ok(AgentMsg::Hello { .. }) => return Err("hello sent twice".into()),
                    Err(e) => tracing::warn!(host = %host.name, "unreadable agent message: {e}"),
                }
            }
            _ = registration.wake.notified() => {
                if !state.hub.is_current(host.id, registration.conn_id) {
                    return Err("no longer the host's connection: replaced by a newer one, or the host was removed".into());
                }
                let sent = send_desired(state, socket, host, running).await?;
                mask = std::mem::take(&mut mask).merged(sent);
            }
            _ = resync.tick() => {
                let sent = send_desired(state, socket, host, running).await?;
                mask = std::mem::take(&mut mask).merged(sent);
            }
        }
    }
}

/// `GET /api/v1/agent/releases/{id}/manifest`: only for a release that is
/// desired on the asking host.
pub async fn manifest(
    State(state): State<AppState>,
    AgentCaller(host): AgentCaller,
    Path(release_id): Path<i64>,
) -> AppResult<Response> {
    let desired = state.db.desired_for_host(host.id).await?;
    let Some(row) = desired.into_iter().find(|r| r.release.id == release_id) else {
        return Err(AppError::Forbidden(format!("release {release_id} is not desired on host '{}'", host.name)));
    };
    let bytes = state.artifacts.get(&row.release.manifest_digest).await?;
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from(bytes))
        .map_err(|e| AppError::Internal(e.to_string()))
}

/// `POST /api/v1/agent/blobs`: the requested blobs as one framed stream.
/// An agent gets only the content of the releases its host is meant to run:
/// a compromised host cannot read other projects' files by their digests.
pub async fn blobs(
    State(state): State<AppState>,
    AgentCaller(host): AgentCaller,
    Json(req): Json<BlobRequest>,
) -> AppResult<Response> {
    let mut allowed = std::collections::HashSet::new();
    for row in state.db.desired_for_host(host.id).await? {
        let bytes = state.artifacts.get(&row.release.manifest_digest).await?;
        let manifest: ferry_domain::Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| AppError::Internal(format!("stored manifest of release {}: {e}", row.release.id)))?;
        allowed.extend(manifest.files().map(|(_, digest, _, _)| digest));
    }
    if let Some(d) = req.digests.iter().find(|d| !allowed.contains(*d)) {
        return Err(AppError::Forbidden(format!("blob {d} belongs to no release desired on host '{}'", host.name)));
    }
    if let Some(d) = state.artifacts.missing(&req.digests).await?.first() {
        return Err(AppError::NotFound(format!("blob {d} is not in the artifact store")));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let artifacts = state.artifacts.clone();
    tokio::spawn(async move { artifacts.send_framed(req.digests, tx).await });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    Response::builder()
        .header("content-type", "application/octet-stream")
        .body(Body::from_stream(stream))
        .map_err(|e| AppError::Internal(e.to_string()))
}
