//! R27: every change and every denied attempt is recorded, with who, when,
//! from where, what and how it ended; secrets never; and an edited entry is
//! named by `ferry audit verify`.
//!
//! The attacker tests act on the real database file as someone who can write
//! it but cannot read the server's audit key: they edit rows, recompute the
//! chain with the public algorithm, delete the newest rows, and roll the
//! checkpoint file back. Then they check what `ferry audit verify` says.

use std::path::{Path, PathBuf};
use std::process::Command;

use ferry_domain::audit::{Anchor, AuditKey, AuditRecord, Checkpoint, Scheme, unkeyed_hash};
use serde_json::Value;

use crate::harness::{FERRY, Ferry};

/// Must appear nowhere in the trail nor in the database files.
const SECRET: &str = "audit-Sekr1t-93be1f07";

fn entries(f: &Ferry, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["audit", "--limit", "1000"];
    all.extend_from_slice(args);
    f.json(&all).as_array().cloned().unwrap()
}

fn find(entries: &[Value], pred: impl Fn(&Value) -> bool) -> &Value {
    entries.iter().find(|e| pred(e)).unwrap_or_else(|| panic!("no such entry in {entries:#?}"))
}

/// Changes stored entries behind the server's back, as someone with the
/// database file could: `sql` may hold several statements.
fn tamper(db: &Path, sql: &str) {
    let sqlite3 = Command::new("sqlite3").arg(db).arg(sql).status();
    if sqlite3.is_ok_and(|s| s.success()) {
        return;
    }
    let script = "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1], timeout=10)\nc.executescript(sys.argv[2])\n\
                  c.commit()\nc.close()";
    let status = Command::new("python3").args(["-c", script]).arg(db).arg(sql).status().unwrap();
    assert!(status.success(), "neither sqlite3 nor python3 could edit {}", db.display());
}

/// The rows `sql` selects from the database file, as JSON objects.
fn query(db: &Path, sql: &str) -> Vec<Value> {
    let out = Command::new("sqlite3").arg("-json").arg(db).arg(sql).output();
    let text = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        _ => {
            let script = "import sqlite3, sys, json\nc = sqlite3.connect(sys.argv[1], timeout=10)\n\
                          cur = c.execute(sys.argv[2])\nnames = [d[0] for d in cur.description]\n\
                          print(json.dumps([dict(zip(names, r)) for r in cur]))";
            let o = Command::new("python3").args(["-c", script]).arg(db).arg(sql).output().unwrap();
            assert!(o.status.success(), "neither sqlite3 nor python3 could read {}", db.display());
            String::from_utf8_lossy(&o.stdout).into_owned()
        }
    };
    if text.trim().is_empty() { Vec::new() } else { serde_json::from_str(&text).unwrap() }
}

/// One stored audit entry, as the attacker reads it from the file.
#[derive(Debug, Clone)]
struct Row {
    record: AuditRecord,
    scheme: String,
    prev_hash: String,
    hash: String,
}

fn rows(db: &Path) -> Vec<Row> {
    let text = |v: &Value, k: &str| v[k].as_str().unwrap_or_else(|| panic!("{k} in {v}")).to_string();
    query(db, "SELECT * FROM audit_log ORDER BY seq")
        .iter()
        .map(|v| Row {
            record: AuditRecord {
                seq: v["seq"].as_i64().unwrap(),
                at: v["at"].as_i64().unwrap(),
                actor: text(v, "actor"),
                source: text(v, "source"),
                action: text(v, "action"),
                object: text(v, "object"),
                outcome: text(v, "outcome"),
                summary: text(v, "summary"),
            },
            scheme: text(v, "scheme"),
            prev_hash: text(v, "prev_hash"),
            hash: text(v, "hash"),
        })
        .collect()
}

/// SQL that stores `rows` as they are now (actor, scheme and chain fields).
fn store_rows(rows: &[Row]) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
    rows.iter()
        .map(|r| {
            format!(
                "UPDATE audit_log SET actor = {}, scheme = {}, prev_hash = {}, hash = {} WHERE seq = {};",
                quote(&r.record.actor),
                quote(&r.scheme),
                quote(&r.prev_hash),
                quote(&r.hash),
                r.record.seq
            )
        })
        .collect()
}

/// Recomputes the chain from `rows[from]` on with `hash` (given the previous
/// hash and the record), as an attacker does after editing an entry.
fn rechain(rows: &mut [Row], from: usize, hash: impl Fn(&str, &AuditRecord) -> String) {
    let mut prev = if from == 0 { ferry_domain::audit::GENESIS_HASH.to_string() } else { rows[from - 1].hash.clone() };
    for r in rows.iter_mut().skip(from) {
        r.prev_hash = prev;
        r.hash = hash(&r.prev_hash, &r.record);
        prev = r.hash.clone();
    }
}

fn data(f: &Ferry) -> PathBuf {
    f.dir.path().join("server")
}

fn db_file(f: &Ferry) -> PathBuf {
    data(f).join("ferry.db")
}

/// Changes that are recorded: `n` projects created.
fn make_entries(f: &Ferry, prefix: &str, n: usize) {
    for i in 0..n {
        f.ok(&["project", "create", &format!("{prefix}{i}")]);
    }
}

/// `ferry audit verify`, which must succeed: its output and the checkpoint
/// it printed.
fn verified(f: &Ferry, args: &[&str]) -> (String, Checkpoint) {
    let mut all = vec!["audit", "verify"];
    all.extend_from_slice(args);
    let out = f.ok(&all);
    assert!(out.contains("audit trail OK"), "{out}");
    let line = out.lines().find_map(|l| l.strip_prefix("checkpoint: ")).unwrap_or_else(|| panic!("{out}"));
    (out.clone(), line.parse().unwrap_or_else(|e| panic!("{e}: {out}")))
}

#[test]
fn the_audit_trail_records_changes_hides_secrets_and_names_an_edited_entry() {
    let mut f = Ferry::fleet_on_v1(&["a1"]);
    f.ok(&["var", "set", "app", "API_KEY", SECRET, "--secret"]);
    f.ok(&["var", "set", "app", "DB_HOST", "db1", "--env", "prod"]);
    // A denied attempt: a token the server never issued.
    let denied = Command::new(FERRY)
        .args(["project", "create", "evil"])
        .env("FERRY_SERVER", &f.url)
        .env("FERRY_TOKEN", "fy_u_0000")
        .output()
        .unwrap();
    assert!(!denied.status.success());

    let all = entries(&f, &[]);
    // The deployment, by the admin, from the loopback address.
    let deploy = find(&all, |e| e["action"] == "POST /api/v1/projects/{project}/deployments");
    assert_eq!(deploy["actor"], "admin");
    assert_eq!(deploy["source"], "127.0.0.1");
    assert_eq!(deploy["object"], "project=app");
    assert!(deploy["outcome"].as_str().unwrap().starts_with('2'), "{deploy}");
    assert!(deploy["summary"].as_str().unwrap().contains("\"env\":\"prod\""), "{deploy}");
    // Creating the project names it as the object.
    let created = find(&all, |e| e["action"] == "POST /api/v1/projects" && e["actor"] == "admin");
    assert_eq!(created["object"], "project=app");
    // The secret variable: its name, never its value.
    let secret = find(&all, |e| e["summary"].as_str().unwrap().contains("API_KEY"));
    assert_eq!(secret["action"], "POST /api/v1/projects/{project}/vars");
    assert!(secret["summary"].as_str().unwrap().contains("\"value\":\"***\""), "{secret}");
    let plain = find(&all, |e| e["summary"].as_str().unwrap().contains("DB_HOST"));
    assert!(plain["summary"].as_str().unwrap().contains("db1"), "{plain}");
    // The denied attempt.
    let bad = find(&all, |e| e["actor"] == "invalid token");
    assert_eq!(bad["action"], "POST /api/v1/projects");
    assert_eq!(bad["source"], "127.0.0.1");
    assert!(bad["outcome"].as_str().unwrap().starts_with("401 "), "{bad}");
    // Reads are not recorded; seqs count up without gaps, newest first.
    assert!(all.iter().all(|e| !e["action"].as_str().unwrap().starts_with("GET ")), "{all:#?}");
    let seqs: Vec<i64> = all.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).rev().collect::<Vec<_>>());

    // The secret appears nowhere: not in the trail, not in the database.
    assert!(!serde_json::to_string(&all).unwrap().contains(SECRET));
    let csv = f.ok(&["audit", "-o", "csv", "--limit", "1000"]);
    assert!(!csv.contains(SECRET));
    for file in ["ferry.db", "ferry.db-wal"] {
        let bytes = std::fs::read(f.dir.path().join("server").join(file)).unwrap_or_default();
        assert!(!bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()), "the secret is in {file}");
    }

    // Filters.
    let app = entries(&f, &["--project", "app"]);
    assert!(!app.is_empty() && app.len() < all.len());
    assert!(app.iter().all(|e| format!(" {} ", e["object"].as_str().unwrap()).contains(" project=app ")));
    let denied = entries(&f, &["--user", "invalid token"]);
    assert_eq!(denied.len(), 1);
    let by_admin = all.iter().filter(|e| e["actor"] == "admin").count();
    assert!(by_admin > 0 && by_admin < all.len());
    assert_eq!(entries(&f, &["--user", "admin", "--since", "1h"]).len(), by_admin);
    assert_eq!(entries(&f, &["--since", "2000-01-01T00:00:00Z"]).len(), all.len());
    assert!(entries(&f, &["--since", "2100-01-01T00:00:00Z"]).is_empty());
    assert_eq!(f.json(&["audit", "--limit", "2"]).as_array().unwrap().len(), 2);
    // CSV: a header, then one line per entry.
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "seq,at,actor,source,action,object,outcome,summary,hash");
    assert_eq!(lines.len(), all.len() + 1);
    assert!(lines.iter().any(|l| l.contains("invalid token") && l.contains("127.0.0.1")));

    let ok = f.ok(&["audit", "verify"]);
    assert!(ok.contains("audit trail OK"), "{ok}");

    // Edit one entry in the database file while the server is down.
    let target = plain["seq"].as_i64().unwrap();
    f.server.kill();
    let db = f.dir.path().join("server/ferry.db");
    tamper(&db, &format!("UPDATE audit_log SET actor = 'someone-else' WHERE seq = {target}"));
    f.restart_server();
    let err = f.fails(&["audit", "verify"]);
    assert!(err.contains(&format!("broken at entry {target}:")), "{err}");
    assert!(err.contains("content_changed"), "{err}");
}

#[test]
fn an_untouched_trail_verifies_also_after_a_restart_and_keeps_its_checkpoints() {
    let mut f = Ferry::start();
    make_entries(&f, "p", 4);
    let (out, first) = verified(&f, &[]);
    assert_eq!(first.seq, 4, "{out}");
    assert!(out.contains("audit trail OK: 4 entries"), "{out}");
    assert!(!out.contains("predate keying"), "a new server keys every entry: {out}");
    // The key and the checkpoint live outside the database, private.
    for file in ["audit.key", "audit.checkpoint"] {
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(data(&f).join(file)).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    assert!(rows(&db_file(&f)).iter().all(|r| r.scheme == Scheme::Keyed.as_str()));
    // What verify printed is the server's checkpoint and the newest entry.
    let json = f.json(&["audit", "verify"]);
    assert_eq!(json["checkpoint"]["seq"], 4);
    assert_eq!(json["checkpoint"]["hash"], first.hash.as_str());
    assert_eq!(json["head_hash"], first.hash.as_str());

    f.restart_server();
    let (_, again) = verified(&f, &[]);
    assert_eq!(again, first);
    make_entries(&f, "q", 2);
    let (out, later) = verified(&f, &["--since-checkpoint", &first.to_string()]);
    assert_eq!(later.seq, 6);
    assert!(out.contains("still holds entry 4"), "{out}");
    f.restart_server();
    verified(&f, &["--since-checkpoint", &first.to_string()]);
    verified(&f, &["--since-checkpoint", &later.to_string()]);
    // A checkpoint that is not SEQ:HASH is refused before asking.
    let err = f.fails(&["audit", "verify", "--since-checkpoint", "4"]);
    assert!(err.contains("SEQ:HASH"), "{err}");
}

#[test]
fn an_entry_edited_and_the_chain_recomputed_without_the_key_is_named() {
    let mut f = Ferry::start();
    make_entries(&f, "p", 6);
    let (_, kept) = verified(&f, &[]);
    let db = db_file(&f);
    let target = 3;

    // The attacker edits entry 3 and recomputes every hash after it with
    // the public algorithm: the chain links up again.
    f.server.kill();
    let mut r = rows(&db);
    r[target - 1].record.actor = "someone-else".into();
    rechain(&mut r, target - 1, unkeyed_hash);
    tamper(&db, &store_rows(&r));
    f.restart_server();
    let err = f.fails(&["audit", "verify"]);
    assert!(err.contains(&format!("broken at entry {target}:")), "{err}");
    assert!(err.contains("content_changed"), "{err}");
    let err = f.fails(&["audit", "verify", "--since-checkpoint", &kept.to_string()]);
    assert!(err.contains(&format!("broken at entry {target}:")), "{err}");

    // ... and also marks those rows as written before keying, whose plain
    // SHA-256 hashes anyone can compute.
    f.server.kill();
    for row in r.iter_mut().skip(target - 1) {
        row.scheme = Scheme::Unkeyed.as_str().into();
    }
    tamper(&db, &store_rows(&r));
    f.restart_server();
    let err = f.fails(&["audit", "verify"]);
    assert!(err.contains(&format!("broken at entry {target}:")), "{err}");
    assert!(err.contains("not_keyed") && err.contains("without the audit key"), "{err}");

    // The whole trail rewritten as if no entry were keyed: still named.
    f.server.kill();
    let mut r = rows(&db);
    for row in r.iter_mut() {
        row.scheme = Scheme::Unkeyed.as_str().into();
    }
    rechain(&mut r, 0, unkeyed_hash);
    tamper(&db, &store_rows(&r));
    f.restart_server();
    let err = f.fails(&["audit", "verify"]);
    assert!(err.contains("broken at entry 1:") && err.contains("not_keyed"), "{err}");
}

#[test]
fn the_newest_entries_deleted_are_reported_as_a_truncation() {
    let mut f = Ferry::start();
    make_entries(&f, "p", 7);
    let (_, kept) = verified(&f, &[]);
    assert_eq!(kept.seq, 7);
    let db = db_file(&f);

    // Entries 5 to 7 removed while the server is down: what is left is a
    // valid chain, but it no longer reaches the checkpoint.
    f.server.kill();
    tamper(&db, "DELETE FROM audit_log WHERE seq > 4");
    f.restart_server();
    let err = f.fails(&["audit", "verify"]);
    assert!(err.contains("broken at entry 5:"), "{err}");
    assert!(err.contains("truncated after entry 4 (the server's checkpoint says it reaches entry 7)"), "{err}");
    assert!(err.contains("(truncated)"), "{err}");
    let err = f.fails(&["audit", "verify", "--since-checkpoint", &kept.to_string()]);
    assert!(err.contains("truncated after entry 4"), "{err}");

    // New entries take the numbers of the removed ones: entry 7 is now
    // another entry, and the checkpoint still says so.
    make_entries(&f, "q", 4);
    let err = f.fails(&["audit", "verify"]);
    assert!(err.contains("broken at entry 7:"), "{err}");
    assert!(err.contains("checkpoint_mismatch"), "{err}");
}

#[test]
fn entries_deleted_while_the_server_runs_stop_the_checkpoint_and_are_reported() {
    let f = Ferry::start();
    make_entries(&f, "p", 5);
    tamper(&db_file(&f), "DELETE FROM audit_log WHERE seq > 3");
    // The server appends entry 4 again: it does not follow its checkpoint
    // (entry 5), which stays where it is.
    make_entries(&f, "q", 1);
    let err = f.fails(&["audit", "verify"]);
    assert!(err.contains("truncated after entry 4 (the server's checkpoint says it reaches entry 5)"), "{err}");
    make_entries(&f, "r", 2);
    let err = f.fails(&["audit", "verify"]);
    assert!(err.contains("broken at entry 5:") && err.contains("checkpoint_mismatch"), "{err}");
}

#[test]
fn a_checkpoint_kept_elsewhere_catches_what_the_server_cannot() {
    let mut f = Ferry::start();
    let db = db_file(&f);
    let anchor_file = data(&f).join("audit.checkpoint");
    make_entries(&f, "p", 3);
    let old_anchor = std::fs::read(&anchor_file).unwrap();
    make_entries(&f, "q", 3);
    let (_, kept) = verified(&f, &[]);
    assert_eq!(kept.seq, 6);

    // The newest rows removed and the checkpoint file rolled back with them:
    // the server has nothing left to compare with ...
    f.server.kill();
    tamper(&db, "DELETE FROM audit_log WHERE seq > 3");
    std::fs::write(&anchor_file, &old_anchor).unwrap();
    f.restart_server();
    verified(&f, &[]);
    // ... the operator's copy of the checkpoint has.
    let err = f.fails(&["audit", "verify", "--since-checkpoint", &kept.to_string()]);
    assert!(err.contains("truncated after entry 3 (the given checkpoint says it reaches entry 6)"), "{err}");

    // Root on the server, holding the key: rewrites an entry, recomputes the
    // keyed chain and the server's checkpoint. Nothing inside the server can
    // tell; a checkpoint kept elsewhere at or after the entry can.
    make_entries(&f, "r", 3);
    let (_, kept) = verified(&f, &[]);
    f.server.kill();
    let key_hex = std::fs::read_to_string(data(&f).join("audit.key")).unwrap();
    let key_bytes: [u8; 32] = hex::decode(key_hex.trim()).unwrap().try_into().unwrap();
    let key = AuditKey::from_bytes(key_bytes);
    let mut r = rows(&db);
    r[1].record.actor = "someone-else".into();
    rechain(&mut r, 1, |prev, rec| key.entry_hash(prev, rec));
    tamper(&db, &store_rows(&r));
    // Either slot of the file tells when keying began.
    let text = std::fs::read_to_string(&anchor_file).unwrap();
    let line = text.lines().map(|l| l.trim_matches(|c: char| c == '\0' || c.is_whitespace())).find(|l| !l.is_empty());
    let mut anchor: Value = serde_json::from_str(line.unwrap()).unwrap();
    let head = r.last().unwrap();
    let forged = Anchor {
        head: Checkpoint { seq: head.record.seq, hash: head.hash.clone() },
        at: anchor["at"].as_i64().unwrap(),
        keyed_from: anchor["keyed_from"].as_i64().unwrap(),
        started_at: anchor["started_at"].as_i64().unwrap(),
    };
    anchor["seq"] = forged.head.seq.into();
    anchor["hash"] = forged.head.hash.clone().into();
    anchor["mac"] = key.anchor_mac(&forged).into();
    std::fs::write(&anchor_file, anchor.to_string()).unwrap();
    f.restart_server();
    verified(&f, &[]);
    let err = f.fails(&["audit", "verify", "--since-checkpoint", &kept.to_string()]);
    assert!(err.contains(&format!("broken at entry {}:", kept.seq)), "{err}");
    assert!(err.contains("checkpoint_mismatch") && err.contains("the given checkpoint"), "{err}");
}

#[test]
fn entries_from_before_keying_are_checked_the_old_way_and_protected_from_then_on() {
    let mut f = Ferry::start();
    make_entries(&f, "p", 4);
    let db = db_file(&f);

    // The data directory as a server from before keying left it: plain
    // SHA-256 hashes, no audit key, no checkpoint.
    f.server.kill();
    let mut r = rows(&db);
    for row in r.iter_mut() {
        row.scheme = Scheme::Unkeyed.as_str().into();
    }
    rechain(&mut r, 0, unkeyed_hash);
    tamper(&db, &format!("{} DELETE FROM settings WHERE key = 'audit_key_id';", store_rows(&r)));
    std::fs::remove_file(data(&f).join("audit.key")).unwrap();
    std::fs::remove_file(data(&f).join("audit.checkpoint")).unwrap();

    // The upgraded server keys what comes next.
    f.restart_server();
    let (out, first) = verified(&f, &[]);
    assert!(out.contains("4 of them predate keying"), "{out}");
    assert_eq!(first.seq, 4);
    make_entries(&f, "q", 2);
    let (out, _) = verified(&f, &[]);
    assert!(out.contains("audit trail OK: 6 entries") && out.contains("4 of them predate keying"), "{out}");
    let schemes: Vec<String> = rows(&db).into_iter().map(|r| r.scheme).collect();
    assert_eq!(schemes, ["sha256", "sha256", "sha256", "sha256", "hmac-sha256", "hmac-sha256"]);
    let json = f.json(&["audit", "verify"]);
    assert_eq!((json["unkeyed"].as_u64(), json["keyed_from"].as_i64()), (Some(4), Some(5)));

    // An old entry edited and the old chain recomputed: the first keyed
    // entry's hash covers the last old one.
    f.server.kill();
    let mut r = rows(&db);
    r[1].record.actor = "someone-else".into();
    rechain(&mut r[..4], 1, unkeyed_hash);
    tamper(&db, &store_rows(&r[..4]));
    f.restart_server();
    let err = f.fails(&["audit", "verify"]);
    assert!(err.contains("broken at entry 5:") && err.contains("link_broken"), "{err}");
}
