//! Deploy, roll back, follow desired state: the spine of issue R1-R4, R8-R12,
//! R15, R16.

use std::time::Duration;

use crate::harness::{Ferry, wait_until};

#[test]
fn deploy_update_and_roll_back_across_three_hosts() {
    let mut f = Ferry::start();
    f.start_agents(&["web-1", "web-2", "web-3"], "role=web");
    f.project_app();
    f.upload("app", "v1");
    f.upload("app", "v2");

    let out = f.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);
    assert!(out.contains("succeeded: 3 of 3 host(s) on version v1"), "{out}");
    for h in ["web-1", "web-2", "web-3"] {
        assert_eq!(f.version_on(h, "app").as_deref(), Some("v1"));
        // R15/R16: Capistrano layout with a descriptive release name.
        let link = std::fs::read_link(f.root_of(h).join("app/current")).unwrap();
        let name = link.file_name().unwrap().to_string_lossy().into_owned();
        assert!(link.starts_with("releases"), "{link:?}");
        assert!(name.starts_with("app_prod_v1_upload_") && name.ends_with("_tester"), "{name}");
        assert!(f.root_of(h).join("app/shared").is_dir());
        // Executable bits and links survive.
        let run = f.root_of(h).join("app/current/bin/run.sh");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&run).unwrap().permissions().mode() & 0o111, 0o111);
        assert_eq!(std::fs::read_link(f.root_of(h).join("app/current/latest")).unwrap().to_str(), Some("bin/run.sh"));
    }

    f.ok(&["deploy", "app", "prod", "--version", "v2", "--wait"]);
    let d = f.json(&["deployment", "show", "2"]);
    assert_eq!(d["status"], "succeeded");
    for h in d["hosts"].as_array().unwrap() {
        // Only the changed file travels; the 20 shared files are reused.
        assert_eq!(h["bytes_downloaded"], 3, "{h}");
        assert!(h["bytes_reused"].as_u64().unwrap() > 500, "{h}");
    }
    for h in ["web-1", "web-2", "web-3"] {
        assert_eq!(f.version_on(h, "app").as_deref(), Some("v2"));
    }

    // Rollback without --to goes to the previous good version, by relinking.
    let out = f.ok(&["rollback", "app", "prod", "--wait"]);
    assert!(out.contains("rollback 3 succeeded") && out.contains("version v1"), "{out}");
    let d = f.json(&["deployment", "show", "3"]);
    assert_eq!(d["kind"], "rollback");
    for h in d["hosts"].as_array().unwrap() {
        assert_eq!(h["bytes_downloaded"], 0, "a rollback downloads nothing: {h}");
        assert!(h["bytes_reused"].as_u64().unwrap() > 500, "it reuses the whole release: {h}");
    }
    for h in ["web-1", "web-2", "web-3"] {
        assert_eq!(f.version_on(h, "app").as_deref(), Some("v1"));
        let releases = std::fs::read_dir(f.root_of(h).join("app/releases")).unwrap().count();
        assert_eq!(releases, 2, "both releases are kept");
    }

    // R12: the version matrix.
    let s = f.json(&["status", "app"]);
    let env = &s["environments"][0];
    assert_eq!(env["desired_version"], "v1");
    assert_eq!(env["version_counts"]["v1"], 3);
    assert_eq!(env["hosts"].as_array().unwrap().len(), 3);

    let list = f.json(&["deployments", "app"]);
    let ids: Vec<i64> = list.as_array().unwrap().iter().map(|d| d["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [3, 2, 1], "newest first");

    // Explicit rollback target.
    f.ok(&["rollback", "app", "prod", "--to", "v2", "--wait"]);
    assert_eq!(f.version_on("web-2", "app").as_deref(), Some("v2"));
}

#[test]
fn old_releases_beyond_keep_are_removed() {
    let mut f = Ferry::start();
    f.start_agents(&["web-1"], "role=web");
    f.ok(&["project", "create", "app", "--keep-releases", "2"]);
    f.ok(&["env", "create", "app", "prod", "--select", "role=web"]);
    for v in ["v1", "v2", "v3"] {
        f.upload("app", v);
        f.ok(&["deploy", "app", "prod", "--version", v, "--wait"]);
    }
    let mut names: Vec<String> = std::fs::read_dir(f.root_of("web-1").join("app/releases"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.iter().any(|n| n.contains("_v3_")) && names.iter().any(|n| n.contains("_v2_")), "{names:?}");
}

#[test]
fn deploy_to_chosen_hosts_only() {
    let f = Ferry::fleet_on_v1(&["web-1", "web-2", "web-3"]);
    let out = f.ok(&["deploy", "app", "prod", "--version", "v2", "--hosts", "web-2", "--wait"]);
    assert!(out.contains("1 of 1 host(s)"), "{out}");
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v1"));
    assert_eq!(f.version_on("web-2", "app").as_deref(), Some("v2"));
    let s = f.json(&["status", "app"]);
    assert_eq!(s["environments"][0]["version_counts"]["v1"], 2);
    assert_eq!(s["environments"][0]["version_counts"]["v2"], 1);
    assert_eq!(s["environments"][0]["desired_version"], "v1", "a partial deploy leaves the environment's version");

    let err = f.fails(&["deploy", "app", "prod", "--version", "v2", "--hosts", "nope"]);
    assert!(err.contains("host 'nope' not found"), "{err}");
}

#[test]
fn hosts_outside_the_selector_are_not_touched_and_new_hosts_converge() {
    let mut f = Ferry::start();
    f.start_agents(&["web-1"], "role=web");
    f.start_agents(&["db-1"], "role=db");
    f.project_app();
    f.upload("app", "v1");
    f.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);
    assert_eq!(f.version_on("db-1", "app"), None);

    // R3: a host that joins later with matching tags gets the version by itself.
    f.start_agent("web-9", "role=web,dc=new");
    f.wait_version("web-9", "app", "v1");
    // The host's report reaches the server a moment after its files change.
    wait_until(Duration::from_secs(10), "the server to count web-9 on v1", || {
        f.json(&["status", "app"])["environments"][0]["version_counts"]["v1"] == 2
    });
    assert_eq!(f.version_on("db-1", "app"), None);
}

#[test]
fn an_offline_host_fails_the_deploy_then_catches_up() {
    let mut f = Ferry::fleet_on_v1(&["web-1", "web-2", "web-3"]);

    f.agent("web-3").kill();
    f.wait_online("web-3", false);
    // One host may fail without stopping the rollout or putting the others back.
    let err = f.fails(&[
        "deploy",
        "app",
        "prod",
        "--version",
        "v2",
        "--wait",
        "--offline-timeout",
        "1s",
        "--max-failed",
        "1",
    ]);
    assert!(err.contains("failed on 1 host(s)"), "{err}");
    let d = f.json(&["deployment", "show", "2"]);
    let web3 = d["hosts"].as_array().unwrap().iter().find(|h| h["host"] == "web-3").unwrap().clone();
    assert_eq!(web3["state"], "failed");
    assert!(web3["error"].as_str().unwrap().contains("offline"), "{web3}");
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v2"));

    // R2: back online, it converges to what is desired without a new deploy.
    let proc = f.spawn_agent("web-3", "role=web", None);
    f.agents.push(("web-3".into(), proc));
    f.wait_version("web-3", "app", "v2");
    wait_until(Duration::from_secs(10), "status to show v2 on 3 hosts", || {
        f.json(&["status", "app"])["environments"][0]["version_counts"]["v2"] == 3
    });
}

#[test]
fn a_second_deploy_while_one_runs_is_refused() {
    let mut f = Ferry::start();
    f.start_agents(&["web-1", "web-2"], "role=web");
    f.project_app();
    f.upload("app", "v1");
    f.upload("app", "v2");
    f.agent("web-2").kill();
    f.wait_online("web-2", false);
    // Holds the lock: web-2 is offline and the deploy waits up to a minute for it.
    f.ok(&["deploy", "app", "prod", "--version", "v1", "--offline-timeout", "60s"]);
    let err = f.fails(&["deploy", "app", "prod", "--version", "v2"]);
    assert!(err.contains("deployment 1") && err.contains("still running"), "{err}");
    assert_eq!(f.json(&["deployments", "app"]).as_array().unwrap().len(), 1, "nothing was recorded");
    // Another environment is not locked.
    f.ok(&["env", "create", "app", "staging", "--select", "role=staging"]);
    f.ok(&["deploy", "app", "staging", "--version", "v2"]);
}

#[test]
fn server_and_agents_survive_restarts() {
    let mut f = Ferry::fleet_on_v1(&["web-1", "web-2"]);

    f.restart_server();
    f.wait_online("web-1", true);
    f.wait_online("web-2", true);
    f.ok(&["deploy", "app", "prod", "--version", "v2", "--wait"]);
    assert_eq!(f.json(&["deployments", "app"]).as_array().unwrap().len(), 2);

    // An agent restart keeps its credential (no join token needed).
    f.agent("web-1").kill();
    let proc = f.spawn_agent("web-1", "role=web", None);
    f.agents.retain(|(n, _)| n != "web-1");
    f.agents.push(("web-1".into(), proc));
    f.wait_online("web-1", true);
    f.ok(&["rollback", "app", "prod", "--wait"]);
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v1"));
}
