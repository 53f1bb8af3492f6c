//! Issue 15: agents replace themselves with a binary the server holds,
//! environment by environment and batch by batch, keep their services
//! running, and go back to the old binary by themselves when the new one
//! does not come up. Every agent runs from its own copy of `ferry`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::harness::{Ferry, Person, wait_until};
use crate::service::{status, upload_with};

const APP: &str = "#!/bin/sh\necho \"app $FERRY_VERSION\"\nexec sleep 1000\n";
const RECIPE: &str = "[service]\ncommand = \"./bin/app\"\nstop_timeout = \"3s\"\nstart_period = \"1s\"\n";

fn sha256(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// A "new version" of the agent: the same program with bytes appended (an
/// ELF runs with trailing bytes), so a different SHA-256.
fn new_agent_binary(f: &Ferry, label: &str) -> PathBuf {
    let path = f.dir.path().join(format!("agent-{label}"));
    std::fs::copy(crate::harness::FERRY, &path).unwrap();
    let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    writeln!(file, "ferry agent {label}").unwrap();
    path
}

fn host<'a>(hosts: &'a [Value], name: &str) -> &'a Value {
    hosts.iter().find(|h| h["name"] == name).unwrap_or_else(|| panic!("no host {name} in {hosts:?}"))
}

fn upgrade_status(f: &Ferry) -> Value {
    f.json(&["agent-upgrade", "status", "app", "prod"])
}

fn wait_upgrade(f: &Ferry, status: &str, timeout: Duration) -> Value {
    let mut last = Value::Null;
    let start = std::time::Instant::now();
    while start.elapsed() < timeout {
        last = upgrade_status(f);
        if last["status"] != "running" {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    if last["status"] != status {
        let server = std::fs::read_to_string(f.dir.path().join("server-0.log")).unwrap_or_default();
        let tail =
            |s: &str| s.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
        eprintln!("--- server ---\n{}\n--- web-1 ---\n{}", tail(&server), tail(&f.agent_log("web-1")));
    }
    assert_eq!(last["status"], status, "{last:#}");
    last
}

fn service_pid(f: &Ferry, name: &str) -> i64 {
    status(f, name)["pid"].as_i64().unwrap_or_else(|| panic!("no service pid on {name}"))
}

fn alive(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
}

/// Three hosts, each running the app from its own copy of the agent.
fn three_hosts_with_a_service() -> Ferry {
    let mut f = Ferry::start();
    f.agents_from_copies(&["--upgrade-timeout", "6s"]);
    f.start_agents(&["web-1", "web-2", "web-3"], "role=web");
    f.project_app();
    f.ok(&["env", "set-rollout", "app", "prod", "--strategy", "one-at-a-time"]);
    upload_with(&f, "v1", RECIPE, &[("bin/app", APP)]);
    f.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);
    f
}

#[test]
fn an_upgrade_across_three_hosts_keeps_services_and_a_bad_binary_rolls_back_by_itself() {
    let f = three_hosts_with_a_service();
    let names = ["web-1", "web-2", "web-3"];
    let pids: Vec<i64> = names.iter().map(|n| service_pid(&f, n)).collect();
    let original = sha256(&f.agent_exe("web-1"));

    // The binary, uploaded: the server computed its digest.
    let good = new_agent_binary(&f, "a2");
    let good_sha = sha256(&good);
    assert_ne!(good_sha, original);
    f.ok(&["agent-upgrade", "upload", good.to_str().unwrap(), "--version", "a2"]);
    let list = f.json(&["agent-upgrade", "list"]);
    assert_eq!(list[0]["version"], "a2");
    assert_eq!(list[0]["sha256"], good_sha.as_str());
    assert_eq!(list[0]["uploaded_by"], "admin");
    // The same label twice is refused.
    assert!(
        f.fails(&["agent-upgrade", "upload", good.to_str().unwrap(), "--version", "a2"]).contains("already exists")
    );

    f.ok(&["agent-upgrade", "set", "app", "prod", "a2"]);
    let done = wait_upgrade(&f, "succeeded", Duration::from_secs(120));
    let hosts = f.hosts();
    for (i, name) in names.iter().enumerate() {
        let h = host(&hosts, name);
        assert_eq!(h["agent_binary"], "a2", "{h}");
        assert_eq!(h["agent_digest"], good_sha.as_str(), "{h}");
        assert_eq!(h["online"], true, "{h}");
        // The executable was replaced in place, the old one kept beside it.
        assert_eq!(sha256(&f.agent_exe(name)), good_sha);
        assert_eq!(sha256(&f.agent_exe(name).with_file_name("ferry.previous")), original);
        // Same PID (exec), and the service was adopted, not restarted.
        assert_eq!(f.agent_pid(name), Some(f.agents[i].1.pid() as i32), "{name}: the agent's pid changed");
        assert_eq!(service_pid(&f, name), pids[i], "{name}: the service was restarted");
        assert!(alive(pids[i]));
        assert_eq!(done["hosts"][i]["state"], "done", "{done:#}");
        assert_eq!(done["hosts"][i]["batch"], i as u64 + 1, "{done:#}");
    }
    let table = f.ok(&["hosts"]);
    assert!(table.contains(&format!("a2 ({})", &good_sha[..12])), "{table}");

    // A binary that cannot even start: the first batch's agent goes back by
    // itself, the upgrade stops as failed, later batches are never told.
    let bad = f.dir.path().join("agent-bad");
    std::fs::write(&bad, "#!/bin/sh\nexit 1\n").unwrap();
    f.ok(&["agent-upgrade", "upload", bad.to_str().unwrap(), "--version", "bad"]);
    f.ok(&["agent-upgrade", "set", "app", "prod", "bad"]);
    let failed = wait_upgrade(&f, "failed", Duration::from_secs(60));
    let rows = failed["hosts"].as_array().unwrap();
    assert_eq!(rows[0]["host"], "web-1");
    assert_eq!(rows[0]["state"], "failed", "{failed:#}");
    let error = rows[0]["error"].as_str().unwrap();
    assert!(error.contains("did not connect to the server within 6.0 s"), "{error}");
    assert!(failed["error"].as_str().unwrap().contains("web-1"), "{failed:#}");
    for row in &rows[1..] {
        assert_eq!(row["state"], "skipped", "{failed:#}");
    }
    f.wait_online("web-1", true);
    let hosts = f.hosts();
    for (i, name) in names.iter().enumerate() {
        let h = host(&hosts, name);
        assert_eq!(h["agent_digest"], good_sha.as_str(), "{name} should run a2: {h}");
        assert_eq!(sha256(&f.agent_exe(name)), good_sha, "{name}'s executable");
        assert_eq!(service_pid(&f, name), pids[i], "{name}: the service was restarted");
        assert!(alive(pids[i]));
    }
    assert_eq!(host(&hosts, "web-1")["agent_binary"], "a2");
    // web-1's agent is a new process now (the guard started it), running a2.
    assert!(f.agent_pid("web-1").is_some());
    assert!(f.agent_log("web-1").contains("the previous agent is running again"));

    // Setting what every host already runs completes at once.
    f.ok(&["agent-upgrade", "set", "app", "prod", "a2"]);
    let again = wait_upgrade(&f, "succeeded", Duration::from_secs(20));
    assert!(again["hosts"].as_array().unwrap().iter().all(|h| h["state"] == "done"), "{again:#}");
}

#[test]
fn agent_binaries_are_the_administrators_and_a_tampered_one_is_refused() {
    let mut f = Ferry::start();
    f.agents_from_copies(&["--upgrade-timeout", "6s"]);
    f.start_agents(&["web-1"], "role=web");
    f.project_app();
    let original = sha256(&f.agent_exe("web-1"));
    let binary = new_agent_binary(&f, "a2");

    // A project owner who is not an administrator can neither upload nor set.
    let olga: Person = f.person("olga", &[]);
    f.ok(&["member", "add", "app", "olga", "owner"]);
    let refusal = "changing the fleet (host tags, project host scopes, load balancers, agent binaries)";
    olga.refused(&["agent-upgrade", "upload", binary.to_str().unwrap(), "--version", "a2"], refusal);
    f.ok(&["agent-upgrade", "upload", binary.to_str().unwrap(), "--version", "a2"]);
    olga.refused(&["agent-upgrade", "set", "app", "prod", "a2"], refusal);
    assert!(olga.ok(&["agent-upgrade", "list"]).contains("a2"));

    // A host's agent fetches only the binary its host is upgrading to:
    // nothing while it is not upgrading; a user token is no agent credential.
    let cred: Value =
        serde_json::from_slice(&std::fs::read(f.root_of("web-1").join(".ferry/agent.json")).unwrap()).unwrap();
    assert!(cred["signing_key"].as_str().is_some_and(|k| k.len() == 64), "{cred}");
    let url = format!("{}/api/v1/agent/binary", f.url);
    assert_eq!(get_status(&url, cred["token"].as_str().unwrap()), 403);
    assert_eq!(get_status(&url, &f.token), 401);

    // The stored file altered on the server's disk after upload: refused.
    let sha = sha256(&binary);
    let stored = f.dir.path().join("server/agent-binaries").join(&sha);
    // Same size, other bytes: only the digest can tell.
    let mut bytes = std::fs::read(&stored).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&stored, bytes).unwrap();
    f.ok(&["agent-upgrade", "set", "app", "prod", "a2"]);
    let failed = wait_upgrade(&f, "failed", Duration::from_secs(60));
    let error = failed["hosts"][0]["error"].as_str().unwrap();
    assert!(error.contains(&format!("not the signed {sha}")) && error.contains("refused"), "{error}");
    // The agent kept running its old binary, from its old executable.
    assert_eq!(sha256(&f.agent_exe("web-1")), original);
    let hosts = f.hosts();
    assert_eq!(host(&hosts, "web-1")["agent_digest"], original.as_str());
    assert_eq!(host(&hosts, "web-1")["online"], true);
    assert_eq!(f.agent_pid("web-1"), Some(f.agents[0].1.pid() as i32));

    // A binary that starts but never connects: the guard ends it (by its
    // pid, the agent's own after the exec) and starts the old agent again.
    let before = f.agents[0].1.pid() as i64;
    let sleeper = f.dir.path().join("agent-sleeper");
    std::fs::write(&sleeper, "#!/bin/sh\nexec sleep 1000\n").unwrap();
    f.ok(&["agent-upgrade", "upload", sleeper.to_str().unwrap(), "--version", "sleeper"]);
    f.ok(&["agent-upgrade", "set", "app", "prod", "sleeper"]);
    let failed = wait_upgrade(&f, "failed", Duration::from_secs(60));
    assert!(failed["hosts"][0]["error"].as_str().unwrap().contains("did not connect"), "{failed:#}");
    assert!(!alive(before), "the binary that never connected is still running");
    f.wait_online("web-1", true);
    assert_eq!(sha256(&f.agent_exe("web-1")), original);
    assert_eq!(host(&f.hosts(), "web-1")["agent_digest"], original.as_str());

    // An agent enrolled before self-upgrade (no key stored) takes the key
    // from its authenticated channel on its next connection.
    let pid = f.agent_pid("web-1").unwrap();
    assert!(std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap().success());
    wait_until(Duration::from_secs(10), "the agent to end", || !alive(i64::from(pid)));
    let path = f.root_of("web-1").join(".ferry/agent.json");
    let mut stored: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let key = stored["signing_key"].take();
    stored.as_object_mut().unwrap().remove("signing_key");
    std::fs::write(&path, serde_json::to_vec(&stored).unwrap()).unwrap();
    f.start_agent("web-1", "role=web");
    wait_until(Duration::from_secs(20), "the key stored again", || {
        let now: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        now["signing_key"] == key
    });

    // Upload and set are in the audit trail, refusals too.
    let trail = f.json(&["audit", "--limit", "1000"]);
    let trail = trail.as_array().unwrap();
    let has = |action: &str, actor: &str, outcome: &str| {
        trail.iter().any(|e| {
            e["action"] == action
                && e["actor"] == actor
                && e["outcome"].as_str().is_some_and(|o| o.starts_with(outcome))
        })
    };
    assert!(has("POST /api/v1/agent-binaries", "admin", "200"), "{trail:#?}");
    assert!(has("POST /api/v1/agent-binaries", "olga", "403"), "{trail:#?}");
    assert!(has("POST /api/v1/projects/{project}/environments/{env}/agent-upgrade", "admin", "200"), "{trail:#?}");
    assert!(has("POST /api/v1/projects/{project}/environments/{env}/agent-upgrade", "olga", "403"), "{trail:#?}");
}

/// The status of a GET with a bearer token.
fn get_status(url: &str, token: &str) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async { reqwest::Client::new().get(url).bearer_auth(token).send().await.unwrap().status().as_u16() })
}
