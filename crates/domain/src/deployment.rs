//! Deployment and per-host states, and the rules that move between them.
//!
//! A deployment records the version and its plan (its target hosts in
//! batches, see `rollout`), makes it desired for one batch after another, and
//! follows each host's report (R4). It ends only when every target host has
//! an end state, so no host goes unaccounted for; one failed host fails the
//! whole deployment (R10).

use std::fmt;
use std::str::FromStr;

/// The reason recorded on a deployment that an emergency rollback took over
/// (it ends canceled): clients tell it from an operator's cancel by it.
pub const EMERGENCY_TOOK_OVER: &str = "an emergency rollback took over";

/// Why a deployment exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeploymentKind {
    Deploy,
    Rollback,
}

/// The state of one deployment as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentStatus {
    /// Going, waiting between batches, or paused: it holds the R19 lock.
    Running,
    Succeeded,
    Failed,
    /// Failed, and the hosts it had updated were put back.
    RolledBack,
    /// Stopped by an operator, or superseded by an emergency rollback.
    Canceled,
}

/// The state of one target host within a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostDeployState {
    /// Its batch has not started: nothing changed on the host yet.
    Queued,
    /// Desired state is set; the host has not started on it yet (or is offline).
    Pending,
    /// The agent reported that it is installing or activating the release.
    Running,
    Succeeded,
    Failed,
    /// It had been updated (or had failed) and was put back on its previous
    /// release when the rollout stopped.
    RolledBack,
    /// Never started, or stopped unfinished with nothing to put back: the
    /// rollout stopped or was canceled first.
    Canceled,
    /// Offline when the deployment started, under the `skip` offline policy:
    /// never started; it gets the release when it returns if the deployment
    /// succeeded.
    Skipped,
}

impl HostDeployState {
    /// States in which the host's part of the deployment is over. A
    /// succeeded or failed host may still be rolled back.
    pub fn is_terminal(self) -> bool {
        use HostDeployState::*;
        matches!(self, Succeeded | Failed | RolledBack | Canceled | Skipped)
    }

    /// Whether `self` may move to `next`. Reports move started hosts forward;
    /// the orchestrator starts queued hosts, cancels them, or rolls hosts
    /// back; nothing else changes history.
    pub fn can_move_to(self, next: HostDeployState) -> bool {
        use HostDeployState::*;
        matches!(
            (self, next),
            (Queued, Pending | Canceled)
                | (Pending, Running | Succeeded | Failed | RolledBack | Canceled)
                | (Running, Succeeded | Failed | RolledBack | Canceled)
                | (Succeeded | Failed, RolledBack)
        )
    }
}

impl DeploymentStatus {
    pub fn is_terminal(self) -> bool {
        self != DeploymentStatus::Running
    }
}

macro_rules! string_enum {
    ($ty:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            /// The lowercase name used in the database, the API and the CLI.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),+ }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($ty::$variant),)+
                    other => Err(format!("unknown {} '{}'", stringify!($ty), other)),
                }
            }
        }
    };
}

/// The state of a build (R6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Canceled,
}

impl BuildStatus {
    pub fn is_terminal(self) -> bool {
        matches!(self, BuildStatus::Succeeded | BuildStatus::Failed | BuildStatus::Canceled)
    }

    /// Queued builds start or are canceled; running builds end; ended builds
    /// stay ended (a retry is a new build).
    pub fn can_move_to(self, next: BuildStatus) -> bool {
        use BuildStatus::*;
        matches!((self, next), (Queued, Running | Canceled) | (Running, Succeeded | Failed | Canceled))
    }
}

string_enum!(BuildStatus {
    Queued => "queued",
    Running => "running",
    Succeeded => "succeeded",
    Failed => "failed",
    Canceled => "canceled",
});
string_enum!(DeploymentKind { Deploy => "deploy", Rollback => "rollback" });
string_enum!(DeploymentStatus {
    Running => "running",
    Succeeded => "succeeded",
    Failed => "failed",
    RolledBack => "rolled_back",
    Canceled => "canceled",
});
string_enum!(HostDeployState {
    Queued => "queued",
    Pending => "pending",
    Running => "running",
    Succeeded => "succeeded",
    Failed => "failed",
    RolledBack => "rolled_back",
    Canceled => "canceled",
    Skipped => "skipped",
});

#[cfg(test)]
mod tests {
    use super::HostDeployState::*;
    use super::*;

    const ALL: [HostDeployState; 8] = [Queued, Pending, Running, Succeeded, Failed, RolledBack, Canceled, Skipped];

    #[test]
    fn every_transition() {
        let allowed = [
            (Queued, Pending),
            (Queued, Canceled),
            (Pending, Running),
            (Pending, Succeeded),
            (Pending, Failed),
            (Pending, RolledBack),
            (Pending, Canceled),
            (Running, Succeeded),
            (Running, Failed),
            (Running, RolledBack),
            (Running, Canceled),
            (Succeeded, RolledBack),
            (Failed, RolledBack),
        ];
        for from in ALL {
            for to in ALL {
                assert_eq!(from.can_move_to(to), allowed.contains(&(from, to)), "{from} -> {to}");
            }
            // Only states with a way forward are not terminal.
            let stuck = ALL.iter().all(|to| !from.can_move_to(*to) || *to == RolledBack);
            assert_eq!(from.is_terminal(), stuck, "{from}");
        }
    }

    #[test]
    fn every_build_transition() {
        use BuildStatus::*;
        let all = [Queued, Running, Succeeded, Failed, Canceled];
        for from in all {
            for to in all {
                let expected = matches!(
                    (from, to),
                    (Queued, Running)
                        | (Queued, Canceled)
                        | (Running, Succeeded)
                        | (Running, Failed)
                        | (Running, Canceled)
                );
                assert_eq!(from.can_move_to(to), expected, "{from} -> {to}");
            }
            assert_eq!(from.as_str().parse::<BuildStatus>(), Ok(from));
        }
    }

    #[test]
    fn names_round_trip() {
        for s in ALL {
            assert_eq!(s.as_str().parse::<HostDeployState>(), Ok(s));
        }
        for s in [
            DeploymentStatus::Running,
            DeploymentStatus::Succeeded,
            DeploymentStatus::Failed,
            DeploymentStatus::RolledBack,
            DeploymentStatus::Canceled,
        ] {
            assert_eq!(s.as_str().parse::<DeploymentStatus>(), Ok(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        assert_eq!("rollback".parse::<DeploymentKind>(), Ok(DeploymentKind::Rollback));
        assert!("done".parse::<DeploymentStatus>().is_err());
    }
}
