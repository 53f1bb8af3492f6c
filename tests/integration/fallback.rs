//! R33: with the server down, an operator on a host can still roll back, and
//! the agent keeps that decision until the server deploys something else.

use std::time::Duration;

use crate::harness::{FERRY, Ferry, wait_until};

#[test]
fn a_host_rolls_back_without_the_server_and_keeps_it_until_the_next_deploy() {
    let mut f = Ferry::fleet_on_v1(&["web-1", "web-2"]);
    f.ok(&["deploy", "app", "prod", "--version", "v2", "--wait"]);
    f.server.kill();

    let root = f.root_of("web-1");
    let out = std::process::Command::new(FERRY)
        .args(["agent", "rollback", "--root", root.to_str().unwrap(), "app"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("version v1"), "{stdout}");
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v1"));
    let journal = std::fs::read_to_string(root.join(".ferry/journal.log")).unwrap();
    assert!(journal.contains("\"manual_rollback\""), "{journal}");

    // The running agent re-checks every second and must not undo it.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v1"));

    // Back online, the server shows what the operator did.
    f.restart_server();
    f.wait_online("web-1", true);
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v1"), "a resync does not undo it either");
    wait_until(Duration::from_secs(15), "status to show the manual rollback", || {
        let s = f.json(&["status", "app"]);
        s["environments"][0]["hosts"].as_array().unwrap().iter().any(|h| {
            h["host"] == "web-1"
                && h["current_version"] == "v1"
                && h["error"].as_str().unwrap_or("").contains("manual rollback")
        })
    });
    assert_eq!(f.version_on("web-2", "app").as_deref(), Some("v2"));

    // A new deployment, even of the same version, ends the pin.
    f.ok(&["deploy", "app", "prod", "--version", "v2", "--wait"]);
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v2"));

    // Bad input changes nothing.
    let bad = std::process::Command::new(FERRY)
        .args(["agent", "rollback", "--root", root.to_str().unwrap(), "app", "--to", "v9"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("release 'v9' of 'app' is not on this host"));
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v2"));
}
