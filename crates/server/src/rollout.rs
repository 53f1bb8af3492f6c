//! The orchestrator (R13, R14): moves running deployments along their plans.
//!
//! It holds no state of its own. Each call reads a deployment from the
//! database, takes the one step `ferry_domain::rollout::next_step` names (in
//! the store's transaction), and wakes the agents whose desired state
//! changed. It runs after every report that moved a deployment, after every
//! operator request, after a load balancer reports a change, and on the
//! server's ticker (for timed gates, and to resume every running deployment
//! after a restart).
//!
//! When the environment has a load balancer, a batch's hosts leave it before
//! they are touched and the previous batch's hosts (which passed their health
//! checks) return to it first; the batch starts only once every
//! load-balancer host has applied that change. The hosts a rollout drained
//! are recorded on the deployment, so it puts back exactly those, after a
//! restart too, and never a host an operator drained by hand.

use ferry_domain::notify::{DEPLOY_FAILED, DEPLOY_FINISHED, DEPLOY_ROLLED_BACK, EventFacts};
use ferry_domain::rollout::Step;
use ferry_domain::status::Note;
use ferry_domain::{DeploymentKind, DeploymentStatus};
use ferry_store::{Advanced, Environment};

use crate::error::AppResult;
use crate::{AppState, lb, notify, now_ms};

/// How long hosts stay out of the load balancer, after it applied that,
/// before they are touched.
const DRAIN_GRACE_MS: i64 = 1_000;

/// Steps one deployment until it waits or ends.
pub async fn drive(state: &AppState, id: i64) -> AppResult<()> {
    // A plan has at most one step per batch plus an end between waits; the
    // bound only guards against a store that never says "wait".
    for _ in 0..10_000 {
        if !balanced(state, id).await? {
            return Ok(());
        }
        match state.db.advance_deployment(id, now_ms()).await? {
            Advanced::Changed { hosts } => {
                state.hub.wake(hosts);
                state.hub.changed(None);
            }
            Advanced::Finished { status, hosts } => {
                state.hub.wake(hosts);
                state.hub.changed(None);
                tracing::info!(id, %status, "deployment ended");
                ended(state, id).await;
                return Ok(());
            }
            Advanced::Waiting(_) | Advanced::NotRunning => return Ok(()),
        }
    }
    Ok(())
}

/// What follows the end of a deployment, however it ended: its
/// notifications, and the release request it was made for.
pub async fn ended(state: &AppState, id: i64) {
    count_end(state, id).await;
    notify_finished(state, id).await;
    (state.on_deployment_ended)(state.clone(), id).await;
}

/// Counts a deployment's end, its duration and its hosts' in `/metrics`.
async fn count_end(state: &AppState, id: i64) {
    let (d, hosts) = match (state.db.deployment(id).await, state.db.deployment_hosts(id).await) {
        (Ok(d), Ok(hosts)) => (d, hosts),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(id, "reading the deployment to count its end: {e}");
            return;
        }
    };
    let seconds = |from: i64, to: i64| to.saturating_sub(from).max(0) as f64 / 1000.0;
    let took = seconds(d.created_at, d.finished_at.unwrap_or_else(now_ms));
    // Hosts that never started (skipped, a later batch of a failed rollout)
    // took no time of their own.
    let host_times: Vec<(&str, f64)> =
        hosts.iter().filter_map(|h| Some((h.state.as_str(), seconds(h.started_at?, h.finished_at?)))).collect();
    state.metrics.deployment_ended(d.kind.as_str(), d.status.as_str(), took, &host_times);
}

/// What notifications say of a deployment.
pub fn deployment_facts(d: &ferry_store::DeploymentRow) -> EventFacts {
    EventFacts {
        deployment: Some(d.id),
        env: Some(d.env.clone()),
        version: Some(d.version.clone()),
        kind: Some(d.kind.to_string()),
        status: Some(d.status.to_string()),
        reason: d.reason.as_ref().map(ToString::to_string),
        created_by: Some(d.created_by.clone()),
        created_at: Some(ferry_domain::rfc3339_from_millis(d.created_at)),
        finished_at: d.finished_at.map(ferry_domain::rfc3339_from_millis),
        ..EventFacts::default()
    }
}

/// Tells the project's notification rules that a deployment ended: every
/// end is `deploy.finished`; a failed one is `deploy.failed` too; one put
/// back automatically, or a rollback that succeeded, is `deploy.rolled_back`.
async fn notify_finished(state: &AppState, id: i64) {
    let d = match state.db.deployment(id).await {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(id, "reading the deployment to notify: {e}");
            return;
        }
    };
    let facts = deployment_facts(&d);
    let starter = Some(d.created_by.as_str());
    notify::emit(state, &d.project, DEPLOY_FINISHED, starter, facts.clone()).await;
    if matches!(d.status, DeploymentStatus::Failed | DeploymentStatus::RolledBack) {
        notify::emit(state, &d.project, DEPLOY_FAILED, starter, facts.clone()).await;
    }
    let rolled_back = d.status == DeploymentStatus::RolledBack
        || (d.kind == DeploymentKind::Rollback && d.status == DeploymentStatus::Succeeded);
    if rolled_back {
        notify::emit(state, &d.project, DEPLOY_ROLLED_BACK, starter, facts).await;
    }
}

/// Gets the load balancer ready for the deployment's next step. False when
/// the step must wait for it (the deployment's hold says why).
async fn balanced(state: &AppState, id: i64) -> AppResult<bool> {
    let Some((step, batch_hosts)) = state.db.peek_deployment(id, now_ms()).await? else { return Ok(true) };
    if matches!(step, Step::Wait(_)) {
        return Ok(true);
    }
    let d = state.db.deployment(id).await?;
    let env = environment(state, &d.project, &d.env).await?;
    let Some(balancer) = state.db.load_balancer(&env).await? else { return Ok(true) };
    let ours = state.db.rollout_drained(id).await?;
    let (back_in, take_out): (Vec<i64>, Vec<i64>) = match step {
        // The hosts of the batch about to start leave the balancer (unless
        // an operator already took them out); the previous batch returns.
        Step::StartBatch(_) => (
            ours.iter().filter(|h| !batch_hosts.contains(h)).copied().collect(),
            batch_hosts.iter().filter(|h| !balancer.drained.contains(h)).copied().collect(),
        ),
        // The end, or a rollback: everything this rollout took out returns.
        _ => (ours.clone(), Vec::new()),
    };
    if !back_in.is_empty() {
        lb::undrain(state, &env, &back_in).await?;
    }
    if !take_out.is_empty() {
        lb::drain(state, &env, &take_out).await?;
    }
    if !back_in.is_empty() || !take_out.is_empty() {
        let now_ours: Vec<i64> = ours.iter().filter(|h| !back_in.contains(h)).chain(&take_out).copied().collect();
        state.db.set_rollout_drained(id, &now_ours).await?;
    }
    let Step::StartBatch(batch) = step else {
        // Ending does not wait for the balancer: the hosts are healthy and
        // it converges by itself.
        return Ok(true);
    };
    let generation = state.db.load_balancer(&env).await?.map_or(balancer.generation, |b| b.generation);
    let progress = lb::applied(state, &env, generation).await?;
    if progress.done {
        // A balancer applies a change a moment after it says so (nginx's
        // workers finish what they had accepted): give in-flight requests
        // that moment before the hosts are touched.
        let applied_at = progress.hosts.iter().filter_map(|h| h.applied_at).max().unwrap_or(0);
        if take_out.is_empty() && now_ms() >= applied_at.saturating_add(DRAIN_GRACE_MS) {
            return Ok(true);
        }
        let hold = Note::Draining { batch: batch + 1 };
        state.db.hold_deployment(id, &hold, now_ms()).await?;
        return Ok(false);
    }
    let hold = match progress.errors.first() {
        Some(e) => Note::LoadBalancerFailed { error: e.to_string() },
        None => Note::AwaitingLoadBalancer { batch: batch + 1 },
    };
    state.db.hold_deployment(id, &hold, now_ms()).await?;
    Ok(false)
}

async fn environment(state: &AppState, project: &str, env: &str) -> AppResult<Environment> {
    let project = state.db.project(project).await?;
    Ok(state.db.environment(&project, env).await?)
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
