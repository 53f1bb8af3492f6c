//! What an offline target means (`--offline skip|wait|fail`), and a target
//! whose agent dies during its batch.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Ferry, wait_until};
use crate::service::upload_with;

fn host<'a>(d: &'a Value, name: &str) -> &'a Value {
    d["hosts"].as_array().unwrap().iter().find(|h| h["host"] == name).unwrap()
}

#[test]
fn a_host_offline_at_the_start_is_skipped_and_converges_when_it_returns() {
    let mut f = Ferry::fleet_on_v1(&["web-1", "web-2", "web-3"]);
    f.agent("web-3").kill();
    f.wait_online("web-3", false);

    // The default policy: go on without it, quickly, and say so.
    let started = Instant::now();
    let out = f.cli(&["deploy", "app", "prod", "--version", "v2", "--wait"]);
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(took < Duration::from_secs(20), "the deploy waited for the offline host: {took:?}");
    assert!(stderr.contains("warning: 1 host(s) offline at the start were skipped: web-3"), "{stderr}");
    let d = f.json(&["deployment", "show", "2"]);
    assert_eq!(d["status"], "succeeded");
    assert_eq!(host(&d, "web-3")["state"], "skipped");
    assert_eq!(host(&d, "web-1")["state"], "succeeded");
    let shown = f.ok(&["deployment", "show", "2"]);
    assert!(shown.contains("skipped: web-3"), "{shown}");
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v2"));
    assert_eq!(f.version_on("web-3", "app").as_deref(), Some("v1"), "untouched while away");

    // Back online, it converges to the release the deployment made desired.
    let proc = f.spawn_agent("web-3", "role=web", None);
    f.agents.push(("web-3".into(), proc));
    f.wait_version("web-3", "app", "v2");
}

#[test]
fn the_fail_policy_refuses_naming_the_offline_host_and_wait_waits() {
    let mut f = Ferry::fleet_on_v1(&["web-1", "web-2"]);
    f.ok(&["env", "update", "app", "prod", "--offline", "fail"]);
    assert_eq!(f.json(&["env", "list", "app"])[0]["offline_policy"], "fail");
    f.agent("web-2").kill();
    f.wait_online("web-2", false);

    let err = f.fails(&["deploy", "app", "prod", "--version", "v2"]);
    assert!(err.contains("target host(s) offline: web-2"), "{err}");
    assert_eq!(f.json(&["deployments", "app"]).as_array().unwrap().len(), 1, "nothing was recorded");
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v1"));

    // `--offline wait` on one deploy: it holds until the timeout, then fails the host.
    let err = f.fails(&[
        "deploy",
        "app",
        "prod",
        "--version",
        "v2",
        "--offline",
        "wait",
        "--offline-timeout",
        "2s",
        "--max-failed",
        "1",
        "--wait",
    ]);
    assert!(err.contains("failed on 1 host(s)"), "{err}");
    let d = f.json(&["deployment", "show", "2"]);
    assert!(host(&d, "web-2")["error"].as_str().unwrap().contains("offline timeout"), "{d}");

    // A bad policy is named.
    let err = f.fails(&["env", "update", "app", "prod", "--offline", "later"]);
    assert!(err.contains("skip, wait or fail"), "{err}");
}

#[test]
fn an_agent_killed_during_its_batch_fails_the_deployment_within_heartbeats() {
    let mut f = Ferry::fleet_on_v1(&["web-1", "web-2"]);
    // Slow on web-2 only (a variable of that host): long enough that only a
    // dead-host check ends it.
    f.ok(&["var", "set", "app", "--host", "web-2", "SLOW", "20"]);
    upload_with(&f, "v3", "[hooks]\nafter_install = \"sleep ${SLOW:-0}\"\n", &[]);
    f.ok(&["deploy", "app", "prod", "--version", "v3"]);
    wait_until(Duration::from_secs(30), "web-2 to be installing", || {
        let d = f.json(&["deployment", "show", "2"]);
        host(&d, "web-2")["state"] == "running" && host(&d, "web-1")["state"] == "succeeded"
    });
    let killed = Instant::now();
    f.agent("web-2").kill(); // SIGKILL to its PID
    wait_until(Duration::from_secs(30), "the deployment to end", || {
        f.json(&["deployment", "show", "2"])["status"] != "running"
    });
    let took = killed.elapsed();
    // Heartbeats are 250 ms in tests: 3 missed is under a second; 15 s leaves
    // room for a loaded machine and is far from the 60 s offline timeout.
    assert!(took < Duration::from_secs(15), "took {took:?}");
    let d = f.json(&["deployment", "show", "2"]);
    assert_eq!(d["status"], "rolled_back", "{d}");
    assert!(host(&d, "web-2")["error"].as_str().unwrap().contains("heartbeats missed"), "{d}");
    f.wait_version("web-1", "app", "v1");
}
