//! Ferry's domain rules, as plain code with no I/O.
//!
//! Everything here is deterministic and unit-tested: names and their
//! validation, host tags and selectors, release manifests and the path rules
//! that keep a release inside its directory, release naming (R16), deployment
//! and host states, the choice of a rollback target, freezes and bad releases,
//! which of a project's variables a host sees, how much of a log is kept,
//! what a load balancer's configuration and backend addresses may be, the
//! audit trail's keyed hash chain, the release-request state machine (R24), the order of environments a
//! version is promoted through (R23) and the
//! deployment statistics (R29). The server, the
//! agent and the CLI all decide these questions by calling into this crate,
//! so the answer is the same wherever it is asked.

pub mod access;
pub mod agent_upgrade;
pub mod audit;
pub mod deployment;
pub mod digest;
pub mod guards;
pub mod health;
pub mod lb;
pub mod log;
pub mod manifest;
pub mod names;
pub mod notify;
pub mod offline;
pub mod orchestrate;
pub mod pattern;
pub mod placement;
pub mod promotion;
pub mod recipe;
pub mod release_name;
pub mod report;
pub mod request;
pub mod retry;
pub mod rollback;
pub mod rollout;
pub mod secret;
pub mod selector;
pub mod service;
pub mod stats;
pub mod status;
pub mod template;
pub mod vars;
pub mod version;

pub use access::{Action, Denied, Role, Subject};
pub use deployment::{BuildStatus, DeploymentKind, DeploymentStatus, EMERGENCY_TOOK_OVER, HostDeployState};
pub use digest::Digest;
pub use guards::{BadMark, Freeze, GuardError};
pub use health::{HealthRecipe, Probe};
pub use lb::{LbConfig, LbDriver, LbError};
pub use manifest::{Entry, EntryKind, Manifest, ManifestError};
pub use names::{NameError, validate_name, validate_version};
pub use offline::OfflinePolicy;
pub use recipe::{BuildRecipe, DeployRecipe, Hook, HooksRecipe, Recipe, RecipeError};
pub use release_name::release_name;
pub use request::{RequestAction, RequestKind, RequestState};
pub use rollback::{HostPast, HostRollback, host_rollback_target};
pub use secret::Secret;
pub use selector::{Selector, SelectorError, Tags};
pub use service::{RestartPolicy, ServiceRecipe, StopSignal};
pub use template::{TemplateError, expand};
pub use vars::{Var, VarError, VarScope};
pub use version::{next_version, next_version_after};

/// Formats milliseconds since the epoch as RFC 3339 in UTC, as the API shows
/// every time.
pub fn rfc3339_from_millis(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// `12.3 MB`-style sizes (powers of 1000), as people read them in logs and
/// tables.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[unit]) }
}

/// `1d 4h`, `3m 20s`, `850ms`: the two largest units, for reading at a glance.
pub fn human_duration(ms: i64) -> String {
    const UNITS: [(i64, &str); 4] = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1_000, "s")];
    if ms < 1_000 {
        return format!("{}ms", ms.max(0));
    }
    let mut rest = ms;
    let mut parts = Vec::new();
    for (size, unit) in UNITS {
        let n = rest / size;
        rest %= size;
        if n > 0 || !parts.is_empty() {
            parts.push(format!("{n}{unit}"));
        }
        if parts.len() == 2 {
            break;
        }
    }
    // `2m 0s` says no more than `2m`.
    if parts.len() == 2 && parts[1].starts_with('0') {
        parts.pop();
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(human_duration(850), "850ms");
        assert_eq!(human_duration(-5), "0ms");
        assert_eq!(human_duration(12_345), "12s");
        assert_eq!(human_duration(200_000), "3m 20s");
        assert_eq!(human_duration(120_000), "2m");
        assert_eq!(human_duration(30 * 86_400_000 + 5), "30d");
        assert_eq!(human_duration(90_000_000), "1d 1h");
    }
}
