//! `ferry var set|unset|list`: configuration kept on the server (R17).
//!
//! Nothing here prints a value that was given as a secret: `set` names the
//! variable and its scope only, and the server shows secrets as `***`.

use crate::client::percent_encode;
use std::io::Read;

use anyhow::{Context, Result, bail};
use ferry_domain::VarScope;
use ferry_proto::api::{SetVar, VarInfo, VarQuery};

use crate::output::{table, time};
use crate::{Client, Output};

/// The value argument `-` stands for standard input.
pub const STDIN_VALUE: &str = "-";

/// The value as given, or read from standard input for `-` (one trailing
/// newline removed, as `echo` and most editors add one).
pub fn read_value(arg: String) -> Result<String> {
    if arg != STDIN_VALUE {
        return Ok(arg);
    }
    let mut bytes = Vec::new();
    std::io::stdin().read_to_end(&mut bytes).context("reading the value from standard input")?;
    let Ok(mut value) = String::from_utf8(bytes) else {
        bail!("the value on standard input is not UTF-8 text");
    };
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    Ok(value)
}

/// `?env=..&host=..`, percent-encoded.
fn query(q: &VarQuery) -> String {
    let pairs: Vec<String> = [("env", &q.env), ("host", &q.host)]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| format!("{k}={}", percent_encode(v))))
        .collect();
    if pairs.is_empty() { String::new() } else { format!("?{}", pairs.join("&")) }
}

fn scope_of(v: &VarInfo) -> VarScope {
    VarScope { env: v.env.clone(), host: v.host.clone() }
}

/// `ferry var set`.
pub async fn set(c: &Client, project: &str, req: SetVar, out: Output) -> Result<()> {
    let v: VarInfo = c.post(&format!("/api/v1/projects/{}/vars", percent_encode(project)), &req).await?;
    out.print(&v, |v| {
        let secret = if v.secret { ", as a secret (write-only: shown as ***)" } else { "" };
        format!("{project}: {} set for {}{secret}\n", v.key, scope_of(v).describe())
    })
}

/// `ferry var unset`.
pub async fn unset(c: &Client, project: &str, key: &str, scope: VarQuery, out: Output) -> Result<()> {
    let path = format!("/api/v1/projects/{}/vars/{}{}", percent_encode(project), percent_encode(key), query(&scope));
    let v: VarInfo = c.delete(&path).await?;
    out.print(&v, |v| format!("{project}: {} unset for {}\n", v.key, scope_of(v).describe()))
}

/// `ferry var list`: every variable, or with a scope what such a host sees.
pub async fn list(c: &Client, project: &str, scope: VarQuery, out: Output) -> Result<()> {
    let resolved = scope.env.is_some() || scope.host.is_some();
    let list: Vec<VarInfo> =
        c.get(&format!("/api/v1/projects/{}/vars{}", percent_encode(project), query(&scope))).await?;
    out.print(&list, |l| {
        if l.is_empty() && resolved {
            return format!("{project}: no variable reaches {}\n", label(&scope));
        }
        if l.is_empty() {
            return format!("{project}: no variables\n");
        }
        let rows = l
            .iter()
            .map(|v| {
                vec![
                    v.key.clone(),
                    // One line per variable, whatever the value holds.
                    v.value.escape_debug().to_string(),
                    scope_of(v).to_string(),
                    v.updated_by.clone(),
                    time(&v.updated_at),
                ]
            })
            .collect();
        let from = if resolved { "FROM" } else { "SCOPE" };
        table(&["KEY", "VALUE", from, "BY", "UPDATED"], rows)
    })
}

fn label(scope: &VarQuery) -> String {
    VarScope { env: scope.env.clone(), host: scope.host.clone() }.describe()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_become_an_encoded_query() {
        assert_eq!(query(&VarQuery::default()), "");
        let q = VarQuery { env: Some("prod".into()), host: Some("web 1&x".into()) };
        assert_eq!(query(&q), "?env=prod&host=web%201%26x");
        assert_eq!(query(&VarQuery { env: None, host: Some("h".into()) }), "?host=h");
    }

    #[test]
    fn literal_values_pass_through() {
        assert_eq!(read_value("x\n".into()).unwrap(), "x\n", "only stdin values lose their newline");
    }
}
