//! First contact: what someone meets in their first hour with Ferry, from
//! `ferry dev` in a container to the first canary.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::deploy_log::untimed;
use crate::dev::{start_dev, status, stop};
use crate::harness::{FERRY, Ferry, Repo, kill_group, wait_until};
use crate::web::Web;

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The word after `prefix` in `text`.
fn word_after<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let at = text.find(prefix)? + prefix.len();
    text[at..].split(|c: char| c.is_whitespace() || c == ')' || c == ',').next()
}

/// The numeric uid a process runs as.
fn uid_of(pid: i64) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap_or_default();
    line.split_whitespace().nth(1).unwrap_or_default().to_string()
}

#[test]
fn ferry_dev_as_root_runs_services_and_prints_a_web_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dev");
    let mut child = start_dev(&data);
    let out = data.with_extension("out");
    wait_until(Duration::from_secs(60), "ferry dev to print its welcome", || {
        std::fs::read_to_string(&out).unwrap_or_default().contains("Ctrl-C stops everything")
    });
    let banner = std::fs::read_to_string(&out).unwrap();
    let url = std::fs::read_to_string(data.join("server/server.url")).unwrap().trim().to_string();
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap().trim().to_string();
    let user = word_after(&banner, "sign in as ").unwrap_or_else(|| panic!("no web user in:\n{banner}")).to_string();
    let password = word_after(&banner, " with password ").unwrap_or_else(|| panic!("no password in:\n{banner}"));
    let password = password.to_string();
    assert!(password.len() >= 12, "{banner}");

    // The printed user and password sign in to the printed URL at once.
    let mut web = Web::at(&url);
    let answer = web.sign_in(&user, &password);
    assert_eq!((answer.status, answer.location.as_str()), (303, "/"), "{}", answer.body);
    assert_eq!(web.get("/").status, 200);

    // The CLI signs in the same way; an empty FERRY_TOKEN then counts as unset.
    let config = dir.path().join("config");
    let cli = |args: &[&str], stdin: &str| {
        let mut child = Command::new(FERRY)
            .args(args)
            .env_remove("FERRY_SERVER")
            .env("FERRY_TOKEN", "")
            .env("XDG_CONFIG_HOME", &config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let login = cli(&["login", &url, "--user", &user, "--password-stdin"], &format!("{password}\n"));
    assert!(login.status.success(), "{}", String::from_utf8_lossy(&login.stderr));
    let who = cli(&["whoami"], "");
    assert!(who.status.success(), "FERRY_TOKEN= fell back to the login: {}", String::from_utf8_lossy(&who.stderr));
    assert!(String::from_utf8_lossy(&who.stdout).contains(&user), "{}", String::from_utf8_lossy(&who.stdout));

    // A release with a [service]: as root, it runs as the user the banner names.
    let tree = dir.path().join("svc");
    std::fs::create_dir_all(tree.join("bin")).unwrap();
    std::fs::write(tree.join("VERSION"), "v2\n").unwrap();
    std::fs::write(tree.join("ferry.toml"), "[service]\ncommand = \"./bin/app\"\nstart_period = \"1s\"\n").unwrap();
    std::fs::write(tree.join("bin/app"), "#!/bin/sh\nexec sleep 1000\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tree.join("bin/app"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let admin = |args: &[&str]| {
        let out = Command::new(FERRY).args(args).env("FERRY_SERVER", &url).env("FERRY_TOKEN", &token).output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "ferry {args:?}: {text}");
        text
    };
    admin(&["release", "upload", "sample", tree.to_str().unwrap(), "--version", "v2"]);
    admin(&["deploy", "sample", "dev", "--version", "v2", "--wait"]);
    let host_root = data.join("agents/dev-1");
    let svc = admin(&["svc", "--root", host_root.to_str().unwrap(), "status", "sample", "-o", "json"]);
    let svc: Value = serde_json::from_str(svc.trim()).unwrap_or(Value::Null);
    let pid = svc[0]["pid"].as_i64().unwrap_or_else(|| panic!("no service running: {svc}"));
    if is_root() {
        let service_user = word_after(&banner, "services run as user ")
            .unwrap_or_else(|| panic!("the banner names no service user:\n{banner}"));
        assert_ne!(service_user, "root", "{banner}");
        let uid = Command::new("id").args(["-u", service_user]).output().unwrap();
        assert_eq!(uid_of(pid), String::from_utf8_lossy(&uid.stdout).trim(), "the service runs as {service_user}");
    }
    stop(&mut child);

    // A restart says the same password again.
    let mut child = start_dev(&data);
    wait_until(Duration::from_secs(60), "ferry dev to resume", || {
        std::fs::read_to_string(&out).unwrap_or_default().contains("Ctrl-C stops everything")
            && status(&data)["environments"][0]["hosts"].as_array().is_some_and(|h| h.len() == 2)
    });
    let again = std::fs::read_to_string(&out).unwrap();
    assert!(again.contains(&format!("sign in as {user} with password {password}")), "{again}");
    stop(&mut child);
    // Services outlive their agent by design: end the ones this test started.
    for host in ["dev-1", "dev-2"] {
        let records = data.join("agents").join(host).join(".ferry/services");
        for record in std::fs::read_dir(records).into_iter().flatten().flatten() {
            let mut text = String::new();
            let _ = std::fs::File::open(record.path()).and_then(|mut f| f.read_to_string(&mut text));
            if let Some(pid) = serde_json::from_str::<Value>(&text).ok().and_then(|v| v["pid"].as_i64()) {
                kill_group(pid);
            }
        }
    }
}

#[test]
fn every_build_command_takes_the_projects_build_number_and_logs_carry_times() {
    let f = Ferry::start();
    let repo = Repo::new(f.dir.path(), "mkdir -p dist\necho \"$FERRY_VERSION\" > dist/VERSION\necho built it");
    // Another project's build first, so build IDs and project numbers differ.
    f.ok(&["project", "create", "other", "--repo", &repo.url()]);
    f.ok(&["build", "other", "--follow"]);
    f.ok(&["project", "create", "app", "--repo", &repo.url()]);
    f.ok(&["build", "app", "--follow"]);

    let shown = f.json(&["build", "show", "app", "1"]);
    assert_eq!((shown["project"].as_str(), shown["number"].as_i64()), (Some("app"), Some(1)), "{shown}");
    assert_ne!(shown["id"].as_i64(), Some(1), "the number is the project's, not the ID");
    assert_eq!(f.json(&["build", "show", "2"])["project"], "app", "a lone number is still the server-wide ID");

    let log = f.ok(&["build", "log", "app", "1"]);
    let built = log.lines().find(|l| l.ends_with(" built it")).unwrap_or_else(|| panic!("{log}"));
    let clock = &built[..8];
    assert!(clock.chars().enumerate().all(|(i, c)| if i % 3 == 2 { c == ':' } else { c.is_ascii_digit() }), "{log}");
    assert!(log.lines().all(|l| l.len() > 9 && l.as_bytes()[2] == b':' && l.as_bytes()[5] == b':'), "{log}");

    f.ok(&["build", "retry", "app", "1", "--follow"]);
    assert_eq!(f.json(&["build", "show", "app", "2"])["status"], "succeeded");

    repo.script("sleep 60");
    repo.commit("slow");
    f.ok(&["build", "app"]);
    f.ok(&["build", "cancel", "app", "3"]);
    wait_until(Duration::from_secs(30), "build app 3 to stop", || {
        f.json(&["build", "show", "app", "3"])["status"] == "canceled"
    });
    let err = f.fails(&["build", "show", "app", "9"]);
    assert!(err.contains('9'), "{err}");
    let err = f.fails(&["build", "show", "app"]);
    assert!(err.contains("'app' is not a build"), "{err}");
    let help = f.ok(&["build", "show", "--help"]);
    assert!(help.contains("project's build number"), "{help}");
}

#[test]
fn deploy_wait_counts_hosts_in_order_and_a_waiting_canary_says_how_to_promote() {
    let mut f = Ferry::start();
    f.start_agent("web-1", "role=web,stage=pre");
    f.start_agents(&["web-2", "web-3"], "role=web");
    for h in ["web-1", "web-2", "web-3"] {
        f.wait_online(h, true);
    }
    f.project_app();
    f.upload("app", "v1");
    f.upload("app", "v2");
    let out = f.ok(&["deploy", "app", "prod", "--version", "v1", "--strategy", "one-at-a-time", "--wait"]);
    let counted: Vec<&str> = out.lines().filter(|l| l.contains("/3] ")).collect();
    let order: Vec<String> = f.json(&["deployment", "show", "1"])["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(counted.len(), 3, "{out}");
    for (n, (line, host)) in counted.iter().zip(&order).enumerate() {
        assert!(line.contains(&format!("[{}/3] {host}", n + 1)), "line {n} of:\n{out}");
        assert!(line.contains("succeeded"), "{line}");
    }
    assert!(!out.contains('\r'), "no live line when the output is not a terminal: {out:?}");
    // Deployment log lines carry their time too (`untimed` checks each one).
    let log = untimed(f.ok(&["deployment", "log", "1"]));
    assert!(log.contains("web-1 | ==> "), "{log}");

    // A canary: `--wait` says it waits, with the command that promotes it.
    let mut wait = Command::new(FERRY)
        .args(["deploy", "app", "prod", "--version", "v2", "--strategy", "canary", "--canary", "stage=pre", "--wait"])
        .env("FERRY_SERVER", &f.url)
        .env("FERRY_TOKEN", &f.token)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = wait.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    wait_until(Duration::from_secs(30), "the canary to wait for promotion", || {
        let out = f.cli(&["deployment", "show", "2", "-o", "json"]);
        let d: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        d["hold"].as_str().is_some_and(|h| h.contains("waiting for promote"))
    });
    let show = f.ok(&["deployment", "show", "2"]);
    assert!(show.contains("waiting for promotion") && show.contains("ferry deployment promote 2"), "{show}");
    let dash = {
        let password = "correct horse battery";
        f.cli_stdin(&["user", "create", "ann", "--admin", "--password-stdin"], &format!("{password}\n"));
        let mut web = Web::new(&f);
        web.sign_in("ann", password);
        web.get("/").body
    };
    assert!(dash.contains("ferry deployment promote 2"), "the dashboard says how to promote");
    f.ok(&["deployment", "promote", "2"]);
    let text = reader.join().unwrap();
    assert!(wait.wait().unwrap().success(), "{text}");
    assert!(text.contains("waiting for promotion") && text.contains("ferry deployment promote 2"), "{text}");
    let _ = &mut f;
}
