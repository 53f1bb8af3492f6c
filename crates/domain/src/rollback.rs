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
    history_newest_first.iter().filter(|d| d.succeeded).map(|d| &d.release).find(|r| Some(*r) != current).cloned()
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
}
