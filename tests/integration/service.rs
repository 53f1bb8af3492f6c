//! R21, R22, R34: the agent's built-in supervisor runs the release's
//! `[service]`, restarts it, survives its own restart without touching it,
//! stops it gracefully or by force, and fails a deploy whose service cannot
//! stay up.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Ferry, wait_until, write_tree};

/// Uploads version `v` of `app` with this ferry.toml and these executable scripts.
pub fn upload_with(f: &Ferry, v: &str, recipe: &str, scripts: &[(&str, &str)]) {
    use std::os::unix::fs::PermissionsExt;
    let tree = f.dir.path().join("svc-trees").join(v);
    write_tree(&tree, v, 3);
    std::fs::write(tree.join("ferry.toml"), recipe).unwrap();
    for (path, body) in scripts {
        let p = tree.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    f.ok(&["release", "upload", "app", tree.to_str().unwrap(), "--version", v]);
}

/// `ferry svc --root R status app` as JSON.
pub fn status(f: &Ferry, host: &str) -> Value {
    let root = f.root_of(host);
    let all = f.json(&["svc", "--root", root.to_str().unwrap(), "status", "app"]);
    all[0].clone()
}

pub fn svc(f: &Ferry, host: &str, args: &[&str]) -> String {
    let root = f.root_of(host);
    let mut all = vec!["svc", "--root", root.to_str().unwrap()];
    all.extend(args);
    f.ok(&all)
}

fn alive(pid: i64) -> bool {
    // A zombie has exited; only its entry remains until it is reaped.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
}

fn pid_of(v: &Value) -> i64 {
    v["pid"].as_i64().unwrap_or_else(|| panic!("no pid in {v}"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

const APP: &str = "#!/bin/sh\n\
    echo \"app $FERRY_VERSION started as $(id -un)\"\n\
    echo \"warming up\" >&2\n\
    echo $$ >> data/pids\n\
    exec sleep 1000\n";

const RECIPE: &str = "[deploy]\nshared = [\"data\"]\n\
    [service]\ncommand = \"./bin/app\"\nstop_timeout = \"3s\"\nstart_period = \"1s\"\n\
    [hooks]\nafter_activate = \"id -un > $FERRY_SHARED_DIR/data/hook_user\"\n";

/// One host running v1 of the supervised app, with v2 uploaded.
fn on_v1_of_the_app() -> Ferry {
    let mut f = Ferry::start();
    f.start_agents(&["web-1"], "role=web");
    f.project_app();
    upload_with(&f, "v1", RECIPE, &[("bin/app", APP)]);
    upload_with(&f, "v2", RECIPE, &[("bin/app", APP)]);
    f.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);
    f
}

#[test]
fn the_service_is_supervised_across_crashes_agent_restarts_and_deploys() {
    let mut f = on_v1_of_the_app();

    let s = status(&f, "web-1");
    assert_eq!(s["state"], "running", "{s}");
    assert_eq!(s["restarts"], 0);
    let first = pid_of(&s);
    assert!(alive(first));
    let project = f.root_of("web-1").join("app");
    let stdout = project.join("shared/log/service.stdout.log");
    assert!(read(&stdout).contains("app v1 started"), "{}", read(&stdout));
    assert!(read(&project.join("shared/log/service.stderr.log")).contains("warming up"));
    // R34: never root unless asked; the harness gives root agents --service-user nobody.
    let me = String::from_utf8(std::process::Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    if me.trim() == "root" {
        assert!(read(&stdout).contains("started as nobody"), "{}", read(&stdout));
        assert_eq!(read(&project.join("shared/data/hook_user")).trim(), "nobody", "hooks run as the service's user");
    }

    // A crash is restarted.
    crate::harness::kill_group(first);
    wait_until(Duration::from_secs(10), "a restart after the crash", || {
        let s = status(&f, "web-1");
        s["state"] == "running" && s["pid"].as_i64().is_some_and(|p| p != first)
    });
    let s = status(&f, "web-1");
    assert_eq!(s["restarts"], 1, "{s}");
    assert!(s["last_exit"].as_str().unwrap().contains("signal 9"), "{s}");
    let second = pid_of(&s);

    // The agent dies and comes back: the healthy service is adopted, not restarted.
    f.agent("web-1").kill();
    std::thread::sleep(Duration::from_millis(300));
    assert!(alive(second), "the service outlives its agent");
    f.start_agent("web-1", "role=web");
    f.wait_online("web-1", true);
    std::thread::sleep(Duration::from_secs(2)); // a few drift checks
    let s = status(&f, "web-1");
    assert_eq!((pid_of(&s), s["state"].as_str()), (second, Some("running")), "{s}");
    assert_eq!(s["restarts"], 1, "{s}");
    assert!(s["uptime_secs"].as_u64().is_some());

    // A deploy replaces it, and the shared data stays.
    f.ok(&["deploy", "app", "prod", "--version", "v2", "--wait"]);
    let s = status(&f, "web-1");
    let third = pid_of(&s);
    assert!(third != second && !alive(second), "{s}");
    assert_eq!(s["restarts"], 0, "a deploy starts counting afresh: {s}");
    assert!(read(&stdout).contains("app v2 started"));
    let pids = read(&project.join("shared/data/pids"));
    assert_eq!(pids.lines().count(), 3, "every start wrote to the same shared file: {pids}");
    assert!(project.join("current/data").is_symlink());

    // The operator stops it; it stays stopped until started.
    svc(&f, "web-1", &["stop", "app"]);
    let s = status(&f, "web-1");
    assert_eq!(s["state"], "stopped by operator", "{s}");
    assert!(!alive(third));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(status(&f, "web-1")["state"], "stopped by operator");
    svc(&f, "web-1", &["start", "app"]);
    assert_eq!(status(&f, "web-1")["state"], "running");
    let table = svc(&f, "web-1", &["status"]);
    assert!(table.contains("PID") && table.contains("running"), "{table}");
    let logs = svc(&f, "web-1", &["logs", "app", "-n", "3"]);
    assert!(logs.contains("app v2 started") && logs.contains("stderr: warming up"), "{logs}");
}

#[test]
fn a_service_ignoring_its_stop_signal_is_killed_after_stop_timeout() {
    let mut f = Ferry::start();
    f.start_agents(&["web-1"], "role=web");
    f.project_app();
    let stubborn = "#!/bin/sh\ntrap '' TERM\necho ignoring TERM\nwhile true; do sleep 0.2; done\n";
    upload_with(
        &f,
        "v1",
        "[service]\ncommand = \"./bin/stubborn\"\nstop_timeout = \"1s\"\nstart_period = \"500ms\"\n",
        &[("bin/stubborn", stubborn)],
    );
    f.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);
    let pid = pid_of(&status(&f, "web-1"));
    let started = Instant::now();
    svc(&f, "web-1", &["stop", "app"]);
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(6), "stop took {took:?}");
    assert!(!alive(pid));
    let s = status(&f, "web-1");
    assert!(s["last_exit"].as_str().unwrap().contains("signal 9"), "{s}");
}

#[test]
fn a_service_that_cannot_stay_up_fails_its_deploy_with_its_stderr() {
    let mut f = Ferry::start();
    f.start_agents(&["web-1"], "role=web");
    f.project_app();
    upload_with(&f, "v1", RECIPE, &[("bin/app", APP)]);
    f.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);
    let good = pid_of(&status(&f, "web-1"));

    let crashing = "#!/bin/sh\necho 'listen tcp 0.0.0.0:80: bind: permission denied' >&2\nexit 1\n";
    upload_with(&f, "v2", "[service]\ncommand = \"./bin/app\"\nstart_period = \"1s\"\n", &[("bin/app", crashing)]);
    f.fails(&["deploy", "app", "prod", "--version", "v2", "--wait"]);
    let error = f.json(&["deployment", "show", "2"])["hosts"][0]["error"].as_str().unwrap().to_string();
    assert!(error.contains("keeps exiting right after it starts"), "{error}");
    assert!(error.contains("bind: permission denied"), "the service's stderr is quoted: {error}");
    assert!(error.contains("put back on the previous release"), "{error}");
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v1"));
    let s = status(&f, "web-1");
    assert_eq!(s["state"], "running", "v1's service runs again: {s}");
    assert_ne!(pid_of(&s), good);

    // A start command that is not executable is reported as exactly that.
    let tree = f.dir.path().join("svc-trees").join("v3");
    write_tree(&tree, "v3", 3);
    std::fs::write(tree.join("ferry.toml"), "[service]\ncommand = \"./bin/app --port 8080\"\n").unwrap();
    std::fs::write(tree.join("bin/app"), "#!/bin/sh\nexec sleep 1000\n").unwrap(); // mode 0644
    f.ok(&["release", "upload", "app", tree.to_str().unwrap(), "--version", "v3"]);
    f.fails(&["deploy", "app", "prod", "--version", "v3", "--wait"]);
    let error = f.json(&["deployment", "show", "3"])["hosts"][0]["error"].as_str().unwrap().to_string();
    assert!(error.contains("./bin/app is not executable"), "{error}");
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v1"));
}

#[test]
fn the_agent_refuses_to_run_a_service_as_root_unless_allowed() {
    let mut f = Ferry::start();
    f.start_agents(&["web-1"], "role=web");
    f.project_app();
    upload_with(&f, "v1", "[service]\ncommand = \"sleep 1000\"\nuser = \"root\"\n", &[]);
    f.fails(&["deploy", "app", "prod", "--version", "v1", "--wait"]);
    let error = f.json(&["deployment", "show", "1"])["hosts"][0]["error"].as_str().unwrap().to_string();
    assert!(error.contains("allow_root"), "{error}");
    assert_eq!(f.version_on("web-1", "app"), None, "refused before the switch");
    upload_with(&f, "v2", "[service]\ncommand = \"sleep 1000\"\nuser = \"no-such-user-here\"\n", &[]);
    f.fails(&["deploy", "app", "prod", "--version", "v2", "--wait"]);
    let error = f.json(&["deployment", "show", "2"])["hosts"][0]["error"].as_str().unwrap().to_string();
    assert!(error.contains("no-such-user-here") && error.contains("does not exist"), "{error}");
}

/// `ferry agent rollback` on the host, as an operator would run it.
fn manual_rollback(f: &Ferry, host: &str, to: Option<&str>) -> String {
    let root = f.root_of(host);
    let mut args = vec!["agent", "rollback", "--root", root.to_str().unwrap(), "app"];
    if let Some(to) = to {
        args.extend(["--to", to]);
    }
    let out = std::process::Command::new(crate::harness::FERRY).args(&args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    stdout
}

fn restarted_pid(stdout: &str) -> i64 {
    let at = stdout.find("service restarted (pid ").unwrap_or_else(|| panic!("{stdout}"));
    stdout[at + 23..].split(')').next().unwrap().parse().unwrap()
}

#[test]
fn a_manual_rollback_restarts_the_service_with_or_without_the_agent() {
    let mut f = on_v1_of_the_app();
    f.ok(&["deploy", "app", "prod", "--version", "v2", "--wait"]);
    let on_v2 = pid_of(&status(&f, "web-1"));

    // With the agent running, it restarts the service on the release now active.
    let pid = restarted_pid(&manual_rollback(&f, "web-1", None));
    assert!(pid != on_v2 && alive(pid) && !alive(on_v2));
    let s = status(&f, "web-1");
    assert_eq!(pid_of(&s), pid);
    assert!(s["release"].as_str().unwrap().contains("v1"), "{s}");

    // With the agent down, the command restarts it itself, and the agent
    // adopts that process when it comes back.
    f.agent("web-1").kill();
    let pid = restarted_pid(&manual_rollback(&f, "web-1", Some("v2")));
    assert!(alive(pid));
    let stdout = read(&f.root_of("web-1").join("app/shared/log/service.stdout.log"));
    assert_eq!(stdout.matches("app v2 started").count(), 2, "{stdout}");
    f.start_agent("web-1", "role=web");
    f.wait_online("web-1", true);
    std::thread::sleep(Duration::from_secs(2));
    let s = status(&f, "web-1");
    assert_eq!((pid_of(&s), s["state"].as_str()), (pid, Some("running")), "{s}");
}

#[test]
fn a_service_that_died_while_its_agent_was_away_is_started_and_reported() {
    let mut f = Ferry::start();
    f.start_agents(&["web-1"], "role=web");
    f.project_app();
    upload_with(&f, "v1", RECIPE, &[("bin/app", APP)]);
    f.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);
    let pid = pid_of(&status(&f, "web-1"));
    f.agent("web-1").kill();
    crate::harness::kill_group(pid);
    f.start_agent("web-1", "role=web");
    f.wait_online("web-1", true);
    wait_until(Duration::from_secs(15), "the service to run again", || {
        let s = status(&f, "web-1");
        s["state"] == "running" && s["pid"].as_i64().is_some_and(|p| p != pid)
    });
    wait_until(Duration::from_secs(15), "status to say so", || {
        let s = f.json(&["status", "app"]);
        s["environments"][0]["hosts"][0]["error"].as_str().unwrap_or("").contains("service was not running; started")
    });
}
