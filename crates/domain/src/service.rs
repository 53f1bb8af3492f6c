//! `[service]`: the long-running process a release runs on each host
//! (R21, R22), and the rules the agent's supervisor follows when it exits.
//!
//! The decision of what to do after an exit is here, as plain code, so every
//! case (clean exit, crash, crash loop, each restart policy) is tested
//! without starting a process.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::recipe::{RecipeError, duration, is_env_name};

/// The default for `[service] stop_timeout`: SIGKILL follows the stop signal
/// after this long.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// The default for `[service] start_period`: a start counts as successful
/// once the process has stayed up this long; a process that exits sooner
/// counts as a quick exit.
pub const DEFAULT_START_PERIOD: Duration = Duration::from_secs(2);
/// Quick exits in a row that make a crash loop.
pub const CRASH_LOOP_EXITS: u32 = 3;
/// While crash-looping, how long the supervisor waits between attempts.
pub const CRASH_LOOP_RETRY: Duration = Duration::from_secs(60);

/// `[service]`.
#[derive(Debug, Clone, PartialEq, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceRecipe {
    /// Run with `sh -c` (as `exec ...`) in the release directory; `${VAR}`
    /// is expanded from the project's variables.
    pub command: String,
    /// The user the service runs as (R34). Unset: the agent's own user, or,
    /// when the agent runs as root, its `--service-user`.
    pub user: Option<String>,
    /// Running as root must be asked for.
    #[serde(default)]
    pub allow_root: bool,
    /// e.g. "TERM" (default), "INT", "QUIT", "HUP", "USR1", "USR2".
    pub stop_signal: Option<String>,
    /// e.g. "30s"; default 10 s.
    pub stop_timeout: Option<String>,
    /// e.g. "5s"; default 2 s.
    pub start_period: Option<String>,
    #[serde(default)]
    pub restart: RestartPolicy,
    /// Each of `shared/log/service.{stdout,stderr}.log` is rotated beyond
    /// this many bytes (default 10 MiB); five generations are kept.
    pub log_max_bytes: Option<u64>,
    /// Extra environment, `${VAR}` expanded.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// When the supervisor restarts a service that exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    #[default]
    Always,
    OnFailure,
    Never,
}

/// The signals a service may ask to be stopped with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StopSignal {
    Term,
    Int,
    Quit,
    Hup,
    Usr1,
    Usr2,
}

impl ServiceRecipe {
    /// Checks every key.
    pub fn check(&self) -> Result<(), RecipeError> {
        if self.command.trim().is_empty() {
            return Err(RecipeError::Empty("service.command"));
        }
        if let Some(user) = &self.user
            && (user.is_empty() || user.contains(|c: char| c.is_whitespace() || c == ':' || c == '/'))
        {
            return Err(RecipeError::BadValue {
                key: "service.user",
                value: user.clone(),
                reason: "not a user name".into(),
            });
        }
        self.stop_signal()?;
        self.stop_timeout()?;
        self.start_period()?;
        if let Some(key) = self.env.keys().find(|k| !is_env_name(k)) {
            return Err(RecipeError::BadEnvName { key: "service.env", name: key.clone() });
        }
        Ok(())
    }

    pub fn stop_signal(&self) -> Result<StopSignal, RecipeError> {
        let Some(raw) = &self.stop_signal else { return Ok(StopSignal::Term) };
        let name = raw.trim().to_ascii_uppercase();
        Ok(match name.strip_prefix("SIG").unwrap_or(&name) {
            "TERM" => StopSignal::Term,
            "INT" => StopSignal::Int,
            "QUIT" => StopSignal::Quit,
            "HUP" => StopSignal::Hup,
            "USR1" => StopSignal::Usr1,
            "USR2" => StopSignal::Usr2,
            _ => {
                return Err(RecipeError::BadValue {
                    key: "service.stop_signal",
                    value: raw.clone(),
                    reason: "use one of TERM, INT, QUIT, HUP, USR1, USR2 (KILL follows after stop_timeout)".into(),
                });
            }
        })
    }

    pub fn stop_timeout(&self) -> Result<Duration, RecipeError> {
        duration("service.stop_timeout", &self.stop_timeout, DEFAULT_STOP_TIMEOUT)
    }

    pub fn start_period(&self) -> Result<Duration, RecipeError> {
        duration("service.start_period", &self.start_period, DEFAULT_START_PERIOD)
    }
}

/// What the supervisor does after the service exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterExit {
    /// Start it again after this pause.
    Restart(Duration),
    /// Leave it stopped: the policy says so.
    Stay,
    /// It keeps dying right after it starts: report a crash loop, and try
    /// again only after this (long) pause.
    CrashLoop(Duration),
}

/// Counts quick exits in a row to tell a crash loop from the odd crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CrashWatch {
    quick_exits: u32,
}

impl CrashWatch {
    /// A watch that already counted `quick_exits` (kept across an agent
    /// restart, so that a crash loop does not look like a recovery).
    pub fn resumed(quick_exits: u32) -> Self {
        CrashWatch { quick_exits }
    }

    /// Quick exits in a row so far.
    pub fn quick_exits(&self) -> u32 {
        self.quick_exits
    }

    /// Whether the last exits made a crash loop.
    pub fn crash_looping(&self) -> bool {
        self.quick_exits >= CRASH_LOOP_EXITS
    }

    /// A deliberate start (deploy, operator) forgets earlier exits.
    pub fn reset(&mut self) {
        self.quick_exits = 0;
    }

    /// Records one exit and decides what follows. `success` is exit code 0;
    /// `uptime` is how long that run lasted.
    pub fn on_exit(
        &mut self,
        policy: RestartPolicy,
        success: bool,
        uptime: Duration,
        start_period: Duration,
    ) -> AfterExit {
        let quick = uptime < start_period;
        self.quick_exits = if quick { self.quick_exits.saturating_add(1) } else { 0 };
        let restart = match policy {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => !success,
            RestartPolicy::Never => false,
        };
        if !restart {
            return AfterExit::Stay;
        }
        if self.crash_looping() {
            return AfterExit::CrashLoop(CRASH_LOOP_RETRY);
        }
        // 0.5 s, 1 s, 2 s ... for quick exits; a long run restarts promptly.
        let pause = Duration::from_millis(500).saturating_mul(1 << self.quick_exits.saturating_sub(1).min(6));
        AfterExit::Restart(if quick { pause } else { Duration::from_millis(500) })
    }
}

/// At most `max` characters of `text`, cut on a character boundary, with
/// `…` where something was cut.
pub fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((at, _)) => format!("{}…", &text[..at]),
    }
}

/// What the server keeps of a service's stderr lines from a host (which may
/// be compromised and send anything): the last `max_lines`, each clipped to
/// `max_chars`.
pub fn bounded_tail(lines: &[String], max_lines: usize, max_chars: usize) -> Vec<String> {
    lines[lines.len().saturating_sub(max_lines)..].iter().map(|l| clip(l, max_chars)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_host_says_of_its_service_is_bounded() {
        assert_eq!(clip("héllo", 10), "héllo");
        assert_eq!(clip("héllo", 2), "hé…");
        let lines: Vec<String> = (0..50).map(|i| format!("line {i} {}", "x".repeat(i * 20))).collect();
        let kept = bounded_tail(&lines, 10, 100);
        assert_eq!(kept.len(), 10);
        assert!(kept[0].starts_with("line 40"));
        assert!(kept.iter().all(|l| l.chars().count() <= 101));
        assert!(bounded_tail(&[], 10, 100).is_empty());
    }

    const PERIOD: Duration = DEFAULT_START_PERIOD;
    const QUICK: Duration = Duration::from_millis(100);
    const LONG: Duration = Duration::from_secs(3600);

    #[test]
    fn policies_decide_on_restart() {
        let cases = [
            (RestartPolicy::Always, true, true),
            (RestartPolicy::Always, false, true),
            (RestartPolicy::OnFailure, true, false),
            (RestartPolicy::OnFailure, false, true),
            (RestartPolicy::Never, true, false),
            (RestartPolicy::Never, false, false),
        ];
        for (policy, success, restarts) in cases {
            let got = CrashWatch::default().on_exit(policy, success, LONG, PERIOD);
            assert_eq!(matches!(got, AfterExit::Restart(_)), restarts, "{policy:?} success={success}: {got:?}");
            if !restarts {
                assert_eq!(got, AfterExit::Stay);
            }
        }
    }

    #[test]
    fn quick_exits_back_off_then_make_a_crash_loop() {
        let mut w = CrashWatch::default();
        assert_eq!(
            w.on_exit(RestartPolicy::Always, false, QUICK, PERIOD),
            AfterExit::Restart(Duration::from_millis(500))
        );
        assert_eq!(w.on_exit(RestartPolicy::Always, false, QUICK, PERIOD), AfterExit::Restart(Duration::from_secs(1)));
        assert!(!w.crash_looping());
        assert_eq!(w.on_exit(RestartPolicy::Always, false, QUICK, PERIOD), AfterExit::CrashLoop(CRASH_LOOP_RETRY));
        assert!(w.crash_looping());
        // A run that lasts ends the loop.
        assert_eq!(
            w.on_exit(RestartPolicy::Always, false, LONG, PERIOD),
            AfterExit::Restart(Duration::from_millis(500))
        );
        assert_eq!(w.quick_exits(), 0);
    }

    #[test]
    fn a_deliberate_start_forgets_the_past() {
        let mut w = CrashWatch::default();
        for _ in 0..5 {
            w.on_exit(RestartPolicy::OnFailure, false, QUICK, PERIOD);
        }
        assert!(w.crash_looping());
        w.reset();
        assert!(!w.crash_looping());
        // A clean quick exit under on-failure stays stopped, and still counts.
        assert_eq!(w.on_exit(RestartPolicy::OnFailure, true, QUICK, PERIOD), AfterExit::Stay);
        assert_eq!(w.quick_exits(), 1);
    }

    #[test]
    fn keys_are_checked() {
        let base = ServiceRecipe { command: "./app".into(), ..Default::default() };
        base.check().unwrap();
        assert_eq!(base.stop_signal().unwrap(), StopSignal::Term);
        assert_eq!(base.stop_timeout().unwrap(), DEFAULT_STOP_TIMEOUT);
        let with = |f: fn(&mut ServiceRecipe)| {
            let mut s = base.clone();
            f(&mut s);
            s.check().map_err(|e| e.to_string())
        };
        assert_eq!(
            ServiceRecipe { stop_signal: Some("sigint".into()), ..base.clone() }.stop_signal().unwrap(),
            StopSignal::Int
        );
        assert!(with(|s| s.command = " ".into()).unwrap_err().contains("service.command"));
        assert!(with(|s| s.stop_signal = Some("KILL".into())).unwrap_err().contains("service.stop_signal"));
        assert!(with(|s| s.stop_timeout = Some("a while".into())).unwrap_err().contains("service.stop_timeout"));
        assert!(with(|s| s.user = Some("app user".into())).unwrap_err().contains("service.user"));
        assert!(
            with(|s| {
                s.env.insert("A-B".into(), "1".into());
            })
            .unwrap_err()
            .contains("service.env")
        );
        let parsed: ServiceRecipe = toml::from_str("command = \"x\"\nrestart = \"on-failure\"\n").unwrap();
        assert_eq!(parsed.restart, RestartPolicy::OnFailure);
        assert!(toml::from_str::<ServiceRecipe>("command = \"x\"\nrestart = \"sometimes\"\n").is_err());
    }
}
