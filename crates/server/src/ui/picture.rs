//! The rollout of a deployment as a picture: its batches as a bar, each
//! host a cell coloured by its state, the gate the rollout waits at (a
//! canary's soak or a promotion) with its button, and what the next step
//! will do, in words, from the orchestrator's own decision
//! (`ferry_domain::rollout::next_step`, through the store's peek).

use ferry_domain::rollout::{Hold, Step};
use ferry_store::{DeploymentHostRow, DeploymentRow};
use ferry_web::views::{BatchView, RolloutPicture, Status};

use super::PageError;
use super::pages::when;
use crate::AppState;

/// The picture of deployment `d` with its hosts `hosts`.
pub async fn picture(
    state: &AppState,
    d: &DeploymentRow,
    hosts: &[DeploymentHostRow],
    t: &'static ferry_web::Text,
) -> Result<RolloutPicture, PageError> {
    let mut batches: Vec<BatchView> = Vec::new();
    for h in hosts {
        let number = h.batch + 1;
        let i = match batches.iter().position(|b| b.number == number) {
            Some(i) => i,
            None => {
                batches.push(BatchView { number, current: d.current_batch == Some(h.batch), hosts: Vec::new() });
                batches.len() - 1
            }
        };
        batches[i].hosts.push((h.host.clone(), Status::new(h.state.to_string())));
    }
    batches.sort_by_key(|b| b.number);
    let running = !d.status.is_terminal();
    let step = match running {
        true => crate::app::deploy::next_step(state, d.id).await?,
        false => None,
    };
    let count = d.batch_count.max(1);
    let at = |b: Option<u32>| b.map_or(1, |b| b + 1).min(count);
    let (next, gate) = match step {
        None => (String::new(), false),
        Some(Step::Wait(Hold::BatchRunning)) => {
            (format!("{} {}/{count}", t.step_batch_running, at(d.current_batch)), false)
        }
        Some(Step::Wait(Hold::Paused)) => (t.step_paused.to_string(), false),
        Some(Step::Wait(Hold::Promotion { until: Some(until) })) => (format!("{} {}", t.step_soak, when(until)), true),
        Some(Step::Wait(Hold::Promotion { until: None })) => (t.step_gate.to_string(), true),
        Some(Step::Wait(Hold::Until(until))) => (format!("{} {}", t.step_pause_until, when(until)), false),
        Some(Step::StartBatch(b)) => (format!("{} {}/{count}", t.step_start_batch, b + 1), false),
        Some(Step::RollBack { reason }) => {
            (format!("{} {}", t.step_roll_back, super::notes::render(&reason, t)), false)
        }
        Some(Step::Finish { .. }) => (t.step_finish.to_string(), false),
    };
    Ok(RolloutPicture { batches, next, gate })
}
