//! What happens after the deploy is visible (R21): a service that starts
//! crash-looping long after its deploy shows in `ferry status` and on the
//! project page with its last stderr lines (secrets masked), and the
//! project's channels hear `service.failing` once, then `service.recovered`.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Ferry, wait_until};
use crate::notify::{Received, receiver_answering};
use crate::web::{PASSWORD, Web, user};

/// Runs until `data/crash` appears, then dies complaining on stderr; while
/// the file is there, every restart dies at once.
const APP: &str = "#!/bin/sh\n\
    while [ ! -e data/crash ]; do sleep 0.2; done\n\
    echo \"cannot reach the database with password $DB_PASSWORD\" >&2\n\
    echo \"giving up\" >&2\n\
    exit 3\n";

const RECIPE: &str = "[deploy]\nshared = [\"data\"]\n[service]\ncommand = \"./bin/app\"\nstart_period = \"1s\"\n";

const SECRET: &str = "s3cr3t-db-pw";

fn host_status(f: &Ferry) -> Value {
    f.json(&["status", "app"])["environments"][0]["hosts"][0].clone()
}

/// The service events the receiver got so far.
fn service_events(rx: &std::sync::mpsc::Receiver<Received>, seen: &mut Vec<Value>) -> Vec<Value> {
    while let Ok(r) = rx.try_recv() {
        seen.push(serde_json::from_str(&r.body).unwrap());
    }
    seen.iter().filter(|e| e["event"].as_str().unwrap_or("").starts_with("service.")).cloned().collect()
}

#[test]
fn a_crash_loop_after_the_deploy_is_reported_shown_and_notified_once_until_it_recovers() {
    let mut f = Ferry::start();
    f.start_agents(&["web-1"], "role=web");
    f.project_app();
    f.ok(&["var", "set", "app", "DB_PASSWORD", SECRET, "--secret"]);
    let (url, rx) = receiver_answering(Vec::new());
    f.ok(&["notify", "add", "app", "--event", "service.failing,service.recovered", "--webhook", &url]);
    crate::service::upload_with(&f, "v1", RECIPE, &[("bin/app", APP)]);
    let shared = f.root_of("web-1").join("app/shared/data");
    std::fs::create_dir_all(&shared).unwrap();
    f.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);

    // Healthy after the deploy: the host says so, nothing is sent.
    wait_until(Duration::from_secs(15), "the service's health reported", || {
        host_status(&f)["service"]["failing"] == false
    });
    let mut seen = Vec::new();
    assert!(service_events(&rx, &mut seen).is_empty());

    // Later, it starts dying.
    std::fs::write(shared.join("crash"), "").unwrap();
    wait_until(Duration::from_secs(30), "the host to report the service failing", || {
        host_status(&f)["service"]["failing"] == true
    });
    let service = host_status(&f)["service"].clone();
    assert!(service["reason"].as_str().unwrap().contains("crash loop"), "{service}");
    let stderr: Vec<String> =
        service["stderr"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string()).collect();
    assert!(stderr.iter().any(|l| l.contains("giving up")), "{stderr:?}");
    assert!(stderr.iter().any(|l| l.contains("password ***")), "the secret is masked: {stderr:?}");
    assert!(!service.to_string().contains(SECRET));

    // The table says it too, with the stderr lines.
    let table = f.ok(&["status", "app"]);
    assert!(table.contains("SERVICE FAILING") && table.contains("giving up"), "{table}");
    assert!(!table.contains(SECRET));

    // The project page shows it.
    user(&f, "viewer", false, Some(("app", "viewer")));
    let mut web = Web::new(&f);
    web.sign_in("viewer", PASSWORD);
    let page = web.get("/projects/app");
    assert!(page.body.contains("id=\"failing-web-1\"") && page.body.contains("giving up"), "{}", page.body);
    assert!(!page.body.contains(SECRET));

    // One notification for the turn, however many reports follow.
    wait_until(Duration::from_secs(20), "service.failing to be delivered", || {
        !service_events(&rx, &mut seen).is_empty()
    });
    std::thread::sleep(Duration::from_secs(3));
    let events = service_events(&rx, &mut seen);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["event"], "service.failing");
    assert_eq!(events[0]["data"]["host"], "web-1");
    assert!(events[0]["data"]["stderr"].to_string().contains("giving up"));
    assert!(!events[0].to_string().contains(SECRET));

    // An agent restarted during the crash loop does not take it for a
    // recovery: the host still reports it failing, and nothing is sent.
    f.agent("web-1").kill();
    f.start_agent("web-1", "role=web");
    f.wait_online("web-1", true);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(host_status(&f)["service"]["failing"], true);
    assert_eq!(service_events(&rx, &mut seen).len(), 1, "no recovery nor second failure after an agent restart");

    // Fixed on the host and restarted: it recovers, once.
    std::fs::remove_file(shared.join("crash")).unwrap();
    let root = f.root_of("web-1");
    f.ok(&["svc", "--root", root.to_str().unwrap(), "restart", "app"]);
    let start = Instant::now();
    wait_until(Duration::from_secs(30), "the host to report the service running again", || {
        host_status(&f)["service"]["failing"] == false
    });
    wait_until(Duration::from_secs(20), "service.recovered to be delivered", || {
        service_events(&rx, &mut seen).len() >= 2
    });
    std::thread::sleep(Duration::from_secs(2));
    let events = service_events(&rx, &mut seen);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[1]["event"], "service.recovered");
    assert!(start.elapsed() < Duration::from_secs(50));
    assert!(!f.ok(&["status", "app"]).contains("SERVICE FAILING"));
}
