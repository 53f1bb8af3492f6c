//! Agent self-upgrade (issue 15): the states of a host in an upgrade of an
//! environment's agents, what the next step of the upgrade is, and the bytes
//! the server signs for a binary. No I/O: the server feeds the recorded
//! state in and applies the answer.
//!
//! Batches are planned by [`crate::rollout::plan`] with the environment's
//! rollout strategy, as a deploy would; here only the order of events is
//! decided: the next batch starts once every host of the batch before came
//! back running the new binary, and one host that failed stops the upgrade.

use std::fmt;
use std::str::FromStr;

/// Where one host of an agent upgrade stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostUpgradeState {
    /// Its batch has not started.
    Queued,
    /// Told to upgrade; not yet back with the new binary.
    Upgrading,
    /// Reconnected running the new binary.
    Done,
    /// Refused the binary, or fell back to the old one.
    Failed,
    /// The upgrade stopped before its batch: left on its binary.
    Skipped,
}

impl HostUpgradeState {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            HostUpgradeState::Queued => "queued",
            HostUpgradeState::Upgrading => "upgrading",
            HostUpgradeState::Done => "done",
            HostUpgradeState::Failed => "failed",
            HostUpgradeState::Skipped => "skipped",
        }
    }
}

impl fmt::Display for HostUpgradeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HostUpgradeState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "queued" => HostUpgradeState::Queued,
            "upgrading" => HostUpgradeState::Upgrading,
            "done" => HostUpgradeState::Done,
            "failed" => HostUpgradeState::Failed,
            "skipped" => HostUpgradeState::Skipped,
            other => return Err(format!("unknown host upgrade state '{other}'")),
        })
    }
}

/// What an upgrade should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpgradeStep {
    /// Tell the hosts of this batch (1-based) to upgrade.
    StartBatch(u32),
    /// Hosts of the current batch are still upgrading.
    Wait,
    /// Every host runs the new binary.
    Succeeded,
    /// A host failed: stop here; the queued hosts are left alone.
    Failed,
}

/// The next step of an upgrade whose hosts are `(batch, state)`.
pub fn next_step(hosts: &[(u32, HostUpgradeState)]) -> UpgradeStep {
    use HostUpgradeState::*;
    if hosts.iter().any(|(_, s)| *s == Failed) {
        return UpgradeStep::Failed;
    }
    if hosts.iter().any(|(_, s)| *s == Upgrading) {
        return UpgradeStep::Wait;
    }
    match hosts.iter().filter(|(_, s)| *s == Queued).map(|(b, _)| *b).min() {
        Some(batch) => UpgradeStep::StartBatch(batch),
        None => UpgradeStep::Succeeded,
    }
}

/// The bytes the server signs for an agent binary and every agent checks the
/// signature against: the binary's SHA-256 (hex) and its version label, so
/// that neither a different file nor a relabelled one verifies.
pub fn signed_message(sha256: &str, version: &str) -> Vec<u8> {
    format!("ferry agent binary\nsha256 {sha256}\nversion {version}\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::HostUpgradeState::*;
    use super::*;

    #[test]
    fn batches_go_one_after_the_other() {
        assert_eq!(next_step(&[(1, Queued), (2, Queued)]), UpgradeStep::StartBatch(1));
        assert_eq!(next_step(&[(1, Upgrading), (2, Queued)]), UpgradeStep::Wait);
        assert_eq!(next_step(&[(1, Done), (1, Upgrading), (2, Queued)]), UpgradeStep::Wait);
        assert_eq!(next_step(&[(1, Done), (2, Queued), (3, Queued)]), UpgradeStep::StartBatch(2));
        assert_eq!(next_step(&[(1, Done), (2, Done)]), UpgradeStep::Succeeded);
        assert_eq!(next_step(&[]), UpgradeStep::Succeeded);
    }

    #[test]
    fn one_failed_host_stops_the_upgrade() {
        assert_eq!(next_step(&[(1, Failed), (2, Queued)]), UpgradeStep::Failed);
        // Even while others of its batch are still on their way.
        assert_eq!(next_step(&[(1, Failed), (1, Upgrading), (2, Queued)]), UpgradeStep::Failed);
        assert_eq!(next_step(&[(1, Done), (2, Failed), (2, Skipped)]), UpgradeStep::Failed);
    }

    #[test]
    fn states_round_trip_and_unknown_ones_are_named() {
        for s in [Queued, Upgrading, Done, Failed, Skipped] {
            assert_eq!(s.as_str().parse::<HostUpgradeState>(), Ok(s));
        }
        assert_eq!("lost".parse::<HostUpgradeState>(), Err("unknown host upgrade state 'lost'".into()));
    }

    #[test]
    fn the_signed_message_binds_digest_and_version() {
        let a = signed_message("ab", "v1");
        assert_ne!(a, signed_message("ab", "v2"));
        assert_ne!(a, signed_message("ac", "v1"));
        // A version cannot smuggle in another digest line.
        assert_ne!(signed_message("ab", "v1\nsha256 cd"), signed_message("cd", "v1"));
    }
}
