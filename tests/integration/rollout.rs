//! R13, R11, R19: rollouts over real agents — the order hosts are updated in,
//! a failure that stops a rollout and puts the first batch back, canary
//! promotion, pause/resume/cancel, emergency rollback, retry, and a server
//! killed in the middle of a rollout.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{Ferry, wait_until, write_tree};

const SIX: [&str; 6] = ["web-1", "web-2", "web-3", "web-4", "web-5", "web-6"];

/// Six hosts in two regions (web-1..3 in bj, web-4..6 in sh), web-1 tagged
/// as the pre-production host, all on v1.
fn fleet() -> Ferry {
    let mut f = Ferry::start();
    for (i, name) in SIX.iter().enumerate() {
        let region = if i < 3 { "bj" } else { "sh" };
        let stage = if i == 0 { ",stage=pre" } else { "" };
        f.start_agent(name, &format!("role=web,region={region}{stage}"));
    }
    for name in SIX {
        f.wait_online(name, true);
    }
    f.project_app();
    upload_slow(&f, "v1");
    f.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);
    f
}

/// A release whose activation takes a moment (so batches are visible), and
/// fails on a host whose root holds a file `fail-here`.
fn upload_slow(f: &Ferry, v: &str) {
    let tree = f.dir.path().join("rollout-trees").join(v);
    write_tree(&tree, v, 3);
    let hooks = "[hooks]\nbefore_activate = \"test ! -e $FERRY_SHARED_DIR/../../fail-here || { echo told to fail >&2; exit 7; }\"\n\
                 after_activate = \"sleep 0.3\"\n";
    std::fs::write(tree.join("ferry.toml"), hooks).unwrap();
    f.ok(&["release", "upload", "app", tree.to_str().unwrap(), "--version", v]);
}

/// `2026-11-22T08:48:54.12Z` as milliseconds within its day, with the day.
fn time_of(rfc3339: &str) -> (String, u64) {
    let (date, rest) = rfc3339.split_once('T').unwrap();
    let clock = rest.trim_end_matches('Z');
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, "0"));
    let mut parts = hms.split(':').map(|p| p.parse::<u64>().unwrap());
    let (h, m, s) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    let ms: u64 = format!("{:0<3}", &frac[..frac.len().min(3)]).parse().unwrap();
    (date.to_string(), ((h * 60 + m) * 60 + s) * 1000 + ms)
}

/// A moment as `time_of` gives it: comparable within the run.
type At = (String, u64);

/// Hosts by batch, each with when it started and finished.
fn batches(d: &Value) -> Vec<Vec<(String, At, At)>> {
    let count = d["batch_count"].as_u64().unwrap() as usize;
    let mut out = vec![Vec::new(); count];
    for h in d["hosts"].as_array().unwrap() {
        let batch = h["batch"].as_u64().unwrap() as usize - 1;
        let started = time_of(h["started_at"].as_str().unwrap());
        let finished = time_of(h["finished_at"].as_str().unwrap());
        out[batch].push((h["host"].as_str().unwrap().to_string(), started, finished));
    }
    out
}

/// Every host of each batch started after every host of the batch before finished.
fn assert_in_order(d: &Value) -> Vec<Vec<String>> {
    let b = batches(d);
    for pair in b.windows(2) {
        let last_done = pair[0].iter().map(|h| h.2.clone()).max().unwrap();
        let first_start = pair[1].iter().map(|h| h.1.clone()).min().unwrap();
        assert!(first_start >= last_done, "a batch started before the one before it ended: {b:?}");
    }
    b.into_iter().map(|hosts| hosts.into_iter().map(|h| h.0).collect()).collect()
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn strategies_update_hosts_in_their_order() {
    let f = fleet();
    upload_slow(&f, "v2");
    upload_slow(&f, "v3");
    upload_slow(&f, "v4");

    // Rolling, two at a time.
    f.ok(&["deploy", "app", "prod", "--version", "v2", "--strategy", "rolling", "--batch", "2", "--wait"]);
    let d = f.json(&["deployment", "show", "2"]);
    let order = assert_in_order(&d);
    assert_eq!(order, [names(&["web-1", "web-2"]), names(&["web-3", "web-4"]), names(&["web-5", "web-6"])]);

    // Grouped by region, the environment's default from now on.
    f.ok(&["env", "set-rollout", "app", "prod", "--strategy", "grouped", "--group-by", "region"]);
    let envs = f.json(&["env", "list", "app"]);
    assert_eq!(envs[0]["rollout"].as_str().unwrap().split(';').next().unwrap(), "grouped by region");
    f.ok(&["deploy", "app", "prod", "--version", "v3", "--wait"]);
    let order = assert_in_order(&f.json(&["deployment", "show", "3"]));
    assert_eq!(order, [names(&["web-1", "web-2", "web-3"]), names(&["web-4", "web-5", "web-6"])]);

    // One at a time; the history has each batch once.
    f.ok(&["deploy", "app", "prod", "--version", "v4", "--strategy", "one-at-a-time", "--wait"]);
    let d = f.json(&["deployment", "show", "4"]);
    assert_eq!(assert_in_order(&d).len(), 6);
    let events: Vec<&str> = d["events"].as_array().unwrap().iter().map(|e| e["what"].as_str().unwrap()).collect();
    for k in 1..=6 {
        let started = format!("batch {k} of 6 started: 1 host(s)");
        assert_eq!(events.iter().filter(|e| **e == started).count(), 1, "{events:?}");
    }
    assert_eq!(*events.last().unwrap(), "succeeded");
    let shown = f.ok(&["deployment", "show", "4"]);
    assert!(shown.contains("rollout: one at a time") && shown.contains("BATCH") && shown.contains("6/6"), "{shown}");

    // Bad rollout options are refused, naming the problem, and change nothing.
    for (args, want) in [
        (vec!["--strategy", "rolling"], "--batch"),
        (vec!["--strategy", "zigzag"], "zigzag"),
        (vec!["--strategy", "canary", "--canary", "stage=gray"], "stage=gray"),
        (vec!["--strategy", "grouped", "--group-by", "rack"], "no tag 'rack'"),
        (vec!["--batch", "0"], "batch size"),
    ] {
        let mut all = vec!["deploy", "app", "prod", "--version", "v2"];
        all.extend(args);
        let err = f.fails(&all);
        assert!(err.contains(want), "{all:?}: {err}");
    }
    assert_eq!(f.json(&["deployments", "app"]).as_array().unwrap().len(), 4, "the refused deploys left no trace");
}

#[test]
fn a_failure_in_batch_two_stops_the_rollout_and_puts_batch_one_back() {
    let f = fleet();
    upload_slow(&f, "v2");
    std::fs::write(f.root_of("web-3").join("fail-here"), "").unwrap();
    let err = f.fails(&["deploy", "app", "prod", "--version", "v2", "--strategy", "rolling", "--batch", "2", "--wait"]);
    assert!(err.contains("rolled_back") && err.contains("1 of 6 host(s) failed"), "{err}");
    let d = f.json(&["deployment", "show", "2"]);
    assert_eq!(d["status"], "rolled_back");
    let state = |host: &str| {
        let h = d["hosts"].as_array().unwrap().iter().find(|h| h["host"] == host).unwrap();
        (h["state"].as_str().unwrap().to_string(), h["error"].as_str().unwrap_or("").to_string())
    };
    assert_eq!(state("web-1").0, "rolled_back");
    assert_eq!(state("web-2").0, "rolled_back");
    let (s3, e3) = state("web-3");
    assert!(s3 == "failed" && e3.contains("told to fail"), "{s3}: {e3}");
    for host in ["web-5", "web-6"] {
        let (s, e) = state(host);
        assert!(s == "canceled" && e.starts_with("not started"), "{host}: {s} {e}");
    }
    // Everyone ends on v1: batch 1 put back, the rest never touched.
    for host in SIX {
        f.wait_version(host, "app", "v1");
    }

    // Retry only the hosts that did not succeed, with web-3 fixed.
    std::fs::remove_file(f.root_of("web-3").join("fail-here")).unwrap();
    f.ok(&["deployment", "retry", "2", "--failed", "--wait"]);
    let again = f.json(&["deployment", "show", "3"]);
    assert_eq!(again["status"], "succeeded");
    assert_eq!(again["hosts"].as_array().unwrap().len(), 6, "none of deployment 2's hosts succeeded");
    for host in SIX {
        assert_eq!(f.version_on(host, "app").as_deref(), Some("v2"));
    }
}

fn wait_hold(f: &Ferry, id: &str, want: &str) -> Value {
    let mut last = Value::Null;
    wait_until(Duration::from_secs(30), &format!("deployment {id} to wait for {want}"), || {
        last = f.json(&["deployment", "show", id]);
        last["hold"].as_str().unwrap_or("").contains(want)
    });
    last
}

#[test]
fn canary_promote_pause_resume_cancel_and_emergency() {
    let f = fleet();
    upload_slow(&f, "v2");
    upload_slow(&f, "v3");

    // The pre-production host goes first, then the rollout waits.
    let out = f.ok(&[
        "deploy",
        "app",
        "prod",
        "--version",
        "v2",
        "--strategy",
        "canary",
        "--canary",
        "stage=pre",
        "--batch",
        "2",
    ]);
    assert!(out.contains("rollout: canary: hosts stage=pre first"), "{out}");
    let d = wait_hold(&f, "2", "waiting for promote before batch 2");
    assert_eq!(d["status"], "running");
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v2"));
    for host in &SIX[1..] {
        assert_eq!(f.version_on(host, "app").as_deref(), Some("v1"), "{host} waits for the promotion");
    }
    // R19 holds while it waits.
    let err = f.fails(&["deploy", "app", "prod", "--version", "v3"]);
    assert!(err.contains("still running") && err.contains("ferry deployment cancel 2"), "{err}");

    // Pause before promoting: the promotion waits for the resume.
    f.ok(&["deployment", "pause", "2"]);
    f.ok(&["deployment", "promote", "2"]);
    let d = wait_hold(&f, "2", "paused");
    assert_eq!(d["paused"], true);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(f.version_on("web-2", "app").as_deref(), Some("v1"), "nothing starts while paused");
    f.ok(&["deployment", "resume", "2"]);
    f.wait_version("web-2", "app", "v2");
    f.wait_version("web-3", "app", "v2");
    // Cancel: the batch at work finishes, the rest never starts.
    f.ok(&["deployment", "cancel", "2"]);
    let done = f.fails(&["deployment", "show", "2", "--follow"]);
    assert!(done.contains("canceled"), "{done}");
    let d = f.json(&["deployment", "show", "2"]);
    assert_eq!(d["status"], "canceled");
    let states: Vec<&str> = d["hosts"].as_array().unwrap().iter().map(|h| h["state"].as_str().unwrap()).collect();
    assert!(states.iter().all(|s| ["succeeded", "canceled"].contains(s)), "{states:?}");
    assert!(states.contains(&"canceled"), "{states:?}");
    let err = f.fails(&["deployment", "resume", "2"]);
    assert!(err.contains("already ended (canceled)"), "{err}");

    // A slow rollout is running; an emergency rollback takes over at once.
    f.ok(&["deploy", "app", "prod", "--version", "v3", "--strategy", "one-at-a-time", "--pause", "1h"]);
    wait_hold(&f, "3", "pausing before batch 2");
    let out = f.ok(&["rollback", "app", "prod", "--to", "v1", "--emergency", "--wait"]);
    assert!(out.contains("EMERGENCY"), "{out}");
    let old = f.json(&["deployment", "show", "3"]);
    assert_eq!(
        (old["status"].as_str(), old["reason"].as_str()),
        (Some("canceled"), Some("an emergency rollback took over"))
    );
    let em = f.json(&["deployment", "show", "4"]);
    assert_eq!((em["emergency"].as_bool(), em["batch_count"].as_u64()), (Some(true), Some(1)));
    for host in SIX {
        assert_eq!(f.version_on(host, "app").as_deref(), Some("v1"));
    }
    let err = f.fails(&["deploy", "app", "prod", "--version", "v2", "--emergency"]);
    assert!(err.contains("unexpected argument") || err.contains("--emergency"), "{err}");
}

#[test]
fn a_server_killed_mid_rollout_resumes_it_without_updating_a_host_twice() {
    let mut f = fleet();
    upload_slow(&f, "v2");
    f.ok(&["deploy", "app", "prod", "--version", "v2", "--strategy", "one-at-a-time"]);
    wait_until(Duration::from_secs(30), "batch 3 to start", || {
        let d = f.json(&["deployment", "show", "2"]);
        d["current_batch"].as_u64().is_some_and(|b| b >= 3)
    });
    f.restart_server();
    for host in SIX {
        f.wait_online(host, true);
    }
    f.ok(&["deployment", "show", "2", "--follow"]);
    let d = f.json(&["deployment", "show", "2"]);
    assert_eq!(d["status"], "succeeded");
    assert_in_order(&d);
    let events: Vec<&str> = d["events"].as_array().unwrap().iter().map(|e| e["what"].as_str().unwrap()).collect();
    for k in 1..=6 {
        let started = format!("batch {k} of 6 started: 1 host(s)");
        assert_eq!(events.iter().filter(|e| **e == started).count(), 1, "batch {k}: {events:?}");
    }
    for host in SIX {
        assert_eq!(f.version_on(host, "app").as_deref(), Some("v2"));
    }
}
