//! Getting out of trouble and staying out (R11, R19): releases marked bad
//! are skipped by rollbacks and refused by deploys unless forced; freezes
//! stop every deployment of an environment until lifted or ended.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{Ferry, wait_until};

fn deployment_count(f: &Ferry) -> usize {
    f.json(&["deployments", "app"]).as_array().unwrap().len()
}

fn prod(status: &Value) -> &Value {
    status["environments"].as_array().unwrap().iter().find(|e| e["env"] == "prod").unwrap()
}

#[test]
fn a_release_marked_bad_is_skipped_refused_unless_forced_and_shown() {
    let f = Ferry::fleet_on_v1(&["web-1", "web-2"]);
    f.upload("app", "v3");
    f.ok(&["deploy", "app", "prod", "--version", "v2", "--wait"]);
    f.ok(&["deploy", "app", "prod", "--version", "v3", "--wait"]);

    let out = f.ok(&["release", "mark-bad", "app", "v2", "--reason", "memory leak"]);
    assert!(out.contains("marked app v2 bad: memory leak"), "{out}");
    let listed = f.json(&["releases", "app"]);
    let v2 = listed.as_array().unwrap().iter().find(|r| r["version"] == "v2").unwrap();
    assert_eq!((v2["bad"]["by"].as_str(), v2["bad"]["reason"].as_str()), (Some("admin"), Some("memory leak")));
    let v3 = listed.as_array().unwrap().iter().find(|r| r["version"] == "v3").unwrap();
    assert!(v3["bad"].is_null(), "{v3}");
    let table = f.ok(&["release", "list", "app"]);
    assert!(table.contains("MARK") && table.contains("memory leak"), "{table}");

    // The previous good version is v2, but it is marked: the rollback goes to v1.
    let out = f.ok(&["rollback", "app", "prod", "--wait"]);
    assert!(out.contains("version v1"), "{out}");
    for h in ["web-1", "web-2"] {
        assert_eq!(f.version_on(h, "app").as_deref(), Some("v1"));
    }

    // Naming it, in a deploy or a rollback, is refused with who and why; nothing is recorded.
    let before = deployment_count(&f);
    for args in [["deploy", "app", "prod", "--version", "v2"], ["rollback", "app", "prod", "--to", "v2"]] {
        let err = f.fails(&args);
        assert!(err.contains("v2 of app was marked bad by admin") && err.contains("memory leak"), "{err}");
        assert!(err.contains("--force"), "{err}");
    }
    assert_eq!(deployment_count(&f), before);
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v1"));

    // --force goes ahead, and the deployment says it was forced.
    let out = f.ok(&["deploy", "app", "prod", "--version", "v2", "--force", "--wait"]);
    assert!(out.contains("forced"), "{out}");
    let id = f.json(&["deployments", "app"])[0]["id"].as_i64().unwrap().to_string();
    let d = f.json(&["deployment", "show", &id]);
    assert_eq!((d["forced"].as_bool(), d["version"].as_str()), (Some(true), Some("v2")));
    let shown = f.ok(&["deployment", "show", &id]);
    assert!(shown.contains("forced: version v2 was marked bad"), "{shown}");
    assert!(f.ok(&["deployments", "app"]).contains("deploy (forced)"));
    f.wait_version("web-2", "app", "v2");

    // Status points out where the bad release still runs.
    let s = f.json(&["status", "app"]);
    assert_eq!(prod(&s)["marked_bad"]["v2"]["reason"], "memory leak");
    let text = f.ok(&["status", "app"]);
    assert!(text.contains("v2 (marked bad: memory leak): 2"), "{text}");

    // Cleared, it is an ordinary release again.
    assert!(f.ok(&["release", "mark-good", "app", "v2"]).contains("no longer marked bad"));
    let err = f.fails(&["release", "mark-good", "app", "v2"]);
    assert!(err.contains("not marked bad"), "{err}");
    assert!(prod(&f.json(&["status", "app"]))["marked_bad"].as_object().unwrap().is_empty());
    let out = f.ok(&["rollback", "app", "prod", "--wait"]);
    assert!(out.contains("version v1"), "{out}");
    f.ok(&["deploy", "app", "prod", "--version", "v2", "--wait"]);
    let d = f.json(&["deployments", "app"]);
    assert_eq!(d[0]["forced"], false, "nothing to force any more: {}", d[0]);
}

#[test]
fn a_freeze_refuses_deployments_with_who_and_why_until_lifted() {
    let mut f = Ferry::fleet_on_v1(&["web-1"]);
    f.ok(&["deploy", "app", "prod", "--version", "v2", "--wait"]);
    let out = f.ok(&["lock", "app", "prod", "--reason", "release night", "--for", "2h"]);
    assert!(out.contains("froze app/prod until"), "{out}");

    let locks = f.json(&["locks", "app"]);
    assert_eq!(locks.as_array().unwrap().len(), 1, "{locks}");
    let l = &locks[0];
    assert_eq!(
        (l["kind"].as_str(), l["owner"].as_str(), l["reason"].as_str()),
        (Some("freeze"), Some("admin"), Some("release night"))
    );
    assert!(l["expires_at"].is_string(), "{l}");
    assert!(f.ok(&["locks"]).contains("release night"));

    let before = deployment_count(&f);
    for args in [
        vec!["deploy", "app", "prod", "--version", "v1"],
        vec!["deploy", "app", "prod", "--version", "v1", "--force"],
        vec!["rollback", "app", "prod"],
    ] {
        let err = f.fails(&args);
        assert!(err.contains("app/prod is frozen by admin") && err.contains("release night"), "{args:?}: {err}");
    }
    assert_eq!(deployment_count(&f), before, "nothing was recorded");
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v2"));
    let s = f.json(&["status", "app"]);
    assert_eq!(prod(&s)["freeze"]["owner"], "admin");
    assert!(f.ok(&["status", "app"]).contains("FROZEN by admin"));

    // An emergency rollback goes through, and says so.
    let out = f.ok(&["rollback", "app", "prod", "--emergency", "--wait"]);
    assert!(out.contains("through the freeze of app/prod"), "{out}");
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v1"));
    let d = &f.json(&["deployments", "app"])[0];
    assert_eq!((d["emergency"].as_bool(), d["freeze_ignored"].as_bool()), (Some(true), Some(true)), "{d}");
    assert!(f.ok(&["deployments", "app"]).contains("rollback (through freeze)"));
    assert_eq!(f.json(&["locks", "app"])[0]["kind"], "freeze", "the freeze still holds");

    // One freeze at a time: the second names the first.
    let err = f.fails(&["lock", "app", "prod", "--reason", "mine", "--for", "1h"]);
    assert!(err.contains("already frozen by admin") && err.contains("release night"), "{err}");

    let out = f.ok(&["unlock", "app", "prod"]);
    assert!(out.contains("lifted the freeze of app/prod"), "{out}");
    let err = f.fails(&["unlock", "app", "prod"]);
    assert!(err.contains("app/prod is not frozen"), "{err}");
    f.ok(&["deploy", "app", "prod", "--version", "v2", "--wait"]);
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v2"));
    assert!(f.json(&["locks"]).as_array().unwrap().is_empty());

    // A running deployment holds the lock too: `locks` shows it and who started it.
    f.agent("web-1").kill();
    f.wait_online("web-1", false);
    f.ok(&["rollback", "app", "prod", "--offline-timeout", "60s"]);
    let locks = f.json(&["locks"]);
    let l = &locks[0];
    assert_eq!(
        (l["kind"].as_str(), l["owner"].as_str(), l["env"].as_str()),
        (Some("deployment"), Some("admin"), Some("prod"))
    );
    assert_eq!(l["deployment"].as_i64(), f.json(&["deployments", "app"])[0]["id"].as_i64());
    assert!(l["expires_at"].is_null());
    assert!(f.ok(&["locks", "app"]).contains("deployment "));
}

#[test]
fn a_freeze_ends_by_itself() {
    let f = Ferry::start();
    f.project_app();
    f.upload("app", "v1");
    f.ok(&["lock", "app", "prod", "--reason", "short", "--for", "2s"]);
    let err = f.fails(&["deploy", "app", "prod", "--version", "v1"]);
    assert!(err.contains("frozen by admin"), "{err}");
    wait_until(Duration::from_secs(10), "the freeze to end", || f.json(&["locks"]).as_array().unwrap().is_empty());
    // Nobody lifted it: it simply no longer applies.
    f.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);
    let err = f.fails(&["unlock", "app", "prod"]);
    assert!(err.contains("not frozen"), "{err}");
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let f = Ferry::start();
    f.project_app();
    f.upload("app", "v1");

    let refused: &[(&[&str], &str)] = &[
        (&["lock", "nope", "prod", "--reason", "x", "--for", "1h"], "project 'nope' not found"),
        (&["lock", "app", "nope", "--reason", "x", "--for", "1h"], "environment 'nope' of project 'app' not found"),
        (&["lock", "app", "prod", "--reason", "", "--for", "1h"], "a reason is required"),
        (&["lock", "app", "prod", "--reason", "   ", "--for", "1h"], "a reason is required"),
        (&["lock", "app", "prod", "--reason", "x", "--for", "soon"], "'soon' is not a duration"),
        (&["lock", "app", "prod", "--reason", "x", "--for", "0s"], "at least 1s"),
        (&["lock", "app", "prod", "--reason", "x", "--for", "90days"], "at most 30days"),
        (&["lock", "app", "prod", "--reason", "x"], "--for"),
        (&["lock", "app", "prod", "--for", "1h"], "--reason"),
        (&["unlock", "app", "prod"], "app/prod is not frozen"),
        (&["unlock", "app", "nope"], "environment 'nope' of project 'app' not found"),
        (&["locks", "nope"], "project 'nope' not found"),
        (&["release", "mark-bad", "app", "v9", "--reason", "x"], "version 'v9' of project 'app' not found"),
        (&["release", "mark-bad", "nope", "v1", "--reason", "x"], "project 'nope' not found"),
        (&["release", "mark-bad", "app", "v1", "--reason", ""], "a reason is required"),
        (&["release", "mark-bad", "app", "v1"], "--reason"),
        (&["release", "mark-good", "app", "v1"], "not marked bad"),
        (&["release", "mark-good", "app", "v9"], "version 'v9' of project 'app' not found"),
    ];
    for (args, expected) in refused {
        let err = f.fails(args);
        assert!(err.contains(expected), "{args:?}: expected '{expected}' in: {err}");
    }

    assert!(f.json(&["locks"]).as_array().unwrap().is_empty(), "no freeze was taken");
    assert!(f.json(&["releases", "app"])[0]["bad"].is_null(), "no mark was made");
    f.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);
}
