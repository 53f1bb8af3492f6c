//! What the server says of a deployment: the lines of its history, what it
//! waits for, why it ended, and what happened to a host. Each is a [`Note`]:
//! a code with its arguments, stored as JSON in the column that used to hold
//! English text, and rendered where it is shown, in the reader's language
//! (its `Display` is the English the API and the CLI show).
//!
//! Text the server did not write (an agent's error, a hook's output, a
//! person's note) stays text: [`Note::Text`], shown as it is in every
//! language. A column written before codes holds plain English: it reads
//! back as [`Note::Text`] too, so old rows show as they always did.

use std::fmt;

use crate::DeploymentStatus;
use crate::rollout::RolloutPolicy;

/// One status text, as a code with its arguments.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Note {
    /// Text shown as it is: written by someone else than the server, or
    /// stored before codes.
    Text {
        text: String,
    },
    // The history of a deployment.
    /// It was made, by whom, with how many hosts in how many batches, and
    /// its rollout policy.
    Created {
        by: String,
        hosts: u64,
        batches: u32,
        policy: RolloutPolicy,
    },
    /// Hosts offline at the start were skipped.
    SkippedOffline {
        hosts: u64,
    },
    /// Batch `batch` (from 1) of `of` started with `hosts` hosts.
    BatchStarted {
        batch: u32,
        of: u32,
        hosts: u64,
    },
    /// It ended, and why.
    Ended {
        status: DeploymentStatus,
        reason: Option<Box<Note>>,
    },
    /// A rollback leaves `host` alone: it already runs `version`.
    AlreadyRuns {
        host: String,
        version: String,
    },
    /// A rollback leaves `host` alone: it ran nothing earlier (that is not
    /// marked bad, when `not_bad`).
    NothingEarlier {
        host: String,
        not_bad: bool,
    },
    /// The promotion order was skipped by `by`: `version` need not have
    /// succeeded on `upstream`; `reason` is theirs.
    PromotionSkipped {
        by: String,
        version: String,
        upstream: String,
        reason: String,
    },
    PausedByOperator,
    ResumedByOperator,
    CancelAsked,
    PromotedByOperator,
    // What a running deployment waits for.
    /// Batch `batch` (from 1) of `of` is at work.
    BatchAtWork {
        batch: u32,
        of: u32,
    },
    /// Paused by an operator.
    Paused,
    /// Waiting for a promote before batch `batch` (from 1), or until the
    /// canary's soak ends (ms since the epoch).
    AwaitingPromotion {
        batch: u32,
        until: Option<i64>,
    },
    /// The pause between batches, before batch `batch` (from 1).
    PausingUntil {
        batch: u32,
        until: i64,
    },
    /// The load balancer took batch `batch` (from 1) out; its connections
    /// drain.
    Draining {
        batch: u32,
    },
    /// Waiting for the load balancer to take batch `batch` (from 1) out.
    AwaitingLoadBalancer {
        batch: u32,
    },
    /// The load balancer failed to apply a change (its own words).
    LoadBalancerFailed {
        error: String,
    },
    // Why a deployment ended.
    /// `failed` of `total` hosts failed.
    HostsFailed {
        failed: u64,
        total: u64,
    },
    /// More hosts failed than the policy tolerates (`at_most` hosts, or
    /// percent of them when `percent`).
    TooManyFailed {
        failed: u64,
        total: u64,
        at_most: u32,
        percent: bool,
    },
    CanceledByOperator,
    /// An emergency rollback took the environment over.
    EmergencyTookOver,
    // What happened to a host.
    /// Offline at the start, skipped; it gets the release when it returns
    /// if the deployment succeeds.
    SkippedAtStart,
    /// Its batch never started, and why the deployment ended.
    NotStarted {
        reason: Option<Box<Note>>,
    },
    /// A rollback put it back on its previous release; `before` is what its
    /// row said until then (e.g. its failure).
    PutBack {
        before: Option<Box<Note>>,
    },
    /// Offline past the deployment's offline timeout (`wait`); it converges
    /// when it reconnects.
    OfflineTimedOut,
    /// It stopped answering during its batch: `missed` heartbeats missed,
    /// silent for `silent_ms`.
    StoppedAnswering {
        missed: u32,
        silent_ms: i64,
    },
    /// A rollback had no earlier release to put it back on.
    NothingToPutBack {
        before: Option<Box<Note>>,
    },
}

impl Note {
    /// Free text, shown as it is.
    pub fn text(text: impl Into<String>) -> Note {
        Note::Text { text: text.into() }
    }

    /// How it is stored: JSON with its code. Free text is stored as JSON too,
    /// so that text someone else wrote is never read back as a code.
    pub fn to_stored(&self) -> String {
        // A plain enum of strings and numbers always serialises.
        serde_json::to_string(self).unwrap_or_else(|_| self.to_string())
    }

    /// A stored value: a code, or plain text from before codes.
    pub fn from_stored(stored: &str) -> Note {
        if stored.starts_with('{')
            && let Ok(note) = serde_json::from_str::<Note>(stored)
        {
            return note;
        }
        Note::text(stored)
    }

    /// One of each code, for tests that every code renders in every
    /// language. [`Note::code`] fails to compile when a code is added without
    /// being listed there; this list must name it too.
    pub fn examples() -> Vec<Note> {
        let reason = || Some(Box::new(Note::CanceledByOperator));
        vec![
            Note::text("hook failed"),
            Note::Created { by: "alice".into(), hosts: 3, batches: 2, policy: RolloutPolicy::default() },
            Note::SkippedOffline { hosts: 1 },
            Note::BatchStarted { batch: 1, of: 2, hosts: 3 },
            Note::Ended { status: DeploymentStatus::RolledBack, reason: reason() },
            Note::AlreadyRuns { host: "web-1".into(), version: "v3".into() },
            Note::NothingEarlier { host: "web-2".into(), not_bad: true },
            Note::PromotionSkipped {
                by: "bob".into(),
                version: "v4".into(),
                upstream: "staging".into(),
                reason: "hotfix".into(),
            },
            Note::PausedByOperator,
            Note::ResumedByOperator,
            Note::CancelAsked,
            Note::PromotedByOperator,
            Note::BatchAtWork { batch: 1, of: 2 },
            Note::Paused,
            Note::AwaitingPromotion { batch: 2, until: Some(60_000) },
            Note::PausingUntil { batch: 2, until: 60_000 },
            Note::Draining { batch: 2 },
            Note::AwaitingLoadBalancer { batch: 2 },
            Note::LoadBalancerFailed { error: "nginx -t failed".into() },
            Note::HostsFailed { failed: 1, total: 4 },
            Note::TooManyFailed { failed: 2, total: 4, at_most: 25, percent: true },
            Note::CanceledByOperator,
            Note::EmergencyTookOver,
            Note::SkippedAtStart,
            Note::NotStarted { reason: reason() },
            Note::PutBack { before: Some(Box::new(Note::text("hook failed"))) },
            Note::NothingToPutBack { before: None },
            Note::OfflineTimedOut,
            Note::StoppedAnswering { missed: 3, silent_ms: 45_000 },
        ]
    }

    /// Its code, as stored.
    pub fn code(&self) -> &'static str {
        match self {
            Note::Text { .. } => "text",
            Note::Created { .. } => "created",
            Note::SkippedOffline { .. } => "skipped_offline",
            Note::BatchStarted { .. } => "batch_started",
            Note::Ended { .. } => "ended",
            Note::AlreadyRuns { .. } => "already_runs",
            Note::NothingEarlier { .. } => "nothing_earlier",
            Note::PromotionSkipped { .. } => "promotion_skipped",
            Note::PausedByOperator => "paused_by_operator",
            Note::ResumedByOperator => "resumed_by_operator",
            Note::CancelAsked => "cancel_asked",
            Note::PromotedByOperator => "promoted_by_operator",
            Note::BatchAtWork { .. } => "batch_at_work",
            Note::Paused => "paused",
            Note::AwaitingPromotion { .. } => "awaiting_promotion",
            Note::PausingUntil { .. } => "pausing_until",
            Note::Draining { .. } => "draining",
            Note::AwaitingLoadBalancer { .. } => "awaiting_load_balancer",
            Note::LoadBalancerFailed { .. } => "load_balancer_failed",
            Note::HostsFailed { .. } => "hosts_failed",
            Note::TooManyFailed { .. } => "too_many_failed",
            Note::CanceledByOperator => "canceled_by_operator",
            Note::EmergencyTookOver => "emergency_took_over",
            Note::SkippedAtStart => "skipped_at_start",
            Note::NotStarted { .. } => "not_started",
            Note::PutBack { .. } => "put_back",
            Note::NothingToPutBack { .. } => "nothing_to_put_back",
            Note::OfflineTimedOut => "offline_timed_out",
            Note::StoppedAnswering { .. } => "stopped_answering",
        }
    }
}

/// `before` on a line of its own ahead of `text`, if there is one.
fn after(f: &mut fmt::Formatter<'_>, before: &Option<Box<Note>>, text: &str) -> fmt::Result {
    match before {
        Some(b) => write!(f, "{b}\n{text}"),
        None => f.write_str(text),
    }
}

/// The English the API and the CLI show (and showed before codes).
impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let time = |ms: i64| crate::rfc3339_from_millis(ms);
        match self {
            Note::Text { text } => f.write_str(text),
            Note::Created { by, hosts, batches, policy } => {
                write!(f, "created by {by}: {hosts} host(s) in {batches} batch(es), {}", policy.describe())
            }
            Note::SkippedOffline { hosts } => write!(f, "{hosts} host(s) offline at the start skipped"),
            Note::BatchStarted { batch, of, hosts } => write!(f, "batch {batch} of {of} started: {hosts} host(s)"),
            Note::Ended { status, reason: Some(r) } => write!(f, "{status}: {r}"),
            Note::Ended { status, reason: None } => write!(f, "{status}"),
            Note::AlreadyRuns { host, version } => write!(f, "left as is: {host} already runs {version}"),
            Note::NothingEarlier { host, not_bad } => write!(
                f,
                "left as is: {host} has no earlier successfully deployed version{} to roll back to",
                if *not_bad { " that is not marked bad" } else { "" }
            ),
            Note::PromotionSkipped { by, version, upstream, reason } => write!(
                f,
                "promotion order skipped by {by} (version {version} need not have succeeded on '{upstream}'): {reason}"
            ),
            Note::PausedByOperator => f.write_str("paused by an operator"),
            Note::ResumedByOperator => f.write_str("resumed by an operator"),
            Note::CancelAsked => f.write_str("cancel asked by an operator"),
            Note::PromotedByOperator => f.write_str("promoted by an operator"),
            Note::BatchAtWork { batch, of } => write!(f, "batch {batch} of {of} at work"),
            Note::Paused => f.write_str("paused (ferry deployment resume)"),
            Note::AwaitingPromotion { batch, until: Some(t) } => {
                write!(f, "waiting for promote before batch {batch}, or until {}", time(*t))
            }
            Note::AwaitingPromotion { batch, until: None } => write!(f, "waiting for promote before batch {batch}"),
            Note::PausingUntil { batch, until } => write!(f, "pausing before batch {batch} until {}", time(*until)),
            Note::Draining { batch } => write!(f, "letting connections to batch {batch} drain"),
            Note::AwaitingLoadBalancer { batch } => {
                write!(f, "waiting for the load balancer to take batch {batch} out")
            }
            Note::LoadBalancerFailed { error } => {
                write!(f, "load balancer: {error} (fix it, or cancel the deployment)")
            }
            Note::HostsFailed { failed, total } => write!(f, "{failed} of {total} host(s) failed"),
            Note::TooManyFailed { failed, total, at_most, percent } => {
                let sign = if *percent { "%" } else { "" };
                write!(f, "{failed} of {total} host(s) failed (at most {at_most}{sign} may fail)")
            }
            Note::CanceledByOperator => f.write_str("canceled by an operator"),
            Note::EmergencyTookOver => f.write_str(crate::EMERGENCY_TOOK_OVER),
            Note::SkippedAtStart => f.write_str(
                "offline at the start: skipped; it gets this release when it returns if the deployment succeeds",
            ),
            Note::NotStarted { reason: Some(r) } => write!(f, "not started: {r}"),
            Note::NotStarted { reason: None } => f.write_str("not started: the deployment ended"),
            Note::PutBack { before } => after(f, before, "put back on its previous release"),
            Note::OfflineTimedOut => f.write_str(
                "host offline: no heartbeat within the offline timeout; it will converge when it reconnects",
            ),
            Note::StoppedAnswering { missed, silent_ms } => {
                write!(f, "host stopped answering during its batch: {missed} heartbeats missed ({silent_ms} ms silent)")
            }
            Note::NothingToPutBack { before } => after(f, before, "no earlier release to put back; left as is"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_an_example_and_round_trips() {
        let examples = Note::examples();
        let mut codes: Vec<&str> = examples.iter().map(Note::code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), examples.len(), "one example per code");
        for note in examples {
            let stored = note.to_stored();
            assert!(stored.contains(&format!(r#""code":"{}""#, note.code())), "{stored}");
            assert_eq!(Note::from_stored(&stored), note);
            assert!(!note.to_string().trim().is_empty());
        }
    }

    #[test]
    fn old_rows_and_foreign_text_read_back_as_text() {
        assert_eq!(Note::from_stored("batch 1 of 2 at work"), Note::text("batch 1 of 2 at work"));
        assert_eq!(Note::from_stored("{not json"), Note::text("{not json"));
        assert_eq!(Note::from_stored(r#"{"code":"nope"}"#), Note::text(r#"{"code":"nope"}"#));
        // An agent's text that looks like a code is stored as text, so it
        // never reads back as one.
        let forged = Note::text(r#"{"code":"put_back"}"#);
        assert_eq!(Note::from_stored(&forged.to_stored()), forged);
    }

    #[test]
    fn english_is_what_the_server_said_before_codes() {
        let put_back = Note::PutBack { before: Some(Box::new(Note::text("health check failed"))) };
        assert_eq!(put_back.to_string(), "health check failed\nput back on its previous release");
        let ended = Note::Ended { status: DeploymentStatus::Canceled, reason: Some(Box::new(Note::EmergencyTookOver)) };
        assert_eq!(ended.to_string(), "canceled: an emergency rollback took over");
        let failed = Note::TooManyFailed { failed: 2, total: 4, at_most: 1, percent: false };
        assert_eq!(failed.to_string(), "2 of 4 host(s) failed (at most 1 may fail)");
        assert_eq!(Note::NotStarted { reason: None }.to_string(), "not started: the deployment ended");
        assert_eq!(
            Note::AwaitingPromotion { batch: 2, until: Some(60_000) }.to_string(),
            "waiting for promote before batch 2, or until 1970-01-01T00:01:00Z"
        );
    }
}
