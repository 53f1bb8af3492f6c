//! `/metrics`, `/healthz` and `/readyz`: the one place where the server's
//! Prometheus series are registered and rendered, and where readiness is
//! decided.
//!
//! Events are counted where they happen (a deployment created or ended, a
//! build ended, a notification attempted, an HTTP request answered) through
//! the methods of [`Metrics`]; what is a state rather than an event (hosts
//! online, agents connected, the build queue, the database pool) is read at
//! scrape time. Labels only ever carry values from small fixed sets (kinds,
//! outcomes, channel kinds, route templates, status codes): never a project,
//! host or user name, which would leak them and grow without bound.
//!
//! Counting never waits: a series is an atomic behind a short, synchronous
//! lock of its family, never held across an `.await`.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ferry_domain::access::{Action, allowed};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::AppState;
use crate::error::AppError;

/// One series' labels: fixed names, values from small fixed sets.
type Labels = Vec<(&'static str, String)>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// The content type of the OpenMetrics text format that Prometheus scrapes.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Durations of requests: 1 ms to about 30 s.
fn request_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Durations of rollouts, hosts' installs and builds: 0.1 s to about 55 min.
fn long_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.1, 2.0, 16))
}

/// Every series the server exports.
pub struct Metrics {
    registry: Registry,
    deployments_started: Family<Labels, Counter>,
    deployments_ended: Family<Labels, Counter>,
    rollout_seconds: Histograms,
    host_seconds: Histograms,
    hosts: Family<Labels, Gauge>,
    agents_connected: Gauge,
    build_queue: Gauge,
    builds_ended: Family<Labels, Counter>,
    build_seconds: Histograms,
    notification_deliveries: Family<Labels, Counter>,
    notification_failures: Family<Labels, Counter>,
    http_requests: Family<Labels, Counter>,
    http_seconds: Histograms,
    db_connections: Family<Labels, Gauge>,
    db_connections_max: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every series (names are final: the Grafana dashboard in
    /// `packaging/` queries them, and a test keeps the two in step).
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            deployments_started: Family::default(),
            deployments_ended: Family::default(),
            rollout_seconds: Family::new_with_constructor(long_histogram),
            host_seconds: Family::new_with_constructor(long_histogram),
            hosts: Family::default(),
            agents_connected: Gauge::default(),
            build_queue: Gauge::default(),
            builds_ended: Family::default(),
            build_seconds: Family::new_with_constructor(long_histogram),
            notification_deliveries: Family::default(),
            notification_failures: Family::default(),
            http_requests: Family::default(),
            http_seconds: Family::new_with_constructor(request_histogram),
            db_connections: Family::default(),
            db_connections_max: Gauge::default(),
            registry: Registry::default(),
        };
        // Counters are rendered with `_total` after these names.
        let r = &mut registry;
        r.register("ferry_deployments_started", "Deployments created, by kind", m.deployments_started.clone());
        r.register("ferry_deployments_ended", "Deployments ended, by kind and outcome", m.deployments_ended.clone());
        r.register(
            "ferry_rollout_duration_seconds",
            "How long deployments ran, from creation to end, by kind and outcome",
            m.rollout_seconds.clone(),
        );
        r.register(
            "ferry_host_deploy_duration_seconds",
            "How long one host of a deployment took, from its start to its end, by outcome",
            m.host_seconds.clone(),
        );
        r.register("ferry_hosts", "Enrolled hosts, by state (online, offline)", m.hosts.clone());
        r.register("ferry_agents_connected", "Agents connected to this server process", m.agents_connected.clone());
        r.register("ferry_build_queue_length", "Builds waiting to start", m.build_queue.clone());
        r.register("ferry_builds_ended", "Builds ended, by outcome", m.builds_ended.clone());
        r.register("ferry_build_duration_seconds", "How long builds ran, by outcome", m.build_seconds.clone());
        r.register(
            "ferry_notification_deliveries",
            "Notifications delivered, by channel kind",
            m.notification_deliveries.clone(),
        );
        r.register(
            "ferry_notification_failures",
            "Notification delivery attempts that failed, by channel kind",
            m.notification_failures.clone(),
        );
        r.register(
            "ferry_http_requests",
            "HTTP requests answered, by method, route template and status",
            m.http_requests.clone(),
        );
        r.register(
            "ferry_http_request_duration_seconds",
            "How long HTTP requests took to answer (until the response started), by method and route template",
            m.http_seconds.clone(),
        );
        r.register(
            "ferry_db_connections",
            "Database pool connections, by state (in_use, idle)",
            m.db_connections.clone(),
        );
        r.register("ferry_db_connections_max", "Database pool connections at most", m.db_connections_max.clone());
        m.start_at_zero();
        Metrics { registry, ..m }
    }

    /// Creates every series of the fixed label sets at zero, so that they
    /// are in the first scrape (a rate over a series that appears only with
    /// its first event misses that event) and a dashboard finds them all.
    fn start_at_zero(&self) {
        use ferry_domain::notify::Channel;
        use ferry_domain::{BuildStatus, DeploymentKind, DeploymentStatus, HostDeployState};
        let ends = [
            DeploymentStatus::Succeeded,
            DeploymentStatus::Failed,
            DeploymentStatus::RolledBack,
            DeploymentStatus::Canceled,
        ];
        for kind in [DeploymentKind::Deploy, DeploymentKind::Rollback] {
            drop(self.deployments_started.get_or_create(&vec![("kind", kind.as_str().to_string())]));
            for end in ends {
                let labels = vec![("kind", kind.as_str().to_string()), ("outcome", end.as_str().to_string())];
                drop(self.deployments_ended.get_or_create(&labels));
                drop(self.rollout_seconds.get_or_create(&labels));
            }
        }
        for end in [
            HostDeployState::Succeeded,
            HostDeployState::Failed,
            HostDeployState::RolledBack,
            HostDeployState::Canceled,
        ] {
            drop(self.host_seconds.get_or_create(&vec![("outcome", end.as_str().to_string())]));
        }
        for end in [BuildStatus::Succeeded, BuildStatus::Failed, BuildStatus::Canceled] {
            let labels = vec![("outcome", end.as_str().to_string())];
            drop(self.builds_ended.get_or_create(&labels));
            drop(self.build_seconds.get_or_create(&labels));
        }
        let channels =
            [Channel::Webhook, Channel::Email, Channel::Slack, Channel::DingTalk, Channel::Feishu, Channel::WeCom];
        for channel in channels {
            let labels = vec![("channel", channel.to_string())];
            drop(self.notification_deliveries.get_or_create(&labels));
            drop(self.notification_failures.get_or_create(&labels));
        }
    }

    /// A deployment (`deploy` or `rollback`) was created.
    pub fn deployment_started(&self, kind: &str) {
        self.deployments_started.get_or_create(&vec![("kind", kind.to_string())]).inc();
    }

    /// A deployment ended: its outcome, how long it ran, and how long each
    /// of its hosts took (`(outcome, seconds)`, for the hosts that started).
    pub fn deployment_ended(&self, kind: &str, outcome: &str, seconds: f64, hosts: &[(&str, f64)]) {
        let labels = vec![("kind", kind.to_string()), ("outcome", outcome.to_string())];
        self.deployments_ended.get_or_create(&labels).inc();
        self.rollout_seconds.get_or_create(&labels).observe(seconds);
        for (outcome, seconds) in hosts {
            self.host_seconds.get_or_create(&vec![("outcome", outcome.to_string())]).observe(*seconds);
        }
    }

    /// A build ended with `outcome` after `took`.
    pub fn build_ended(&self, outcome: &str, took: Duration) {
        let labels = vec![("outcome", outcome.to_string())];
        self.builds_ended.get_or_create(&labels).inc();
        self.build_seconds.get_or_create(&labels).observe(took.as_secs_f64());
    }

    /// A notification delivery attempt over `channel` (its kind) ended.
    pub fn notification_attempted(&self, channel: &str, delivered: bool) {
        let family = if delivered { &self.notification_deliveries } else { &self.notification_failures };
        family.get_or_create(&vec![("channel", channel.to_string())]).inc();
    }

    fn http_answered(&self, method: &str, route: &str, status: u16, took: Duration) {
        let (method, route) = (("method", method.to_string()), ("route", route.to_string()));
        self.http_seconds.get_or_create(&vec![method.clone(), route.clone()]).observe(took.as_secs_f64());
        self.http_requests.get_or_create(&vec![method, route, ("status", status.to_string())]).inc();
    }

    /// Reads what is a state, not an event, and renders every series.
    async fn render(&self, state: &AppState) -> Result<String, AppError> {
        let hosts = state.db.hosts().await?;
        let online = hosts.iter().filter(|h| h.online).count();
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.hosts.get_or_create(&vec![("state", "online".into())]).set(gauge(online));
        self.hosts.get_or_create(&vec![("state", "offline".into())]).set(gauge(hosts.len() - online));
        self.agents_connected.set(gauge(state.hub.connected()));
        let queued = state.db.queued_build_count().await?;
        self.build_queue.set(i64::try_from(queued).unwrap_or(i64::MAX));
        if let Some(pool) = state.db.pool_use() {
            self.db_connections.get_or_create(&vec![("state", "in_use".into())]).set(pool.in_use.into());
            self.db_connections.get_or_create(&vec![("state", "idle".into())]).set(pool.idle.into());
            self.db_connections_max.set(pool.max.into());
        }
        let mut out = String::new();
        encode(&mut out, &self.registry).map_err(|e| AppError::Internal(format!("rendering metrics: {e}")))?;
        Ok(out)
    }
}

/// The HTTP layer: counts every answered request by its method, route
/// template (never the raw path, which is unbounded) and status. Requests that
/// matched no route are counted as `unmatched`.
pub async fn track_http(State(metrics): State<std::sync::Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string());
    let method = method_label(req.method());
    let started = Instant::now();
    let response = next.run(req).await;
    let route = route.as_deref().unwrap_or("unmatched");
    metrics.http_answered(method, route, response.status().as_u16(), started.elapsed());
    response
}

/// A request's method as a label: anyone may send any method name, so only
/// the standard ones are told apart (one series per invented name would
/// grow without bound).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// `GET /metrics`: for the metrics token (`--metrics-token`) or an
/// administrator's token, as `Authorization: Bearer ...`; anyone else gets
/// 401 and nothing else.
pub async fn scrape(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(e) = may_scrape(&state, &headers).await {
        return e.into_response();
    }
    match state.metrics.render(&state).await {
        Ok(body) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn may_scrape(state: &AppState, headers: &HeaderMap) -> Result<(), AppError> {
    if let Some(expected) = &state.config.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if bool::from(subtle::ConstantTimeEq::ct_eq(given.as_bytes(), expected.as_bytes())) {
            return Ok(());
        }
    }
    let refused = || AppError::Unauthorized("/metrics needs the metrics token or an administrator's token".into());
    let user = crate::auth::user_from_headers(state, headers).await.map_err(|_| refused())?;
    // The administrators' right: they may read everything the series count.
    allowed(&user.subject(), None, Action::ManageUsers, false).map_err(|_| refused())
}

/// `GET /healthz`: the process serves requests.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: 200 when the database answers a query and the artifact
/// store takes a write; 503 naming (only) which of the two is not ready.
/// The reasons go to the server's log, not to the anonymous caller.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let mut failing = Vec::new();
    if let Err(e) = state.db.ping().await {
        tracing::warn!("not ready: the database does not answer: {e}");
        failing.push("database");
    }
    if let Err(e) = state.artifacts.check_ready().await {
        tracing::warn!("not ready: the artifact store cannot be written: {e}");
        failing.push("artifact_store");
    }
    if failing.is_empty() {
        return Json(serde_json::json!({ "ready": true })).into_response();
    }
    (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "ready": false, "failing": failing }))).into_response()
}
