//! R9, R11: a rollback works per host. Each targeted host goes back to the
//! release it ran before (or `--to`), whatever the environment's desired
//! version says; a rollback that would change nothing says so and changes
//! nothing; an emergency rollback during a deploy whose hook is still running
//! stops that hook's whole process group and takes every host to the release
//! it last ran successfully, within seconds.

use std::time::{Duration, Instant};

use crate::harness::{Ferry, wait_until};
use crate::hooks::upload_with_hooks;

fn deployment_count(f: &Ferry) -> usize {
    f.json(&["deployments", "app"]).as_array().unwrap().len()
}

/// The versions each host of the newest deployment goes to, from and to.
fn newest_moves(f: &Ferry) -> Vec<(String, String, String)> {
    let id = f.json(&["deployments", "app"])[0]["id"].as_i64().unwrap().to_string();
    let d = f.json(&["deployment", "show", &id]);
    d["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let s = |k: &str| h[k].as_str().unwrap_or("-").to_string();
            (s("host"), s("from_version"), s("version"))
        })
        .collect()
}

fn moved(host: &str, from: &str, to: &str) -> (String, String, String) {
    (host.into(), from.into(), to.into())
}

#[test]
fn a_rollback_takes_each_targeted_host_back_to_what_it_ran_before() {
    let f = Ferry::fleet_on_v1(&["web-1", "web-2", "web-3"]);

    // v2 to two hosts; then back on one of them only: it goes to the v1 it
    // ran (the environment's desired version is v1 all along), the other
    // stays on v2.
    f.ok(&["deploy", "app", "prod", "--version", "v2", "--hosts", "web-1,web-2", "--wait"]);
    let out = f.ok(&["rollback", "app", "prod", "--hosts", "web-1", "--wait"]);
    assert!(out.contains("web-1: v2 -> v1"), "{out}");
    assert!(out.contains("succeeded"), "{out}");
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v1"));
    assert_eq!(f.version_on("web-2", "app").as_deref(), Some("v2"), "a host not named is untouched");
    assert_eq!(f.version_on("web-3", "app").as_deref(), Some("v1"));
    assert_eq!(newest_moves(&f), [moved("web-1", "v2", "v1")]);

    // A host that never ran anything else has nothing to go back to: said,
    // non-zero, and nothing recorded.
    let before = deployment_count(&f);
    let err = f.fails(&["rollback", "app", "prod", "--hosts", "web-3"]);
    assert!(err.contains("nothing to roll back in app/prod"), "{err}");
    assert!(err.contains("web-3 has no earlier successfully deployed version"), "{err}");
    assert!(err.contains("--to VERSION"), "{err}");
    assert_eq!(deployment_count(&f), before, "no deployment recorded");

    // Hosts whose targets differ each go to their own; a host with nothing
    // earlier is left as is, and the rollback says so.
    f.upload("app", "v3");
    f.ok(&["deploy", "app", "prod", "--version", "v3", "--hosts", "web-2", "--wait"]);
    let out = f.ok(&["rollback", "app", "prod", "--hosts", "web-2,web-3", "--wait"]);
    assert!(out.contains("web-2: v3 -> v2"), "{out}");
    assert!(out.contains("left as is: web-3 has no earlier successfully deployed version"), "{out}");
    assert_eq!(f.version_on("web-2", "app").as_deref(), Some("v2"));
    assert_eq!(f.version_on("web-3", "app").as_deref(), Some("v1"));
    assert_eq!(newest_moves(&f), [moved("web-2", "v3", "v2")]);

    // A bad mark is passed over: web-2 ran v3 then v2; with v2 marked bad
    // it goes to the v1 it ran before those.
    f.ok(&["release", "mark-bad", "app", "v2", "--reason", "leaks"]);
    f.ok(&["deploy", "app", "prod", "--version", "v3", "--hosts", "web-2", "--wait"]);
    let out = f.ok(&["rollback", "app", "prod", "--hosts", "web-2", "--wait"]);
    assert!(out.contains("web-2: v3 -> v1"), "{out}");
    assert_eq!(f.version_on("web-2", "app").as_deref(), Some("v1"));
    f.ok(&["release", "mark-good", "app", "v2"]);

    // --to: every targeted host there; hosts already there are no-ops.
    f.ok(&["deploy", "app", "prod", "--version", "v3", "--hosts", "web-1", "--wait"]);
    let out = f.ok(&["rollback", "app", "prod", "--to", "v2", "--wait"]);
    assert!(out.contains("web-1: v3 -> v2") && out.contains("web-2: v1 -> v2") && out.contains("web-3: v1 -> v2"));
    for h in ["web-1", "web-2", "web-3"] {
        assert_eq!(f.version_on(h, "app").as_deref(), Some("v2"), "{h}");
    }
    f.ok(&["deploy", "app", "prod", "--version", "v1", "--hosts", "web-3", "--wait"]);
    let out = f.ok(&["rollback", "app", "prod", "--to", "v1", "--wait"]);
    assert!(out.contains("web-1: v2 -> v1") && out.contains("web-2: v2 -> v1"), "{out}");
    assert!(out.contains("left as is: web-3 already runs v1"), "{out}");
    assert_eq!(newest_moves(&f), [moved("web-1", "v2", "v1"), moved("web-2", "v2", "v1")]);

    // Every targeted host already at its target: a clear refusal, non-zero,
    // nothing recorded, nothing moved.
    let before = deployment_count(&f);
    let err = f.fails(&["rollback", "app", "prod", "--to", "v1"]);
    assert!(err.contains("nothing to roll back in app/prod"), "{err}");
    for h in ["web-1", "web-2", "web-3"] {
        assert!(err.contains(&format!("{h} already runs v1")), "{err}");
        assert_eq!(f.version_on(h, "app").as_deref(), Some("v1"), "{h}");
    }
    assert_eq!(deployment_count(&f), before, "no deployment recorded");
}

/// Whether a process is gone (a zombie waiting for its reaper counts as gone).
fn gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn an_emergency_rollback_during_a_slow_hook_stops_it_and_goes_to_the_last_release_that_ran() {
    let hosts = ["web-1", "web-2"];
    let mut f = Ferry::start();
    f.start_agents(&hosts, "role=web");
    f.project_app();
    for v in ["v2", "v3"] {
        f.upload("app", v);
        f.ok(&["deploy", "app", "prod", "--version", v, "--wait"]);
    }
    // v4's before_activate runs a minute in a child process that says who it is.
    upload_with_hooks(&f, "v4", "before_activate = \"sleep 60 & echo $! > $FERRY_SHARED_DIR/hook.pid; wait\"\n");
    f.ok(&["deploy", "app", "prod", "--version", "v4"]);
    let pid_file = |h: &str| f.root_of(h).join("app/shared/hook.pid");
    let mut pids = Vec::new();
    for h in hosts {
        wait_until(Duration::from_secs(30), &format!("v4's hook to start on {h}"), || {
            std::fs::read_to_string(pid_file(h)).is_ok_and(|p| !p.trim().is_empty())
        });
        let pid = std::fs::read_to_string(pid_file(h)).unwrap().trim().to_string();
        assert!(!gone(&pid), "the hook's child runs on {h}");
        pids.push(pid);
    }
    assert_eq!(f.json(&["deployment", "show", "3"])["status"], "running");

    let started = Instant::now();
    let out = f.ok(&["rollback", "app", "prod", "--emergency", "--wait"]);
    let took = started.elapsed();
    // The hook sleeps 60 s; the rollback must not wait for it.
    assert!(took < Duration::from_secs(15), "the emergency rollback took {took:?}: {out}");
    assert!(out.contains("EMERGENCY") && out.contains("succeeded"), "{out}");
    // v4 never ran anywhere: every host goes to the v3 it ran, never to v2.
    for h in hosts {
        assert_eq!(f.version_on(h, "app").as_deref(), Some("v3"), "{h}");
        assert!(out.contains(&format!("{h}: v3 -> v3")), "{out}");
    }
    let em = f.json(&["deployment", "show", "4"]);
    assert_eq!((em["status"].as_str(), em["version"].as_str()), (Some("succeeded"), Some("v3")), "{em}");
    let old = f.json(&["deployment", "show", "3"]);
    assert_eq!(old["status"], "canceled", "{old}");
    // The hook's whole process group was stopped, child included.
    for pid in &pids {
        wait_until(Duration::from_secs(5), &format!("hook child {pid} to be gone"), || gone(pid));
    }
    // And the hosts stay on v3: nothing goes on installing v4.
    std::thread::sleep(Duration::from_secs(2));
    for h in hosts {
        assert_eq!(f.version_on(h, "app").as_deref(), Some("v3"), "{h}");
    }
    let status = f.json(&["status", "app"]);
    let counts = &status["environments"][0]["version_counts"];
    assert_eq!(counts["v3"], 2, "{status}");
    let _ = &mut f;
}

#[test]
fn an_emergency_during_a_rolling_deploy_undoes_it_host_by_host() {
    let hosts = ["web-1", "web-2", "web-3"];
    let mut f = Ferry::start();
    f.start_agents(&hosts, "role=web");
    f.project_app();
    for v in ["v2", "v3"] {
        f.upload("app", v);
        f.ok(&["deploy", "app", "prod", "--version", v, "--wait"]);
    }
    // v4's before_activate takes a minute on a host marked slow.
    upload_with_hooks(
        &f,
        "v4",
        "before_activate = \"test ! -e $FERRY_SHARED_DIR/../../slow-here || { sleep 60 & echo $! > \
         $FERRY_SHARED_DIR/hook.pid; wait; }\"\n",
    );
    std::fs::write(f.root_of("web-2").join("slow-here"), "").unwrap();
    f.ok(&["deploy", "app", "prod", "--version", "v4", "--strategy", "one-at-a-time"]);
    let pid_file = f.root_of("web-2").join("app/shared/hook.pid");
    wait_until(Duration::from_secs(30), "v4's hook to start on web-2", || {
        std::fs::read_to_string(&pid_file).is_ok_and(|p| !p.trim().is_empty())
    });
    let pid = std::fs::read_to_string(&pid_file).unwrap().trim().to_string();
    // web-1 runs v4, web-2 is in its hook, web-3 not reached.
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v4"));
    assert_eq!(f.version_on("web-3", "app").as_deref(), Some("v3"));

    let started = Instant::now();
    let out = f.ok(&["rollback", "app", "prod", "--emergency", "--wait"]);
    assert!(started.elapsed() < Duration::from_secs(15), "took {:?}: {out}", started.elapsed());
    // Each host to the release it last ran successfully before v4: v3, never v2.
    assert!(out.contains("web-1: v4 -> v3") && out.contains("web-2: v3 -> v3"), "{out}");
    assert!(out.contains("left as is: web-3 already runs v3"), "{out}");
    for h in hosts {
        assert_eq!(f.version_on(h, "app").as_deref(), Some("v3"), "{h}");
    }
    wait_until(Duration::from_secs(5), "the hook's child to be gone", || gone(&pid));
    let _ = &mut f;
}
