//! Names of projects, environments and hosts, and release versions.
//!
//! Names appear in directory names on hosts, in URLs and in release names, so
//! they are restricted to characters that are safe in all three.

/// Why a name or version was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
    #[error("{what} '{value}' is longer than {max} characters")]
    TooLong { what: &'static str, value: String, max: usize },
    #[error(
        "{what} '{value}' may only contain lowercase letters, digits, '-' and '_', and must start with a letter or digit"
    )]
    BadName { what: &'static str, value: String },
    #[error(
        "version '{value}' may only contain letters, digits, '.', '_', '+' and '-', and must start with a letter or digit"
    )]
    BadVersion { value: String },
}

const MAX_NAME: usize = 63;
const MAX_VERSION: usize = 64;

/// Checks a project, environment or host name. `what` names the kind of thing
/// in the error ("project name", "host name" ...).
pub fn validate_name(what: &'static str, value: &str) -> Result<(), NameError> {
    if value.is_empty() {
        return Err(NameError::Empty { what });
    }
    if value.len() > MAX_NAME {
        return Err(NameError::TooLong { what, value: value.to_string(), max: MAX_NAME });
    }
    let mut chars = value.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if first_ok && rest_ok { Ok(()) } else { Err(NameError::BadName { what, value: value.to_string() }) }
}

/// Checks a release version such as `v1.2.3` or `42`.
pub fn validate_version(value: &str) -> Result<(), NameError> {
    if value.is_empty() {
        return Err(NameError::Empty { what: "version" });
    }
    if value.len() > MAX_VERSION {
        return Err(NameError::TooLong { what: "version", value: value.to_string(), max: MAX_VERSION });
    }
    let mut chars = value.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-'));
    if first_ok && rest_ok { Ok(()) } else { Err(NameError::BadVersion { value: value.to_string() }) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for ok in ["web", "rainbow", "dev-1", "a", "prod_eu", "0day"] {
            assert_eq!(validate_name("project name", ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_unsafe_names() {
        for bad in ["", "Web", "-x", "_x", "a/b", "a b", "..", "a.b", "é"] {
            assert!(validate_name("project name", bad).is_err(), "{bad}");
        }
        assert!(matches!(validate_name("host name", &"a".repeat(64)), Err(NameError::TooLong { .. })));
    }

    #[test]
    fn versions() {
        for ok in ["v1", "1.2.3", "v1.1.1", "2024.01.02-rc1", "1+build5"] {
            assert_eq!(validate_version(ok), Ok(()), "{ok}");
        }
        for bad in ["", ".1", "v1/2", "v 1", "-1", "../v1"] {
            assert!(validate_version(bad).is_err(), "{bad}");
        }
    }
}
