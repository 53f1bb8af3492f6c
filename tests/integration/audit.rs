//! R27: every change and every denied attempt is recorded, with who, when,
//! from where, what and how it ended; secrets never; and an edited entry is
//! named by `ferry audit verify`.

use std::process::Command;

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

/// Changes a stored entry behind the server's back, as someone with the
/// database file could.
fn tamper(db: &std::path::Path, sql: &str) {
    let sqlite3 = Command::new("sqlite3").arg(db).arg(sql).status();
    if sqlite3.is_ok_and(|s| s.success()) {
        return;
    }
    let script = "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nc.execute(sys.argv[2])\nc.commit()\nc.close()";
    let status = Command::new("python3").args(["-c", script]).arg(db).arg(sql).status().unwrap();
    assert!(status.success(), "neither sqlite3 nor python3 could edit {}", db.display());
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
