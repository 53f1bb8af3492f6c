//! `ferry dev`: the README's first command.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{FERRY, wait_until};

pub fn start_dev(data: &std::path::Path) -> std::process::Child {
    Command::new(FERRY)
        .args(["dev", "--data", data.to_str().unwrap(), "--listen", "127.0.0.1:0", "--agents", "2"])
        .env("FERRY_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(data.with_extension("out")).unwrap())
        .stderr(std::fs::File::create(data.with_extension("err")).unwrap())
        .spawn()
        .unwrap()
}

pub fn stop(child: &mut std::process::Child) {
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "ferry dev exited with {status}");
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "ferry dev did not stop on Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn status(data: &std::path::Path) -> serde_json::Value {
    let url = std::fs::read_to_string(data.join("server/server.url")).unwrap();
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let out = Command::new(FERRY)
        .args(["status", "sample", "-o", "json"])
        .env("FERRY_SERVER", url.trim())
        .env("FERRY_TOKEN", token.trim())
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

#[test]
fn ferry_dev_runs_a_sample_fleet_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dev");
    let mut child = start_dev(&data);
    let out = data.with_extension("out");
    wait_until(Duration::from_secs(30), "ferry dev to print its welcome", || {
        std::fs::read_to_string(&out).unwrap_or_default().contains("Ctrl-C stops everything")
    });
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("Ferry is running at http://127.0.0.1:"), "{text}");
    assert!(text.contains("ferry status sample"), "{text}");
    assert!(data.join("join.token").is_file());
    let s = status(&data);
    assert_eq!(s["environments"][0]["version_counts"]["v1"], 2, "{s}");
    let release = data.join("agents/dev-1/sample/current/index.html");
    assert!(std::fs::read_to_string(&release).unwrap().contains("v1"));
    // The agent's credential is private to the agent's user.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("agents/dev-1/.ferry/agent.json")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    stop(&mut child);

    // Again: the same state, no second sample release.
    let mut child = start_dev(&data);
    wait_until(Duration::from_secs(30), "ferry dev to resume", || {
        status(&data)["environments"][0]["hosts"]
            .as_array()
            .is_some_and(|h| h.len() == 2 && h.iter().all(|h| h["online"] == true && h["current_version"] == "v1"))
    });
    stop(&mut child);
    let err = std::fs::read_to_string(data.with_extension("err")).unwrap();
    assert!(!err.contains("ERROR"), "{err}");
}
