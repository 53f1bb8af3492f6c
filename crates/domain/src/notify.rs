//! Notifications (R28): which events there are, and when a delivery that
//! failed is tried again.

/// A deployment ended, whatever its outcome.
pub const DEPLOY_FINISHED: &str = "deploy.finished";
/// A deployment ended failed or rolled back.
pub const DEPLOY_FAILED: &str = "deploy.failed";
/// A build ended, whatever its outcome.
pub const BUILD_FINISHED: &str = "build.finished";

/// Every event a rule may ask for.
pub const EVENTS: [&str; 3] = [DEPLOY_FINISHED, DEPLOY_FAILED, BUILD_FINISHED];

/// Attempts made before a notification is given up.
pub const MAX_ATTEMPTS: u32 = 8;

/// Why a rule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    #[error("unknown event '{0}'; events are deploy.finished, deploy.failed and build.finished")]
    UnknownEvent(String),
    #[error("name at least one event (--event deploy.finished,deploy.failed,build.finished)")]
    NoEvent,
    #[error("'{0}' is not an http:// or https:// URL")]
    BadUrl(String),
}

/// The events of a comma-separated list, checked, each once, in the order
/// given.
pub fn parse_events(list: &str) -> Result<Vec<String>, NotifyError> {
    let mut events: Vec<String> = Vec::new();
    for e in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        if !EVENTS.contains(&e) {
            return Err(NotifyError::UnknownEvent(e.to_string()));
        }
        if !events.iter().any(|known| known == e) {
            events.push(e.to_string());
        }
    }
    if events.is_empty() {
        return Err(NotifyError::NoEvent);
    }
    Ok(events)
}

/// Checks a webhook URL: http or https, with a host, no spaces.
pub fn check_url(url: &str) -> Result<(), NotifyError> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') && !url.chars().any(char::is_whitespace) => Ok(()),
        _ => Err(NotifyError::BadUrl(url.to_string())),
    }
}

/// When to try again after `attempts` failed attempts made by `now`:
/// 1 s, 2 s, 4 s ... doubling up to 5 minutes; `None` once
/// [`MAX_ATTEMPTS`] have been made. Deterministic (no jitter): one server
/// delivers to a few receivers, not a fleet to one.
pub fn retry_at(attempts: u32, now: i64) -> Option<i64> {
    if attempts >= MAX_ATTEMPTS {
        return None;
    }
    let delay = 1_000i64.saturating_mul(1i64 << attempts.saturating_sub(1).min(20)).min(300_000);
    Some(now.saturating_add(delay))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_checked_and_deduplicated() {
        assert_eq!(
            parse_events("deploy.failed, build.finished,deploy.failed").unwrap(),
            ["deploy.failed", "build.finished"]
        );
        assert_eq!(parse_events("deploy.done"), Err(NotifyError::UnknownEvent("deploy.done".into())));
        assert_eq!(parse_events(" , "), Err(NotifyError::NoEvent));
    }

    #[test]
    fn urls_are_http_with_a_host() {
        assert!(check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(check_url("https://chat.example/x").is_ok());
        for bad in ["ftp://x", "http://", "http:///x", "https://a b", "example.com"] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn retries_back_off_then_give_up() {
        assert_eq!(retry_at(1, 0), Some(1_000));
        assert_eq!(retry_at(2, 0), Some(2_000));
        assert_eq!(retry_at(4, 10), Some(8_010));
        assert_eq!(retry_at(MAX_ATTEMPTS - 1, 0), Some(64_000));
        assert_eq!(retry_at(MAX_ATTEMPTS, 0), None);
        assert_eq!(retry_at(0, 5), Some(1_005), "a first attempt that never ran waits a second too");
    }
}
