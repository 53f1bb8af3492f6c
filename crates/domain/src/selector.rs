//! Host tags and the selectors that pick hosts for an environment (R3).
//!
//! Tags are `key=value` pairs an agent announces (`role=web,dc=bj`). A
//! selector is a conjunction of `key=value` terms; every term must match.
//! Both are written the same way on the command line: `k=v,k2=v2`.

use std::collections::BTreeMap;
use std::fmt;

/// The tags of one host, sorted by key.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Tags(pub BTreeMap<String, String>);

/// A set of `key=value` terms that must all match a host's tags.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Selector(pub BTreeMap<String, String>);

/// A malformed `k=v,...` list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("'{0}' is not of the form key=value")]
    NotAPair(String),
    #[error("'{0}': keys and values may only contain letters, digits, '-', '_', '.' and '/'")]
    BadChar(String),
    #[error("key '{0}' is given twice")]
    DuplicateKey(String),
    #[error("a selector needs at least one key=value term")]
    EmptySelector,
}

fn parse_pairs(text: &str) -> Result<BTreeMap<String, String>, SelectorError> {
    let mut out = BTreeMap::new();
    for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let Some((k, v)) = term.split_once('=') else {
            return Err(SelectorError::NotAPair(term.to_string()));
        };
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() || v.is_empty() {
            return Err(SelectorError::NotAPair(term.to_string()));
        }
        let ok = |s: &str| s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
        if !ok(k) || !ok(v) {
            return Err(SelectorError::BadChar(term.to_string()));
        }
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(SelectorError::DuplicateKey(k.to_string()));
        }
    }
    Ok(out)
}

impl Tags {
    /// Parses `k=v,k2=v2`; an empty string gives no tags.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        parse_pairs(text).map(Tags)
    }
}

impl Selector {
    /// Parses `k=v,k2=v2`; at least one term is required, so that an
    /// environment never silently selects every host.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let pairs = parse_pairs(text)?;
        if pairs.is_empty() {
            return Err(SelectorError::EmptySelector);
        }
        Ok(Selector(pairs))
    }

    /// True when every term of the selector is among the tags.
    pub fn matches(&self, tags: &Tags) -> bool {
        self.0.iter().all(|(k, v)| tags.0.get(k) == Some(v))
    }

    /// True when every host this selector matches is inside `scope`: each of
    /// the scope's terms is one of this selector's. An environment of a
    /// project with a host scope must select within it.
    pub fn within(&self, scope: &Selector) -> bool {
        scope.0.iter().all(|(k, v)| self.0.get(k) == Some(v))
    }

    /// True when some host could match both selectors: no key is given two
    /// different values. Used to stop two environments of one project from
    /// claiming the same host.
    pub fn overlaps(&self, other: &Selector) -> bool {
        self.0.iter().all(|(k, v)| other.0.get(k).is_none_or(|w| w == v))
    }
}

fn write_pairs(f: &mut fmt::Formatter<'_>, pairs: &BTreeMap<String, String>) -> fmt::Result {
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            f.write_str(",")?;
        }
        write!(f, "{k}={v}")?;
    }
    Ok(())
}

impl fmt::Display for Tags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_pairs(f, &self.0)
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_pairs(f, &self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let t = Tags::parse("role=web, dc=bj").unwrap();
        assert_eq!(t.to_string(), "dc=bj,role=web");
        assert_eq!(Tags::parse("").unwrap(), Tags::default());
    }

    #[test]
    fn refuses_malformed_terms() {
        assert_eq!(Tags::parse("role"), Err(SelectorError::NotAPair("role".into())));
        assert_eq!(Tags::parse("role="), Err(SelectorError::NotAPair("role=".into())));
        assert_eq!(Tags::parse("a=1,a=2"), Err(SelectorError::DuplicateKey("a".into())));
        assert!(matches!(Tags::parse("a=b c"), Err(SelectorError::BadChar(_))));
        assert_eq!(Selector::parse(" , "), Err(SelectorError::EmptySelector));
    }

    #[test]
    fn selector_matches_when_all_terms_match() {
        let host = Tags::parse("role=web,dc=bj,tier=1").unwrap();
        assert!(Selector::parse("role=web").unwrap().matches(&host));
        assert!(Selector::parse("role=web,dc=bj").unwrap().matches(&host));
        assert!(!Selector::parse("role=web,dc=sh").unwrap().matches(&host));
        assert!(!Selector::parse("role=db").unwrap().matches(&host));
        assert!(!Selector::parse("zone=a").unwrap().matches(&host));
    }

    #[test]
    fn overlap() {
        let web = Selector::parse("role=web").unwrap();
        let web_bj = Selector::parse("role=web,dc=bj").unwrap();
        let db = Selector::parse("role=db").unwrap();
        let env_prod = Selector::parse("env=prod").unwrap();
        assert!(web.overlaps(&web_bj) && web_bj.overlaps(&web));
        assert!(!web.overlaps(&db));
        assert!(web.overlaps(&env_prod), "a host tagged role=web,env=prod matches both");
    }

    #[test]
    fn a_selector_within_a_scope_only_matches_hosts_in_the_scope() {
        let scope = Selector::parse("team=shop").unwrap();
        assert!(Selector::parse("team=shop,role=web").unwrap().within(&scope));
        assert!(Selector::parse("team=shop").unwrap().within(&scope));
        assert!(!Selector::parse("role=web").unwrap().within(&scope));
        assert!(!Selector::parse("team=bank,role=web").unwrap().within(&scope));
        // What `within` promises, host by host.
        let hosts = ["team=shop,role=web", "team=bank,role=web", "role=web", "team=shop"];
        for sel in ["team=shop,role=web", "role=web", "team=shop"] {
            let sel = Selector::parse(sel).unwrap();
            if sel.within(&scope) {
                for h in hosts.iter().map(|h| Tags::parse(h).unwrap()) {
                    assert!(!sel.matches(&h) || scope.matches(&h), "{sel} {h}");
                }
            }
        }
    }
}
