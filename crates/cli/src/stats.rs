//! `ferry stats PROJECT [--env E] [--since 30d]`: deployment statistics and
//! delivery metrics per environment (R29).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use ferry_domain::human_duration;
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
        human_duration(s.until_ms - s.since_ms)
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
        ("mean duration", e.mean_duration_ms.map(human_duration).unwrap_or_else(|| "-".into())),
        ("deployment frequency", format!("{:.2} successful deploys a day", e.deploys_per_day)),
        (
            "lead time",
            match e.lead_time_ms {
                Some(ms) => format!("{} (median of {})", human_duration(ms), e.lead_time_samples),
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
                (Some(ms), 0) => format!("{} (median of {restored})", human_duration(ms)),
                (Some(ms), n) => format!("{} (median of {restored}; {n} not restored yet)", human_duration(ms)),
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

#[cfg(test)]
mod tests {
    use super::*;

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
