//! Variables kept on the server, out of the repository (R17): set per
//! project, per environment, per host, or per host within one environment;
//! the most specific one wins.
//!
//! Precedence, from least to most specific:
//!
//! 1. project: every host of every environment;
//! 2. environment: the hosts of that environment;
//! 3. host: that host, whatever the environment;
//! 4. environment and host: that host, only while it runs the environment.
//!
//! Names are environment variable names, since hooks see variables in their
//! environment; names starting with `FERRY_` are Ferry's own and refused.

use std::collections::BTreeMap;
use std::fmt;

use crate::recipe::is_env_name;

/// The prefix of the names Ferry itself sets for hooks and builds.
pub const RESERVED_PREFIX: &str = "FERRY_";

/// The longest value accepted, in bytes: configuration, not content.
pub const MAX_VALUE_LEN: usize = 64 * 1024;

/// What `ferry var list` shows instead of a secret's value.
pub const MASK: &str = "***";

/// Where a variable applies. `None` means "any".
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct VarScope {
    pub env: Option<String>,
    pub host: Option<String>,
}

impl VarScope {
    /// The whole project.
    pub fn project() -> Self {
        VarScope::default()
    }

    /// Higher is more specific: project 0, environment 1, host 2, both 3.
    pub fn rank(&self) -> u8 {
        match (&self.env, &self.host) {
            (None, None) => 0,
            (Some(_), None) => 1,
            (None, Some(_)) => 2,
            (Some(_), Some(_)) => 3,
        }
    }

    /// Whether a variable of this scope reaches `target`. A scope naming an
    /// environment or host the target leaves open does not: a variable for
    /// one host is never part of what "any host of prod" sees.
    pub fn applies_to(&self, target: &VarScope) -> bool {
        let fits = |mine: &Option<String>, theirs: &Option<String>| match mine {
            None => true,
            Some(m) => theirs.as_ref() == Some(m),
        };
        fits(&self.env, &target.env) && fits(&self.host, &target.host)
    }
}

impl VarScope {
    /// The scope in words, for sentences: "all hosts", "environment prod",
    /// "host web-1", "host web-1 in environment prod".
    pub fn describe(&self) -> String {
        match (&self.env, &self.host) {
            (None, None) => "all hosts".into(),
            (Some(e), None) => format!("environment {e}"),
            (None, Some(h)) => format!("host {h}"),
            (Some(e), Some(h)) => format!("host {h} in environment {e}"),
        }
    }
}

/// Short, for tables: "project", "env prod", "host web-1", "env prod, host web-1".
impl fmt::Display for VarScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.env, &self.host) {
            (None, None) => f.write_str("project"),
            (Some(e), None) => write!(f, "env {e}"),
            (None, Some(h)) => write!(f, "host {h}"),
            (Some(e), Some(h)) => write!(f, "env {e}, host {h}"),
        }
    }
}

/// Why a variable was refused. Never carries the value: it may be a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VarError {
    #[error(
        "'{0}' is not a valid variable name: use letters, digits and '_', not starting with a digit (e.g. DB_HOST)"
    )]
    BadName(String),
    #[error("'{0}' is reserved: names starting with FERRY_ are set by Ferry itself")]
    Reserved(String),
    #[error("the value of {key} is {len} bytes; at most {MAX_VALUE_LEN} are accepted")]
    TooLong { key: String, len: usize },
    #[error("the value of {0} contains a NUL byte, which no environment variable can hold")]
    Nul(String),
}

/// Checks a variable's name.
pub fn validate_key(key: &str) -> Result<(), VarError> {
    if !is_env_name(key) {
        return Err(VarError::BadName(key.to_string()));
    }
    if key.starts_with(RESERVED_PREFIX) {
        return Err(VarError::Reserved(key.to_string()));
    }
    Ok(())
}

/// Checks a variable's name and value.
pub fn validate(key: &str, value: &str) -> Result<(), VarError> {
    validate_key(key)?;
    if value.len() > MAX_VALUE_LEN {
        return Err(VarError::TooLong { key: key.to_string(), len: value.len() });
    }
    if value.contains('\0') {
        return Err(VarError::Nul(key.to_string()));
    }
    Ok(())
}

/// One variable of a project, with a value of any kind (plain text, a
/// sealed secret, a marker), so that resolution never needs to see secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Var<T> {
    pub scope: VarScope,
    pub key: String,
    pub value: T,
}

/// The variables `target` sees, by name: for each name, the variable of the
/// most specific scope that applies to it. Given the same scope twice for a
/// name (which a store never holds), the first one wins.
pub fn resolve<'a, T>(vars: &'a [Var<T>], target: &VarScope) -> BTreeMap<&'a str, &'a Var<T>> {
    let mut out: BTreeMap<&'a str, &'a Var<T>> = BTreeMap::new();
    for var in vars.iter().filter(|v| v.scope.applies_to(target)) {
        match out.get(var.key.as_str()) {
            Some(best) if best.scope.rank() >= var.scope.rank() => {}
            _ => {
                out.insert(var.key.as_str(), var);
            }
        }
    }
    out
}

/// The secret values a host or build holds, to be replaced by [`MASK`] in
/// every line of output that leaves it (hook output, service stderr in a
/// failure, the agent's error texts) before the line is stored or shown.
///
/// Only the literal value is found: a secret printed base64-encoded, split
/// across lines or reversed is not recognised.
#[derive(Debug, Clone, Default)]
pub struct SecretMask {
    /// Longest first, so that a secret containing another is masked whole.
    values: Vec<String>,
}

impl SecretMask {
    /// A mask for these values; empty values are ignored.
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut values: Vec<String> = values.into_iter().filter(|v| !v.is_empty()).collect();
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        values.dedup();
        SecretMask { values }
    }

    /// This mask and `other`'s values together: a host keeps a secret's old
    /// value until it has installed the new one.
    pub fn merged(self, other: SecretMask) -> SecretMask {
        SecretMask::new(self.values.into_iter().chain(other.values))
    }

    /// True when there is nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every secret value replaced by `***`.
    pub fn apply(&self, text: &str) -> String {
        let mut out = text.to_string();
        for value in &self.values {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), MASK);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(env: Option<&str>, host: Option<&str>) -> VarScope {
        VarScope { env: env.map(Into::into), host: host.map(Into::into) }
    }

    fn var(env: Option<&str>, host: Option<&str>, key: &str, value: &str) -> Var<String> {
        Var { scope: scope(env, host), key: key.into(), value: value.into() }
    }

    /// The value of `key` that `env`/`host` resolves to.
    fn value_of(vars: &[Var<String>], env: Option<&str>, host: Option<&str>, key: &str) -> Option<String> {
        resolve(vars, &scope(env, host)).get(key).map(|v| v.value.clone())
    }

    #[test]
    fn ranks_order_the_scopes() {
        let ranks: Vec<u8> = [
            scope(None, None),
            scope(Some("prod"), None),
            scope(None, Some("web-1")),
            scope(Some("prod"), Some("web-1")),
        ]
        .iter()
        .map(VarScope::rank)
        .collect();
        assert_eq!(ranks, [0, 1, 2, 3]);
        assert_eq!(VarScope::project().to_string(), "project");
        assert_eq!(scope(Some("prod"), Some("web-1")).to_string(), "env prod, host web-1");
        assert_eq!(VarScope::project().describe(), "all hosts");
        assert_eq!(scope(Some("prod"), Some("web-1")).describe(), "host web-1 in environment prod");
    }

    #[test]
    fn every_pair_of_scopes_resolves_to_the_more_specific_one() {
        let scopes = [(None, None), (Some("prod"), None), (None, Some("web-1")), (Some("prod"), Some("web-1"))];
        for (i, low) in scopes.iter().enumerate() {
            for high in &scopes[i + 1..] {
                // Whatever order the store returns them in.
                let a = vec![var(low.0, low.1, "K", "low"), var(high.0, high.1, "K", "high")];
                let b = vec![var(high.0, high.1, "K", "high"), var(low.0, low.1, "K", "low")];
                for vars in [a, b] {
                    assert_eq!(
                        value_of(&vars, Some("prod"), Some("web-1"), "K").as_deref(),
                        Some("high"),
                        "{low:?} < {high:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn all_four_scopes_at_once() {
        let vars = vec![
            var(None, None, "DB_HOST", "project"),
            var(Some("prod"), None, "DB_HOST", "env"),
            var(None, Some("web-2"), "DB_HOST", "host"),
            var(Some("prod"), Some("web-1"), "DB_HOST", "env+host"),
            var(Some("staging"), Some("web-3"), "DB_HOST", "staging web-3"),
        ];
        let at = |env, host| value_of(&vars, Some(env), Some(host), "DB_HOST");
        assert_eq!(at("prod", "web-1").as_deref(), Some("env+host"));
        assert_eq!(at("prod", "web-2").as_deref(), Some("host"), "host beats env");
        assert_eq!(at("prod", "web-3").as_deref(), Some("env"));
        assert_eq!(at("staging", "web-1").as_deref(), Some("project"), "env+host needs both to match");
        assert_eq!(at("staging", "web-2").as_deref(), Some("host"), "a host variable follows the host");
        assert_eq!(at("staging", "web-3").as_deref(), Some("staging web-3"));
        assert_eq!(at("dev", "web-9").as_deref(), Some("project"));
    }

    #[test]
    fn other_environments_and_hosts_never_leak_in() {
        let vars = vec![
            var(Some("staging"), None, "A", "staging"),
            var(None, Some("web-2"), "B", "web-2 only"),
            var(Some("prod"), Some("web-2"), "C", "prod web-2 only"),
            var(None, None, "D", "everyone"),
        ];
        let seen = resolve(&vars, &scope(Some("prod"), Some("web-1")));
        assert_eq!(seen.keys().copied().collect::<Vec<_>>(), ["D"]);
        let seen = resolve(&vars, &scope(Some("prod"), Some("web-2")));
        assert_eq!(seen.keys().copied().collect::<Vec<_>>(), ["B", "C", "D"]);
    }

    #[test]
    fn an_open_target_sees_only_what_certainly_applies() {
        let vars = vec![
            var(None, None, "K", "project"),
            var(Some("prod"), None, "K", "env"),
            var(None, Some("web-1"), "K", "host"),
            var(Some("prod"), Some("web-1"), "K", "env+host"),
            var(None, Some("web-1"), "ONLY_HOST", "x"),
        ];
        assert_eq!(value_of(&vars, None, None, "K").as_deref(), Some("project"));
        assert_eq!(value_of(&vars, Some("prod"), None, "K").as_deref(), Some("env"));
        assert_eq!(value_of(&vars, None, Some("web-1"), "K").as_deref(), Some("host"));
        assert_eq!(value_of(&vars, Some("prod"), None, "ONLY_HOST"), None, "web-1's variable is not prod's");
    }

    #[test]
    fn names_are_environment_names_and_not_ferrys() {
        assert_eq!(validate_key("DB_HOST"), Ok(()));
        assert_eq!(validate_key("_private2"), Ok(()));
        assert_eq!(validate_key("ferry_lowercase_is_not_reserved"), Ok(()));
        for bad in ["", "1ABC", "DB-HOST", "A B", "É", "A=B"] {
            assert_eq!(validate_key(bad), Err(VarError::BadName(bad.into())), "{bad}");
        }
        assert!(matches!(validate_key("FERRY_VERSION"), Err(VarError::Reserved(_))));
        assert!(matches!(validate_key("FERRY_"), Err(VarError::Reserved(_))));
        assert!(VarError::Reserved("FERRY_X".into()).to_string().contains("reserved"));
    }

    #[test]
    fn values_fit_an_environment_and_errors_never_show_them() {
        assert_eq!(validate("K", ""), Ok(()));
        assert_eq!(validate("K", "multi\nline ünïcode"), Ok(()));
        let nul = validate("K", "hunter2\0").unwrap_err();
        assert!(!nul.to_string().contains("hunter2"));
        let long = "x".repeat(MAX_VALUE_LEN + 1);
        let err = validate("K", &long).unwrap_err();
        assert!(matches!(err, VarError::TooLong { .. }) && !err.to_string().contains("xxx"));
        assert!(validate("FERRY_X", "v").is_err(), "the name is checked too");
    }

    #[test]
    fn secret_values_are_masked_in_output() {
        let mask = SecretMask::new(["hunter2".to_string(), "hunter2-long".to_string(), String::new()]);
        assert_eq!(mask.apply("password=hunter2-long and hunter2!"), "password=*** and ***!");
        assert_eq!(mask.apply("nothing here"), "nothing here");
        assert!(SecretMask::new([String::new()]).is_empty());
        assert_eq!(SecretMask::default().apply("x"), "x");
        let both = SecretMask::new(["old-value".to_string()]).merged(SecretMask::new(["new-value".to_string()]));
        assert_eq!(both.apply("old-value new-value"), "*** ***");
    }
}
