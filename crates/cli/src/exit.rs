//! What a failed command's exit status says, decided here and nowhere else.
//!
//! Commands fail with `anyhow` errors; those whose cause a script may want to
//! tell apart carry a [`Failed`] somewhere in their chain, made by the client
//! from the server's answer (or from no answer), or by `--wait` from the
//! deployment's end. `ferry` exits with [`exit_code`] of the error.

use ferry_domain::{DeploymentStatus, EMERGENCY_TOOK_OVER};
use reqwest::StatusCode;

/// The documented exit statuses, for `ferry --help` and the README: one text,
/// so that both say the same. Kept stable: scripts depend on these numbers.
pub const EXIT_STATUS: &str = "EXIT STATUS
  0  success
  1  any other error (bad input the server refused, a server error, ...)
  2  usage: unknown command or option, missing or malformed argument
  3  failed: the deployment (or build) followed with --wait/--follow failed or was canceled
  4  rolled back: the deployment followed ended rolled back, automatically after a failure
     or by an emergency rollback that took over
  5  not authorised: no token, a bad or revoked token (401), or no right to do it (403)
  6  server unreachable: connection refused, name not resolved, TLS failure, timeout
  7  not found: the project, environment, version, host, ... does not exist (404)
  8  refused by policy: a freeze, the environment's lock, an approval or the promotion order
     is required, a release marked bad, nothing to do (409, 423)";

/// [`EXIT_STATUS`] in one line, for `-h`.
pub const EXIT_STATUS_SHORT: &str = "Exit status: 0 success, 1 error, 2 usage, 3 failed, 4 rolled back, \
    5 not authorised, 6 server unreachable, 7 not found, 8 refused by policy (--help says more)";

/// A failure that has an exit status of its own (see [`EXIT_STATUS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A followed deployment or build failed or was canceled.
    Failed,
    /// A followed deployment ended rolled back.
    RolledBack,
    /// 401 or 403.
    Unauthorized,
    /// No answer from the server.
    Unreachable,
    /// 404.
    NotFound,
    /// 409 or 423, or an approval requirement: a guard said no.
    Refused,
}

impl Kind {
    /// The exit status of this kind of failure.
    pub const fn code(self) -> u8 {
        match self {
            Kind::Failed => 3,
            Kind::RolledBack => 4,
            Kind::Unauthorized => 5,
            Kind::Unreachable => 6,
            Kind::NotFound => 7,
            Kind::Refused => 8,
        }
    }

    /// The kind of an error answer: its status, and the server's code for
    /// refusals whose status alone does not say (an approval requirement is
    /// a 403, but the caller's rights are not what is missing).
    pub fn of_answer(status: StatusCode, code: Option<&str>) -> Option<Kind> {
        if code == Some("approval_required") {
            return Some(Kind::Refused);
        }
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Some(Kind::Unauthorized),
            StatusCode::NOT_FOUND => Some(Kind::NotFound),
            StatusCode::CONFLICT | StatusCode::LOCKED => Some(Kind::Refused),
            _ => None,
        }
    }

    /// The kind of a deployment's end, `None` for success (or not ended).
    pub fn of_deployment(status: DeploymentStatus, reason: Option<&str>) -> Option<Kind> {
        match status {
            DeploymentStatus::Running | DeploymentStatus::Succeeded => None,
            DeploymentStatus::RolledBack => Some(Kind::RolledBack),
            DeploymentStatus::Canceled if reason == Some(EMERGENCY_TOOK_OVER) => Some(Kind::RolledBack),
            DeploymentStatus::Failed | DeploymentStatus::Canceled => Some(Kind::Failed),
        }
    }
}

/// An error with an exit status of its own; shown as its message alone.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failed {
    pub kind: Kind,
    pub message: String,
}

impl Failed {
    /// An `anyhow` error of `kind` saying `message`.
    pub fn error(kind: Kind, message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Failed { kind, message: message.into() })
    }
}

/// The exit status of a failed command: that of the first [`Failed`] in the
/// error's chain, else 1.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    e.chain().find_map(|c| c.downcast_ref::<Failed>()).map_or(1, |f| f.kind.code())
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn codes_are_distinct_and_documented() {
        let kinds =
            [Kind::Failed, Kind::RolledBack, Kind::Unauthorized, Kind::Unreachable, Kind::NotFound, Kind::Refused];
        let mut codes: Vec<u8> = kinds.iter().map(|k| k.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), kinds.len());
        for c in codes {
            assert!(EXIT_STATUS.contains(&format!("\n  {c}  ")), "{c} is not documented");
        }
    }

    #[test]
    fn context_keeps_the_code_and_plain_errors_are_1() {
        let e = Failed::error(Kind::NotFound, "project 'x' not found");
        let e = Err::<(), _>(e).context("while deploying").unwrap_err();
        assert_eq!(exit_code(&e), 7);
        assert_eq!(exit_code(&anyhow::anyhow!("anything")), 1);
    }

    #[test]
    fn answers_and_ends() {
        assert_eq!(Kind::of_answer(StatusCode::FORBIDDEN, Some("approval_required")), Some(Kind::Refused));
        assert_eq!(Kind::of_answer(StatusCode::FORBIDDEN, Some("forbidden")), Some(Kind::Unauthorized));
        assert_eq!(Kind::of_answer(StatusCode::LOCKED, None), Some(Kind::Refused));
        assert_eq!(Kind::of_answer(StatusCode::BAD_REQUEST, None), None);
        let canceled = DeploymentStatus::Canceled;
        assert_eq!(Kind::of_deployment(canceled, Some(EMERGENCY_TOOK_OVER)), Some(Kind::RolledBack));
        assert_eq!(Kind::of_deployment(canceled, Some("canceled by alice")), Some(Kind::Failed));
        assert_eq!(Kind::of_deployment(DeploymentStatus::Succeeded, None), None);
    }
}
