//! What a host reports of each project: the release `current` names, what
//! the agent is doing about the desired one, the bytes an install moved, how
//! the service fares, and the lines of a deployment log.
//!
//! The agent sends these on its channel (`ferry_proto::agent` re-exports
//! them, so the wire format is theirs); the store records them. They are
//! domain types so that the store depends on what a report *means*, not on
//! the protocol that carries it.

/// One line of a deployment log, as the agent saw it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogLine {
    /// When the agent read it (milliseconds since the epoch, the host's
    /// clock); 0 if unknown, and the server uses the time it arrived.
    #[serde(default)]
    pub at_ms: i64,
    /// `stdout` or `stderr` of a hook, or `ferry` for the agent's own steps.
    pub stream: String,
    pub text: String,
}

/// The release a project's `current` link points at.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ActiveRelease {
    pub release_id: i64,
    pub release_name: String,
    pub version: String,
}

/// What the agent is doing about a project's desired release.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Activity {
    /// Nothing in progress: `current` is the desired release, or there is none.
    Idle,
    Installing {
        release_id: i64,
    },
    Failed {
        release_id: i64,
        error: String,
    },
}

/// Bytes moved to install one release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct TransferStats {
    pub release_id: i64,
    pub bytes_downloaded: u64,
    pub bytes_reused: u64,
    pub files_downloaded: u64,
}

/// One project's state on a host.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProjectReport {
    pub project: String,
    pub current: Option<ActiveRelease>,
    pub activity: Activity,
    /// Set after an install, for the release it installed.
    pub transfer: Option<TransferStats>,
    /// Something an operator should know, e.g. a manual rollback on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The `desired_since` of the assignment this report answers, so that a
    /// report made before the agent saw a new deployment never counts for
    /// it (0 from agents that predate the field).
    #[serde(default)]
    pub desired_since: i64,
    /// How the release's service fares, from an idle host whose release has
    /// a `[service]` (R21); older agents send none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceHealth>,
}

/// Lines of a failing service's stderr a report carries, at most.
pub const SERVICE_TAIL_LINES: usize = 10;

/// How a project's service fares on a host after its deploy.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServiceHealth {
    /// The supervisor keeps failing to keep it running (a crash loop).
    pub failing: bool,
    /// Why, in one line (empty when it is not failing).
    #[serde(default)]
    pub reason: String,
    /// Its last lines of stderr when failing (at most [`SERVICE_TAIL_LINES`]).
    #[serde(default)]
    pub stderr: Vec<String>,
}

/// What a host's `host_actual` row of the project becomes after a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActualWrite {
    /// `idle`, `installing` or `failed`.
    pub activity: &'static str,
    /// The failure, or the report's note (e.g. a manual rollback on the
    /// host), which shows where errors do.
    pub error: Option<String>,
    /// Its release now: a successful run to add to the host's history of
    /// releases that ran, when the host is idle on it.
    pub ran: Option<i64>,
}

/// A host's row of a running deployment of the reported project that is
/// still open (pending or running), as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenRow {
    pub deployment: i64,
    /// The row's own release; `None` means the deployment's.
    pub release_id: Option<i64>,
    pub deployment_release_id: i64,
    pub state: crate::HostDeployState,
    pub started_at: Option<i64>,
    /// When the deployment was made (for a row without `started_at`).
    pub created_at: i64,
}

/// How a report moves one open row: every column to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRowUpdate {
    pub deployment: i64,
    pub state: crate::HostDeployState,
    /// The agent's own text of a failure (it stays text).
    pub error: Option<crate::status::Note>,
    pub started_at: i64,
    /// Set when the state is final.
    pub finished_at: Option<i64>,
    /// Bytes of the install of this row's release, when the report says;
    /// `None` leaves the recorded ones.
    pub bytes_downloaded: Option<i64>,
    pub bytes_reused: Option<i64>,
}

/// What a report means for the host's actual state.
pub fn actual(report: &ProjectReport) -> ActualWrite {
    let (activity, error) = match &report.activity {
        Activity::Idle => ("idle", report.note.clone()),
        Activity::Installing { .. } => ("installing", report.note.clone()),
        Activity::Failed { error, .. } => ("failed", Some(error.clone())),
    };
    let ran = match (&report.activity, &report.current) {
        (Activity::Idle, Some(c)) => Some(c.release_id),
        _ => None,
    };
    ActualWrite { activity, error, ran }
}

/// How `report`, received at `now`, moves the host's open deployment rows:
/// one update per row it moves, none for rows it says nothing of.
pub fn interpret(report: &ProjectReport, open: &[OpenRow], now: i64) -> Vec<HostRowUpdate> {
    use crate::HostDeployState;
    let mut updates = Vec::new();
    for row in open {
        let release_id = row.release_id.unwrap_or(row.deployment_release_id);
        let started_at = row.started_at.unwrap_or(row.created_at);
        // Made before the agent saw this host's batch start (e.g. the same
        // release deployed again while the agent was busy): it says
        // nothing of this deployment.
        if report.desired_since != 0 && report.desired_since < started_at {
            continue;
        }
        // A host can fail *on* the release (a health check with
        // `rollback = false`), and be busy activating the release that
        // `current` already names (a redeploy): the activity decides first.
        let (next, error) = match &report.activity {
            Activity::Failed { release_id: r, error } if *r == release_id => {
                (HostDeployState::Failed, Some(crate::status::Note::text(error.clone())))
            }
            Activity::Installing { release_id: r } if *r == release_id => (HostDeployState::Running, None),
            _ if report.current.as_ref().is_some_and(|c| c.release_id == release_id) => {
                (HostDeployState::Succeeded, None)
            }
            _ => continue,
        };
        if !row.state.can_move_to(next) {
            continue;
        }
        let transfer = report.transfer.filter(|t| t.release_id == release_id);
        let bytes = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        updates.push(HostRowUpdate {
            deployment: row.deployment,
            state: next,
            error,
            started_at: row.started_at.unwrap_or(now),
            finished_at: next.is_terminal().then_some(now),
            bytes_downloaded: transfer.map(|t| bytes(t.bytes_downloaded)),
            bytes_reused: transfer.map(|t| bytes(t.bytes_reused)),
        });
    }
    updates
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HostDeployState::{self, *};

    fn report(activity: Activity, current: Option<i64>) -> ProjectReport {
        ProjectReport {
            project: "shop".into(),
            current: current.map(|id| ActiveRelease { release_id: id, release_name: "r".into(), version: "v".into() }),
            activity,
            transfer: None,
            note: None,
            desired_since: 0,
            service: None,
        }
    }

    fn open(deployment: i64, state: HostDeployState, started_at: Option<i64>) -> OpenRow {
        OpenRow { deployment, release_id: None, deployment_release_id: 5, state, started_at, created_at: 100 }
    }

    #[test]
    fn the_actual_state_follows_the_activity() {
        let mut r = report(Activity::Idle, Some(5));
        r.note = Some("rolled back by hand".into());
        assert_eq!(actual(&r), ActualWrite { activity: "idle", error: r.note.clone(), ran: Some(5) });
        let r = report(Activity::Installing { release_id: 6 }, Some(5));
        assert_eq!(actual(&r), ActualWrite { activity: "installing", error: None, ran: None });
        let r = report(Activity::Failed { release_id: 6, error: "hook failed".into() }, Some(5));
        assert_eq!(actual(&r), ActualWrite { activity: "failed", error: Some("hook failed".into()), ran: None });
        assert_eq!(actual(&report(Activity::Idle, None)).ran, None, "nothing ran");
    }

    #[test]
    fn a_report_moves_the_rows_of_its_release_forward() {
        let rows = [open(1, Pending, Some(200))];
        let u = interpret(&report(Activity::Installing { release_id: 5 }, Some(4)), &rows, 300);
        assert_eq!(u.len(), 1);
        assert_eq!((u[0].state, u[0].started_at, u[0].finished_at, &u[0].error), (Running, 200, None, &None));
        let u = interpret(&report(Activity::Idle, Some(5)), &rows, 300);
        assert_eq!((u[0].state, u[0].finished_at), (Succeeded, Some(300)));
        let failed = report(Activity::Failed { release_id: 5, error: "hook failed".into() }, Some(4));
        let u = interpret(&failed, &rows, 300);
        assert_eq!((u[0].state, u[0].finished_at), (Failed, Some(300)));
        assert_eq!(u[0].error, Some(crate::status::Note::text("hook failed")), "the agent's text stays text");
        // About another release: says nothing of this row.
        assert!(interpret(&report(Activity::Idle, Some(4)), &rows, 300).is_empty());
        assert!(interpret(&report(Activity::Installing { release_id: 4 }, Some(5)), &rows, 300).len() == 1);
    }

    #[test]
    fn the_activity_decides_before_current() {
        // Failing on the release `current` names (a health check that does
        // not roll back), and activating it again (a redeploy).
        let rows = [open(1, Running, Some(200))];
        let failed = report(Activity::Failed { release_id: 5, error: "unhealthy".into() }, Some(5));
        assert_eq!(interpret(&failed, &rows, 300)[0].state, Failed);
        let rows = [open(1, Pending, Some(200))];
        let busy = report(Activity::Installing { release_id: 5 }, Some(5));
        assert_eq!(interpret(&busy, &rows, 300)[0].state, Running);
    }

    #[test]
    fn a_stale_report_says_nothing_of_a_later_batch() {
        let rows = [open(1, Pending, Some(200))];
        let mut r = report(Activity::Idle, Some(5));
        r.desired_since = 199;
        assert!(interpret(&r, &rows, 300).is_empty());
        r.desired_since = 200;
        assert_eq!(interpret(&r, &rows, 300).len(), 1);
        // Older agents send 0: counted.
        r.desired_since = 0;
        assert_eq!(interpret(&r, &rows, 300).len(), 1);
        // Without a start time, the deployment's creation counts.
        let rows = [open(1, Pending, None)];
        r.desired_since = 99;
        assert!(interpret(&r, &rows, 300).is_empty());
        r.desired_since = 100;
        let u = interpret(&r, &rows, 300);
        assert_eq!(u[0].started_at, 300, "an unstarted row starts when the report arrives");
    }

    #[test]
    fn rows_never_move_backwards_and_bytes_belong_to_their_release() {
        let rows = [open(1, Running, Some(200)), open(2, Pending, Some(200))];
        let mut r = report(Activity::Installing { release_id: 5 }, None);
        let u = interpret(&r, &rows, 300);
        assert_eq!(u.len(), 1, "running stays running: {u:?}");
        assert_eq!(u[0].deployment, 2);
        r.activity = Activity::Idle;
        r.current = Some(ActiveRelease { release_id: 5, release_name: "r".into(), version: "v".into() });
        r.transfer =
            Some(TransferStats { release_id: 5, bytes_downloaded: u64::MAX, bytes_reused: 7, files_downloaded: 1 });
        let u = interpret(&r, &rows, 300);
        assert_eq!(u.len(), 2);
        assert_eq!((u[0].bytes_downloaded, u[0].bytes_reused), (Some(i64::MAX), Some(7)));
        r.transfer = Some(TransferStats { release_id: 4, bytes_downloaded: 1, bytes_reused: 1, files_downloaded: 1 });
        assert_eq!(interpret(&r, &rows, 300)[0].bytes_downloaded, None, "another release's bytes");
        // A row of its own release.
        let own = [OpenRow { release_id: Some(9), ..open(3, Pending, Some(200)) }];
        assert!(interpret(&r, &own, 300).is_empty());
        let ended = [open(1, Succeeded, Some(200))];
        assert!(
            interpret(&report(Activity::Failed { release_id: 5, error: "x".into() }, None), &ended, 300).is_empty()
        );
    }
}
