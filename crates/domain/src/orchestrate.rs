//! What each of a rollout's transactions writes: creating a deployment
//! (with an emergency's takeover), one orchestrator step, and an operator's
//! request. Each function takes the rows a backend read and returns the rows
//! it must write, so that every backend writes the same thing and decides
//! nothing of its own.
//!
//! [`next_step`](crate::rollout::next_step) decides *what* a running
//! deployment does; [`plan_step`] turns that into rows: which hosts a batch
//! starts and on which release, which hosts a rollback puts back, which lose
//! their desired release, how the deployment ends.
//!
//! Long file: more than half of it is the tests, one per kind of write a
//! step makes; the functions share one vocabulary of rows and belong together.

use std::collections::HashMap;

use crate::rollout::{Hold, RolloutHost, RolloutPolicy, RolloutView, Step, next_step};
use crate::status::Note;
use crate::{DeploymentStatus, HostDeployState};

/// One row of `deployment_hosts`, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRow {
    pub host: i64,
    pub batch: u32,
    pub state: HostDeployState,
    /// Its own release; `None` means the deployment's.
    pub release_id: Option<i64>,
    /// What `host_desired` said when its batch started (set by [`plan_step`]).
    pub previous_release_id: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub error: Option<Note>,
}

impl HostRow {
    /// What [`next_step`] sees of this row.
    pub fn rollout_host(&self) -> RolloutHost {
        RolloutHost { batch: self.batch, state: self.state, finished_at: self.finished_at }
    }
}

/// What happens to a host's `host_desired` row of the deployment's project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DesiredChange {
    /// Left as it is.
    Keep,
    /// Set (inserted or replaced) to this release, in the deployment's
    /// environment, `updated_at` the write's time.
    Set(i64),
    /// Deleted: nothing is desired of the project on the host any more.
    Remove,
}

/// What to write for one host: its `deployment_hosts` row (every mutable
/// column, as it must be after the write) and its desired release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostWrite {
    pub host: i64,
    pub state: HostDeployState,
    pub previous_release_id: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub error: Option<Note>,
    pub desired: DesiredChange,
}

impl HostWrite {
    /// The row unchanged, and its desired release with it.
    fn from_row(row: &HostRow) -> HostWrite {
        HostWrite {
            host: row.host,
            state: row.state,
            previous_release_id: row.previous_release_id,
            started_at: row.started_at,
            finished_at: row.finished_at,
            error: row.error.clone(),
            desired: DesiredChange::Keep,
        }
    }
}

/// What to write on the `deployments` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeploymentWrite {
    /// Nothing.
    Unchanged,
    /// `hold` becomes this.
    Hold(Note),
    /// `current_batch` becomes this batch, `hold` empty.
    BatchStarted(u32),
    /// `status`, `finished_at` (the write's time) and `reason` set, `hold`
    /// empty.
    Ended { status: DeploymentStatus, reason: Option<Note> },
}

/// A line of the deployment's history (`deployment_events`), numbered by
/// the backend after the deployment's last one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub at: i64,
    pub what: Note,
}

/// What the step did, for the caller (whom to wake, whether it ended).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Waiting(Hold),
    /// Desired state changed on these hosts.
    Changed(Vec<i64>),
    /// The deployment ended; desired state changed on these hosts.
    Finished(DeploymentStatus, Vec<i64>),
}

/// Everything one orchestrator step writes, in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepWrites {
    /// Host rows to rewrite (only those that change).
    pub hosts: Vec<HostWrite>,
    pub deployment: DeploymentWrite,
    /// Set the environment's `desired_release_id` to this release (a
    /// whole-environment deployment that ended with its hosts on it).
    pub environment_release: Option<i64>,
    pub events: Vec<Event>,
    /// The time the host and deployment writes carry (`started_at`,
    /// `finished_at`, `updated_at` of desired rows).
    pub at: i64,
    pub outcome: Outcome,
}

/// What a running deployment's row says besides its [`RolloutView`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningDeployment {
    pub release_id: i64,
    pub whole_env: bool,
    /// The hold recorded now.
    pub hold: Option<Note>,
}

/// What a hold says (in `ferry deployment show`, on the deployment page).
pub fn hold_note(hold: &Hold, view: &RolloutView) -> Note {
    let next = view.current_batch.map_or(1, |b| b + 2);
    match hold {
        Hold::BatchRunning => {
            Note::BatchAtWork { batch: view.current_batch.map_or(1, |b| b + 1), of: view.batch_count }
        }
        Hold::Paused => Note::Paused,
        Hold::Promotion { until } => Note::AwaitingPromotion { batch: next, until: *until },
        Hold::Until(t) => Note::PausingUntil { batch: next, until: *t },
    }
}

/// One orchestrator step of a running deployment: asks [`next_step`] what
/// to do and says what to write for it.
///
/// `view` is the deployment's recorded state (its hosts are `rows`);
/// `desired` maps each host of `rows` that has a `host_desired` row of the
/// project to its release (what a rollback would put back).
pub fn plan_step(
    view: &RolloutView,
    running: &RunningDeployment,
    rows: &[HostRow],
    desired: &HashMap<i64, i64>,
) -> StepWrites {
    let now = view.now;
    match next_step(view) {
        Step::Wait(hold) => {
            let text = hold_note(&hold, view);
            let mut writes = StepWrites {
                hosts: Vec::new(),
                deployment: DeploymentWrite::Unchanged,
                environment_release: None,
                events: Vec::new(),
                at: now,
                outcome: Outcome::Waiting(hold.clone()),
            };
            if running.hold.as_ref() != Some(&text) {
                // A batch at work is the usual state, not an event.
                if !matches!(hold, Hold::BatchRunning) {
                    writes.events.push(Event { at: now, what: text.clone() });
                }
                writes.deployment = DeploymentWrite::Hold(text);
            }
            writes
        }
        Step::StartBatch(batch) => start_batch(view, running, rows, desired, batch),
        Step::RollBack { reason } => roll_back(running, rows, now, reason),
        Step::Finish { status, reason } => {
            let mut writes = StepWrites {
                hosts: Vec::new(),
                deployment: DeploymentWrite::Unchanged,
                environment_release: None,
                events: Vec::new(),
                at: now,
                outcome: Outcome::Finished(status, Vec::new()),
            };
            let woken = finish(&mut writes, running, rows, now, status, reason);
            writes.outcome = Outcome::Finished(status, woken);
            writes
        }
    }
}

/// The hosts starting `batch` sets to work: its queued ones.
fn batch_targets(rows: &[HostRow], batch: u32) -> impl Iterator<Item = &HostRow> {
    rows.iter().filter(move |r| r.batch == batch && r.state == HostDeployState::Queued)
}

/// What [`plan_step`] would do now, without doing it, and the hosts of the
/// batch it would start: lets the server get ready first (take those hosts
/// out of the load balancer).
pub fn preview(view: &RolloutView, rows: &[HostRow]) -> (Step, Vec<i64>) {
    let step = next_step(view);
    let hosts = match step {
        Step::StartBatch(batch) => batch_targets(rows, batch).map(|r| r.host).collect(),
        _ => Vec::new(),
    };
    (step, hosts)
}

fn start_batch(
    view: &RolloutView,
    running: &RunningDeployment,
    rows: &[HostRow],
    desired: &HashMap<i64, i64>,
    batch: u32,
) -> StepWrites {
    // The caller read its clock before its transaction got the write lock;
    // a report applied in between may carry a later time. A batch starts
    // after the one before it ended: never record it earlier.
    let last_end = rows.iter().filter(|r| r.batch < batch).filter_map(|r| r.finished_at).max();
    let at = last_end.map_or(view.now, |end| end.max(view.now));
    let mut hosts = Vec::new();
    for row in batch_targets(rows, batch) {
        hosts.push(HostWrite {
            state: HostDeployState::Pending,
            started_at: Some(at),
            // Where a rollback would put it: what it was meant to run until now.
            previous_release_id: desired.get(&row.host).copied(),
            // Each target goes to its own release (a rollback's differ per host).
            desired: DesiredChange::Set(row.release_id.unwrap_or(running.release_id)),
            ..HostWrite::from_row(row)
        });
    }
    let started: Vec<i64> = hosts.iter().map(|h| h.host).collect();
    let what = Note::BatchStarted { batch: batch + 1, of: view.batch_count, hosts: count(started.len()) };
    StepWrites {
        hosts,
        deployment: DeploymentWrite::BatchStarted(batch),
        environment_release: None,
        events: vec![Event { at, what }],
        at,
        outcome: Outcome::Changed(started),
    }
}

fn roll_back(running: &RunningDeployment, rows: &[HostRow], now: i64, reason: Note) -> StepWrites {
    use HostDeployState::*;
    let mut writes = StepWrites {
        hosts: Vec::new(),
        deployment: DeploymentWrite::Unchanged,
        environment_release: None,
        events: Vec::new(),
        at: now,
        outcome: Outcome::Finished(DeploymentStatus::Failed, Vec::new()),
    };
    let mut touched = Vec::new();
    // Every host this rollout started: queued ones never changed, skipped
    // ones never started, and ended ones were already settled.
    for row in rows.iter().filter(|r| matches!(r.state, Pending | Running | Succeeded | Failed)) {
        let before = row.error.clone().map(Box::new);
        let (state, desired, error) = match row.previous_release_id {
            // A failed host keeps saying it failed; the others say they were
            // put back.
            Some(previous) => (
                if row.state == Failed { Failed } else { RolledBack },
                DesiredChange::Set(previous),
                Note::PutBack { before },
            ),
            // Nothing ran here before: stop asking for the new release, and
            // say so rather than pretend.
            None => (
                if matches!(row.state, Pending | Running) { Canceled } else { row.state },
                DesiredChange::Remove,
                Note::NothingToPutBack { before },
            ),
        };
        writes.hosts.push(HostWrite {
            state,
            finished_at: Some(row.finished_at.unwrap_or(now)),
            error: Some(error),
            desired,
            ..HostWrite::from_row(row)
        });
        touched.push(row.host);
    }
    // Rolled back only if something was: a first deploy that fails has
    // nothing earlier to go back to.
    let put_back = rows.iter().any(|r| {
        let state = writes.hosts.iter().find(|w| w.host == r.host).map_or(r.state, |w| w.state);
        r.previous_release_id.is_some() && matches!(state, RolledBack | Failed)
    });
    let status = if put_back { DeploymentStatus::RolledBack } else { DeploymentStatus::Failed };
    // A rollback never succeeds, so `finish` wakes no skipped host.
    finish(&mut writes, running, rows, now, status, Some(reason));
    writes.outcome = Outcome::Finished(status, touched);
    writes
}

/// A count of hosts, as a note says it.
fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Ends a deployment: hosts never started are recorded as canceled with the
/// reason, a whole-environment deployment that leaves its hosts on the
/// release makes it the environment's, for hosts that join later, and a
/// successful one makes it desired on the hosts it skipped (offline at the
/// start), which converge when they return. Returns those hosts.
fn finish(
    writes: &mut StepWrites,
    running: &RunningDeployment,
    rows: &[HostRow],
    now: i64,
    status: DeploymentStatus,
    reason: Option<Note>,
) -> Vec<i64> {
    let not_started = Note::NotStarted { reason: reason.clone().map(Box::new) };
    for row in rows.iter().filter(|r| r.state == HostDeployState::Queued) {
        writes.hosts.push(HostWrite {
            state: HostDeployState::Canceled,
            finished_at: Some(now),
            error: Some(not_started.clone()),
            ..HostWrite::from_row(row)
        });
    }
    // Failed without a rollback: the hosts stay on the release (the failures
    // were tolerated, or the policy leaves them), so later hosts join them.
    if running.whole_env && matches!(status, DeploymentStatus::Succeeded | DeploymentStatus::Failed) {
        writes.environment_release = Some(running.release_id);
    }
    let mut woken = Vec::new();
    if status == DeploymentStatus::Succeeded {
        for row in rows.iter().filter(|r| r.state == HostDeployState::Skipped) {
            // Each skipped host gets its own target (a rollback's differ).
            let release = row.release_id.unwrap_or(running.release_id);
            writes.hosts.push(HostWrite { desired: DesiredChange::Set(release), ..HostWrite::from_row(row) });
            woken.push(row.host);
        }
    }
    writes.events.push(Event { at: now, what: Note::Ended { status, reason: reason.clone().map(Box::new) } });
    writes.deployment = DeploymentWrite::Ended { status, reason };
    woken
}

/// One target of a new deployment, as the server planned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewTarget {
    pub host: i64,
    /// Offline at the start under the `skip` policy.
    pub skipped: bool,
}

/// What a new deployment says of itself in its history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeploymentFacts<'a> {
    pub created_by: &'a str,
    pub targets: &'a [NewTarget],
    pub batch_count: u32,
    pub policy: &'a RolloutPolicy,
    /// Said in its history at its creation (e.g. hosts a rollback leaves
    /// alone, and why).
    pub notes: &'a [Note],
    pub emergency: bool,
}

/// The first state of a new deployment's host row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHostRow {
    pub host: i64,
    pub state: HostDeployState,
    pub finished_at: Option<i64>,
    pub error: Option<Note>,
}

/// The running deployment an emergency takes over: its rows to rewrite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Takeover {
    pub deployment: i64,
    pub hosts: Vec<HostWrite>,
    /// The running deployment's end (`canceled`, [`Note::EmergencyTookOver`]).
    pub end: DeploymentWrite,
    pub event: Event,
}

/// Everything creating a deployment writes besides its own row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateWrites {
    /// Written first, before the new deployment's row takes the lock.
    pub takeover: Option<Takeover>,
    pub hosts: Vec<NewHostRow>,
    /// The new deployment's first history lines.
    pub events: Vec<Event>,
}

/// Creating a deployment: its host rows and history, and, for an emergency
/// while `running` (that deployment's id and rows) holds the environment,
/// the takeover: the running rollout stops where it is; its hosts are the
/// emergency's targets too, so none is left behind. A non-emergency
/// deployment takes nothing over: the lock refuses it.
pub fn plan_create(new: &NewDeploymentFacts<'_>, running: Option<(i64, &[HostRow])>, now: i64) -> CreateWrites {
    let takeover = running.filter(|_| new.emergency).map(|(id, rows)| Takeover {
        deployment: id,
        hosts: rows
            .iter()
            .filter(|r| r.state == HostDeployState::Queued)
            .map(|r| HostWrite {
                state: HostDeployState::Canceled,
                finished_at: Some(now),
                error: Some(Note::NotStarted { reason: Some(Box::new(Note::EmergencyTookOver)) }),
                ..HostWrite::from_row(r)
            })
            .collect(),
        end: DeploymentWrite::Ended { status: DeploymentStatus::Canceled, reason: Some(Note::EmergencyTookOver) },
        event: Event {
            at: now,
            what: Note::Ended { status: DeploymentStatus::Canceled, reason: Some(Box::new(Note::EmergencyTookOver)) },
        },
    });
    let hosts = new
        .targets
        .iter()
        .map(|t| match t.skipped {
            true => NewHostRow {
                host: t.host,
                state: HostDeployState::Skipped,
                finished_at: Some(now),
                error: Some(Note::SkippedAtStart),
            },
            false => NewHostRow { host: t.host, state: HostDeployState::Queued, finished_at: None, error: None },
        })
        .collect();
    let skipped = new.targets.iter().filter(|t| t.skipped).count();
    let mut events = vec![Event {
        at: now,
        what: Note::Created {
            by: new.created_by.to_string(),
            hosts: count(new.targets.len() - skipped),
            batches: new.batch_count,
            policy: new.policy.clone(),
        },
    }];
    if skipped > 0 {
        events.push(Event { at: now, what: Note::SkippedOffline { hosts: count(skipped) } });
    }
    events.extend(new.notes.iter().map(|n| Event { at: now, what: n.clone() }));
    CreateWrites { takeover, hosts, events }
}

/// What an operator asks of a running deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Pause,
    Resume,
    Cancel,
    /// Lets the next batch start (a canary, or `approve_each_batch`).
    Promote,
}

/// The flag an operator's request sets on the `deployments` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlWrite {
    /// `paused` becomes this.
    Paused(bool),
    /// `cancel_requested` becomes true.
    CancelRequested,
    /// `promoted_through` becomes this batch index.
    PromotedThrough(u32),
}

/// Why an operator's request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlRefused {
    #[error("deployment {id} has already ended ({status})")]
    Ended { id: i64, status: DeploymentStatus },
}

/// An operator's request of deployment `id`, whose row says `status` and
/// `current_batch`: the flag to set and the history line, or why not.
pub fn plan_control(
    id: i64,
    status: DeploymentStatus,
    current_batch: Option<u32>,
    control: Control,
    now: i64,
) -> Result<(ControlWrite, Event), ControlRefused> {
    if status != DeploymentStatus::Running {
        return Err(ControlRefused::Ended { id, status });
    }
    let (write, what) = match control {
        Control::Pause => (ControlWrite::Paused(true), Note::PausedByOperator),
        Control::Resume => (ControlWrite::Paused(false), Note::ResumedByOperator),
        Control::Cancel => (ControlWrite::CancelRequested, Note::CancelAsked),
        // The batch after the current one may start (the first, if none has).
        Control::Promote => {
            (ControlWrite::PromotedThrough(current_batch.map_or(0, |b| b + 1)), Note::PromotedByOperator)
        }
    };
    Ok((write, Event { at: now, what }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::{FailLimit, Strategy};
    use HostDeployState::*;

    const RELEASE: i64 = 50;

    fn row(host: i64, batch: u32, state: HostDeployState) -> HostRow {
        HostRow {
            host,
            batch,
            state,
            release_id: None,
            previous_release_id: None,
            started_at: None,
            finished_at: None,
            error: None,
        }
    }

    fn view_of(rows: &[HostRow], current: Option<u32>, batches: u32, now: i64) -> RolloutView {
        RolloutView {
            policy: RolloutPolicy::default(),
            hosts: rows.iter().map(HostRow::rollout_host).collect(),
            batch_count: batches,
            current_batch: current,
            promoted_through: 0,
            paused: false,
            cancel_requested: false,
            emergency: false,
            now,
        }
    }

    fn running(whole_env: bool) -> RunningDeployment {
        RunningDeployment { release_id: RELEASE, whole_env, hold: None }
    }

    fn write_of(w: &StepWrites, host: i64) -> &HostWrite {
        w.hosts.iter().find(|h| h.host == host).unwrap_or_else(|| panic!("no write for host {host}"))
    }

    #[test]
    fn a_batch_starts_its_queued_hosts_on_their_own_releases() {
        let mut rows = vec![row(1, 0, Queued), row(2, 0, Queued), row(3, 1, Queued), row(4, 0, Canceled)];
        rows[1].release_id = Some(40);
        let desired = HashMap::from([(1, 30), (3, 31)]);
        let w = plan_step(&view_of(&rows, None, 2, 2_000), &running(false), &rows, &desired);
        assert_eq!(w.outcome, Outcome::Changed(vec![1, 2]));
        assert_eq!(w.deployment, DeploymentWrite::BatchStarted(0));
        assert_eq!(w.hosts.len(), 2, "only the batch's queued hosts: {:?}", w.hosts);
        let h1 = write_of(&w, 1);
        assert_eq!((h1.state, h1.started_at, h1.previous_release_id), (Pending, Some(2_000), Some(30)));
        assert_eq!(h1.desired, DesiredChange::Set(RELEASE));
        let h2 = write_of(&w, 2);
        assert_eq!(h2.desired, DesiredChange::Set(40), "a rollback's target differs per host");
        assert_eq!(h2.previous_release_id, None, "nothing was desired there before");
        assert_eq!(w.events, vec![Event { at: 2_000, what: Note::BatchStarted { batch: 1, of: 2, hosts: 2 } }]);
        assert_eq!(w.at, 2_000);
        assert_eq!(w.environment_release, None);
    }

    #[test]
    fn a_batch_never_starts_before_the_previous_one_ended() {
        let mut rows = vec![row(1, 0, Succeeded), row(2, 1, Queued)];
        // A report applied after the caller read its clock.
        rows[0].finished_at = Some(5_000);
        let w = plan_step(&view_of(&rows, Some(0), 2, 4_000), &running(false), &rows, &HashMap::new());
        assert_eq!(w.at, 5_000);
        assert_eq!(write_of(&w, 2).started_at, Some(5_000));
        assert_eq!(w.events[0].at, 5_000);
        // A clock after the end is used as it is.
        let w = plan_step(&view_of(&rows, Some(0), 2, 6_000), &running(false), &rows, &HashMap::new());
        assert_eq!(w.at, 6_000);
    }

    #[test]
    fn a_hold_is_written_and_told_only_when_it_changes() {
        let rows = vec![row(1, 0, Running), row(2, 1, Queued)];
        let v = view_of(&rows, Some(0), 2, 2_000);
        let w = plan_step(&v, &running(false), &rows, &HashMap::new());
        assert_eq!(w.outcome, Outcome::Waiting(Hold::BatchRunning));
        assert_eq!(w.deployment, DeploymentWrite::Hold(Note::BatchAtWork { batch: 1, of: 2 }));
        assert!(w.events.is_empty(), "a batch at work is not an event");
        assert!(w.hosts.is_empty());
        let same = RunningDeployment { hold: Some(Note::BatchAtWork { batch: 1, of: 2 }), ..running(false) };
        let w = plan_step(&v, &same, &rows, &HashMap::new());
        assert_eq!(w.deployment, DeploymentWrite::Unchanged);
        // A pause is an event.
        let rows = vec![row(1, 0, Succeeded), row(2, 1, Queued)];
        let mut v = view_of(&rows, Some(0), 2, 2_000);
        v.paused = true;
        let w = plan_step(&v, &running(false), &rows, &HashMap::new());
        assert_eq!(w.deployment, DeploymentWrite::Hold(Note::Paused));
        assert_eq!(w.events, vec![Event { at: 2_000, what: Note::Paused }]);
    }

    #[test]
    fn hold_notes() {
        let v = view_of(&[], Some(0), 3, 0);
        assert_eq!(hold_note(&Hold::BatchRunning, &v), Note::BatchAtWork { batch: 1, of: 3 });
        assert_eq!(hold_note(&Hold::Paused, &v), Note::Paused);
        assert_eq!(hold_note(&Hold::Promotion { until: None }, &v), Note::AwaitingPromotion { batch: 2, until: None });
        assert_eq!(
            hold_note(&Hold::Promotion { until: Some(60_000) }, &v).to_string(),
            "waiting for promote before batch 2, or until 1970-01-01T00:01:00Z"
        );
        assert_eq!(hold_note(&Hold::Until(0), &v).to_string(), "pausing before batch 2 until 1970-01-01T00:00:00Z");
        let first = view_of(&[], None, 3, 0);
        assert_eq!(hold_note(&Hold::BatchRunning, &first), Note::BatchAtWork { batch: 1, of: 3 });
        assert_eq!(
            hold_note(&Hold::Promotion { until: None }, &first).to_string(),
            "waiting for promote before batch 1"
        );
    }

    #[test]
    fn success_ends_cancels_nothing_and_gives_skipped_hosts_the_release() {
        let mut rows = vec![row(1, 0, Succeeded), row(2, 0, Skipped), row(3, 0, Skipped)];
        rows[2].release_id = Some(41);
        let w = plan_step(&view_of(&rows, Some(0), 1, 3_000), &running(true), &rows, &HashMap::new());
        assert_eq!(w.outcome, Outcome::Finished(DeploymentStatus::Succeeded, vec![2, 3]));
        assert_eq!(w.deployment, DeploymentWrite::Ended { status: DeploymentStatus::Succeeded, reason: None });
        assert_eq!(w.environment_release, Some(RELEASE), "a whole-environment deployment sets the environment");
        assert_eq!(write_of(&w, 2).desired, DesiredChange::Set(RELEASE));
        assert_eq!(write_of(&w, 3).desired, DesiredChange::Set(41));
        assert_eq!(write_of(&w, 2).state, Skipped, "a skipped row stays as it is");
        assert_eq!(
            w.events,
            vec![Event { at: 3_000, what: Note::Ended { status: DeploymentStatus::Succeeded, reason: None } }]
        );
        // Not for the whole environment: the environment keeps its release.
        let w = plan_step(&view_of(&rows, Some(0), 1, 3_000), &running(false), &rows, &HashMap::new());
        assert_eq!(w.environment_release, None);
    }

    #[test]
    fn a_cancel_records_hosts_never_started_and_wakes_nobody() {
        let rows = vec![row(1, 0, Succeeded), row(2, 1, Queued), row(3, 1, Skipped)];
        let mut v = view_of(&rows, Some(0), 2, 3_000);
        v.cancel_requested = true;
        let w = plan_step(&v, &running(true), &rows, &HashMap::new());
        assert_eq!(w.outcome, Outcome::Finished(DeploymentStatus::Canceled, vec![]));
        let h2 = write_of(&w, 2);
        assert_eq!((h2.state, h2.finished_at), (Canceled, Some(3_000)));
        assert_eq!(h2.error.as_ref().map(Note::to_string).as_deref(), Some("not started: canceled by an operator"));
        assert_eq!(h2.desired, DesiredChange::Keep);
        assert_eq!(w.hosts.len(), 1, "skipped hosts get nothing from a canceled deployment");
        assert_eq!(w.environment_release, None, "a canceled deployment does not set the environment");
        assert_eq!(w.events[0].what.to_string(), "canceled: canceled by an operator");
    }

    #[test]
    fn a_tolerated_failure_ends_failed_and_keeps_the_environment_on_the_release() {
        let mut v_rows = vec![row(1, 0, Failed), row(2, 0, Succeeded)];
        v_rows[0].error = Some(Note::text("hook failed"));
        let mut v = view_of(&v_rows, Some(0), 1, 3_000);
        v.policy.max_failed = FailLimit::Count(1);
        let w = plan_step(&v, &running(true), &v_rows, &HashMap::new());
        assert_eq!(w.outcome, Outcome::Finished(DeploymentStatus::Failed, vec![]));
        assert_eq!(w.environment_release, Some(RELEASE));
        assert!(w.hosts.is_empty(), "the failed host keeps its own error");
        assert_eq!(w.events[0].what.to_string(), "failed: 1 of 2 host(s) failed");
    }

    fn rollback_view(rows: &[HostRow]) -> RolloutView {
        let mut v = view_of(rows, Some(0), 2, 9_000);
        v.policy = RolloutPolicy { auto_rollback: true, strategy: Strategy::AllAtOnce, ..RolloutPolicy::default() };
        v
    }

    #[test]
    fn a_rollback_puts_back_what_it_can_and_says_what_it_cannot() {
        let mut rows = vec![
            row(1, 0, Failed),
            row(2, 0, Succeeded),
            row(3, 0, Succeeded),
            row(4, 0, Running),
            row(5, 1, Queued),
            row(6, 0, Skipped),
        ];
        rows[0].previous_release_id = Some(30);
        rows[0].error = Some(Note::text("hook failed"));
        rows[0].finished_at = Some(8_000);
        rows[1].previous_release_id = Some(31);
        rows[1].finished_at = Some(7_000);
        // Hosts 3 and 4 had nothing desired before this deployment.
        let w = plan_step(&rollback_view(&rows), &running(true), &rows, &HashMap::new());
        let h1 = write_of(&w, 1);
        assert_eq!((h1.state, h1.finished_at), (Failed, Some(8_000)), "a failed host keeps saying it failed");
        assert_eq!(h1.error, Some(Note::PutBack { before: Some(Box::new(Note::text("hook failed"))) }));
        assert_eq!(
            h1.error.as_ref().map(Note::to_string).as_deref(),
            Some("hook failed\nput back on its previous release")
        );
        assert_eq!(h1.desired, DesiredChange::Set(30));
        let h2 = write_of(&w, 2);
        assert_eq!((h2.state, h2.finished_at), (RolledBack, Some(7_000)));
        assert_eq!(h2.error, Some(Note::PutBack { before: None }));
        assert_eq!(h2.desired, DesiredChange::Set(31));
        let h3 = write_of(&w, 3);
        assert_eq!((h3.state, h3.finished_at), (Succeeded, Some(9_000)), "nothing to put back: left as is");
        assert_eq!(h3.error, Some(Note::NothingToPutBack { before: None }));
        assert_eq!(h3.desired, DesiredChange::Remove);
        let h4 = write_of(&w, 4);
        assert_eq!((h4.state, h4.desired), (Canceled, DesiredChange::Remove), "stopped unfinished");
        let h5 = write_of(&w, 5);
        assert_eq!(h5.state, Canceled);
        assert!(
            matches!(&h5.error, Some(Note::NotStarted { reason: Some(r) }) if matches!(**r, Note::TooManyFailed { failed: 1, total: 5, .. })),
            "{h5:?}"
        );
        assert!(w.hosts.iter().all(|h| h.host != 6), "a skipped host is left alone");
        assert_eq!(w.outcome, Outcome::Finished(DeploymentStatus::RolledBack, vec![1, 2, 3, 4]));
        assert_eq!(w.environment_release, None, "a rolled back deployment does not set the environment");
        assert!(matches!(&w.deployment, DeploymentWrite::Ended { status: DeploymentStatus::RolledBack, .. }));
        assert_eq!(w.events.len(), 1);
        assert!(w.events[0].what.to_string().starts_with("rolled_back: 1 of 5 host(s) failed"), "{:?}", w.events);
    }

    #[test]
    fn a_first_deploy_that_fails_has_nothing_to_roll_back_to() {
        let rows = vec![row(1, 0, Failed), row(2, 0, Succeeded)];
        let w = plan_step(&rollback_view(&rows), &running(true), &rows, &HashMap::new());
        assert_eq!(w.outcome, Outcome::Finished(DeploymentStatus::Failed, vec![1, 2]));
        assert_eq!(write_of(&w, 1).state, Failed);
        assert_eq!(write_of(&w, 1).desired, DesiredChange::Remove);
        // Nothing was put back: as after any failure without a rollback,
        // the environment follows the release its hosts stay on.
        assert_eq!(w.environment_release, Some(RELEASE));
    }

    #[test]
    fn preview_names_the_hosts_of_the_batch_it_would_start() {
        let rows = vec![row(1, 0, Succeeded), row(2, 1, Queued), row(3, 1, Canceled), row(4, 2, Queued)];
        let (step, hosts) = preview(&view_of(&rows, Some(0), 3, 0), &rows);
        assert_eq!((step, hosts), (Step::StartBatch(1), vec![2]));
        let rows = vec![row(1, 0, Running)];
        assert_eq!(preview(&view_of(&rows, Some(0), 1, 0), &rows), (Step::Wait(Hold::BatchRunning), vec![]));
    }

    const ROLLING: RolloutPolicy = RolloutPolicy {
        strategy: Strategy::OneAtATime,
        max_failed: FailLimit::Count(0),
        auto_rollback: true,
        pause_secs: 0,
        approve_each_batch: false,
    };

    fn facts<'a>(targets: &'a [NewTarget], notes: &'a [Note], emergency: bool) -> NewDeploymentFacts<'a> {
        NewDeploymentFacts { created_by: "alice", targets, batch_count: 2, policy: &ROLLING, notes, emergency }
    }

    #[test]
    fn creating_records_targets_skipped_hosts_and_notes() {
        let targets = [
            NewTarget { host: 1, skipped: false },
            NewTarget { host: 2, skipped: true },
            NewTarget { host: 3, skipped: false },
        ];
        let notes = [Note::AlreadyRuns { host: "web-9".into(), version: "v1".into() }];
        let w = plan_create(&facts(&targets, &notes, false), None, 100);
        assert_eq!(w.takeover, None);
        assert_eq!(w.hosts[0], NewHostRow { host: 1, state: Queued, finished_at: None, error: None });
        assert_eq!(
            w.hosts[1],
            NewHostRow { host: 2, state: Skipped, finished_at: Some(100), error: Some(Note::SkippedAtStart) }
        );
        let what: Vec<String> = w.events.iter().map(|e| e.what.to_string()).collect();
        assert_eq!(
            what,
            [
                "created by alice: 2 host(s) in 2 batch(es), one at a time; stop at the first failure, then put updated hosts back",
                "1 host(s) offline at the start skipped",
                "left as is: web-9 already runs v1"
            ]
        );
        assert!(w.events.iter().all(|e| e.at == 100));
        // Without skipped hosts, no line says so.
        let w = plan_create(&facts(&targets[..1], &[], false), None, 100);
        assert_eq!(w.events.len(), 1);
    }

    #[test]
    fn an_emergency_takes_over_the_running_deployment_and_nothing_else_does() {
        let targets = [NewTarget { host: 1, skipped: false }];
        let rows = vec![row(1, 0, Succeeded), row(2, 1, Queued), row(3, 0, Running)];
        let w = plan_create(&facts(&targets, &[], true), Some((7, &rows)), 100);
        let t = w.takeover.unwrap_or_else(|| panic!("an emergency takes over"));
        assert_eq!(t.deployment, 7);
        assert_eq!(t.hosts.len(), 1, "only its queued hosts are canceled: {:?}", t.hosts);
        assert_eq!((t.hosts[0].host, t.hosts[0].state, t.hosts[0].finished_at), (2, Canceled, Some(100)));
        assert_eq!(
            t.hosts[0].error.as_ref().map(Note::to_string).as_deref(),
            Some("not started: an emergency rollback took over")
        );
        assert_eq!(
            t.end,
            DeploymentWrite::Ended { status: DeploymentStatus::Canceled, reason: Some(Note::EmergencyTookOver) }
        );
        assert_eq!(t.event.what.to_string(), "canceled: an emergency rollback took over");
        assert_eq!(t.event.at, 100);
        // Not an emergency: the lock refuses it, nothing is taken over.
        assert_eq!(plan_create(&facts(&targets, &[], false), Some((7, &rows)), 100).takeover, None);
    }

    #[test]
    fn operators_requests() {
        use DeploymentStatus::*;
        let plan = |control, current| plan_control(3, Running, current, control, 10);
        assert_eq!(
            plan(Control::Pause, None).map(|(w, e)| (w, e.what)),
            Ok((ControlWrite::Paused(true), Note::PausedByOperator))
        );
        assert_eq!(plan(Control::Resume, None).map(|(w, _)| w), Ok(ControlWrite::Paused(false)));
        assert_eq!(plan(Control::Cancel, None).map(|(w, _)| w), Ok(ControlWrite::CancelRequested));
        assert_eq!(plan(Control::Promote, None).map(|(w, _)| w), Ok(ControlWrite::PromotedThrough(0)));
        assert_eq!(plan(Control::Promote, Some(0)).map(|(w, _)| w), Ok(ControlWrite::PromotedThrough(1)));
        for ended in [Succeeded, Failed, RolledBack, Canceled] {
            let refused = plan_control(3, ended, Some(0), Control::Resume, 10);
            assert_eq!(refused, Err(ControlRefused::Ended { id: 3, status: ended }));
        }
        let text = ControlRefused::Ended { id: 3, status: RolledBack }.to_string();
        assert_eq!(text, "deployment 3 has already ended (rolled_back)");
    }
}
