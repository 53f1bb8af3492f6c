//! Running Ferry like a product: `/metrics` scraped and parsed as
//! Prometheus would, moved by exactly what a deployment did; who may read
//! it; `/healthz` and `/readyz` (503 while the artifact store is gone);
//! notifications linking to their page under `--public-url`; and the sample
//! Grafana dashboard querying only series the server exports.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{FERRY, Ferry, wait_until};
use crate::notify::receiver_answering;

const METRICS_TOKEN: &str = "scrape-token-0123456789";

/// A GET of `path` with an optional bearer token: status and body.
fn get(url: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut req = reqwest::Client::new().get(format!("{url}{path}")).timeout(Duration::from_secs(10));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    })
}

/// A request of any method: its status.
fn request(url: &str, method: &str, path: &str) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    rt.block_on(async {
        reqwest::Client::new().request(method, format!("{url}{path}")).send().await.unwrap().status().as_u16()
    })
}

/// A scrape as Prometheus reads it: the metric families it declares and
/// every sample (name, labels, value).
struct Scrape {
    families: Vec<String>,
    samples: Vec<(String, HashMap<String, String>, f64)>,
}

/// Parses with the Prometheus project's own OpenMetrics parser (Python's
/// `prometheus_client`), which refuses anything malformed.
const PARSER: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
families, samples = [], []
for fam in text_string_to_metric_families(sys.stdin.read()):
    families.append(fam.name)
    samples += [[s.name, s.labels, s.value] for s in fam.samples]
print(json.dumps({"families": families, "samples": samples}))
"#;

fn parse(text: &str) -> Scrape {
    let mut child = Command::new("python3")
        .args(["-c", PARSER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (with prometheus_client, see .ci/run)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the scrape does not parse: {}\n{text}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let families = v["families"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_string()).collect();
    let samples = v["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let labels = s[1].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()));
            (s[0].as_str().unwrap().to_string(), labels.collect(), s[2].as_f64().unwrap())
        })
        .collect();
    Scrape { families, samples }
}

/// `/metrics`, parsed, and its text.
fn scrape(f: &Ferry) -> (Scrape, String) {
    let (status, body) = get(&f.url, "/metrics", Some(METRICS_TOKEN));
    assert_eq!(status, 200, "{body}");
    (parse(&body), body)
}

/// The value of the sample `name` whose labels include `labels`; 0 if the
/// series does not exist yet (a counter that never moved).
fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .find(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
        .map_or(0.0, |(_, _, v)| *v)
}

#[test]
fn a_deploy_moves_the_series_by_exactly_what_it_did_and_its_notification_links_to_its_page() {
    let mut f = Ferry::start_with(&["--metrics-token", METRICS_TOKEN, "--public-url", "https://ferry.example/base/"]);
    f.start_agents(&["web-1", "web-2"], "role=web");
    f.project_app();
    f.upload("app", "v1");
    let (hook, received) = receiver_answering(Vec::new());
    f.ok(&["notify", "add", "app", "--event", "deploy.finished", "--webhook", &hook]);

    // Who may read it: the metrics token or an administrator, nobody else.
    assert_eq!(get(&f.url, "/metrics", None).0, 401);
    assert_eq!(get(&f.url, "/metrics", Some("scrape-token-wrong-guess")).0, 401);
    assert_eq!(get(&f.url, "/metrics", Some(&f.token)).0, 200, "an administrator's token");
    let dev = f.person("dev", &[]);
    let dev_token = dev.ok(&["token", "create", "scraper"]).trim().to_string();
    let (status, body) = get(&f.url, "/metrics", Some(&dev_token));
    assert_eq!(status, 401, "a user who is not an administrator: {body}");
    assert!(!body.contains("ferry_"), "{body}");

    let (before, _) = scrape(&f);
    assert_eq!(value(&before, "ferry_agents_connected", &[]), 2.0, "the agents started");
    assert_eq!(value(&before, "ferry_hosts", &[("state", "online")]), 2.0);
    assert_eq!(value(&before, "ferry_hosts", &[("state", "offline")]), 0.0);
    assert_eq!(value(&before, "ferry_db_connections_max", &[]), 8.0);

    f.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);
    let id = f.json(&["deployments", "app"])[0]["id"].as_i64().unwrap();
    // What anyone may send: an invented method, a path no route has.
    assert_eq!(request(&f.url, "INVENTED", "/healthz"), 405);
    assert_eq!(request(&f.url, "GET", "/no/such/page-4242"), 404);
    let (after, text) = scrape(&f);
    let moved = |name: &str, labels: &[(&str, &str)]| value(&after, name, labels) - value(&before, name, labels);
    assert_eq!(moved("ferry_deployments_started_total", &[("kind", "deploy")]), 1.0, "{text}");
    let ended = [("kind", "deploy"), ("outcome", "succeeded")];
    assert_eq!(moved("ferry_deployments_ended_total", &ended), 1.0, "{text}");
    assert_eq!(moved("ferry_deployments_ended_total", &[("kind", "deploy"), ("outcome", "failed")]), 0.0);
    assert_eq!(moved("ferry_rollout_duration_seconds_count", &ended), 1.0, "{text}");
    let host = [("outcome", "succeeded")];
    assert_eq!(moved("ferry_host_deploy_duration_seconds_count", &host), 2.0, "one per host: {text}");
    assert!(value(&after, "ferry_host_deploy_duration_seconds_sum", &host) > 0.0, "{text}");

    // HTTP requests by route template and status, never by raw path.
    let template = [("method", "POST"), ("route", "/api/v1/projects/{project}/deployments")];
    assert!(moved("ferry_http_requests_total", &template) >= 1.0, "{text}");
    assert!(value(&after, "ferry_http_request_duration_seconds_count", &template) >= 1.0, "{text}");
    for (_, labels, _) in &after.samples {
        let route = labels.get("route").map_or("", String::as_str);
        assert!(!route.contains("/app") && !route.contains("4242"), "a raw path in a label: {route}");
        assert_ne!(labels.get("method").map(String::as_str), Some("INVENTED"), "{labels:?}");
    }
    assert!(value(&after, "ferry_http_requests_total", &[("method", "other"), ("route", "/healthz")]) >= 1.0, "{text}");
    assert!(value(&after, "ferry_http_requests_total", &[("route", "unmatched"), ("status", "404")]) >= 1.0, "{text}");
    // No project, host or user name in any label.
    for (sample, labels, _) in &after.samples {
        for name in ["app", "web-1", "web-2", "dev", "admin"] {
            assert!(!labels.values().any(|v| v == name), "{name} in a label of {sample}: {labels:?}");
        }
    }

    // The notification links to the deployment's page under --public-url.
    let posted = received.recv_timeout(Duration::from_secs(20)).expect("the deploy.finished webhook");
    let payload: serde_json::Value = serde_json::from_str(&posted.body).unwrap();
    assert_eq!(payload["data"]["url"], format!("https://ferry.example/base/deployments/{id}"), "{payload}");
    wait_until(Duration::from_secs(10), "the delivery to be counted", || {
        value(&scrape(&f).0, "ferry_notification_deliveries_total", &[("channel", "webhook")]) == 1.0
    });

    // The sample dashboard queries only series this scrape has.
    let dashboard = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/grafana-dashboard.json"))
        .expect("packaging/grafana-dashboard.json");
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 8, "{exprs:?}");
    let exported: Vec<&str> = after.families.iter().map(String::as_str).collect();
    let mut used = 0;
    for expr in &exprs {
        for name in metric_names(expr) {
            let base =
                ["_total", "_bucket", "_count", "_sum"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(&name);
            assert!(exported.contains(&base), "the dashboard queries {name}, which /metrics does not export ({expr})");
            used += 1;
        }
    }
    assert!(used >= exprs.len(), "every query names a series");
    let _ = &mut f;
}

/// Every `expr` of the dashboard's panels, however deep.
fn collect_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v.as_str()) {
                    ("expr", Some(e)) => out.push(e.to_string()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| collect_exprs(i, out)),
        _ => {}
    }
}

/// The metric names a PromQL expression mentions (every word starting with
/// `ferry_`).
fn metric_names(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("ferry_"))
        .map(str::to_string)
        .collect()
}

#[test]
fn readyz_turns_503_naming_the_artifact_store_while_it_is_gone_and_back() {
    let f = Ferry::start();
    assert_eq!(get(&f.url, "/healthz", None), (200, "ok\n".to_string()));
    let (status, body) = get(&f.url, "/readyz", None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["ready"], true);

    // The store's directory moved away, as a lost mount would take it.
    let store = f.dir.path().join("server/artifacts");
    let away = f.dir.path().join("server/artifacts.away");
    std::fs::rename(&store, &away).unwrap();
    let (status, body) = get(&f.url, "/readyz", None);
    assert_eq!(status, 503, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["ready"], false);
    assert_eq!(answer["failing"], serde_json::json!(["artifact_store"]), "{body}");
    assert!(!body.contains(f.dir.path().to_str().unwrap()), "no path to anonymous callers: {body}");
    // Alive all the same: the process serves.
    assert_eq!(get(&f.url, "/healthz", None).0, 200);

    std::fs::rename(&away, &store).unwrap();
    let (status, body) = get(&f.url, "/readyz", None);
    assert_eq!(status, 200, "back once the store is: {body}");
}

#[test]
fn a_bad_public_url_or_a_short_metrics_token_stops_the_start_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cases: [(&[&str], &str); 4] = [
        (&["--public-url", "https://me:pw@ferry.example"], "credentials"),
        (&["--public-url", "ftp://ferry.example"], "http:// or https://"),
        (&["--public-url", "https://ferry.example/?next=/"], "query"),
        (&["--metrics-token", "short"], "at least 16 characters"),
    ];
    for (extra, says) in cases {
        let out = Command::new(FERRY)
            .args(["server", "--data", data.to_str().unwrap(), "--listen", "127.0.0.1:0"])
            .args(extra)
            .env_remove("FERRY_PUBLIC_URL")
            .env_remove("FERRY_METRICS_TOKEN")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{extra:?} started");
        assert!(stderr.contains(says), "{extra:?}: {stderr}");
        assert!(!stderr.contains("pw@"), "the password is not echoed: {stderr}");
        assert!(!data.exists(), "{extra:?} touched the data directory");
    }
}
