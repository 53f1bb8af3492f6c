//! Choosing what a rollback goes back to (R11).

/// One finished deployment of an environment, newest first in the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastDeployment<R> {
    pub release: R,
    pub succeeded: bool,
}

/// The release a rollback without `--to` returns to: the newest release,
/// other than the one now desired, that an earlier deployment of this
/// environment rolled out successfully. `None` when there is no such release.
pub fn rollback_target<R: PartialEq + Clone>(
    current: Option<&R>,
    history_newest_first: &[PastDeployment<R>],
) -> Option<R> {
    rollback_target_skipping(current, history_newest_first, |_| false)
}

/// [`rollback_target`], passing over releases for which `is_bad` holds
/// (marked bad): a rollback is for getting away from trouble, so it never
/// goes back to a release someone said causes it. `None` when every
/// candidate is bad; the user can still name one with `--to` (and `--force`).
pub fn rollback_target_skipping<R: PartialEq + Clone>(
    current: Option<&R>,
    history_newest_first: &[PastDeployment<R>],
    is_bad: impl Fn(&R) -> bool,
) -> Option<R> {
    history_newest_first
        .iter()
        .filter(|d| d.succeeded)
        .map(|d| &d.release)
        .find(|r| Some(*r) != current && !is_bad(r))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(release: u32, succeeded: bool) -> PastDeployment<u32> {
        PastDeployment { release, succeeded }
    }

    #[test]
    fn goes_back_to_the_last_good_other_release() {
        let history = [d(3, true), d(2, true), d(1, true)];
        assert_eq!(rollback_target(Some(&3), &history), Some(2));
    }

    #[test]
    fn skips_failed_deployments_and_repeats_of_current() {
        let history = [d(3, false), d(3, true), d(2, false), d(1, true)];
        assert_eq!(rollback_target(Some(&3), &history), Some(1));
    }

    #[test]
    fn a_failed_current_goes_back_to_the_last_good() {
        let history = [d(3, false), d(2, true)];
        assert_eq!(rollback_target(Some(&3), &history), Some(2));
    }

    #[test]
    fn nothing_to_go_back_to() {
        assert_eq!(rollback_target(Some(&1), &[d(1, true)]), None);
        assert_eq!(rollback_target::<u32>(None, &[]), None);
    }

    #[test]
    fn skips_releases_marked_bad() {
        let history = [d(3, true), d(2, true), d(1, true)];
        assert_eq!(rollback_target_skipping(Some(&3), &history, |r| *r == 2), Some(1));
        assert_eq!(rollback_target_skipping(Some(&3), &history, |_| false), Some(2), "nothing marked: as before");
    }

    #[test]
    fn a_bad_current_still_goes_back_to_the_last_good() {
        let history = [d(3, true), d(2, true)];
        assert_eq!(rollback_target_skipping(Some(&3), &history, |r| *r == 3), Some(2));
    }

    #[test]
    fn skipping_bad_releases_keeps_skipping_failures_and_current() {
        let history = [d(4, true), d(3, false), d(2, true), d(3, true), d(1, true)];
        assert_eq!(rollback_target_skipping(Some(&4), &history, |r| *r == 2), Some(3));
        assert_eq!(rollback_target_skipping(Some(&3), &history, |r| *r == 4 || *r == 2), Some(1));
    }

    #[test]
    fn nothing_to_go_back_to_when_every_candidate_is_bad() {
        let history = [d(3, true), d(2, true), d(1, true)];
        assert_eq!(rollback_target_skipping(Some(&3), &history, |r| *r < 3), None);
        assert_eq!(rollback_target_skipping(None, &history, |_| true), None);
    }
}
