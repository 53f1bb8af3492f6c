//! `ferry audit` and `ferry audit verify [--since-checkpoint SEQ:HASH]`: the
//! audit trail (R27).

use crate::client::percent_encode;
use std::time::SystemTime;

use anyhow::{Result, anyhow, bail};
use ferry_domain::audit::Checkpoint;
use ferry_proto::api::{AuditEntryInfo, AuditQuery, AuditVerification};

use crate::Client;
use crate::output::{table, time};

/// How `ferry audit` prints its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditFormat {
    Table,
    Json,
    Csv,
}

/// `--since`: a duration back from now (`24h`, `7days`) or an RFC 3339 time,
/// as the RFC 3339 time the API takes.
pub fn since(arg: &str, now: SystemTime) -> Result<String> {
    let arg = arg.trim();
    if let Ok(d) = humantime::parse_duration(arg) {
        let at = now.checked_sub(d).unwrap_or(SystemTime::UNIX_EPOCH);
        return Ok(humantime::format_rfc3339_seconds(at).to_string());
    }
    match humantime::parse_rfc3339_weak(arg) {
        Ok(at) => Ok(humantime::format_rfc3339_seconds(at).to_string()),
        Err(_) => bail!("--since: '{arg}' is neither a duration (e.g. 24h, 7days) nor an RFC 3339 time"),
    }
}

fn query_string(q: &AuditQuery) -> String {
    let mut parts = Vec::new();
    let mut add = |k: &str, v: &str| parts.push(format!("{k}={}", percent_encode(v)));
    if let Some(p) = &q.project {
        add("project", p);
    }
    if let Some(u) = &q.user {
        add("user", u);
    }
    if let Some(s) = &q.since {
        add("since", s);
    }
    if let Some(l) = q.limit {
        add("limit", &l.to_string());
    }
    if parts.is_empty() { String::new() } else { format!("?{}", parts.join("&")) }
}

/// `ferry audit [--project P] [--user U] [--since T] [--limit N]`.
pub async fn list(c: &Client, q: AuditQuery, format: AuditFormat) -> Result<()> {
    // A project's part of the trail has its own route, which its owners
    // may read too; the whole trail is the administrators'.
    let base = match &q.project {
        Some(p) => format!("/api/v1/projects/{p}/audit"),
        None => "/api/v1/audit".to_string(),
    };
    let entries: Vec<AuditEntryInfo> = c.get(&format!("{base}{}", query_string(&q))).await?;
    match format {
        AuditFormat::Json => println!("{}", serde_json::to_string_pretty(&entries)?),
        AuditFormat::Csv => print!("{}", csv(&entries)),
        AuditFormat::Table => {
            if entries.is_empty() {
                println!("no audit entries match");
                return Ok(());
            }
            print!(
                "{}",
                table(
                    &["SEQ", "TIME", "ACTOR", "SOURCE", "ACTION", "OBJECT", "OUTCOME"],
                    entries
                        .iter()
                        .map(|e| {
                            vec![
                                e.seq.to_string(),
                                time(&e.at),
                                e.actor.clone(),
                                e.source.clone(),
                                e.action.clone(),
                                e.object.clone(),
                                e.outcome.clone(),
                            ]
                        })
                        .collect(),
                )
            );
        }
    }
    Ok(())
}

/// The entries as CSV (RFC 4180), with a header line.
pub fn csv(entries: &[AuditEntryInfo]) -> String {
    fn field(s: &str) -> String {
        if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
    }
    let mut out = String::from("seq,at,actor,source,action,object,outcome,summary,hash\n");
    for e in entries {
        let row = [
            e.seq.to_string(),
            e.at.clone(),
            e.actor.clone(),
            e.source.clone(),
            e.action.clone(),
            e.object.clone(),
            e.outcome.clone(),
            e.summary.clone(),
            e.hash.clone(),
        ];
        out.push_str(&row.iter().map(|f| field(f)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

/// `ferry audit verify [--since-checkpoint SEQ:HASH]`: fails, naming the
/// entry, when the chain is broken, the trail no longer reaches the server's
/// checkpoint, or (with `since`) no longer holds that entry with that hash.
/// Prints the checkpoint to keep elsewhere.
pub async fn verify(c: &Client, json: bool, since: Option<&str>) -> Result<()> {
    let since = since.map(str::parse::<Checkpoint>).transpose().map_err(|e| anyhow!("--since-checkpoint: {e}"))?;
    let path = match &since {
        Some(cp) => format!("/api/v1/audit/verify?checkpoint={}", percent_encode(&cp.to_string())),
        None => "/api/v1/audit/verify".to_string(),
    };
    let v: AuditVerification = c.get(&path).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    match &v.broken {
        None => {
            if !json {
                print!("{}", report(&v, since.as_ref()));
            }
            Ok(())
        }
        Some(b) => bail!(
            "audit trail broken at entry {}: {} ({}); {} entries before it match",
            b.seq,
            b.message,
            b.kind,
            v.verified
        ),
    }
}

/// What `verify` prints for a trail that verified.
fn report(v: &AuditVerification, since: Option<&Checkpoint>) -> String {
    let mut out = match (&v.head_seq, &v.head_hash) {
        (Some(seq), Some(hash)) => {
            format!("audit trail OK: {} entries, the newest is {seq} with hash {hash}\n", v.verified)
        }
        _ => "audit trail OK: no entries yet\n".to_string(),
    };
    if v.unkeyed > 0 {
        out.push_str(&format!(
            "{} of them predate keying: their plain SHA-256 chain is checked, but anyone with the database could \
             have recomputed it until the first keyed entry followed\n",
            v.unkeyed
        ));
    }
    if let Some(cp) = since {
        out.push_str(&format!("the trail still holds entry {} with the hash of your checkpoint\n", cp.seq));
    }
    // The server's checkpoint, or the newest entry from a server that keeps none.
    let current = match (&v.checkpoint, v.head_seq, &v.head_hash) {
        (Some(c), _, _) => Some(Checkpoint { seq: c.seq, hash: c.hash.clone() }),
        (None, Some(seq), Some(hash)) => Some(Checkpoint { seq, hash: hash.clone() }),
        _ => None,
    };
    if let Some(cp) = current {
        out.push_str(&format!("checkpoint: {cp}\n"));
        out.push_str(&format!(
            "keep it somewhere the server cannot write; `ferry audit verify --since-checkpoint {cp}` checks the \
             trail still holds it\n"
        ));
    }
    out
}

/// How long ago `since` was, for tests.
#[cfg(test)]
fn ago(s: &str, now: SystemTime) -> Option<std::time::Duration> {
    now.duration_since(humantime::parse_rfc3339_weak(s).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_duration_or_a_time() {
        let now = humantime::parse_rfc3339("2026-11-22T10:00:00Z").unwrap();
        assert_eq!(since("24h", now).unwrap(), "2026-11-21T10:00:00Z");
        assert_eq!(ago(&since("90m", now).unwrap(), now), Some(std::time::Duration::from_secs(5400)));
        assert_eq!(since("2026-11-01T08:00:00Z", now).unwrap(), "2026-11-01T08:00:00Z");
        assert!(since("yesterday-ish", now).is_err());
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        let e = AuditEntryInfo {
            seq: 1,
            at: "2026-11-22T10:00:00Z".into(),
            actor: "admin".into(),
            source: "127.0.0.1".into(),
            action: "POST /api/v1/projects".into(),
            object: "".into(),
            outcome: "201".into(),
            summary: r#"{"name":"app","keep":5}"#.into(),
            hash: "ab".into(),
        };
        assert_eq!(
            csv(&[e]),
            "seq,at,actor,source,action,object,outcome,summary,hash\n\
             1,2026-11-22T10:00:00Z,admin,127.0.0.1,POST /api/v1/projects,,201,\"{\"\"name\"\":\"\"app\"\",\"\"keep\"\":5}\",ab\n"
        );
        assert_eq!(
            query_string(&AuditQuery { user: Some("invalid token".into()), ..Default::default() }),
            "?user=invalid%20token"
        );
    }
}
