//! R14: a host leaves the load balancer before it is touched and returns
//! afterwards. A real nginx, started by the test on loopback, balances three
//! backend hosts (python3 http.server under their agents' supervisor); the
//! agent of a fourth host, tagged role=lb, owns nginx's upstream file.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Ferry, kill_group, wait_until};
use crate::service::upload_with;

const BACKENDS: [&str; 3] = ["web-1", "web-2", "web-3"];

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The nginx binary, if this machine has one (Debian's is in /usr/sbin,
/// which a user's PATH may lack).
fn find_nginx() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into(), "/usr/local/nginx/sbin".into()])
        .map(|dir| dir.join("nginx"))
        .find(|p| p.is_file())
}

/// An nginx of the test's own: its prefix, configuration, logs and pid in a
/// temporary directory, listening on a loopback port. Stopped by its PID.
struct Nginx {
    child: Child,
    port: u16,
}

impl Nginx {
    fn start(bin: &Path, dir: &Path, upstream_dir: &Path, port: u16) -> Nginx {
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let d = dir.display();
        // As root, nginx would switch its workers to an unprivileged user that
        // may not reach the test's directory.
        let user = if nix_is_root() { "user root;\n" } else { "" };
        let conf = format!(
            "{user}worker_processes 1;\nerror_log {d}/error.log info;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n\
               client_body_temp_path {d}/tmp/body;\n  proxy_temp_path {d}/tmp/proxy;\n\
               fastcgi_temp_path {d}/tmp/fastcgi;\n  uwsgi_temp_path {d}/tmp/uwsgi;\n  scgi_temp_path {d}/tmp/scgi;\n\
               include {}/*.conf;\n\
               server {{\n    listen 127.0.0.1:{port};\n    location / {{ proxy_pass http://app; }}\n  }}\n}}\n",
            upstream_dir.display()
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let log = std::fs::File::create(dir.join("nginx.out")).unwrap();
        let child = Command::new(bin)
            .args(Self::args(dir))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            // Its own group, so that nothing of it outlives the test.
            .process_group(0)
            .spawn()
            .unwrap();
        Nginx { child, port }
    }

    /// `-p -c -e`: everything of this nginx under `dir`.
    fn args(dir: &Path) -> Vec<String> {
        let conf = dir.join("nginx.conf");
        vec![
            "-p".into(),
            dir.display().to_string(),
            "-c".into(),
            conf.display().to_string(),
            "-e".into(),
            "stderr".into(),
        ]
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let pid = i64::from(self.child.id());
        // TERM: the master stops its workers; then make sure of the group.
        let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        kill_group(pid);
        let _ = self.child.wait();
    }
}

fn nix_is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// GET through nginx: the status and body.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    let status = answer.split_whitespace().nth(1)?.parse().ok()?;
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.trim().to_string()).unwrap_or_default();
    Some((status, body))
}

/// Which backend answered each of `n` requests; panics on a failed request.
fn who_answers(nginx: &Nginx, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| match get(nginx.port, "/who.txt") {
            Some((200, who)) => who,
            other => panic!("request {i} through nginx failed: {other:?}"),
        })
        .collect()
}

fn lb_show(f: &Ferry) -> Value {
    f.json(&["env", "lb", "show", "app", "prod"])
}

#[test]
fn nginx_stops_sending_requests_to_a_drained_host_and_ready_brings_it_back() {
    let Some(nginx_bin) = find_nginx() else {
        eprintln!("SKIPPED: no nginx on this machine (apt-get install nginx-light); the load-balancer test needs one");
        return;
    };
    let mut f = Ferry::start();
    f.start_agents(&BACKENDS, "role=web");
    f.project_app();
    // Each backend serves a file naming itself, on a port of its own.
    for host in BACKENDS {
        f.ok(&["var", "set", "app", "--host", host, "PORT", &free_port().to_string()]);
        f.ok(&["var", "set", "app", "--host", host, "WHO", host]);
    }
    let recipe = "[deploy]\ntemplates = [\"who.txt.tmpl\"]\n\
        [service]\ncommand = \"exec python3 -m http.server ${PORT} --bind 127.0.0.1\"\nstart_period = \"300ms\"\n\
        [health]\nhttp = \"http://127.0.0.1:${PORT}/who.txt\"\ntimeout = \"20s\"\n";
    upload_with(&f, "v1", recipe, &[("who.txt.tmpl", "${WHO}\n")]);
    f.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);

    let nginx_dir = f.dir.path().join("nginx");
    let upstream_dir = nginx_dir.join("conf.d");
    std::fs::create_dir_all(&upstream_dir).unwrap();
    let upstream_file = upstream_dir.join("app.conf");
    let reload = format!("{} {} -s reload", nginx_bin.display(), Nginx::args(&nginx_dir).join(" "));

    // Bad input is refused, naming what is wrong.
    fn lb_set<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["env", "lb", "set", "app", "prod", "--driver", "nginx"];
        args.extend(extra);
        args
    }
    let file = upstream_file.to_str().unwrap();
    let e = f.fails(&lb_set(&["--select", "role=lb", "--upstream", "app"]));
    assert!(e.contains("the nginx driver needs --file"), "{e}");
    let e = f.fails(&lb_set(&["--select", "role", "--upstream", "app", "--file", file]));
    assert!(e.contains("--select: 'role' is not of the form key=value"), "{e}");
    let e = f.fails(&lb_set(&["--select", "role=lb", "--upstream", "app", "--file", file, "--backend", "${PORT"]));
    assert!(e.contains("--backend '${PORT'"), "{e}");
    let e = f.fails(&lb_set(&["--select", "role=lb", "--upstream", "app", "--file", file, "--socket", "/s"]));
    assert!(e.contains("--socket does not apply to the nginx driver"), "{e}");
    let e = f.fails(&["lb", "drain", "app", "prod", "web-2"]);
    assert!(e.contains("has no load balancer"), "{e}");

    let set = f.ok(&lb_set(&[
        "--select",
        "role=lb",
        "--backend",
        "${FERRY_HOST_ADDRESS}:${PORT}",
        "--upstream",
        "app",
        "--file",
        file,
        "--reload",
        &reload,
    ]));
    assert!(set.contains("load balancer of app/prod: nginx on the hosts role=lb"), "{set}");
    // No load-balancer host yet: said plainly.
    let shown = lb_show(&f);
    assert_eq!(shown["applied"], false);
    assert!(shown["errors"][0].as_str().unwrap().contains("no host matches the load balancer's selector role=lb"));
    assert_eq!(shown["backends"].as_array().unwrap().len(), 3, "{shown}");

    // The load-balancer host writes the upstream file; nginx, started once
    // the file is there, includes it.
    f.start_agents(&["lb-1"], "role=lb");
    wait_until(Duration::from_secs(20), "the upstream file", || upstream_file.exists());
    let text = std::fs::read_to_string(&upstream_file).unwrap();
    assert_eq!(text.matches("    server 127.0.0.1:").count(), 3, "{text}");
    assert!(!text.contains(" down;"), "{text}");
    let nginx = Nginx::start(&nginx_bin, &nginx_dir, &upstream_dir, free_port());
    // The reload that failed while nginx was not running is tried again.
    wait_until(Duration::from_secs(20), "the load balancer applied", || lb_show(&f)["applied"] == true);
    wait_until(Duration::from_secs(20), "nginx to answer", || matches!(get(nginx.port, "/who.txt"), Some((200, _))));
    let all: BTreeSet<String> = who_answers(&nginx, 30).into_iter().collect();
    assert_eq!(all, BACKENDS.iter().map(|h| h.to_string()).collect(), "round robin over every backend");

    // Drain web-2: the command waits until the load-balancer host applied it.
    let drained = f.ok(&["lb", "drain", "app", "prod", "web-2"]);
    assert!(
        drained.contains("web-2: out of the load balancer of app/prod") && drained.contains("applied by lb-1"),
        "{drained}"
    );
    let shown = lb_show(&f);
    let generation = shown["generation"].as_u64().unwrap();
    assert_eq!(shown["lb_hosts"][0]["applied_generation"].as_u64(), Some(generation), "{shown}");
    assert_eq!(shown["applied"], true);
    let web2 = shown["backends"].as_array().unwrap().iter().find(|b| b["host"] == "web-2").unwrap().clone();
    assert_eq!(web2["drained"], true, "{shown}");
    let port2 = web2["address"].as_str().unwrap().rsplit(':').next().unwrap().to_string();
    let text = std::fs::read_to_string(&upstream_file).unwrap();
    assert!(text.contains(&format!("server 127.0.0.1:{port2} down;  # web-2")), "{text}");

    // nginx reloads in the background: its old worker may finish a request or
    // two. After that, nothing more reaches web-2, and every request succeeds.
    wait_until(Duration::from_secs(10), "nginx to leave web-2 out", || {
        !who_answers(&nginx, 10).iter().any(|w| w == "web-2")
    });
    let answers = who_answers(&nginx, 40);
    assert!(!answers.iter().any(|w| w == "web-2"), "a drained host got requests: {answers:?}");
    let rest: BTreeSet<&str> = answers.iter().map(String::as_str).collect();
    assert_eq!(rest, BTreeSet::from(["web-1", "web-3"]));

    // Draining it again changes nothing and needs nothing new.
    let again: Value = f.json(&["lb", "drain", "app", "prod", "web-2"]);
    assert_eq!((again["generation"].as_u64(), again["done"].as_bool()), (Some(generation), Some(true)), "{again}");
    // Only hosts of the environment.
    let e = f.fails(&["lb", "drain", "app", "prod", "lb-1"]);
    assert!(e.contains("host 'lb-1' (tags role=lb) is not in environment 'prod'"), "{e}");

    // Back in: web-2 answers again.
    let ready = f.ok(&["lb", "ready", "app", "prod", "web-2"]);
    assert!(
        ready.contains("web-2: back into the load balancer of app/prod") && ready.contains("applied by lb-1"),
        "{ready}"
    );
    let shown = lb_show(&f);
    assert!(shown["generation"].as_u64().unwrap() > generation);
    assert_eq!(shown["lb_hosts"][0]["applied_generation"], shown["generation"], "{shown}");
    wait_until(Duration::from_secs(10), "web-2 to get requests again", || {
        who_answers(&nginx, 10).iter().any(|w| w == "web-2")
    });
    assert!(!std::fs::read_to_string(&upstream_file).unwrap().contains(" down;"));

    // The load-balancer host reports its address like any other; the
    // backends' addresses are where their agents connect from.
    let hosts = f.hosts();
    assert!(hosts.iter().all(|h| h["address"] == "127.0.0.1"), "{hosts:?}");

    // Removing the load balancer leaves nginx as it was.
    f.ok(&["env", "lb", "unset", "app", "prod"]);
    assert!(f.fails(&["env", "lb", "show", "app", "prod"]).contains("has no load balancer"));
    assert!(upstream_file.exists());
    assert_eq!(who_answers(&nginx, 6).len(), 6);
    drop(nginx);
}

/// The example operators read is also a test: a rolling deploy of v2 behind a
/// real nginx, under a load loop, loses no request.
#[test]
fn a_rolling_deploy_behind_nginx_loses_no_request() {
    let Some(nginx_bin) = find_nginx() else {
        eprintln!(
            "SKIPPED: no nginx on this machine (apt-get install nginx-light); the nginx-rolling example needs one"
        );
        return;
    };
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/nginx-rolling/run.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .env("FERRY", crate::harness::FERRY)
        .env("NGINX", &nginx_bin)
        .env("MAX_REQUESTS", "50000")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("requests: ") && last.contains(" ok, 0 failed, versions seen: v1,v2"),
        "{stdout}\n{stderr}"
    );
    assert!(stderr.contains("batch 3 of 3 started"), "a rollout in batches: {stderr}");
    assert!(stderr.contains("letting connections to batch 2 drain"), "{stderr}");
}
