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
