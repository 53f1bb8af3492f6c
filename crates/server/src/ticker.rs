//! The periodic checks that keep the fleet's picture true: silent hosts,
//! offline targets, running deployments, release requests whose deployment
//! ended unwatched, stale agent upgrades. It only calls each owner's sweep,
//! so it depends on them and none of them on it.

use std::time::Duration;

use crate::{AppState, now_ms};

/// Once a second: hosts that stopped sending heartbeats go offline, and
/// deployments stop waiting for targets that went silent (a few missed
/// heartbeats, or the offline timeout under the `wait` policy).
pub async fn run_ticker(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let period = (state.config.heartbeat_interval / 2).clamp(Duration::from_millis(200), Duration::from_secs(1));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => {
                // Another replica need not wait for the lease to expire.
                let _ = state.db.release_lease("fleet-ticker", crate::replica::holder()).await;
                return;
            }
        }
        let now = now_ms();
        // One server process runs the sweeps at a time; another takes over
        // within a few periods of it stopping.
        let ttl = crate::replica::millis(period * 5);
        match state.db.claim_lease("fleet-ticker", crate::replica::holder(), now, ttl).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::error!("taking the sweep lease: {e}");
                continue;
            }
        }
        let timeout = i64::try_from(state.config.heartbeat_timeout.as_millis()).unwrap_or(i64::MAX);
        match state.db.mark_silent_hosts_offline(now - timeout).await {
            Ok(ids) if !ids.is_empty() => tracing::warn!(?ids, "hosts missed their heartbeats and are now offline"),
            Ok(_) => {}
            Err(e) => tracing::error!("checking heartbeats: {e}"),
        }
        let heartbeat = i64::try_from(state.config.heartbeat_interval.as_millis()).unwrap_or(i64::MAX);
        if let Err(e) = state.db.fail_offline_targets(now, heartbeat).await {
            tracing::error!("checking offline deployment targets: {e}");
        }
        // Timed gates, offline targets just failed, and (after a restart)
        // every rollout that was running.
        crate::rollout::sweep(&state).await;
        // Release requests whose deployment ended while no server watched.
        crate::app::request::sweep(&state).await;
        // Agent upgrades whose host went away.
        crate::agent_upgrade::sweep(&state).await;
    }
}
