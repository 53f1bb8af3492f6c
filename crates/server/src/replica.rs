//! What lets several server processes share one database: this process's
//! holder id, the build leases it keeps alive, the sweep that fails builds
//! whose server stopped, and the wake-ups it exchanges with the others
//! (agents' connections, and the live pages' change notices).
//!
//! Timing: a build's lease lasts [`BUILD_LEASE_TTL`] and is renewed every
//! [`RENEW_EVERY`]; the sweep runs as often. A build whose server was killed
//! is failed by any server (the restarted one included) at most
//! `BUILD_LEASE_TTL + RENEW_EVERY` (8 s) after its last renewal.

use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::Duration;

use rand::RngExt;

use crate::{AppState, now_ms};

/// How long a claimed build stays this process's without a renewal.
pub const BUILD_LEASE_TTL: Duration = Duration::from_secs(6);
/// How often running builds' leases are renewed and expired ones swept.
pub const RENEW_EVERY: Duration = Duration::from_secs(2);
/// How often other processes' wake-ups are read.
const WAKE_POLL: Duration = Duration::from_millis(300);
/// A wake-up's topic for a host's agent connection: `host:ID`.
const HOST: &str = "host:";
/// A wake-up's topic for the live pages: `change` (anything) or
/// `change:PROJECT`.
const CHANGE: &str = "change";
/// Why a build whose lease expired failed.
pub const STOPPED: &str = "its server stopped (was restarted or died) while the build was running";

/// This process's holder id for leases and claims: random per start, so a
/// restarted server never mistakes an earlier process's claims for its own.
pub fn holder() -> &'static str {
    static HOLDER: OnceLock<String> = OnceLock::new();
    HOLDER.get_or_init(|| {
        let bytes: [u8; 12] = rand::rng().random();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    })
}

/// `d` in milliseconds, for the store.
pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Fails the builds whose lease expired; logs what it did.
pub async fn sweep_builds(state: &AppState) {
    match state.db.fail_expired_builds(STOPPED, now_ms()).await {
        Ok(ids) if !ids.is_empty() => tracing::warn!(?ids, "builds whose server stopped were marked failed"),
        Ok(_) => {}
        Err(e) => tracing::error!("failing builds whose server stopped: {e}"),
    }
}

/// Until `stop`: renews this process's build leases, sweeps expired ones,
/// publishes this process's agent wake-ups and change notices and passes the
/// others' to the hub.
pub async fn run(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    // Only wake-ups from now on: older ones were for agents that have
    // resynced since (or will on their periodic resync).
    let mut seen = match state.db.latest_wake().await {
        Ok(seq) => seq,
        Err(e) => {
            tracing::error!("reading wake-ups: {e}");
            0
        }
    };
    // Our own wake-ups come back on the read; they were delivered locally.
    let mut own: HashSet<i64> = HashSet::new();
    let mut tick = tokio::time::interval(WAKE_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_renewal = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if last_renewal.elapsed() >= RENEW_EVERY {
            last_renewal = tokio::time::Instant::now();
            if let Err(e) = state.db.renew_build_leases(holder(), now_ms(), millis(BUILD_LEASE_TTL)).await {
                tracing::error!("renewing build leases: {e}");
            }
            sweep_builds(&state).await;
        }
        let hosts = state.hub.take_outgoing().into_iter().map(|host| format!("{HOST}{host}"));
        let changes = state.hub.take_outgoing_changes().into_iter().map(|change| match change {
            Some(project) => format!("{CHANGE}:{project}"),
            None => CHANGE.to_string(),
        });
        for topic in hosts.chain(changes) {
            match state.db.publish_wake(&topic, now_ms()).await {
                Ok(seq) => {
                    own.insert(seq);
                }
                Err(e) => tracing::warn!("publishing a wake-up: {e}"),
            }
        }
        match state.db.wakes_after(seen, 1000).await {
            Ok(wakes) => {
                let mut hosts = Vec::new();
                let mut changes = HashSet::new();
                for (seq, topic) in wakes {
                    seen = seq;
                    if own.remove(&seq) {
                        continue;
                    }
                    if let Some(id) = topic.strip_prefix(HOST).and_then(|s| s.parse::<i64>().ok()) {
                        hosts.push(id);
                    } else if topic == CHANGE {
                        changes.insert(None);
                    } else if let Some(project) = topic.strip_prefix(CHANGE).and_then(|t| t.strip_prefix(':')) {
                        changes.insert(Some(project.to_string()));
                    }
                }
                // Ours at or below `seen` will not come again.
                own.retain(|s| *s > seen);
                state.hub.wake_local(hosts);
                for change in changes {
                    state.hub.changed_local(change.as_deref());
                }
            }
            Err(e) => tracing::warn!("reading wake-ups: {e}"),
        }
    }
}
