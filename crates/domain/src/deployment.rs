//! Deployment and per-host states, and the rules that move between them.
//!
//! A deployment records the version, makes it desired for its target hosts,
//! and then follows each host's report (R4). It ends only when every target
//! host has ended, so no host goes unaccounted for; one failed host fails the
//! whole deployment (R10).

use std::fmt;
use std::str::FromStr;

/// Why a deployment exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeploymentKind {
    Deploy,
    Rollback,
}

/// The state of one deployment as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeploymentStatus {
    Running,
    Succeeded,
    Failed,
}

/// The state of one target host within a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostDeployState {
    /// Desired state is set; the host has not started on it yet (or is offline).
    Pending,
    /// The agent reported that it is installing or activating the release.
    Running,
    Succeeded,
    Failed,
}

impl HostDeployState {
    /// Succeeded and failed are final for this deployment.
    pub fn is_terminal(self) -> bool {
        matches!(self, HostDeployState::Succeeded | HostDeployState::Failed)
    }

    /// Whether a report may move a host from `self` to `next`. Terminal states
    /// never change: a late or repeated report must not rewrite history.
    pub fn can_move_to(self, next: HostDeployState) -> bool {
        use HostDeployState::*;
        matches!((self, next), (Pending, Running | Succeeded | Failed) | (Running, Succeeded | Failed))
    }
}

impl DeploymentStatus {
    /// The overall status given every target host's state: running while any
    /// host is still going, then failed if any host failed, else succeeded.
    pub fn from_hosts(states: impl IntoIterator<Item = HostDeployState>) -> DeploymentStatus {
        let mut any_failed = false;
        for s in states {
            match s {
                HostDeployState::Pending | HostDeployState::Running => {
                    return DeploymentStatus::Running;
                }
                HostDeployState::Failed => any_failed = true,
                HostDeployState::Succeeded => {}
            }
        }
        if any_failed { DeploymentStatus::Failed } else { DeploymentStatus::Succeeded }
    }

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
string_enum!(DeploymentStatus { Running => "running", Succeeded => "succeeded", Failed => "failed" });
string_enum!(HostDeployState { Pending => "pending", Running => "running", Succeeded => "succeeded", Failed => "failed" });

#[cfg(test)]
mod tests {
    use super::HostDeployState::*;
    use super::*;

    const ALL: [HostDeployState; 4] = [Pending, Running, Succeeded, Failed];

    #[test]
    fn every_transition() {
        for from in ALL {
            for to in ALL {
                let expected = matches!(
                    (from, to),
                    (Pending, Running)
                        | (Pending, Succeeded)
                        | (Pending, Failed)
                        | (Running, Succeeded)
                        | (Running, Failed)
                );
                assert_eq!(from.can_move_to(to), expected, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn overall_status() {
        assert_eq!(DeploymentStatus::from_hosts([Succeeded, Succeeded]), DeploymentStatus::Succeeded);
        assert_eq!(DeploymentStatus::from_hosts([Succeeded, Failed]), DeploymentStatus::Failed);
        assert_eq!(DeploymentStatus::from_hosts([Failed, Running]), DeploymentStatus::Running, "waits for every host");
        assert_eq!(DeploymentStatus::from_hosts([Pending, Succeeded]), DeploymentStatus::Running);
        assert_eq!(DeploymentStatus::from_hosts([]), DeploymentStatus::Succeeded);
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
        assert_eq!("rollback".parse::<DeploymentKind>(), Ok(DeploymentKind::Rollback));
        assert!("done".parse::<DeploymentStatus>().is_err());
    }
}
