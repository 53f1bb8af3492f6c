//! What an offline target host means for a deployment.
//!
//! Each environment chooses (`ferry env create|update --offline`, overridable
//! per deploy): a host that is offline when the deployment starts is skipped
//! (the default: the deployment goes on with the others, and the host
//! converges when it returns if the deployment succeeded), waited for up to
//! the deployment's offline timeout, or makes the deploy refuse to start.
//! A target that stops answering once its batch has started fails after a
//! few missed heartbeats, except under `wait`, which waits for it too.

use std::fmt;
use std::str::FromStr;

use crate::status::Note;

/// How many heartbeats a host at work may miss before it counts as dead.
pub const MISSED_HEARTBEATS: u32 = 3;

/// An environment's (or a deployment's) answer to "a target host is offline".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OfflinePolicy {
    /// Offline at the start: recorded as skipped with a warning; it gets the
    /// release when it returns, if the deployment succeeded.
    #[default]
    Skip,
    /// Offline hosts are waited for up to the offline timeout, then fail.
    Wait,
    /// Offline at the start: the deploy is refused, naming the hosts.
    Fail,
}

impl OfflinePolicy {
    /// The lowercase name used in the database, the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            OfflinePolicy::Skip => "skip",
            OfflinePolicy::Wait => "wait",
            OfflinePolicy::Fail => "fail",
        }
    }
}

impl fmt::Display for OfflinePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OfflinePolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "skip" => Ok(OfflinePolicy::Skip),
            "wait" => Ok(OfflinePolicy::Wait),
            "fail" => Ok(OfflinePolicy::Fail),
            other => Err(format!("offline policy must be skip, wait or fail, not '{other}'")),
        }
    }
}

/// The policy a deployment runs under: the one the deploy asks for, else
/// `wait` when it gives an offline timeout (waiting is what a timeout is
/// for), else the environment's. An emergency rollback is never refused for
/// an offline host: `fail` becomes `skip` (the host gets the rollback when it
/// returns).
pub fn for_deployment(
    asked: Option<OfflinePolicy>,
    timeout_given: bool,
    env: OfflinePolicy,
    emergency: bool,
) -> OfflinePolicy {
    let policy = match (asked, timeout_given) {
        (Some(p), _) => p,
        (None, true) => OfflinePolicy::Wait,
        (None, false) => env,
    };
    match policy {
        OfflinePolicy::Fail if emergency => OfflinePolicy::Skip,
        other => other,
    }
}

/// What happens to the target hosts that are offline when a deployment starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AtStart<'a> {
    /// Every target is planned (none offline, or `wait`).
    PlanAll,
    /// These hosts are recorded as skipped; the others are planned.
    Skip(Vec<&'a str>),
    /// The deploy is refused with this message.
    Refuse(String),
}

/// Decides, from the targets' names and whether each is online, which are
/// skipped or whether the deploy is refused. Refuses also when `skip` would
/// leave nothing to deploy to, so that a deployment never succeeds on no host
/// at all while every target is away.
pub fn at_start<'a>(policy: OfflinePolicy, targets: &[(&'a str, bool)]) -> AtStart<'a> {
    let offline: Vec<&str> = targets.iter().filter(|(_, online)| !online).map(|(n, _)| *n).collect();
    if offline.is_empty() {
        return AtStart::PlanAll;
    }
    match policy {
        OfflinePolicy::Wait => AtStart::PlanAll,
        OfflinePolicy::Fail => AtStart::Refuse(format!(
            "target host(s) offline: {} (the offline policy is fail; start their agents, or deploy with \
             --offline skip or --offline wait)",
            offline.join(", ")
        )),
        OfflinePolicy::Skip if offline.len() == targets.len() => AtStart::Refuse(format!(
            "every target host is offline ({}): nothing to deploy to; start their agents, or deploy with \
             --offline wait",
            offline.join(", ")
        )),
        OfflinePolicy::Skip => AtStart::Skip(offline),
    }
}

/// One started target (pending or running) as the offline check sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartedTarget {
    pub online: bool,
    /// The host's last heartbeat (or message), if any.
    pub last_seen_at: Option<i64>,
    /// When its batch started (the deployment's creation for old rows).
    pub started_at: i64,
}

/// Whether a started target counts as failed now, and why. Under `wait` an
/// offline host is given the deployment's offline timeout; otherwise it is
/// dead once it has missed [`MISSED_HEARTBEATS`] heartbeats (or the timeout,
/// if that is shorter), counted from its last heartbeat or from its batch's
/// start, whichever is later.
pub fn offline_failure(
    policy: OfflinePolicy,
    target: StartedTarget,
    now: i64,
    offline_timeout_ms: i64,
    heartbeat_interval_ms: i64,
) -> Option<Note> {
    if target.online {
        return None;
    }
    let silent_since = target.last_seen_at.unwrap_or(0).max(target.started_at);
    let silent = now.saturating_sub(silent_since);
    let dead_after = heartbeat_interval_ms.saturating_mul(i64::from(MISSED_HEARTBEATS));
    match policy {
        OfflinePolicy::Wait if silent > offline_timeout_ms => Some(Note::OfflineTimedOut),
        OfflinePolicy::Skip | OfflinePolicy::Fail if silent > dead_after.min(offline_timeout_ms) => {
            Some(Note::StoppedAnswering { missed: MISSED_HEARTBEATS, silent_ms: silent })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_and_print() {
        for p in [OfflinePolicy::Skip, OfflinePolicy::Wait, OfflinePolicy::Fail] {
            assert_eq!(p.as_str().parse::<OfflinePolicy>(), Ok(p));
        }
        assert!("later".parse::<OfflinePolicy>().unwrap_err().contains("skip, wait or fail"));
        assert_eq!(OfflinePolicy::default(), OfflinePolicy::Skip);
    }

    #[test]
    fn the_deploy_s_choice_then_a_timeout_then_the_environment_s() {
        use OfflinePolicy::*;
        assert_eq!(for_deployment(Some(Fail), true, Skip, false), Fail);
        assert_eq!(for_deployment(None, true, Fail, false), Wait, "a timeout means waiting");
        assert_eq!(for_deployment(None, false, Fail, false), Fail);
        assert_eq!(for_deployment(None, false, Skip, false), Skip);
        assert_eq!(for_deployment(None, false, Fail, true), Skip, "an emergency is never refused for it");
        assert_eq!(for_deployment(Some(Wait), false, Fail, true), Wait);
    }

    #[test]
    fn nobody_offline_plans_everyone_whatever_the_policy() {
        for p in [OfflinePolicy::Skip, OfflinePolicy::Wait, OfflinePolicy::Fail] {
            assert_eq!(at_start(p, &[("a", true), ("b", true)]), AtStart::PlanAll);
            assert_eq!(at_start(p, &[]), AtStart::PlanAll);
        }
    }

    #[test]
    fn offline_targets_at_start() {
        let t = [("a", true), ("b", false), ("c", false)];
        assert_eq!(at_start(OfflinePolicy::Skip, &t), AtStart::Skip(vec!["b", "c"]));
        assert_eq!(at_start(OfflinePolicy::Wait, &t), AtStart::PlanAll);
        match at_start(OfflinePolicy::Fail, &t) {
            AtStart::Refuse(m) => assert!(m.contains("b, c") && m.contains("fail"), "{m}"),
            other => panic!("{other:?}"),
        }
        match at_start(OfflinePolicy::Skip, &[("a", false)]) {
            AtStart::Refuse(m) => assert!(m.contains("every target host is offline (a)"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    const HB: i64 = 250;
    const TIMEOUT: i64 = 60_000;

    fn silent(last_seen: Option<i64>, started: i64) -> StartedTarget {
        StartedTarget { online: false, last_seen_at: last_seen, started_at: started }
    }

    #[test]
    fn an_online_target_never_fails_here() {
        let t = StartedTarget { online: true, last_seen_at: Some(0), started_at: 0 };
        for p in [OfflinePolicy::Skip, OfflinePolicy::Wait, OfflinePolicy::Fail] {
            assert_eq!(offline_failure(p, t, 10 * TIMEOUT, TIMEOUT, HB), None);
        }
    }

    #[test]
    fn a_host_dying_mid_batch_fails_after_three_missed_heartbeats() {
        // Seen at 1000 after its batch started at 500.
        let t = silent(Some(1000), 500);
        assert_eq!(offline_failure(OfflinePolicy::Skip, t, 1000 + 3 * HB, TIMEOUT, HB), None);
        let why = offline_failure(OfflinePolicy::Skip, t, 1001 + 3 * HB, TIMEOUT, HB).unwrap();
        assert!(why.to_string().contains("3 heartbeats missed"), "{why}");
        assert!(offline_failure(OfflinePolicy::Fail, t, 1001 + 3 * HB, TIMEOUT, HB).is_some());
        // Under wait, it is waited for like any offline host.
        assert_eq!(offline_failure(OfflinePolicy::Wait, t, 1001 + 3 * HB, TIMEOUT, HB), None);
        let why = offline_failure(OfflinePolicy::Wait, t, 1001 + TIMEOUT, TIMEOUT, HB).unwrap();
        assert!(why.to_string().contains("offline timeout"), "{why}");
    }

    #[test]
    fn silence_counts_from_the_batch_start_when_that_is_later() {
        // Last seen long before its batch started (a later batch): counted
        // from the start, not from the old heartbeat.
        let t = silent(Some(0), 10_000);
        assert_eq!(offline_failure(OfflinePolicy::Skip, t, 10_000 + 3 * HB, TIMEOUT, HB), None);
        assert!(offline_failure(OfflinePolicy::Skip, t, 10_001 + 3 * HB, TIMEOUT, HB).is_some());
        let never = silent(None, 10_000);
        assert_eq!(offline_failure(OfflinePolicy::Wait, never, 10_000 + TIMEOUT, TIMEOUT, HB), None);
        assert!(offline_failure(OfflinePolicy::Wait, never, 10_001 + TIMEOUT, TIMEOUT, HB).is_some());
    }

    #[test]
    fn a_shorter_offline_timeout_wins_over_the_heartbeats() {
        let t = silent(Some(0), 0);
        assert!(offline_failure(OfflinePolicy::Skip, t, 101, 100, 10_000).is_some());
    }
}
