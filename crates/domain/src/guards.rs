//! What stops a deployment before it starts, besides a running one (R19): a
//! freeze of its environment, taken by hand, and a bad mark on its release.
//!
//! Both are decided here without a clock: the caller passes `now`
//! (milliseconds since the epoch), so an expired freeze stops applying by
//! itself, with nobody having to remove it.

use std::time::Duration;

/// A reason is shown to everyone a freeze or a bad mark stops; longer text
/// belongs in a ticket the reason can name.
pub const MAX_REASON_CHARS: usize = 500;

/// The shortest freeze: anything shorter is a typo, not a freeze.
pub const MIN_FREEZE: Duration = Duration::from_secs(1);

/// The longest freeze in one go. A freeze always ends by itself, so that a
/// forgotten one cannot block deploys forever; a longer one is taken again.
pub const MAX_FREEZE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Why a reason or a freeze duration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error("a reason is required: say why, for whoever this stops")]
    EmptyReason,
    #[error("the reason is longer than {MAX_REASON_CHARS} characters; name a ticket instead")]
    ReasonTooLong,
    #[error("the reason may not contain control characters (line breaks, tabs ...)")]
    ReasonControl,
    #[error("'{value}' is not a duration (e.g. 30m, 2h, 1day): {why}")]
    BadDuration { value: String, why: String },
    #[error("a freeze lasts at least 1s, not {0}")]
    TooShort(String),
    #[error("a freeze lasts at most 30days, not {0}; take it again when it ends")]
    TooLong(String),
}

/// Checks the reason of a freeze or a bad mark; returns it trimmed.
pub fn validate_reason(reason: &str) -> Result<String, GuardError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(GuardError::EmptyReason);
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(GuardError::ReasonTooLong);
    }
    if reason.chars().any(char::is_control) {
        return Err(GuardError::ReasonControl);
    }
    Ok(reason.to_string())
}

/// Parses how long a freeze lasts (`2h`, `30m`, `1day 12h`), within
/// [`MIN_FREEZE`] and [`MAX_FREEZE`].
pub fn parse_freeze_duration(text: &str) -> Result<Duration, GuardError> {
    let text = text.trim();
    let d = humantime::parse_duration(text)
        .map_err(|e| GuardError::BadDuration { value: text.to_string(), why: e.to_string() })?;
    if d < MIN_FREEZE {
        return Err(GuardError::TooShort(text.to_string()));
    }
    if d > MAX_FREEZE {
        return Err(GuardError::TooLong(text.to_string()));
    }
    Ok(d)
}

/// A time in a message for people: `2026-05-01 12:00:00 UTC`, to the second.
fn when(ms: i64) -> String {
    let text = crate::rfc3339_from_millis(ms - ms.rem_euclid(1000));
    text.replacen('T', " ", 1).replace('Z', " UTC")
}

/// A freeze of one environment: no deployment starts there while it is in
/// force. Taken by hand (`ferry lock`), it ends at `until` by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freeze {
    /// Who took it.
    pub owner: String,
    pub reason: String,
    /// When it was taken, ms since the epoch.
    pub since: i64,
    /// When it ends by itself, ms since the epoch.
    pub until: i64,
}

impl Freeze {
    /// A freeze taken at `now` for `duration`.
    pub fn new(owner: &str, reason: &str, now: i64, duration: Duration) -> Freeze {
        let ms = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Freeze { owner: owner.to_string(), reason: reason.to_string(), since: now, until: now.saturating_add(ms) }
    }

    /// Whether it still stops deployments at `now`. It applies from the
    /// moment it is taken up to, not including, `until`.
    pub fn in_force(&self, now: i64) -> bool {
        self.since <= now && now < self.until
    }

    /// What a refused deployment of `project`/`env` tells the user.
    pub fn refusal(&self, project: &str, env: &str) -> String {
        format!(
            "environment {project}/{env} is frozen by {} until {}: {}. Deployments are refused until the freeze \
             ends, or until it is lifted with `ferry unlock {project} {env}`",
            self.owner,
            when(self.until),
            self.reason
        )
    }

    /// What a second freeze of `project`/`env` tells the user while this one
    /// is in force: one freeze at a time, so nobody's is replaced unnoticed.
    pub fn already_held(&self, project: &str, env: &str) -> String {
        format!(
            "environment {project}/{env} is already frozen by {} until {}: {}. To freeze it anew, lift this \
             freeze first with `ferry unlock {project} {env}`",
            self.owner,
            when(self.until),
            self.reason
        )
    }
}

/// A release someone marked bad: rollbacks skip it, deployments refuse it
/// unless forced, and `ferry status` points it out where it still runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadMark {
    /// Who marked it.
    pub by: String,
    pub reason: String,
    /// When, ms since the epoch.
    pub at: i64,
}

impl BadMark {
    /// What a refused deployment of `version` of `project` tells the user.
    pub fn refusal(&self, project: &str, version: &str) -> String {
        format!(
            "version {version} of {project} was marked bad by {} ({}): {}. Choose another version, or deploy it \
             anyway with --force (recorded on the deployment)",
            self.by,
            when(self.at),
            self.reason
        )
    }
}

/// What a new deployment asks to go ahead despite.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    /// Through a freeze of its environment (an emergency rollback).
    pub ignore_freeze: bool,
    /// With a release marked bad (`--force`).
    pub forced: bool,
    /// An emergency takes the environment over from its running deployment
    /// instead of waiting for it.
    pub emergency: bool,
}

/// What a new deployment did go ahead despite: recorded on its row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overrides {
    /// Its release was marked bad.
    pub forced: bool,
    /// Its environment was frozen.
    pub freeze_ignored: bool,
}

/// Why a new deployment may not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal<'a> {
    /// Its environment is frozen.
    Frozen(&'a Freeze),
    /// Its release is marked bad.
    MarkedBad(&'a BadMark),
    /// Deployment `running` holds the environment (R19).
    Locked { running: i64 },
}

/// Whether a deployment may start at `now`, given its environment's freeze,
/// its release's bad mark and the environment's running deployment (each
/// if there is one), and what it overrides if it may. A freeze that is not
/// in force at `now` stops nothing. Refusals come in this order: freeze,
/// mark, lock.
pub fn check<'a>(
    freeze: Option<&'a Freeze>,
    mark: Option<&'a BadMark>,
    running: Option<i64>,
    flags: Flags,
    now: i64,
) -> Result<Overrides, Refusal<'a>> {
    let mut overrides = Overrides::default();
    if let Some(freeze) = freeze.filter(|f| f.in_force(now)) {
        if !flags.ignore_freeze {
            return Err(Refusal::Frozen(freeze));
        }
        overrides.freeze_ignored = true;
    }
    if let Some(mark) = mark {
        if !flags.forced {
            return Err(Refusal::MarkedBad(mark));
        }
        overrides.forced = true;
    }
    match running {
        Some(running) if !flags.emergency => Err(Refusal::Locked { running }),
        _ => Ok(overrides),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    #[test]
    fn a_freeze_is_in_force_from_its_start_until_its_end() {
        let f = Freeze::new("alice", "release night", 10 * HOUR, Duration::from_secs(2 * 3600));
        assert_eq!(f.until, 12 * HOUR);
        assert!(!f.in_force(10 * HOUR - 1), "not before it was taken");
        assert!(f.in_force(10 * HOUR));
        assert!(f.in_force(12 * HOUR - 1));
        assert!(!f.in_force(12 * HOUR), "it ends by itself, exactly at its end");
        assert!(!f.in_force(i64::MAX));
    }

    #[test]
    fn a_huge_duration_does_not_overflow() {
        let f = Freeze::new("a", "b", i64::MAX - 5, Duration::from_secs(60));
        assert_eq!(f.until, i64::MAX);
    }

    #[test]
    fn refusals_name_who_and_why() {
        let f = Freeze::new("alice", "release night", 0, Duration::from_secs(3600));
        let text = f.refusal("shop", "prod");
        assert!(text.contains("shop/prod is frozen by alice until 1970-01-01 01:00:00 UTC: release night"), "{text}");
        assert!(text.contains("ferry unlock shop prod"), "{text}");
        let text = f.already_held("shop", "prod");
        assert!(text.contains("shop/prod is already frozen by alice until 1970-01-01 01:00:00 UTC: release night"));
        let m = BadMark { by: "bob".into(), reason: "memory leak".into(), at: 1_500 };
        let text = m.refusal("shop", "v3");
        assert!(text.contains("v3 of shop was marked bad by bob (1970-01-01 00:00:01 UTC): memory leak"), "{text}");
        assert!(text.contains("--force"), "{text}");
    }

    #[test]
    fn check_refuses_in_order_and_says_what_was_overridden() {
        let freeze = Freeze::new("alice", "release night", 10 * HOUR, Duration::from_secs(3600));
        let mark = BadMark { by: "bob".into(), reason: "leak".into(), at: 0 };
        let none = Flags::default();
        let all = Flags { ignore_freeze: true, forced: true, emergency: true };
        let now = 10 * HOUR + 1;
        assert_eq!(check(None, None, None, none, now), Ok(Overrides::default()));
        // Everything at once: the freeze speaks first, then the mark, then the lock.
        assert_eq!(check(Some(&freeze), Some(&mark), Some(7), none, now), Err(Refusal::Frozen(&freeze)));
        let past_freeze = Flags { ignore_freeze: true, ..none };
        assert_eq!(check(Some(&freeze), Some(&mark), Some(7), past_freeze, now), Err(Refusal::MarkedBad(&mark)));
        let forced = Flags { forced: true, ..past_freeze };
        assert_eq!(check(Some(&freeze), Some(&mark), Some(7), forced, now), Err(Refusal::Locked { running: 7 }));
        assert_eq!(
            check(Some(&freeze), Some(&mark), Some(7), all, now),
            Ok(Overrides { forced: true, freeze_ignored: true })
        );
        // Overrides are recorded only for what was there to override.
        assert_eq!(check(None, None, Some(7), all, now), Ok(Overrides::default()));
        assert_eq!(check(None, Some(&mark), None, all, now), Ok(Overrides { forced: true, freeze_ignored: false }));
        // A freeze not in force at `now` (ended, or not yet taken) stops nothing.
        assert_eq!(check(Some(&freeze), None, None, none, 11 * HOUR), Ok(Overrides::default()));
        assert_eq!(check(Some(&freeze), None, None, none, 10 * HOUR - 1), Ok(Overrides::default()));
        assert_eq!(check(Some(&freeze), None, None, none, 10 * HOUR), Err(Refusal::Frozen(&freeze)));
    }

    #[test]
    fn reasons() {
        assert_eq!(validate_reason("  memory leak \n"), Ok("memory leak".into()));
        assert_eq!(validate_reason(""), Err(GuardError::EmptyReason));
        assert_eq!(validate_reason(" \t "), Err(GuardError::EmptyReason));
        assert_eq!(validate_reason("a\nb"), Err(GuardError::ReasonControl));
        assert_eq!(validate_reason(&"é".repeat(MAX_REASON_CHARS)).map(|r| r.chars().count()), Ok(MAX_REASON_CHARS));
        assert_eq!(validate_reason(&"x".repeat(MAX_REASON_CHARS + 1)), Err(GuardError::ReasonTooLong));
    }

    #[test]
    fn freeze_durations() {
        assert_eq!(parse_freeze_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_freeze_duration(" 1day 12h "), Ok(Duration::from_secs(36 * 3600)));
        assert_eq!(parse_freeze_duration("1s"), Ok(MIN_FREEZE));
        assert_eq!(parse_freeze_duration("30days"), Ok(MAX_FREEZE));
        assert!(matches!(parse_freeze_duration("soon"), Err(GuardError::BadDuration { .. })));
        assert!(matches!(parse_freeze_duration(""), Err(GuardError::BadDuration { .. })));
        assert!(matches!(parse_freeze_duration("-5m"), Err(GuardError::BadDuration { .. })));
        assert_eq!(parse_freeze_duration("0s"), Err(GuardError::TooShort("0s".into())));
        assert_eq!(parse_freeze_duration("500ms"), Err(GuardError::TooShort("500ms".into())));
        assert_eq!(parse_freeze_duration("31days"), Err(GuardError::TooLong("31days".into())));
    }
}
