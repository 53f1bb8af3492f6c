//! The orchestrator (R13): moves running deployments along their plans.
//!
//! It holds no state of its own. Each call reads a deployment from the
//! database, takes the one step `ferry_domain::rollout::next_step` names (in
//! the store's transaction), and wakes the agents whose desired state
//! changed. It runs after every report that moved a deployment, after every
//! operator request, and on the server's ticker (for timed gates, and to
//! resume every running deployment after a restart).

use ferry_store::Advanced;

use crate::error::ApiResult;
use crate::{AppState, now_ms};

/// Steps one deployment until it waits or ends.
pub async fn drive(state: &AppState, id: i64) -> ApiResult<()> {
    // A plan has at most one step per batch plus an end between waits; the
    // bound only guards against a store that never says "wait".
    for _ in 0..10_000 {
        match state.db.advance_deployment(id, now_ms()).await? {
            Advanced::Changed { hosts } => state.hub.wake(hosts),
            Advanced::Finished { status, hosts } => {
                state.hub.wake(hosts);
                tracing::info!(id, %status, "deployment ended");
                return Ok(());
            }
            Advanced::Waiting(_) | Advanced::NotRunning => return Ok(()),
        }
    }
    Ok(())
}

/// Steps every running deployment (the ticker's sweep).
pub async fn sweep(state: &AppState) {
    let running = match state.db.running_deployments().await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::error!("listing running deployments: {e}");
            return;
        }
    };
    for id in running {
        if let Err(e) = drive(state, id).await {
            tracing::error!(id, "advancing deployment: {e}");
        }
    }
}
