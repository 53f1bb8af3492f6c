//! Choosing what a rollback goes back to (R11).

/// What one host has run of a project, for choosing where a rollback takes
/// it (R9, R11): a rollback works per host, whatever the environment says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPast<R> {
    /// The release the host is meant to run now (its desired release).
    pub desired: Option<R>,
    /// The releases that ran successfully on the host (activated and
    /// reported idle), newest first. A release that was only in flight (an
    /// install or a hook still running, or one that failed) is not here.
    pub ran: Vec<R>,
}

/// Where a rollback takes one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostRollback<R> {
    /// To `release`; `from` is what the host last ran successfully.
    To { release: R, from: Option<R> },
    /// The host runs the target and is meant to: nothing to change.
    AlreadyThere(R),
    /// No earlier release that is not marked bad ran on the host.
    NothingEarlier,
}

impl<R> HostRollback<R> {
    /// The release the host goes to, if it moves.
    pub fn release(&self) -> Option<&R> {
        match self {
            HostRollback::To { release, .. } => Some(release),
            _ => None,
        }
    }
}

/// Where a rollback takes one host. With `to`, there. Otherwise back to the
/// newest release that ran successfully on the host other than the one it
/// is moving away from, passing over releases marked bad (`is_bad`).
///
/// `away_from` is the release the rollback undoes: for an emergency that
/// takes over a running deployment, that deployment's release for this host;
/// otherwise (`None`) the host's desired release. So a host whose install of
/// v4 is still in flight goes to the v3 it ran, never to a v2 before it, and
/// a host a running deployment has not reached yet stays where it is.
pub fn host_rollback_target<R: PartialEq + Clone>(
    past: &HostPast<R>,
    away_from: Option<&R>,
    to: Option<&R>,
    is_bad: impl Fn(&R) -> bool,
) -> HostRollback<R> {
    let target = match to {
        Some(to) => to.clone(),
        None => {
            let away = away_from.or(past.desired.as_ref()).or(past.ran.first());
            match past.ran.iter().find(|r| Some(*r) != away && !is_bad(r)) {
                Some(r) => r.clone(),
                None => return HostRollback::NothingEarlier,
            }
        }
    };
    if past.desired.as_ref() == Some(&target) && past.ran.first() == Some(&target) {
        return HostRollback::AlreadyThere(target);
    }
    HostRollback::To { release: target, from: past.ran.first().cloned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn past(desired: Option<u32>, ran: &[u32]) -> HostPast<u32> {
        HostPast { desired, ran: ran.to_vec() }
    }

    fn to(release: u32, from: u32) -> HostRollback<u32> {
        HostRollback::To { release, from: Some(from) }
    }

    #[test]
    fn a_host_goes_back_to_what_it_ran_before() {
        // Deployed v2 to this host alone: it goes back to v1, whatever the
        // environment's desired version says.
        assert_eq!(host_rollback_target(&past(Some(2), &[2, 1]), None, None, |_| false), to(1, 2));
        // A host that only ever ran v1 has nothing to go back to.
        assert_eq!(host_rollback_target(&past(Some(1), &[1]), None, None, |_| false), HostRollback::NothingEarlier);
        assert_eq!(host_rollback_target(&past(None, &[]), None, None, |_| false), HostRollback::NothingEarlier);
    }

    #[test]
    fn a_release_only_in_flight_never_counts() {
        // v4 is desired but never ran: back to the v3 the host runs.
        assert_eq!(host_rollback_target(&past(Some(4), &[3, 2]), None, None, |_| false), to(3, 3));
    }

    #[test]
    fn an_emergency_undoes_the_running_deployment_per_host() {
        // Taking over a deployment of v4: a host it updated goes back to v3,
        // one in flight goes to the v3 it ran, one not reached stays on v3.
        assert_eq!(host_rollback_target(&past(Some(4), &[4, 3, 2]), Some(&4), None, |_| false), to(3, 4));
        assert_eq!(host_rollback_target(&past(Some(4), &[3, 2]), Some(&4), None, |_| false), to(3, 3));
        assert_eq!(
            host_rollback_target(&past(Some(3), &[3, 2]), Some(&4), None, |_| false),
            HostRollback::AlreadyThere(3)
        );
    }

    #[test]
    fn releases_marked_bad_are_passed_over() {
        assert_eq!(host_rollback_target(&past(Some(3), &[3, 2, 1]), None, None, |r| *r == 2), to(1, 3));
        assert_eq!(
            host_rollback_target(&past(Some(3), &[3, 2]), None, None, |r| *r == 2),
            HostRollback::NothingEarlier
        );
    }

    #[test]
    fn to_a_named_release_and_hosts_already_there() {
        assert_eq!(host_rollback_target(&past(Some(3), &[3, 2]), None, Some(&1), |_| false), to(1, 3));
        assert_eq!(
            host_rollback_target(&past(Some(1), &[1, 3]), None, Some(&1), |_| false),
            HostRollback::AlreadyThere(1)
        );
        // Meant to run v1 but still on v3 (in flight): not there yet.
        assert_eq!(host_rollback_target(&past(Some(1), &[3, 1]), None, Some(&1), |_| false), to(1, 3));
        // Never ran anything: --to still takes it there.
        assert_eq!(
            host_rollback_target(&past(None, &[]), None, Some(&1), |_| false),
            HostRollback::To { release: 1, from: None }
        );
    }
}
