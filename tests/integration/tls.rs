//! The server over HTTPS: agents and the CLI trust it through `--ca-cert`,
//! a secret reaches its host over the encrypted channel, an untrusted
//! certificate is refused with a message that says what to do, and the TLS
//! port answers no plain HTTP.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{FERRY, Ferry, host_port, wait_until, write_tree};

const SECRET: &str = "tls-Sekr1t-0a9b8c";

/// A self-signed certificate for 127.0.0.1 and localhost, made now:
/// (certificate, key), both PEM.
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    let rcgen::CertifiedKey { cert, signing_key } = rcgen::generate_simple_self_signed(names).unwrap();
    let (cert_file, key_file) = (dir.join("server.crt"), dir.join("server.key"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, signing_key.serialize_pem()).unwrap();
    (cert_file, key_file)
}

/// A server started with TLS; `ca_cert` stays unset (the caller decides
/// whether the CLI and agents trust it).
fn tls_server(certs: &Path) -> (Ferry, PathBuf) {
    let (cert, key) = self_signed(certs);
    let f = Ferry::start_with(&["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]);
    assert!(f.url.starts_with("https://127.0.0.1:"), "server.url says https: {}", f.url);
    (f, cert)
}

fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn over_https_an_agent_with_the_ca_gets_its_release_and_its_secret() {
    let certs = tempfile::tempdir().unwrap();
    let (mut f, cert) = tls_server(certs.path());
    f.ca_cert = Some(cert);
    // The line may reach the log a moment after the port answers.
    let line = format!("listening on {}", f.url);
    wait_until(Duration::from_secs(10), "the startup line naming the https URL", || {
        std::fs::read_to_string(&f.server.log).is_ok_and(|log| log.contains(&line))
    });

    // The agent enrols (HTTP) and connects (WebSocket) over TLS.
    f.start_agents(&["web-1"], "role=web");
    f.project_app();
    let set = f.cli_stdin(&["var", "set", "app", "API_KEY", "-", "--secret"], &format!("{SECRET}\n"));
    assert!(set.status.success(), "{}", stderr_of(&set));

    let tree = f.dir.path().join("configured/v1");
    write_tree(&tree, "v1", 3);
    let hook = r#"echo "${API_KEY:-}" > $FERRY_SHARED_DIR/api_key"#;
    std::fs::write(tree.join("ferry.toml"), format!("[hooks]\nafter_activate = '{hook}'\n")).unwrap();
    f.ok(&["release", "upload", "app", tree.to_str().unwrap(), "--version", "v1"]);
    f.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);

    f.wait_version("web-1", "app", "v1");
    let got = std::fs::read_to_string(f.root_of("web-1").join("app/shared/api_key")).unwrap();
    assert_eq!(got.trim_end(), SECRET, "the secret reached the host");
    let status = f.ok(&["status", "app"]);
    assert!(status.contains("web-1") && status.contains("v1"), "{status}");
}

#[test]
fn an_untrusted_certificate_is_refused_and_plain_http_gets_no_answer() {
    let certs = tempfile::tempdir().unwrap();
    let (mut f, cert) = tls_server(certs.path());

    // Without --ca-cert the CLI refuses the self-signed certificate and says
    // how to trust it.
    let err = f.fails(&["project", "list"]);
    assert!(err.contains("not trusted") && err.contains("--ca-cert"), "{err}");

    // With it, everything works; so does `ferry login`.
    f.ca_cert = Some(cert.clone());
    f.ok(&["project", "create", "app"]);
    assert!(f.ok(&["project", "list"]).contains("app"));
    let out = f.cli_stdin(&["user", "create", "ann", "--password-stdin"], "ann-password\n");
    assert!(out.status.success(), "{}", stderr_of(&out));
    let config = f.dir.path().join("people/ann");
    let login = |extra: &[&str]| {
        let mut args = vec!["login", f.url.as_str(), "--user", "ann", "--password-stdin"];
        args.extend(extra);
        let mut child = Command::new(FERRY)
            .args(&args)
            .env_remove("FERRY_SERVER")
            .env_remove("FERRY_TOKEN")
            .env_remove("FERRY_CA_CERT")
            .env("XDG_CONFIG_HOME", &config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"ann-password\n").unwrap();
        child.wait_with_output().unwrap()
    };
    let refused = login(&[]);
    assert!(!refused.status.success(), "login without the CA: {}", stdout_of(&refused));
    assert!(stderr_of(&refused).contains("--ca-cert"), "{}", stderr_of(&refused));
    let signed_in = login(&["--ca-cert", cert.to_str().unwrap()]);
    assert!(signed_in.status.success(), "{}", stderr_of(&signed_in));
    assert!(stdout_of(&signed_in).contains(&format!("signed in to {}", f.url)), "{}", stdout_of(&signed_in));
    // Later commands use the saved token and the CA the sign-in trusted.
    let whoami = Command::new(FERRY)
        .arg("whoami")
        .env_remove("FERRY_SERVER")
        .env_remove("FERRY_TOKEN")
        .env_remove("FERRY_CA_CERT")
        .env("XDG_CONFIG_HOME", &config)
        .output()
        .unwrap();
    assert!(whoami.status.success() && stdout_of(&whoami).contains("ann"), "{}", stderr_of(&whoami));

    // An agent without the CA never comes online, and says why.
    let trusted = f.ca_cert.take();
    let mut agent = f.spawn_agent("web-9", "role=web", Some(&f.join_token.clone()));
    f.ca_cert = trusted;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = std::fs::read_to_string(&agent.log).unwrap_or_default();
        if log.contains("not trusted") {
            break;
        }
        assert!(Instant::now() < deadline, "the agent did not say the certificate is untrusted:\n{log}");
        std::thread::sleep(Duration::from_millis(100));
    }
    agent.kill();
    assert!(f.hosts().iter().all(|h| h["name"] != "web-9"), "the agent never enrolled");

    // Plain HTTP on the TLS port: no HTTP answer, no API.
    let mut tcp = std::net::TcpStream::connect(host_port(&f.url)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(b"GET /api/v1/projects HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/"), "plain HTTP got an HTTP answer: {}", String::from_utf8_lossy(&answer));
    assert!(!String::from_utf8_lossy(&answer).contains("app"), "and no data");
}

#[test]
fn the_session_cookie_is_secure_over_https() {
    let certs = tempfile::tempdir().unwrap();
    let (mut f, cert) = tls_server(certs.path());
    f.ca_cert = Some(cert.clone());
    let out = f.cli_stdin(&["user", "create", "bo", "--password-stdin"], "bo-password\n");
    assert!(out.status.success(), "{}", stderr_of(&out));

    let tls = ferry_tls::client_config(Some(&cert)).unwrap();
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let set_cookie = rt.block_on(async {
        let resp = client
            .post(format!("{}/login", f.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("user=bo&password=bo-password&next=%2F")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 303, "signed in");
        resp.headers().get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
    });
    assert!(set_cookie.starts_with("ferry_session=") && set_cookie.contains("Secure"), "{set_cookie}");
}

#[test]
fn a_certificate_that_cannot_be_read_stops_the_server_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let run = |args: &[&str]| {
        let mut child = Command::new(FERRY)
            .args(["server", "--data", dir.path().join("data").to_str().unwrap(), "--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("FERRY_TLS_CERT")
            .env_remove("FERRY_TLS_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("ferry server {args:?} did not stop");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success(), "ferry server {args:?} started");
        stderr_of(&out)
    };
    let missing = dir.path().join("missing.crt");
    let err = run(&["--tls-cert", missing.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]);
    assert!(err.contains(missing.to_str().unwrap()), "{err}");
    // A key that is no key.
    let err = run(&["--tls-cert", cert.to_str().unwrap(), "--tls-key", cert.to_str().unwrap()]);
    assert!(err.contains("private key") && err.contains(cert.to_str().unwrap()), "{err}");
    // Both or neither.
    let err = run(&["--tls-cert", cert.to_str().unwrap()]);
    assert!(err.contains("--tls-key"), "{err}");
    assert!(!dir.path().join("data/server.url").exists(), "nothing was served");
}
