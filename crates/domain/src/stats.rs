//! Deployment statistics (R29): per environment, over a period, how many
//! deployments there were and how they ended, and the four delivery metrics
//! (deployment frequency, lead time for changes, change failure rate, time to
//! restore).
//!
//! The arithmetic works on plain rows ([`DeploymentFacts`]) so that it is the
//! same whichever store they come from, and is tested here case by case.
//!
//! Vocabulary used by every definition below:
//! - a **deployment** is any row of the period that has ended: a row still
//!   `running` is left out of every number, since how it ends is not known;
//! - a **deploy** is a deployment of kind `deploy`; a **rollback** one of kind
//!   `rollback` (`ferry rollback`, emergency or not);
//! - **after / before** order deployments of one environment by creation
//!   (time, then id), which is the order the environment's lock lets them
//!   run in.

use std::collections::BTreeMap;

use crate::deployment::{DeploymentKind, DeploymentStatus};

/// Milliseconds in a day.
const DAY_MS: f64 = 86_400_000.0;

/// What the statistics need to know of one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentFacts {
    /// Orders deployments created in the same millisecond.
    pub id: i64,
    /// The environment's name.
    pub env: String,
    pub kind: DeploymentKind,
    pub status: DeploymentStatus,
    pub created_at: i64,
    /// When it ended; `None` while it runs.
    pub finished_at: Option<i64>,
    /// An emergency rollback (R11).
    pub emergency: bool,
    /// When the release's commit was made, for releases built from git;
    /// `None` for uploads.
    pub committed_at: Option<i64>,
}

/// The period statistics cover: deployments created at or after `since`
/// and before `until` (milliseconds since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub since: i64,
    pub until: i64,
}

impl Period {
    /// The period's length in days (fractional), never negative.
    pub fn days(self) -> f64 {
        self.until.saturating_sub(self.since).max(0) as f64 / DAY_MS
    }

    fn contains(self, at: i64) -> bool {
        (self.since..self.until).contains(&at)
    }
}

/// The statistics of one environment over a [`Period`]. Durations are in
/// milliseconds; a metric is `None` when nothing in the period measures it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EnvStats {
    pub env: String,
    /// Deployments that ended (deploys and rollbacks).
    pub deployments: u64,
    /// Of those, deploys.
    pub deploys: u64,
    /// Of those, rollbacks.
    pub rollbacks: u64,
    /// Of those, emergency rollbacks.
    pub emergency_rollbacks: u64,
    /// Deployments that ended `succeeded`.
    pub succeeded: u64,
    /// Deployments that ended `failed` or `rolled_back`: both failed; the
    /// latter had the hosts they had updated put back.
    pub failed: u64,
    /// Of the failed ones, those that ended `rolled_back`.
    pub rolled_back: u64,
    /// Deployments that ended `canceled`: stopped by an operator or taken
    /// over by an emergency rollback.
    pub canceled: u64,
    /// Mean of (finished − created) over deployments that succeeded or
    /// failed. Canceled ones are left out: their length measures when
    /// somebody stopped them, not how long deploying takes.
    pub mean_duration_ms: Option<i64>,
    /// **Deployment frequency**: deploys that succeeded, per day of the
    /// period (rollbacks are not deliveries).
    pub deploys_per_day: f64,
    /// **Lead time for changes**: the median of (deploy finished − commit
    /// time) over deploys that succeeded of releases that have a commit time
    /// (releases built from git; uploads have none). A commit dated after
    /// the deploy (a skewed clock) counts as 0.
    pub lead_time_ms: Option<i64>,
    /// How many deploys the lead time is the median of.
    pub lead_time_samples: u64,
    /// The deploys the change failure rate divides by: those that ended
    /// `succeeded`, `failed` or `rolled_back`, and those that ended
    /// `canceled` and were followed by a rollback (an emergency rollback that
    /// takes over from a deploy cancels it). A deploy canceled otherwise was
    /// stopped before it changed anything for good, and is not counted.
    pub changes: u64,
    /// Counted deploys that were a **change failure**: ended `failed` or
    /// `rolled_back`, or were followed by a rollback in the same environment
    /// before the next deploy there.
    pub change_failures: u64,
    /// **Change failure rate**: `change_failures` ÷ `changes`.
    pub change_failure_rate: Option<f64>,
    /// **Time to restore**: the median, over change failures, of the time
    /// from the failing deploy's end to the end of the next deployment (deploy
    /// or rollback) in the same environment that succeeded. A failure not
    /// restored yet is left out (see `unrestored`).
    pub time_to_restore_ms: Option<i64>,
    /// Change failures with no later successful deployment yet.
    pub unrestored: u64,
}

/// The statistics of each environment named in `envs` (in that order, each
/// once, with zeros where nothing happened), from deployments of any
/// environment: rows of other environments, rows created outside the
/// period and rows still running are ignored.
pub fn by_environment(envs: &[String], rows: &[DeploymentFacts], period: Period) -> Vec<EnvStats> {
    let mut per_env: BTreeMap<&str, Vec<&DeploymentFacts>> = BTreeMap::new();
    for r in rows {
        per_env.entry(r.env.as_str()).or_default().push(r);
    }
    envs.iter()
        .map(|env| environment(env, per_env.get(env.as_str()).map(Vec::as_slice).unwrap_or_default(), period))
        .collect()
}

/// The statistics of one environment from its deployments (any order).
fn environment(env: &str, rows: &[&DeploymentFacts], period: Period) -> EnvStats {
    let mut ended: Vec<&DeploymentFacts> = rows
        .iter()
        .copied()
        .filter(|r| r.env == env && period.contains(r.created_at) && r.status.is_terminal())
        .collect();
    ended.sort_by_key(|r| (r.created_at, r.id));

    let count = |f: &dyn Fn(&DeploymentFacts) -> bool| ended.iter().filter(|r| f(r)).count() as u64;
    let is_deploy = |r: &DeploymentFacts| r.kind == DeploymentKind::Deploy;
    let failed_status = |s: DeploymentStatus| matches!(s, DeploymentStatus::Failed | DeploymentStatus::RolledBack);

    let durations: Vec<i64> = ended
        .iter()
        .filter(|r| r.status != DeploymentStatus::Canceled)
        .filter_map(|r| r.finished_at.map(|f| (f - r.created_at).max(0)))
        .collect();
    let lead_times: Vec<i64> = ended
        .iter()
        .filter(|r| is_deploy(r) && r.status == DeploymentStatus::Succeeded)
        .filter_map(|r| Some((r.finished_at? - r.committed_at?).max(0)))
        .collect();
    let successful_deploys = count(&|r| is_deploy(r) && r.status == DeploymentStatus::Succeeded);

    // Change failures, and from each the time to the next success.
    let mut changes = 0;
    let mut failures = 0;
    let mut restore_times = Vec::new();
    let mut unrestored = 0;
    for (i, d) in ended.iter().enumerate() {
        if !is_deploy(d) {
            continue;
        }
        let later = &ended[i + 1..];
        let rolled_back_after = later.iter().take_while(|r| !is_deploy(r)).any(|r| r.kind == DeploymentKind::Rollback);
        let counted = d.status != DeploymentStatus::Canceled || rolled_back_after;
        if !counted {
            continue;
        }
        changes += 1;
        if !(failed_status(d.status) || rolled_back_after) {
            continue;
        }
        failures += 1;
        let restored = later.iter().find(|r| r.status == DeploymentStatus::Succeeded).and_then(|r| r.finished_at);
        match (d.finished_at, restored) {
            (Some(failed_at), Some(restored_at)) => restore_times.push((restored_at - failed_at).max(0)),
            _ => unrestored += 1,
        }
    }

    EnvStats {
        env: env.to_string(),
        deployments: ended.len() as u64,
        deploys: count(&is_deploy),
        rollbacks: count(&|r| r.kind == DeploymentKind::Rollback),
        emergency_rollbacks: count(&|r| r.kind == DeploymentKind::Rollback && r.emergency),
        succeeded: count(&|r| r.status == DeploymentStatus::Succeeded),
        failed: count(&|r| failed_status(r.status)),
        rolled_back: count(&|r| r.status == DeploymentStatus::RolledBack),
        canceled: count(&|r| r.status == DeploymentStatus::Canceled),
        mean_duration_ms: mean(&durations),
        deploys_per_day: if period.days() > 0.0 { successful_deploys as f64 / period.days() } else { 0.0 },
        lead_time_ms: median(lead_times.clone()),
        lead_time_samples: lead_times.len() as u64,
        changes,
        change_failures: failures,
        change_failure_rate: (changes > 0).then(|| failures as f64 / changes as f64),
        time_to_restore_ms: median(restore_times),
        unrestored,
    }
}

/// The mean, rounded down; `None` for no values.
fn mean(values: &[i64]) -> Option<i64> {
    if values.is_empty() {
        return None;
    }
    let sum: i128 = values.iter().map(|v| i128::from(*v)).sum();
    i64::try_from(sum / values.len() as i128).ok()
}

/// The median: the middle value, or the mean of the two middle values
/// (rounded down) for an even count; `None` for no values.
fn median(mut values: Vec<i64>) -> Option<i64> {
    values.sort_unstable();
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => i64::try_from((i128::from(values[n / 2 - 1]) + i128::from(values[n / 2])) / 2).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeploymentKind::*;
    use DeploymentStatus::*;

    const MIN: i64 = 60_000;
    const DAY: i64 = 86_400_000;

    /// A deployment in `prod` created at minute `at`, lasting `mins` minutes.
    fn row(id: i64, kind: DeploymentKind, status: DeploymentStatus, at: i64, mins: i64) -> DeploymentFacts {
        DeploymentFacts {
            id,
            env: "prod".into(),
            kind,
            status,
            created_at: at * MIN,
            finished_at: (status != Running).then_some((at + mins) * MIN),
            emergency: false,
            committed_at: None,
        }
    }

    fn stats(rows: &[DeploymentFacts]) -> EnvStats {
        let period = Period { since: 0, until: 10 * DAY };
        by_environment(&["prod".into()], rows, period).remove(0)
    }

    #[test]
    fn nothing_deployed_is_zero_and_no_metric() {
        let s = stats(&[]);
        assert_eq!((s.deployments, s.deploys, s.succeeded, s.failed), (0, 0, 0, 0));
        assert_eq!(s.deploys_per_day, 0.0);
        assert_eq!((s.mean_duration_ms, s.lead_time_ms, s.time_to_restore_ms), (None, None, None));
        assert_eq!((s.changes, s.change_failure_rate, s.unrestored), (0, None, 0));
    }

    #[test]
    fn every_environment_asked_for_is_answered_in_order() {
        let mut staging = row(1, Deploy, Succeeded, 0, 1);
        staging.env = "staging".into();
        let rows = [staging, row(2, Deploy, Succeeded, 5, 1)];
        let period = Period { since: 0, until: DAY };
        let all = by_environment(&["staging".into(), "prod".into(), "qa".into()], &rows, period);
        let names: Vec<&str> = all.iter().map(|s| s.env.as_str()).collect();
        assert_eq!(names, ["staging", "prod", "qa"]);
        assert_eq!((all[0].deploys, all[1].deploys, all[2].deploys), (1, 1, 0));
    }

    #[test]
    fn counts_by_kind_and_status() {
        let mut emergency = row(5, Rollback, Succeeded, 50, 1);
        emergency.emergency = true;
        let rows = [
            row(1, Deploy, Succeeded, 0, 2),
            row(2, Deploy, Failed, 10, 4),
            row(3, Deploy, RolledBack, 20, 6),
            row(4, Deploy, Canceled, 30, 100),
            emergency,
            row(6, Rollback, Failed, 60, 3),
            row(7, Deploy, Running, 70, 0),
        ];
        let s = stats(&rows);
        assert_eq!((s.deployments, s.deploys, s.rollbacks, s.emergency_rollbacks), (6, 4, 2, 1));
        assert_eq!((s.succeeded, s.failed, s.rolled_back, s.canceled), (2, 3, 1, 1));
        // (2 + 4 + 6 + 1 + 3) / 5: the canceled one and the running one are left out.
        assert_eq!(s.mean_duration_ms, Some(16 * MIN / 5));
    }

    #[test]
    fn running_deployments_count_nowhere() {
        let s = stats(&[row(1, Deploy, Running, 0, 0), row(2, Rollback, Running, 1, 0)]);
        assert_eq!((s.deployments, s.changes, s.change_failures), (0, 0, 0));
        assert_eq!(s.mean_duration_ms, None);
        // A rollback still running does not (yet) make the deploy before it a failure.
        let s = stats(&[row(1, Deploy, Succeeded, 0, 1), row(2, Rollback, Running, 5, 0)]);
        assert_eq!((s.changes, s.change_failures), (1, 0));
    }

    #[test]
    fn frequency_is_successful_deploys_per_day() {
        let rows = [
            row(1, Deploy, Succeeded, 0, 1),
            row(2, Deploy, Succeeded, 10, 1),
            row(3, Deploy, Failed, 20, 1),
            row(4, Rollback, Succeeded, 30, 1),
            row(5, Deploy, Succeeded, 40, 1),
        ];
        // Three successful deploys over 10 days.
        assert!((stats(&rows).deploys_per_day - 0.3).abs() < 1e-9);
        let empty_period = Period { since: 5, until: 5 };
        assert_eq!(by_environment(&["prod".into()], &rows, empty_period)[0].deploys_per_day, 0.0);
    }

    #[test]
    fn the_period_bounds_which_deployments_count() {
        let rows = [row(1, Deploy, Succeeded, 0, 1), row(2, Deploy, Succeeded, 100, 1)];
        let s = by_environment(&["prod".into()], &rows, Period { since: MIN, until: 100 * MIN + 1 });
        assert_eq!(s[0].deploys, 1);
        let s = by_environment(&["prod".into()], &rows, Period { since: 0, until: 100 * MIN });
        assert_eq!(s[0].deploys, 1, "until is exclusive");
    }

    #[test]
    fn lead_time_is_the_median_from_commit_to_successful_deploy() {
        let with_commit = |mut r: DeploymentFacts, commit_min: i64| {
            r.committed_at = Some(commit_min * MIN);
            r
        };
        let rows = [
            with_commit(row(1, Deploy, Succeeded, 10, 2), 0),   // 12 min
            with_commit(row(2, Deploy, Failed, 20, 2), 0),      // failed: not delivered
            row(3, Deploy, Succeeded, 30, 2),                   // an upload: no commit time
            with_commit(row(4, Deploy, Succeeded, 40, 5), 25),  // 20 min
            with_commit(row(5, Rollback, Succeeded, 50, 1), 0), // a rollback delivers nothing new
        ];
        let s = stats(&rows);
        assert_eq!((s.lead_time_ms, s.lead_time_samples), (Some(16 * MIN), 2));
        // Odd count: the middle one; a commit "after" the deploy counts as 0.
        let rows = [
            with_commit(row(1, Deploy, Succeeded, 10, 2), 0),
            with_commit(row(2, Deploy, Succeeded, 20, 2), 100),
            with_commit(row(3, Deploy, Succeeded, 30, 2), 2),
        ];
        assert_eq!(stats(&rows).lead_time_ms, Some(12 * MIN));
        // Only uploads: no lead time at all.
        assert_eq!(stats(&[row(1, Deploy, Succeeded, 0, 1)]).lead_time_ms, None);
    }

    #[test]
    fn change_failures_are_failed_deploys_and_deploys_rolled_back_before_the_next() {
        let rows = [
            row(1, Deploy, Succeeded, 0, 1),   // fine
            row(2, Deploy, Failed, 10, 1),     // failure
            row(3, Deploy, RolledBack, 20, 1), // failure
            row(4, Deploy, Succeeded, 30, 1),  // followed by a rollback: failure
            row(5, Rollback, Succeeded, 40, 1),
            row(6, Deploy, Succeeded, 50, 1), // fine: the rollback after 7 is 7's
            row(7, Deploy, Succeeded, 60, 1), // followed by a failed rollback: failure all the same
            row(8, Rollback, Failed, 70, 1),
            row(9, Deploy, Canceled, 80, 1), // canceled by hand, nothing after: not counted
            row(10, Deploy, Succeeded, 90, 1),
        ];
        let s = stats(&rows);
        assert_eq!((s.changes, s.change_failures), (7, 4));
        assert_eq!(s.change_failure_rate, Some(4.0 / 7.0));
    }

    #[test]
    fn a_deploy_an_emergency_rollback_took_over_from_is_a_change_failure() {
        let mut emergency = row(2, Rollback, Succeeded, 5, 1);
        emergency.emergency = true;
        let rows = [row(1, Deploy, Canceled, 0, 5), emergency];
        let s = stats(&rows);
        assert_eq!((s.changes, s.change_failures, s.emergency_rollbacks), (1, 1, 1));
        // From the deploy's end (when the emergency canceled it) to the rollback's end.
        assert_eq!(s.time_to_restore_ms, Some(MIN));
    }

    #[test]
    fn time_to_restore_runs_from_a_failure_to_the_next_success() {
        let rows = [
            row(1, Deploy, Failed, 0, 2),       // ends at 2; restored by 3 at 14: 12 min
            row(2, Rollback, Failed, 5, 1),     // a failed rollback restores nothing
            row(3, Deploy, Succeeded, 10, 4),   // ends at 14; rolled back by 4 at 23: 9 min
            row(4, Rollback, Succeeded, 20, 3), // ends at 23
            row(5, Deploy, RolledBack, 30, 2),  // ends at 32; nothing succeeded since
        ];
        let s = stats(&rows);
        assert_eq!(s.change_failures, 3);
        assert_eq!(s.unrestored, 1);
        assert_eq!(s.time_to_restore_ms, Some((12 + 9) * MIN / 2));
        // Only successes: nothing to restore.
        assert_eq!(stats(&[row(1, Deploy, Succeeded, 0, 1)]).time_to_restore_ms, None);
    }

    #[test]
    fn order_is_by_creation_not_by_the_order_rows_come_in() {
        let rows = [row(2, Rollback, Succeeded, 10, 1), row(1, Deploy, Succeeded, 0, 1)];
        assert_eq!(stats(&rows).change_failures, 1);
        // Same millisecond: the id decides.
        let rows = [row(2, Rollback, Succeeded, 0, 1), row(1, Deploy, Succeeded, 0, 1)];
        assert_eq!(stats(&rows).change_failures, 1);
    }

    #[test]
    fn medians_and_means() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![5]), Some(5));
        assert_eq!(median(vec![9, 1, 5]), Some(5));
        assert_eq!(median(vec![4, 1, 2, 3]), Some(2));
        assert_eq!(mean(&[]), None);
        assert_eq!(mean(&[1, 2]), Some(1));
        assert_eq!(mean(&[i64::MAX, i64::MAX]), Some(i64::MAX));
    }
}
