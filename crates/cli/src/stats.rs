//! `ferry stats PROJECT [--env E] [--since 30d]`: deployment statistics and
//! delivery metrics per environment (R29).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use ferry_domain::stats::EnvStats;
use ferry_proto::api::ProjectStats;

use crate::output::time;
use crate::{Client, Output};

/// `ferry stats`: the deployments created during the last `since`.
pub async fn stats(c: &Client, project: &str, env: Option<&str>, since: Duration, out: Output) -> Result<()> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).context("the system clock is before 1970")?;
    let since_ms = i64::try_from(now.saturating_sub(since).as_millis()).unwrap_or(i64::MAX);
    let mut path = format!("/api/v1/projects/{project}/stats?since_ms={since_ms}");
    if let Some(env) = env {
        path.push_str(&format!("&env={env}"));
    }
    let s: ProjectStats = c.get(&path).await?;
    out.print(&s, text)
}

/// The statistics for people: a block per environment.
fn text(s: &ProjectStats) -> String {
    let mut out = format!(
        "{}: deployments created from {} to {} ({})\n",
        s.project,
        time(&s.since),
        time(&s.until),
        duration(s.until_ms - s.since_ms)
    );
    if s.environments.is_empty() {
        out.push_str("no environments\n");
    }
    for e in &s.environments {
        out.push('\n');
        out.push_str(&env_text(e));
    }
    out
}

fn env_text(e: &EnvStats) -> String {
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut kinds = vec![plural(e.deploys, "deploy", "deploys"), plural(e.rollbacks, "rollback", "rollbacks")];
    if e.emergency_rollbacks > 0 {
        kinds.push(format!("{} emergency", e.emergency_rollbacks));
    }
    let restored = e.change_failures - e.unrestored;
    let rows: Vec<(&str, String)> = vec![
        ("deployments", format!("{} ({})", e.deployments, kinds.join(", "))),
        ("succeeded", e.succeeded.to_string()),
        ("failed", format!("{} ({} put back automatically)", e.failed, e.rolled_back)),
        ("canceled", e.canceled.to_string()),
        ("mean duration", e.mean_duration_ms.map(duration).unwrap_or_else(|| "-".into())),
        ("deployment frequency", format!("{:.2} successful deploys a day", e.deploys_per_day)),
        (
            "lead time",
            match e.lead_time_ms {
                Some(ms) => format!("{} (median of {})", duration(ms), e.lead_time_samples),
                None => "- (no successful deploy of a release with a commit time)".into(),
            },
        ),
        (
            "change failure rate",
            match e.change_failure_rate {
                Some(rate) => format!("{:.0}% ({} of {})", rate * 100.0, e.change_failures, e.changes),
                None => "- (no deploy)".into(),
            },
        ),
        (
            "time to restore",
            match (e.time_to_restore_ms, e.unrestored) {
                (Some(ms), 0) => format!("{} (median of {restored})", duration(ms)),
                (Some(ms), n) => format!("{} (median of {restored}; {n} not restored yet)", duration(ms)),
                (None, 0) => "- (no change failure)".into(),
                (None, n) => format!("- ({n} not restored yet)"),
            },
        ),
    ];
    let mut out = format!("{}\n", e.env);
    for (name, value) in rows {
        out.push_str(&format!("  {name:<22}{value}\n"));
    }
    out
}

/// `1d 4h`, `3m 20s`, `850ms`: the two largest units, for reading at a glance.
pub fn duration(ms: i64) -> String {
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
        assert_eq!(duration(850), "850ms");
        assert_eq!(duration(-5), "0ms");
        assert_eq!(duration(12_345), "12s");
        assert_eq!(duration(200_000), "3m 20s");
        assert_eq!(duration(120_000), "2m");
        assert_eq!(duration(30 * 86_400_000 + 5), "30d");
        assert_eq!(duration(90_000_000), "1d 1h");
    }

    #[test]
    fn an_environment_reads_as_a_block() {
        let e = EnvStats {
            env: "prod".into(),
            deployments: 5,
            deploys: 4,
            rollbacks: 1,
            emergency_rollbacks: 0,
            succeeded: 3,
            failed: 1,
            rolled_back: 0,
            canceled: 1,
            mean_duration_ms: Some(12_000),
            deploys_per_day: 0.1,
            lead_time_ms: None,
            lead_time_samples: 0,
            changes: 3,
            change_failures: 2,
            change_failure_rate: Some(2.0 / 3.0),
            time_to_restore_ms: Some(90_000),
            unrestored: 1,
        };
        let t = env_text(&e);
        assert!(t.starts_with("prod\n"), "{t}");
        assert!(t.contains("  deployments           5 (4 deploys, 1 rollback)\n"), "{t}");
        assert!(t.contains("change failure rate   67% (2 of 3)"), "{t}");
        assert!(t.contains("time to restore       1m 30s (median of 1; 1 not restored yet)"), "{t}");
        assert!(t.contains("lead time             - ("), "{t}");
    }
}
