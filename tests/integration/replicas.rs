//! Two server processes on one database file and one artifact directory:
//! a queued build is built once, a notification is sent once, and a build
//! whose server was killed is failed by the other once its lease runs out;
//! a change made through one server wakes an agent connected to the other,
//! and a live page open on the other.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::{Ferry, Repo, wait_until};

/// A build script whose output shows each time it ran.
const SCRIPT: &str = "echo built-here\nsleep 1\nmkdir -p dist\necho x > dist/x";

fn status(f: &Ferry, project: &str, number: usize) -> String {
    let builds = f.json(&["builds", project]);
    let list = builds.as_array().cloned().unwrap_or_default();
    list.iter()
        .find(|b| b["number"].as_u64() == Some(number as u64))
        .and_then(|b| b["status"].as_str().map(str::to_string))
        .unwrap_or_default()
}

#[test]
fn a_build_queued_once_is_built_once_by_one_of_two_servers() {
    let mut f = Ferry::start();
    let (_second, second_url) = f.start_replica();
    let repo = Repo::new(f.dir.path(), SCRIPT);
    let projects = ["app", "other", "third"];
    for p in projects {
        f.ok(&["project", "create", p, "--repo", &repo.url()]);
    }
    // Queued through both servers; each server's workers take what they can.
    let first_url = f.url.clone();
    for (i, p) in projects.iter().chain(projects.iter()).enumerate() {
        f.url = if i % 2 == 0 { first_url.clone() } else { second_url.clone() };
        f.ok(&["build", p]);
    }
    f.url = first_url;
    for p in projects {
        for n in 1..=2 {
            wait_until(Duration::from_secs(60), &format!("{p} build {n}"), || status(&f, p, n) == "succeeded");
            let log = f.ok(&["build", "log", p, &n.to_string()]);
            assert_eq!(log.matches("built-here").count(), 1, "built once: {log}");
        }
    }
}

/// Webhook requests as they arrive; each is answered after a second, so a
/// second sender of the same notification would overlap the first.
fn slow_receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let log = log.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let (mut line, mut len, mut delivery) = (String::new(), 0usize, String::new());
                reader.read_line(&mut line).unwrap();
                loop {
                    line.clear();
                    reader.read_line(&mut line).unwrap();
                    let l = line.trim_end().to_ascii_lowercase();
                    if l.is_empty() {
                        break;
                    }
                    if let Some(v) = l.strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                    if let Some(v) = l.strip_prefix("x-ferry-delivery:") {
                        delivery = v.trim().to_string();
                    }
                }
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                log.lock().unwrap().push(delivery);
                std::thread::sleep(Duration::from_secs(1));
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            });
        }
    });
    (url, seen)
}

#[test]
fn a_notification_is_delivered_once_by_one_of_two_servers() {
    let f = Ferry::start();
    let (_second, _) = f.start_replica();
    let repo = Repo::new(f.dir.path(), "mkdir -p dist\necho x > dist/x");
    f.ok(&["project", "create", "app", "--repo", &repo.url()]);
    let (url, seen) = slow_receiver();
    f.ok(&["notify", "add", "app", "--event", "build.finished", "--webhook", &url]);
    for _ in 0..3 {
        f.ok(&["build", "app", "--follow"]);
    }
    wait_until(Duration::from_secs(30), "three deliveries", || seen.lock().unwrap().len() >= 3);
    // Long enough for a second server to have sent any of them again.
    std::thread::sleep(Duration::from_secs(3));
    let mut ids = seen.lock().unwrap().clone();
    assert_eq!(ids.len(), 3, "each notification once: {ids:?}");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "{ids:?}");
    let log = f.json(&["notifications", "log", "app"]);
    for n in log.as_array().unwrap() {
        assert_eq!(n["status"], "delivered", "{log}");
        assert_eq!(n["attempts"].as_array().unwrap().len(), 1, "{log}");
    }
}

#[test]
fn a_build_of_a_killed_server_is_failed_by_the_other() {
    let mut f = Ferry::start();
    let repo = Repo::new(f.dir.path(), "sleep 60");
    f.ok(&["project", "create", "app", "--repo", &repo.url()]);
    f.ok(&["build", "app"]);
    wait_until(Duration::from_secs(20), "the build to run", || status(&f, "app", 1) == "running");
    // The second server starts while the first still renews its lease: it
    // must not fail the build.
    let (_second, second_url) = f.start_replica();
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(status(&f, "app", 1), "running", "a live server's build is left alone");
    f.server.kill();
    f.url = second_url;
    wait_until(Duration::from_secs(15), "the other server to fail the build", || status(&f, "app", 1) == "failed");
    let b = f.json(&["build", "show", "1"]);
    assert!(b["error"].as_str().unwrap().contains("server stopped"), "{b}");
}

#[test]
fn a_deployment_through_one_server_wakes_an_agent_connected_to_the_other() {
    // No periodic resync within the test: only a wake-up can reach the agent.
    let mut f = Ferry::start_with(&["--resync-interval", "600s"]);
    f.start_agents(&["web-1"], "role=web");
    f.project_app();
    f.upload("app", "v1");
    let (_second, second_url) = f.start_replica();
    let first_url = std::mem::replace(&mut f.url, second_url);
    let started = std::time::Instant::now();
    f.ok(&["deploy", "app", "prod", "--version", "v1"]);
    f.url = first_url;
    f.wait_version("web-1", "app", "v1");
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
}

#[test]
fn a_change_through_one_server_reaches_a_live_page_open_on_the_other() {
    let f = Ferry::start();
    f.ok(&["project", "create", "app"]);
    crate::web::user(&f, "ann", true, None);
    let (_second, second_url) = f.start_replica();
    let mut web = crate::web::Web::at(&second_url);
    assert_eq!(web.sign_in("ann", crate::web::PASSWORD).status, 303);
    // The page refreshes on its own only after a minute: an event sooner is
    // the change's notice, carried from the first server to the second.
    let page = std::thread::spawn(move || web.first_event("/live?page=/projects/app", Duration::from_secs(10)));
    std::thread::sleep(Duration::from_millis(500));
    f.ok(&["project", "update", "app", "--keep-releases", "3"]);
    assert_eq!(page.join().unwrap().as_deref(), Some("changed"));
}
