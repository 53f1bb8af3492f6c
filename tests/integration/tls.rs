//! The server over HTTPS: agents and the CLI trust it through `--ca-cert`
//! or the system's CA store, a secret reaches its host over the encrypted
//! channel, an untrusted certificate is refused with a message that says what
//! to do, the TLS port answers no plain HTTP, and SIGHUP puts a new
//! certificate in service without dropping the agents' connections.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
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

/// A certificate for 127.0.0.1 and localhost signed by a CA of its own, made
/// now: `NAME-ca.crt`, `NAME.crt` and `NAME.key` in `dir`.
pub(crate) struct Issued {
    pub(crate) ca: PathBuf,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
    pub(crate) der: Vec<u8>,
}

pub(crate) fn ca_signed(dir: &Path, name: &str) -> Issued {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, format!("Ferry test CA {name}"));
    ca_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap()).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, format!("ferry-{name}"));
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    let issued = Issued {
        ca: dir.join(format!("{name}-ca.crt")),
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
        der: cert.der().to_vec(),
    };
    std::fs::write(&issued.ca, ca.pem()).unwrap();
    std::fs::write(&issued.cert, cert.pem()).unwrap();
    std::fs::write(&issued.key, key.serialize_pem()).unwrap();
    issued
}

/// The SHA-256 fingerprint of the certificate a new TLS connection to `url`
/// is served, as the server's log writes it.
fn served_fingerprint(url: &str, ca: &Path) -> String {
    let config = Arc::new(ferry_tls::client_config(Some(ca)).unwrap());
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut conn = rustls::ClientConnection::new(config, name).unwrap();
    let mut tcp = std::net::TcpStream::connect(host_port(url)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).unwrap();
    }
    let chain = conn.peer_certificates().unwrap();
    ferry_tls::fingerprint(chain[0].as_ref())
}

/// Sends SIGHUP to a process this test started.
fn hangup(pid: u32) {
    let status = Command::new("kill").args(["-HUP", &pid.to_string()]).status().unwrap();
    assert!(status.success(), "kill -HUP {pid}");
}

fn log_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// An agent started with an environment of the test's choosing; killed when dropped.
struct Agent {
    child: Child,
    log: PathBuf,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- {} ---\n{}", self.log.display(), log_of(&self.log));
        }
    }
}

#[test]
fn the_system_ca_store_is_trusted_by_the_cli_and_the_agent() {
    let certs = tempfile::tempdir().unwrap();
    let issued = ca_signed(certs.path(), "system");
    let mut f =
        Ferry::start_with(&["--tls-cert", issued.cert.to_str().unwrap(), "--tls-key", issued.key.to_str().unwrap()]);
    // The CLI, without --ca-cert: the CA comes from SSL_CERT_FILE, read as
    // the system's store. Without it (a store that cannot be read, or one
    // that holds only garbage) the certificate is refused as untrusted, and
    // the broken store itself stops nothing.
    let garbage = certs.path().join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n").unwrap();
    let cli = |store: &Path| {
        Command::new(FERRY)
            .args(["project", "list"])
            .env("FERRY_SERVER", &f.url)
            .env("FERRY_TOKEN", &f.token)
            .env_remove("FERRY_CA_CERT")
            .env_remove("SSL_CERT_DIR")
            .env("SSL_CERT_FILE", store)
            .output()
            .unwrap()
    };
    for store in [garbage.clone(), certs.path().join("missing.pem")] {
        let refused = cli(&store);
        assert!(!refused.status.success(), "trusted without the CA ({})", store.display());
        assert!(stderr_of(&refused).contains("not trusted"), "{}", stderr_of(&refused));
    }
    let trusted = cli(&issued.ca);
    assert!(trusted.status.success(), "{}", stderr_of(&trusted));

    // The agent, without --ca-cert: the CA sits in a directory named by
    // SSL_CERT_DIR, beside a broken file and a dangling link it must skip.
    let store = certs.path().join("store");
    std::fs::create_dir(&store).unwrap();
    std::fs::copy(&issued.ca, store.join("ferry-test-ca.pem")).unwrap();
    std::fs::copy(&garbage, store.join("broken.pem")).unwrap();
    std::os::unix::fs::symlink(certs.path().join("nowhere.pem"), store.join("dangling.pem")).unwrap();
    let log = f.dir.path().join("agent-store.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(FERRY)
        .args(["agent", "--server", &f.url, "--name", "web-1", "--tags", "role=web", "--check-interval", "1s"])
        .args(["--service-user", "nobody", "--join-token", &f.join_token])
        .arg("--root")
        .arg(f.root_of("web-1"))
        .env("FERRY_LOG", "info")
        .env_remove("FERRY_SERVER")
        .env_remove("FERRY_TOKEN")
        .env_remove("FERRY_CA_CERT")
        .env_remove("SSL_CERT_FILE")
        .env("SSL_CERT_DIR", &store)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let _agent = Agent { child, log };
    // The test's own CLI calls trust the CA directly.
    f.ca_cert = Some(issued.ca.clone());
    f.wait_online("web-1", true);
}

#[test]
fn sighup_serves_a_new_certificate_and_keeps_agents_connected() {
    let certs = tempfile::tempdir().unwrap();
    let a = ca_signed(certs.path(), "a");
    let b = ca_signed(certs.path(), "b");
    // Clients trust both CAs: what they see tells which certificate is served.
    let both = certs.path().join("both-ca.crt");
    std::fs::write(&both, log_of(&a.ca) + &log_of(&b.ca)).unwrap();
    let (cert, key) = (certs.path().join("server.crt"), certs.path().join("server.key"));
    std::fs::copy(&a.cert, &cert).unwrap();
    std::fs::copy(&a.key, &key).unwrap();
    let mut f = Ferry::start_with(&["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]);
    f.ca_cert = Some(both.clone());
    let fp_a = ferry_tls::fingerprint(&a.der);
    let fp_b = ferry_tls::fingerprint(&b.der);
    let server_log = f.server.log.clone();
    wait_until(Duration::from_secs(10), "the log naming certificate A", || {
        log_of(&server_log).contains(&format!("SHA-256 {fp_a}"))
    });
    assert!(log_of(&server_log).contains("CN=ferry-a"), "{}", log_of(&server_log));

    f.start_agents(&["web-1"], "role=web");
    f.project_app();
    assert!(f.ok(&["project", "list"]).contains("app"));
    assert_eq!(served_fingerprint(&f.url, &both), fp_a);
    let connects = |log: &str| log.matches("agent connected").count();
    assert_eq!(connects(&log_of(&server_log)), 1);

    // B in place of A, then SIGHUP: new connections get B.
    std::fs::copy(&b.cert, &cert).unwrap();
    std::fs::copy(&b.key, &key).unwrap();
    hangup(f.server.pid());
    wait_until(Duration::from_secs(10), "the log saying B is served", || {
        log_of(&server_log).contains("now serving subject CN=ferry-b")
    });
    assert!(log_of(&server_log).contains(&format!("SHA-256 {fp_b}")), "{}", log_of(&server_log));
    assert_eq!(served_fingerprint(&f.url, &both), fp_b);
    assert!(f.ok(&["project", "list"]).contains("app"));

    // The agent's connection (made under A) stayed up: it keeps
    // heartbeating across a few heartbeat timeouts, and neither side saw a
    // disconnect or a reconnect.
    std::thread::sleep(Duration::from_secs(3));
    f.wait_online("web-1", true);
    let log = log_of(&server_log);
    assert_eq!(connects(&log), 1, "the agent reconnected:\n{log}");
    assert!(!log.contains("agent disconnected") && !log.contains("agent connection ended"), "{log}");
    let agent = f.agent_log("web-1");
    assert_eq!(agent.matches("connected to the server").count(), 1, "{agent}");
    assert!(!agent.contains("reconnecting"), "{agent}");

    // A bad pair (B's certificate with A's key; then garbage) is refused,
    // naming the file; B stays in service and the server stays up.
    std::fs::copy(&a.key, &key).unwrap();
    hangup(f.server.pid());
    wait_until(Duration::from_secs(10), "the log refusing a mismatched pair", || {
        log_of(&server_log).contains("do not go together")
    });
    std::fs::write(&cert, "garbage\n").unwrap();
    hangup(f.server.pid());
    let refused = format!("cannot read the certificate file {}", cert.display());
    wait_until(Duration::from_secs(10), "the log refusing a garbage certificate", || {
        log_of(&server_log).contains(&refused)
    });
    let log = log_of(&server_log);
    assert_eq!(
        log.matches("the new TLS certificate was refused, still serving subject CN=ferry-b").count(),
        2,
        "{log}"
    );
    assert_eq!(served_fingerprint(&f.url, &both), fp_b);
    assert!(f.ok(&["project", "list"]).contains("app"));
    f.wait_online("web-1", true);
}

#[test]
fn sighup_without_tls_says_there_is_nothing_to_reload_and_keeps_serving() {
    let f = Ferry::start();
    let log = f.server.log.clone();
    hangup(f.server.pid());
    wait_until(Duration::from_secs(10), "the log saying there is nothing to reload", || {
        log_of(&log).contains("nothing to reload")
    });
    f.ok(&["project", "create", "app"]);
    assert!(f.ok(&["project", "list"]).contains("app"));
}

#[test]
fn sighup_leaves_an_agent_running_and_connected() {
    let mut f = Ferry::start();
    f.start_agent("web-1", "role=web");
    f.wait_online("web-1", true);
    hangup(f.agents[0].1.pid());
    wait_until(Duration::from_secs(10), "the agent's log saying there is nothing to reload", || {
        f.agent_log("web-1").contains("nothing to reload")
    });
    // Still running: not gone, not a zombie waiting to be reaped.
    std::thread::sleep(Duration::from_millis(500));
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", f.agents[0].1.pid())).unwrap_or_default();
    let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().chars().next());
    assert!(matches!(state, Some(Some(c)) if c != 'Z'), "the agent ended on SIGHUP: {stat}");
    f.wait_online("web-1", true);
}
