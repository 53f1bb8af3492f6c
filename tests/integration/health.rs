//! R13, R14: a host counts as deployed only when its `[health]` check
//! passes; a failing check puts it back on its previous release.

use crate::harness::Ferry;
use crate::service::{status, upload_with};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn error_of(f: &Ferry, deployment: &str) -> String {
    f.json(&["deployment", "show", deployment])["hosts"][0]["error"].as_str().unwrap_or("").to_string()
}

#[test]
fn health_checks_gate_the_deploy_and_a_failure_rolls_the_host_back() {
    let mut f = Ferry::start();
    f.start_agents(&["web-1"], "role=web");
    f.project_app();
    let port = free_port();
    // A real HTTP service serving the release directory.
    let service = format!(
        "[service]\ncommand = \"exec python3 -m http.server ${{PORT:-{port}}} --bind 127.0.0.1\"\nstart_period = \"300ms\"\n"
    );
    let v1 =
        format!("{service}[health]\nhttp = \"http://127.0.0.1:{port}/VERSION\"\nbody = \"v1\"\ntimeout = \"20s\"\n");
    upload_with(&f, "v1", &v1, &[]);
    f.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);
    let good = status(&f, "web-1");
    assert_eq!(good["state"], "running");

    // A check that keeps failing (404) fails the host and puts v1 back.
    let v2 = format!("{service}[health]\nhttp = \"http://127.0.0.1:{port}/healthz\"\ntimeout = \"3s\"\n");
    upload_with(&f, "v2", &v2, &[]);
    f.fails(&["deploy", "app", "prod", "--version", "v2", "--wait"]);
    let error = error_of(&f, "2");
    assert!(error.contains(&format!("health check GET http://127.0.0.1:{port}/healthz failed")), "{error}");
    assert!(error.contains("status 404"), "{error}");
    assert!(error.contains("put back on the previous release"), "{error}");
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v1"));
    let back = status(&f, "web-1");
    assert_eq!(back["state"], "running", "{back}");
    assert!(back["release"].as_str().unwrap().contains("v1"), "v1's service serves again: {back}");

    // `rollback = false` (and a rollout that leaves failed hosts alone): the
    // host fails but stays on the new release.
    let v3 =
        format!("{service}[health]\ncommand = \"echo not ready >&2; exit 3\"\ntimeout = \"2s\"\nrollback = false\n");
    upload_with(&f, "v3", &v3, &[]);
    f.fails(&["deploy", "app", "prod", "--version", "v3", "--wait", "--no-auto-rollback"]);
    let error = error_of(&f, "3");
    assert!(error.contains("exit code 3") && error.contains("not ready"), "{error}");
    assert!(!error.contains("put back"), "{error}");
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v3"));

    // tcp checks pass once the port accepts connections; deploying the same
    // version again activates it again (a new process).
    let v4 = format!("{service}[health]\ntcp = \"127.0.0.1:{port}\"\n");
    upload_with(&f, "v4", &v4, &[]);
    f.ok(&["deploy", "app", "prod", "--version", "v4", "--wait"]);
    let before = status(&f, "web-1")["pid"].as_i64().unwrap();
    f.ok(&["deploy", "app", "prod", "--version", "v4", "--wait"]);
    let after = status(&f, "web-1")["pid"].as_i64().unwrap();
    assert_ne!(before, after, "a redeploy restarts the service");
}
