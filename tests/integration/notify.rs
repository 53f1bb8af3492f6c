//! R28: a deployment's end reaches a webhook as a signed JSON POST, retried
//! until the receiver takes it, with every attempt in the log.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use hmac::{KeyInit, Mac};
use serde_json::Value;

use crate::harness::Ferry;

/// A request the receiver got: its headers (lowercase names) and body.
struct Received {
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A receiver on loopback that answers 500 to its first request and 200 to
/// the rest, sending each request down the channel.
fn receiver() -> (String, mpsc::Receiver<Received>) {
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
            let status = if n == 0 { "500 Internal Server Error" } else { "200 OK" };
            let _ = stream
                .write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes());
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
