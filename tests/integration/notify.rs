//! R28: a deployment's end reaches a webhook as a signed JSON POST, retried
//! until the receiver takes it, with every attempt in the log; chats get
//! their own formats; e-mail reaches the members a rule names through a real
//! SMTP server, and an emergency rollback the whole project.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hmac::{KeyInit, Mac};
use serde_json::Value;

use crate::harness::{Ferry, wait_until};

/// A request the receiver got: its headers (lowercase names) and body.
pub(crate) struct Received {
    headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A receiver on loopback that answers 500 to its first request and 200 to
/// the rest, sending each request down the channel.
fn receiver() -> (String, mpsc::Receiver<Received>) {
    receiver_answering(vec![("500 Internal Server Error", String::new())])
}

/// A receiver on loopback that gives these answers (status line, body) to
/// its first requests and `200 OK` with no body to the rest.
pub(crate) fn receiver_answering(first: Vec<(&'static str, String)>) -> (String, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = Vec::new();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                let l = line.trim_end();
                if l.is_empty() {
                    break;
                }
                if let Some((k, v)) = l.split_once(':') {
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
            }
            let len: usize = headers.iter().find(|(k, _)| k == "content-length").map_or(0, |(_, v)| v.parse().unwrap());
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let (status, answer) = first.get(n).cloned().unwrap_or(("200 OK", String::new()));
            let _ = stream.write_all(
                format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{answer}",
                    answer.len()
                )
                .as_bytes(),
            );
            if tx.send(Received { headers, body: String::from_utf8(body).unwrap() }).is_err() {
                return;
            }
        }
    });
    (url, rx)
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[test]
fn a_finished_deployment_is_posted_signed_and_retried_until_taken() {
    let mut f = Ferry::start();
    f.start_agents(&["web-1"], "role=web");
    f.project_app();
    f.upload("app", "v1");
    let (url, requests) = receiver();
    let rule = f.json(&[
        "notify",
        "add",
        "app",
        "--event",
        "deploy.finished,deploy.failed",
        "--webhook",
        &url,
        "--secret",
        "s3cret",
    ]);
    assert_eq!(rule["secret_set"], true);
    assert!(!rule.to_string().contains("s3cret"), "the secret is never shown: {rule}");
    assert!(f.fails(&["notify", "add", "app", "--event", "deploy.done", "--webhook", &url]).contains("deploy.done"));

    f.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);
    let first = requests.recv_timeout(Duration::from_secs(20)).expect("a first attempt");
    let second = requests.recv_timeout(Duration::from_secs(20)).expect("a retry after the 500");
    for r in [&first, &second] {
        let sig = r.header("x-ferry-signature").expect("signed");
        assert_eq!(sig, format!("sha256={}", hmac_hex("s3cret", r.body.as_bytes())));
        assert_eq!(r.header("x-ferry-event"), Some("deploy.finished"));
    }
    assert_eq!(first.body, second.body, "the same notification again");
    assert_eq!(first.header("x-ferry-delivery"), second.header("x-ferry-delivery"));
    let payload: Value = serde_json::from_str(&second.body).unwrap();
    assert_eq!(payload["event"], "deploy.finished");
    assert_eq!(payload["project"], "app");
    assert_eq!(payload["data"]["env"], "prod");
    assert_eq!(payload["data"]["version"], "v1");
    assert_eq!(payload["data"]["status"], "succeeded");
    // A success is not a failure: no deploy.failed.
    assert!(requests.recv_timeout(Duration::from_millis(1500)).is_err());

    let log = f.json(&["notifications", "log", "app"]);
    let n = &log[0];
    assert_eq!((n["event"].as_str(), n["status"].as_str()), (Some("deploy.finished"), Some("delivered")), "{log}");
    let codes: Vec<i64> =
        n["attempts"].as_array().unwrap().iter().map(|a| a["status_code"].as_i64().unwrap()).collect();
    assert_eq!(codes, [500, 200], "{log}");
    assert!(f.ok(&["notifications", "log", "app"]).contains("attempt 2"));

    let listed = f.json(&["notify", "list", "app"]);
    let id = listed[0]["id"].as_i64().unwrap().to_string();
    f.ok(&["notify", "remove", "app", &id]);
    assert_eq!(f.json(&["notify", "list", "app"]), serde_json::json!([]));
    let _ = &mut f;
}

#[test]
fn chats_get_their_own_formats_and_a_refusal_in_the_body_is_tried_again() {
    let mut f = Ferry::start();
    f.start_agents(&["web-1"], "role=web");
    f.project_app();
    f.upload("app", "v1");
    // DingTalk answers 200 with an error code in the body first.
    let refusal = r#"{"errcode":310000,"errmsg":"keywords not in content"}"#.to_string();
    let (ding_url, ding) = receiver_answering(vec![("200 OK", refusal)]);
    let (slack_url, slack) = receiver_answering(Vec::new());
    f.ok(&["notify", "add", "app", "--kind", "dingtalk", "--event", "deploy.finished", "--url", &ding_url]);
    let events = "deploy.started,project.changed";
    let rule = f.json(&["notify", "add", "app", "--kind", "slack", "--event", events, "--url", &slack_url]);
    assert_eq!((rule["kind"].as_str(), rule["webhook"].as_str()), (Some("slack"), Some(slack_url.as_str())));

    // Bad rules are refused, naming the problem, and change nothing.
    let no_smtp = f.fails(&["notify", "add", "app", "--kind", "email", "--to", "members", "--event", "deploy.failed"]);
    assert!(no_smtp.contains("--smtp-url"), "{no_smtp}");
    assert!(f.fails(&["notify", "add", "app", "--kind", "sms", "--event", "deploy.failed"]).contains("'sms'"));
    let no_url = f.fails(&["notify", "add", "app", "--kind", "wecom", "--event", "deploy.failed"]);
    assert!(no_url.contains("--url"), "{no_url}");
    let to = f.fails(&[
        "notify",
        "add",
        "app",
        "--kind",
        "slack",
        "--event",
        "deploy.failed",
        "--url",
        &slack_url,
        "--to",
        "members",
    ]);
    assert!(to.contains("--to is for e-mail rules"), "{to}");
    assert_eq!(f.json(&["notify", "list", "app"]).as_array().unwrap().len(), 2);
    assert!(f.ok(&["notify", "list", "app"]).contains("dingtalk"));

    f.ok(&["env", "create", "app", "staging", "--select", "role=db"]);
    let changed: Value = serde_json::from_str(&slack.recv_timeout(Duration::from_secs(20)).unwrap().body).unwrap();
    let text = changed["text"].as_str().unwrap();
    assert!(text.starts_with("[ferry] app: environment 'staging' created"), "{changed}");
    assert!(f.cli_stdin(&["user", "create", "zed", "--password-stdin"], "a long password\n").status.success());
    f.ok(&["member", "add", "app", "zed", "viewer"]);
    let changed: Value = serde_json::from_str(&slack.recv_timeout(Duration::from_secs(20)).unwrap().body).unwrap();
    let text = changed["text"].as_str().unwrap();
    assert!(text.starts_with("[ferry] app: zed is a viewer of the project now (set by admin)"), "{changed}");

    f.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);
    let started: Value = serde_json::from_str(&slack.recv_timeout(Duration::from_secs(20)).unwrap().body).unwrap();
    assert_eq!(started.as_object().unwrap().len(), 1, "Slack's format is {{\"text\": ...}}: {started}");
    let text = started["text"].as_str().unwrap();
    assert!(text.starts_with("[ferry] app: deploy of v1 to prod started (deployment "), "{text}");
    assert!(text.contains("\nEnvironment: prod\n"), "{text}");

    let first = ding.recv_timeout(Duration::from_secs(20)).expect("a first attempt");
    let second = ding.recv_timeout(Duration::from_secs(20)).expect("a retry after the refusal in the body");
    assert_eq!(first.body, second.body);
    let body: Value = serde_json::from_str(&second.body).unwrap();
    assert_eq!(body["msgtype"], "text", "{body}");
    let content = body["text"]["content"].as_str().unwrap();
    assert!(content.starts_with("[ferry] app: deploy of v1 to prod succeeded"), "{content}");
    assert_eq!(second.header("x-ferry-signature"), None, "chats are not signed");

    wait_until(Duration::from_secs(10), "the DingTalk notification delivered", || {
        f.json(&["notifications", "log", "app"])
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["kind"] == "dingtalk" && n["status"] == "delivered")
    });
    let log = f.json(&["notifications", "log", "app"]);
    let n = log.as_array().unwrap().iter().find(|n| n["kind"] == "dingtalk").unwrap();
    let err = n["attempts"][0]["error"].as_str().unwrap();
    assert!(err.contains("errcode 310000 keywords not in content"), "{log}");
    assert!(f.ok(&["notifications", "log", "app"]).contains("dingtalk"));
    let _ = &mut f;
}

/// A real SMTP server: aiosmtpd (the maintained successor of Python's
/// `smtpd`, which Python 3.12 removed) on a loopback port the OS picks. It
/// prints that port, then one JSON line per message it takes. Killed (by its
/// pid) when dropped; it also ends when its standard input closes, so a test
/// that dies without dropping it leaves nothing behind.
struct Smtpd {
    child: Child,
    port: u16,
    messages: mpsc::Receiver<Mail>,
}

impl Drop for Smtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The SMTP sink: aiosmtpd's protocol handler on an asyncio server (its
/// Controller cannot listen on port 0 in every version).
const SMTP_SINK: &str = r#"
import asyncio, email, json, os, re, ssl, sys, threading
from aiosmtpd.smtp import SMTP

class Sink:
    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content or envelope.content)
        headers = [[k, re.sub(r"\r?\n[ \t]+", " ", str(v)).strip()] for k, v in msg.items()]
        body = (msg.get_payload(decode=True) or b"").decode("utf-8", "replace")
        print(json.dumps({"headers": headers, "body": body}), flush=True)
        return "250 OK"

def end_with_stdin():
    sys.stdin.read()
    os._exit(0)

async def main():
    threading.Thread(target=end_with_stdin, daemon=True).start()
    tls = None
    if len(sys.argv) == 3:
        # TLS from the first byte (smtps), with this certificate and key.
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(sys.argv[1], sys.argv[2])
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Sink(), hostname="localhost"), "127.0.0.1", 0, ssl=tls)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
"#;

/// A message as the SMTP server took it: headers unfolded, and the body.
#[derive(Debug)]
struct Mail {
    headers: Vec<(String, String)>,
    body: String,
}

impl Mail {
    fn header(&self, name: &str) -> &str {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map_or("", |(_, v)| v.as_str())
    }

    fn to(&self) -> BTreeSet<String> {
        self.header("to").split(',').map(|a| a.trim().to_string()).filter(|a| !a.is_empty()).collect()
    }
}

/// A Python with aiosmtpd: `python3` on the PATH, else the system's (Debian
/// packages it as python3-aiosmtpd, for /usr/bin/python3). Without one the
/// e-mail tests are skipped loudly, unless FERRY_TEST_SMTP says they must run.
fn smtp_python() -> Option<&'static str> {
    let found = ["python3", "/usr/bin/python3"].into_iter().find(|python| {
        Command::new(python)
            .args(["-c", "import aiosmtpd.smtp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if found.is_none() {
        assert!(std::env::var_os("FERRY_TEST_SMTP").is_none(), "FERRY_TEST_SMTP is set but no python3 has aiosmtpd");
        eprintln!("!!!!! SKIPPED: python3 with aiosmtpd is missing; the e-mail test did not run !!!!!");
    }
    found
}

/// Starts the SMTP sink and waits for the port it listens on.
fn start_smtpd(python: &str) -> Smtpd {
    start_smtpd_with(python, &[])
}

/// The SMTP sink with more arguments: a certificate and its key make it
/// speak TLS from the first byte (smtps).
fn start_smtpd_with(python: &str, args: &[&std::path::Path]) -> Smtpd {
    let mut child = Command::new(python)
        .args(["-u", "-c", SMTP_SINK])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the aiosmtpd sink");
    let stdout = child.stdout.take().unwrap();
    let (port_tx, port_rx) = mpsc::channel();
    let (tx, messages) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let port = lines.next().and_then(Result::ok).and_then(|l| l.trim().parse::<u16>().ok());
        let _ = port_tx.send(port);
        for line in lines {
            let Ok(line) = line else { return };
            let Ok(mail) = serde_json::from_str::<Value>(&line) else { continue };
            let headers = mail["headers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|h| Some((h[0].as_str()?.to_string(), h[1].as_str()?.to_string())))
                .collect();
            let body = mail["body"].as_str().unwrap_or_default().to_string();
            if tx.send(Mail { headers, body }).is_err() {
                return;
            }
        }
    });
    let port = port_rx.recv_timeout(Duration::from_secs(20)).ok().flatten();
    let Some(port) = port else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the aiosmtpd sink did not say its port");
    };
    Smtpd { child, port, messages }
}

/// The next mail whose subject contains `what`, others put aside.
fn mail_about(smtpd: &Smtpd, seen: &mut Vec<Mail>, what: &str) -> Mail {
    if let Some(i) = seen.iter().position(|m| m.header("subject").contains(what)) {
        return seen.remove(i);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let m = smtpd.messages.recv_timeout(left).unwrap_or_else(|_| panic!("no mail about '{what}'; got {seen:#?}"));
        if m.header("subject").contains(what) {
            return m;
        }
        seen.push(m);
    }
}

fn set(addrs: &[&str]) -> BTreeSet<String> {
    addrs.iter().map(|a| a.to_string()).collect()
}

#[test]
fn e_mail_reaches_the_members_and_an_emergency_rollback_the_whole_project() {
    let Some(python) = smtp_python() else { return };
    let smtpd = start_smtpd(python);
    let smtp_url = format!("smtp://127.0.0.1:{}", smtpd.port);
    let mut f = Ferry::start_with(&["--smtp-url", &smtp_url, "--smtp-from", "ferry@example.com"]);
    f.start_agents(&["web-1"], "role=web");
    f.project_app();
    f.upload("app", "v1");
    f.upload("app", "v2");
    for (name, email) in [("alice", Some("alice@example.com")), ("bob", Some("bob@example.com")), ("carol", None)] {
        let mut args = vec!["user", "create", name, "--password-stdin"];
        if let Some(e) = email {
            args.extend(["--email", e]);
        }
        let out = f.cli_stdin(&args, "a long password\n");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    // dave has an address but is no member: members never reach him.
    let out =
        f.cli_stdin(&["user", "create", "dave", "--password-stdin", "--email", "dave@example.com"], "pw-pw-pw-pw\n");
    assert!(out.status.success());
    f.ok(&["member", "add", "app", "alice", "owner"]);
    f.ok(&["member", "add", "app", "bob", "developer"]);
    f.ok(&["member", "add", "app", "carol", "viewer"]);

    // Bad addresses are refused, naming them, and change nothing.
    let bad = f.fails(&["user", "set", "bob", "--email", "bob at example.com"]);
    assert!(bad.contains("'bob at example.com' is not an e-mail address"), "{bad}");
    assert_eq!(
        f.json(&["user", "list"]).as_array().unwrap().iter().find(|u| u["name"] == "bob").unwrap()["email"],
        "bob@example.com"
    );
    let bad =
        f.fails(&["notify", "add", "app", "--kind", "email", "--to", "members,nobody", "--event", "deploy.finished"]);
    assert!(bad.contains("'nobody' is not an e-mail address"), "{bad}");
    assert!(f.fails(&["notify", "add", "app", "--kind", "email", "--event", "deploy.finished"]).contains("--to"));
    assert_eq!(f.json(&["notify", "list", "app"]), serde_json::json!([]));

    let members = f.json(&["notify", "add", "app", "--kind", "email", "--to", "members", "--event", "deploy.finished"]);
    assert_eq!((members["kind"].as_str(), members["to"][0].as_str()), (Some("email"), Some("members")));
    f.ok(&["notify", "add", "app", "--kind", "email", "--to", "starter,ops@example.com", "--event", "deploy.started"]);
    let listed = f.ok(&["notify", "list", "app"]);
    assert!(listed.contains("email") && listed.contains("starter,ops@example.com"), "{listed}");
    // A chat that asked only for rollbacks hears of the rollback, not of the emergency.
    let (chat_url, chat) = receiver_answering(Vec::new());
    f.ok(&["notify", "add", "app", "--kind", "wecom", "--event", "deploy.rolled_back", "--url", &chat_url]);

    // The administrator starts the deploy, with no address yet: the starter
    // rule reaches only ops, and the log says whom it skipped.
    f.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);
    let mut seen = Vec::new();
    let started = mail_about(&smtpd, &mut seen, "deploy of v1 to prod started");
    assert_eq!(started.to(), set(&["ops@example.com"]));
    assert!(started.header("from").contains("ferry@example.com"), "{started:?}");
    let finished = mail_about(&smtpd, &mut seen, "deploy of v1 to prod succeeded");
    assert_eq!(finished.to(), set(&["alice@example.com", "bob@example.com"]), "members with an address");
    assert!(finished.header("subject").starts_with("[ferry] app: "), "{finished:?}");
    assert!(finished.body.contains("Environment: prod"), "{finished:?}");

    wait_until(Duration::from_secs(10), "both mails logged as delivered", || {
        let log = f.json(&["notifications", "log", "app"]);
        log.as_array().unwrap().iter().filter(|n| n["status"] == "delivered").count() == 2
    });
    let log = f.json(&["notifications", "log", "app"]);
    let fin = log.as_array().unwrap().iter().find(|n| n["event"] == "deploy.finished").unwrap();
    assert_eq!(fin["kind"], "email");
    assert_eq!(fin["recipients"], serde_json::json!(["alice@example.com", "bob@example.com"]), "{log}");
    assert_eq!(fin["skipped"], serde_json::json!(["carol (no e-mail address)"]), "{log}");
    let start = log.as_array().unwrap().iter().find(|n| n["event"] == "deploy.started").unwrap();
    assert_eq!(start["skipped"], serde_json::json!(["admin (no e-mail address)"]), "{log}");
    let text = f.ok(&["notifications", "log", "app"]);
    assert!(text.contains("alice@example.com, bob@example.com") && text.contains("skipped: carol"), "{text}");

    // With an address, the starter hears of their own deploy.
    f.ok(&["user", "set", "admin", "--email", "root@example.com"]);
    f.ok(&["deploy", "app", "prod", "--version", "v2", "--wait"]);
    let started = mail_about(&smtpd, &mut seen, "deploy of v2 to prod started");
    assert_eq!(started.to(), set(&["root@example.com", "ops@example.com"]));

    // An emergency rollback reaches every member, through every e-mail rule,
    // though neither asked for it; and each address once.
    f.ok(&["rollback", "app", "prod", "--emergency", "--wait"]);
    let first = mail_about(&smtpd, &mut seen, "EMERGENCY ROLLBACK");
    let second = mail_about(&smtpd, &mut seen, "EMERGENCY ROLLBACK");
    assert_eq!(first.header("subject"), "[ferry] EMERGENCY ROLLBACK of app in prod to v1 (deployment 3)");
    let mut everyone: Vec<String> = first.to().into_iter().chain(second.to()).collect();
    everyone.sort();
    assert_eq!(everyone, ["alice@example.com", "bob@example.com", "ops@example.com"], "{first:?} {second:?}");
    let log = f.json(&["notifications", "log", "app"]);
    let emergency: Vec<&Value> =
        log.as_array().unwrap().iter().filter(|n| n["event"] == "rollback.emergency").collect();
    assert_eq!(emergency.len(), 2, "{log}");
    assert!(emergency.iter().all(|n| n["kind"] == "email"), "{log}");
    let rolled_back: Value = serde_json::from_str(&chat.recv_timeout(Duration::from_secs(20)).unwrap().body).unwrap();
    let content = rolled_back["text"]["content"].as_str().unwrap();
    assert!(content.starts_with("[ferry] app: prod rolled back to v1 (deployment 3)"), "{rolled_back}");
    assert!(chat.recv_timeout(Duration::from_millis(1000)).is_err(), "one message: the rollback");
    let _ = &mut f;
}

#[test]
fn a_request_waiting_for_approval_mails_the_approvers_and_its_approval_the_requester() {
    let Some(python) = smtp_python() else { return };
    let smtpd = start_smtpd(python);
    let smtp_url = format!("smtp://127.0.0.1:{}", smtpd.port);
    let mut f = Ferry::start_with(&["--smtp-url", &smtp_url, "--smtp-from", "ferry@example.com"]);
    f.start_agents(&["web-1"], "role=web");
    f.ok(&["project", "create", "app"]);
    f.ok(&["env", "create", "app", "prod", "--select", "role=web", "--production", "--require-approval"]);
    f.upload("app", "v1");
    // Approvers: the owner and the developer with the production right.
    let people =
        [("olga", "owner", &[][..]), ("pete", "developer", &["--production"][..]), ("dana", "developer", &[][..])];
    for (name, role, flags) in people {
        let person = f.person(name, flags);
        f.ok(&["user", "set", person.name, "--email", &format!("{name}@example.com")]);
        f.ok(&["member", "add", "app", name, role]);
    }
    let events = "request.approval_needed,request.approved";
    f.ok(&["notify", "add", "app", "--kind", "email", "--to", "approvers", "--event", "request.approval_needed"]);
    f.ok(&["notify", "add", "app", "--kind", "email", "--to", "starter", "--event", events]);

    let dana = crate::harness::Person::new(&f, "dana");
    dana.ok(&["request", "create", "app", "prod", "--version", "v1", "--reason", "first release"]);
    let mut seen = Vec::new();
    let waiting = mail_about(&smtpd, &mut seen, "needs approval");
    let waiting_too = mail_about(&smtpd, &mut seen, "needs approval");
    let mut addressed: BTreeSet<String> = waiting.to();
    addressed.extend(waiting_too.to());
    assert_eq!(addressed, set(&["olga@example.com", "pete@example.com", "dana@example.com"]));
    assert!(waiting.header("subject").contains("release request 1 (v1 to prod)"), "{waiting:?}");

    let pete = crate::harness::Person::new(&f, "pete");
    pete.ok(&["request", "approve", "1"]);
    let approved = mail_about(&smtpd, &mut seen, "approved by pete");
    assert_eq!(approved.to(), set(&["dana@example.com"]));
}

/// A server this test started with an environment of its own; killed when dropped.
struct OwnServer {
    child: Child,
    log: std::path::PathBuf,
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- {} ---\n{}", self.log.display(), std::fs::read_to_string(&self.log).unwrap_or_default());
        }
    }
}

#[test]
fn mail_over_tls_trusts_a_ca_from_the_system_store() {
    let Some(python) = smtp_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let issued = crate::tls::ca_signed(dir.path(), "mail");
    let smtpd = start_smtpd_with(python, &[&issued.cert, &issued.key]);
    // The server trusts the mail server's CA only through SSL_CERT_FILE,
    // read as the system's CA store: no option names it.
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(crate::harness::FERRY)
        .args(["server", "--data", data.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .args(["--smtp-url", &format!("smtps://127.0.0.1:{}", smtpd.port), "--smtp-from", "ferry@example.com"])
        .env("FERRY_LOG", "info,sqlx=warn")
        .env("SSL_CERT_FILE", &issued.ca)
        .env_remove("SSL_CERT_DIR")
        .env_remove("FERRY_TLS_CERT")
        .env_remove("FERRY_TLS_KEY")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let _server = OwnServer { child, log };
    let url_file = data.join("server.url");
    wait_until(Duration::from_secs(20), "server.url", || url_file.exists());
    let url = std::fs::read_to_string(&url_file).unwrap().trim().to_string();
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap().trim().to_string();
    let cli = |args: &[&str]| {
        let out = Command::new(crate::harness::FERRY)
            .args(args)
            .env("FERRY_SERVER", &url)
            .env("FERRY_TOKEN", &token)
            .env_remove("FERRY_CA_CERT")
            .output()
            .unwrap();
        assert!(out.status.success(), "ferry {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    cli(&["project", "create", "app"]);
    cli(&["notify", "add", "app", "--kind", "email", "--to", "ops@example.com", "--event", "project.changed"]);
    cli(&["env", "create", "app", "staging", "--select", "role=web"]);
    let mut seen = Vec::new();
    let mail = mail_about(&smtpd, &mut seen, "app");
    assert_eq!(mail.to(), set(&["ops@example.com"]), "{mail:?}");
    assert!(mail.body.contains("staging"), "{mail:?}");
}
