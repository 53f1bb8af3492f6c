//! `[health]`: how a host proves a new release works (R13, R14). A host
//! counts as deployed only when its check passes; by default a failing check
//! puts the host back on its previous release.

use std::time::Duration;

use crate::recipe::{RecipeError, duration};

/// The defaults for `[health]` interval and timeout.
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(60);

/// `[health]`: exactly one of `http`, `tcp`, `command`.
#[derive(Debug, Clone, PartialEq, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthRecipe {
    /// `http://...`, `${VAR}` expanded; passes on the expected status.
    pub http: Option<String>,
    /// `host:port`; passes when a connection is accepted.
    pub tcp: Option<String>,
    /// Run with `sh -c` in the release; passes on exit code 0.
    pub command: Option<String>,
    /// For `http`: the status expected; default any 2xx.
    pub status: Option<u16>,
    /// For `http`: text the response body must contain.
    pub body: Option<String>,
    /// Between attempts; default 1 s.
    pub interval: Option<String>,
    /// Failed attempts after which the check fails; default: keep trying
    /// until `timeout`.
    pub retries: Option<u32>,
    /// For the whole check; default 60 s.
    pub timeout: Option<String>,
    /// Put the host back on its previous release when the check fails;
    /// default true.
    pub rollback: Option<bool>,
}

/// What one attempt does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Http { url: String, status: Option<u16>, body: Option<String> },
    Tcp { address: String },
    Command { command: String },
}

impl HealthRecipe {
    pub fn check(&self) -> Result<(), RecipeError> {
        self.probe()?;
        self.interval()?;
        self.timeout()?;
        if self.retries == Some(0) {
            return Err(RecipeError::BadValue {
                key: "health.retries",
                value: "0".into(),
                reason: "must be at least 1".into(),
            });
        }
        Ok(())
    }

    /// The probe, before `${VAR}` expansion.
    pub fn probe(&self) -> Result<Probe, RecipeError> {
        let bad = |key, value: &str, reason: &str| RecipeError::BadValue {
            key,
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let probe = match (&self.http, &self.tcp, &self.command) {
            (Some(url), None, None) => {
                if !url.starts_with("http://") {
                    return Err(bad("health.http", url, "must start with http://"));
                }
                Probe::Http { url: url.clone(), status: self.status, body: self.body.clone() }
            }
            (None, Some(address), None) => {
                if address.rsplit_once(':').is_none_or(|(host, port)| host.is_empty() || port.is_empty()) {
                    return Err(bad("health.tcp", address, "must be host:port"));
                }
                Probe::Tcp { address: address.clone() }
            }
            (None, None, Some(command)) if !command.trim().is_empty() => Probe::Command { command: command.clone() },
            (None, None, Some(_)) => return Err(RecipeError::Empty("health.command")),
            (None, None, None) => return Err(bad("health", "", "set one of http, tcp or command")),
            _ => return Err(bad("health", "", "set only one of http, tcp or command")),
        };
        if !matches!(probe, Probe::Http { .. }) && (self.status.is_some() || self.body.is_some()) {
            return Err(bad("health.status", "", "status and body apply to http checks only"));
        }
        if let Some(s) = self.status
            && !(100..=599).contains(&s)
        {
            return Err(bad("health.status", &s.to_string(), "not an HTTP status"));
        }
        Ok(probe)
    }

    pub fn interval(&self) -> Result<Duration, RecipeError> {
        duration("health.interval", &self.interval, DEFAULT_HEALTH_INTERVAL)
    }

    pub fn timeout(&self) -> Result<Duration, RecipeError> {
        duration("health.timeout", &self.timeout, DEFAULT_HEALTH_TIMEOUT)
    }

    pub fn rolls_back(&self) -> bool {
        self.rollback.unwrap_or(true)
    }
}

/// Whether an HTTP status passes: the expected one, or else any 2xx.
pub fn status_passes(expected: Option<u16>, got: u16) -> bool {
    expected.map_or((200..300).contains(&got), |e| e == got)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Probe, String> {
        let h: HealthRecipe = toml::from_str(text).map_err(|e| e.to_string())?;
        h.check().map_err(|e| e.to_string())?;
        h.probe().map_err(|e| e.to_string())
    }

    #[test]
    fn the_three_forms() {
        assert_eq!(
            parse("http = \"http://127.0.0.1:${PORT}/health\"").unwrap(),
            Probe::Http { url: "http://127.0.0.1:${PORT}/health".into(), status: None, body: None }
        );
        assert_eq!(parse("tcp = \"127.0.0.1:5432\"").unwrap(), Probe::Tcp { address: "127.0.0.1:5432".into() });
        assert_eq!(parse("command = \"./bin/check\"").unwrap(), Probe::Command { command: "./bin/check".into() });
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            ("", "one of http, tcp or command"),
            ("http = \"http://x\"\ntcp = \"x:1\"", "only one"),
            ("http = \"https://x\"", "http://"),
            ("tcp = \"5432\"", "host:port"),
            ("command = \" \"", "health.command"),
            ("tcp = \"x:1\"\nstatus = 200", "http checks only"),
            ("http = \"http://x\"\nstatus = 42", "health.status"),
            ("http = \"http://x\"\ninterval = \"often\"", "health.interval"),
            ("http = \"http://x\"\nretries = 0", "health.retries"),
        ];
        for (text, want) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn statuses() {
        assert!(status_passes(None, 200) && status_passes(None, 204));
        assert!(!status_passes(None, 301) && !status_passes(None, 500));
        assert!(status_passes(Some(301), 301) && !status_passes(Some(301), 200));
    }
}
