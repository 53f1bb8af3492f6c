//! The documented exit statuses (`ferry --help`, EXIT STATUS), each provoked
//! for real through the binary: a failing hook, a health check that puts the
//! host back, a closed port, a bad token, an unknown project, a freeze, an
//! approval requirement, bad arguments.

use std::process::{Command, Output};

use crate::harness::{FERRY, Ferry};
use crate::service::upload_with;

/// The exit status, asserting that the message is still `error: ...` on
/// standard error for every failure but clap's own.
fn code(out: &Output, what: &str) -> i32 {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code().unwrap_or_else(|| panic!("{what}: killed by a signal"));
    if code > 2 {
        assert!(stderr.starts_with("error: "), "{what}: the message is still printed as `error: ...`: {stderr}");
    }
    code
}

fn expect(out: Output, want: i32, what: &str, says: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(code(&out, what), want, "{what}: stderr: {stderr}");
    assert!(stderr.contains(says), "{what}: expected '{says}' in: {stderr}");
}

#[test]
fn every_failure_exits_with_its_documented_status() {
    let mut f = Ferry::start();
    // Two hosts, so that a rollout one host at a time can be held running.
    f.start_agents(&["web-1", "web-2"], "role=web");
    f.project_app();
    f.upload("app", "v1");
    expect(f.cli(&["deploy", "app", "prod", "--version", "v1", "--wait"]), 0, "a good deploy", "");

    // 2: usage, from clap, for every command.
    expect(f.cli(&["deploy", "app"]), 2, "missing arguments", "required");
    expect(f.cli(&["deploy", "app", "prod", "--version", "v1", "--wait", "--dry-run"]), 2, "conflicting flags", "");
    expect(f.cli(&["no-such-command"]), 2, "an unknown command", "unrecognized subcommand");

    // 3: the deployment followed failed (a failing hook; nothing put back).
    upload_with(&f, "v2", "[hooks]\nbefore_activate = \"echo no >&2; exit 4\"\n", &[]);
    let out = f.cli(&["deploy", "app", "prod", "--version", "v2", "--wait", "--no-auto-rollback"]);
    expect(out, 3, "a failing hook", "failed");
    assert_eq!(f.json(&["deployments", "app"])[0]["status"], "failed");
    // Following it again afterwards says the same.
    expect(f.cli(&["deployment", "show", "2", "--follow"]), 3, "deployment show --follow", "failed");
    expect(f.cli(&["deployment", "log", "2", "--follow"]), 3, "deployment log --follow", "failed");

    // 4: rolled back: a health check that keeps failing puts the host back.
    upload_with(&f, "v3", "[health]\ncommand = \"echo not ready >&2; exit 3\"\ntimeout = \"2s\"\n", &[]);
    expect(f.cli(&["deploy", "app", "prod", "--version", "v3", "--wait"]), 4, "a failing health check", "rolled_back");
    assert_eq!(f.json(&["deployments", "app"])[0]["status"], "rolled_back");
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v1"));
    // 4 too: an emergency rollback took over the deployment followed.
    f.upload("app", "v4");
    let held = f.deploy_held("v4").to_string();
    f.ok(&["rollback", "app", "prod", "--emergency"]);
    expect(f.cli(&["deployment", "show", &held, "--follow"]), 4, "taken over by an emergency", "emergency");
    expect(f.cli(&["deployment", "log", &held, "--follow"]), 4, "its log, followed", "canceled");

    // 5: not authorised: a token nobody has, and a member without the right.
    expect(f.cli_token("ferry_u_nobody", &["status", "app"]), 5, "a bad token", "");
    let vic = f.person("vic", &[]);
    f.ok(&["member", "add", "app", "vic", "viewer"]);
    expect(vic.run(&["deploy", "app", "prod", "--version", "v1"], None), 5, "a viewer deploying", "");

    // 6: unreachable: a port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = Command::new(FERRY)
        .args(["status", "app"])
        .env("FERRY_SERVER", format!("http://127.0.0.1:{closed}"))
        .env("FERRY_TOKEN", &f.token)
        .output()
        .unwrap();
    expect(out, 6, "a closed port", "cannot reach the Ferry server");

    // 7: not found.
    expect(f.cli(&["status", "nope"]), 7, "an unknown project", "project 'nope' not found");
    expect(f.cli(&["deploy", "app", "prod", "--version", "v9"]), 7, "an unknown version", "not found");

    // 1: anything else (input the server refuses as malformed).
    expect(f.cli(&["deploy", "app", "prod", "--version", "v1", "--strategy", "zigzag"]), 1, "a bad strategy", "zigzag");

    // 8: refused by policy: a freeze, then an approval requirement.
    f.ok(&["lock", "app", "prod", "--reason", "release night", "--for", "1h"]);
    expect(f.cli(&["deploy", "app", "prod", "--version", "v1"]), 8, "a frozen environment", "release night");
    f.ok(&["unlock", "app", "prod"]);
    f.ok(&["env", "update", "app", "prod", "--require-approval", "true"]);
    expect(
        f.cli(&["deploy", "app", "prod", "--version", "v1"]),
        8,
        "an approval requirement",
        "approved release request",
    );

    // None of the refused deploys left a deployment behind.
    assert_eq!(f.json(&["deployments", "app"]).as_array().unwrap().len(), 5);
}

#[test]
fn help_documents_the_exit_statuses_on_every_command() {
    for args in [&["--help"][..], &["deploy", "--help"], &["deployment", "show", "--help"], &["server", "--help"]] {
        let out = Command::new(FERRY).args(args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{args:?}");
        assert!(text.contains("EXIT STATUS"), "{args:?}: {text}");
        for line in [
            "  3  failed",
            "  4  rolled back",
            "  5  not authorised",
            "  6  server unreachable",
            "  7  not found",
            "  8  refused",
        ] {
            assert!(text.contains(line), "{args:?} lacks '{line}'");
        }
    }
    let short = Command::new(FERRY).args(["deploy", "-h"]).output().unwrap();
    assert!(String::from_utf8_lossy(&short.stdout).contains("Exit status: 0 success"));
}
