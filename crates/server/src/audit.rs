//! The audit trail (R27), recorded in one place: [`record`] is a layer on
//! the whole API router, so no handler can forget it.
//!
//! What it records:
//! - every request that may change something (any method but GET, HEAD and
//!   OPTIONS) under `/api/v1`, the webhook receiver and agent enrolment
//!   included;
//! - every denied attempt (401, 403), whatever the method: a bad token on a
//!   read is recorded too.
//!
//! What it leaves out, because it changes nothing or is an agent's routine
//! traffic that would drown the trail: `POST /api/v1/blobs/missing` (which
//! blobs an upload still has to send), dry runs of deployments
//! (`POST .../deployments/plan`, a read), and the agent channel's downloads
//! (`POST /api/v1/agent/blobs`); the agent WebSocket and manifest downloads
//! are reads. Reports and log lines travel inside the WebSocket and are
//! recorded as deployment state, not here.
//!
//! Secrets never reach the trail: JSON bodies are recorded with every field
//! that names a secret (`password`, `token`, `webhook_secret`, ...) and the
//! `value` of a variable set with `secret: true` replaced by `***`; other
//! bodies (blob uploads) only by their size; error messages never contain a
//! secret (see `api/vars.rs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ferry_proto::api::ErrorBody;
use ferry_store::NewAuditEntry;
use futures_util::StreamExt;
use serde_json::Value;

use crate::auth::{AGENT_TOKEN_PREFIX, USER_TOKEN_PREFIX, token_hash};
use crate::error::AppError;
use crate::{AppState, now_ms};

/// A recorded summary is cut here.
pub const SUMMARY_LIMIT: usize = 4096;
/// JSON bodies larger than this (a manifest of many files) are recorded by
/// their size only: parsing them for the trail would cost more than the
/// request.
const PARSE_LIMIT: usize = 1024 * 1024;
/// Error bodies are small; this only bounds a misbehaving one.
const ERROR_BODY_LIMIT: usize = 64 * 1024;
/// A response header holding the error message of a response whose body is
/// not an [`ErrorBody`] (the web interface's error pages).
pub const ERROR_HEADER: &str = "x-ferry-error";
/// The web interface's forms are a few fields.
pub const FORM_BODY_LIMIT: usize = 64 * 1024;
/// The API's JSON bodies: large enough for the manifest of a release with
/// hundreds of thousands of files (blob uploads stream and are not bound by
/// it). Here, beside the form limit, because this layer reads bodies up to
/// it before any handler does.
pub const JSON_BODY_LIMIT: usize = 256 * 1024 * 1024;
/// What replaces a secret.
const MASK: &str = "***";

/// Routes whose non-GET requests change nothing or are an agent's routine
/// traffic; see the module documentation.
const NOT_AUDITED: &[&str] = &[
    "/api/v1/projects/{project}/blobs/missing",
    "/api/v1/agent/blobs",
    // A dry run reads; its refusals (401, 403) are recorded as a read's are.
    "/api/v1/projects/{project}/deployments/plan",
];

/// The layer: records the request after the handler answered.
pub async fn record(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string());
    let method = req.method().clone();
    let changes = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS)
        && !route.as_deref().is_some_and(|r| NOT_AUDITED.contains(&r));
    let path = req.uri().path().to_string();
    // The web interface's static files are neither changes nor refusals.
    if path.starts_with("/static/") {
        return next.run(req).await;
    }
    let query = req.uri().query().map(str::to_string);
    let (mut parts, body) = req.into_parts();
    let object = match RawPathParams::from_request_parts(&mut parts, &()).await {
        Ok(params) => params.iter().map(|(k, v)| format!("{k}={}", one_word(v))).collect::<Vec<_>>().join(" "),
        Err(_) => String::new(),
    };
    let source = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    let headers = parts.headers.clone();

    let (body, summary) = if changes {
        match summarize(&parts.headers, body, route.as_deref()).await {
            Ok(b) => b,
            Err(e) => {
                let response = e.into_response();
                let entry =
                    Pending { route, path, method, object, source, query, summary: Summary::Text(String::new()) };
                return finish(&state, &headers, entry, response).await;
            }
        }
    } else {
        (body, Summary::Text(String::new()))
    };
    let response = next.run(Request::from_parts(parts, body)).await;
    let status = response.status();
    if !changes && status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN {
        return response;
    }
    let signs_in = matches!(route.as_deref(), Some("/login" | "/api/v1/login" | "/logout"));
    if changes && !signs_in && (status.is_success() || status.is_redirection()) {
        // Live pages show what this request may have changed.
        let project = object.split(' ').find_map(|kv| kv.strip_prefix("project=")).map(str::to_string);
        state.hub.changed(project.as_deref());
    }
    let entry = Pending { route, path, method, object, source, query, summary };
    finish(&state, &headers, entry, response).await
}

/// A request on its way to the trail.
struct Pending {
    route: Option<String>,
    path: String,
    method: Method,
    object: String,
    source: String,
    query: Option<String>,
    summary: Summary,
}

/// The summary of a body: known before the handler runs (JSON), or counted
/// while the handler reads it (an upload).
enum Summary {
    Text(String),
    Counted(Arc<AtomicU64>),
}

/// Appends the entry for `response` and hands the response back unchanged.
async fn finish(state: &AppState, headers: &HeaderMap, p: Pending, response: Response) -> Response {
    let status = response.status();
    let (response, error) = if status.is_client_error() || status.is_server_error() {
        error_message(response).await
    } else {
        (response, None)
    };
    let outcome = match error {
        Some(e) => format!("{} {e}", status.as_u16()),
        None => status.as_u16().to_string(),
    };
    let action = match &p.route {
        Some(route) => format!("{} {route}", p.method),
        // No route matched: record what was asked, bounded.
        None => format!("{} {} (no such route)", p.method, bounded(&p.path, 512)),
    };
    let mut summary = match p.summary {
        Summary::Text(t) => t,
        Summary::Counted(n) => match n.load(Ordering::Relaxed) {
            0 => String::new(),
            n => format!("{n} bytes uploaded"),
        },
    };
    if let Some(q) = &p.query {
        let q = masked_query(q);
        summary = if summary.is_empty() { format!("?{q}") } else { format!("?{q} {summary}") };
    }
    let object = with_project(state, p.route.as_deref(), p.object, &summary).await;
    // Signing in carries no token yet: the actor is the user it was for, so
    // that `ferry audit --user U` shows every attempt on U's account.
    let signing_in = match p.route.as_deref() {
        Some("/api/v1/login" | "/login") => {
            serde_json::from_str::<Value>(&summary).ok().and_then(|v| v["user"].as_str().map(one_word))
        }
        _ => None,
    };
    let actor = match signing_in {
        Some(user) => user,
        None => actor(state, headers).await,
    };
    let entry = NewAuditEntry {
        at: now_ms(),
        actor,
        source: p.source,
        action,
        object,
        outcome: bounded(&outcome, 1024),
        summary: bounded(&summary, SUMMARY_LIMIT),
    };
    if let Err(e) = state.audit.append(state.db.as_ref(), &entry).await {
        // The request has been carried out; failing its answer now would
        // only make the client retry it.
        tracing::error!(action = %entry.action, "cannot record the audit entry: {e}");
    }
    response
}

/// Records something the server did on its own (no request asked for it at
/// that moment), e.g. a deployment started because a build of a followed
/// branch succeeded. The actor is `ferry`, with whom it acted for.
pub async fn record_server_action(state: &AppState, on_behalf_of: &str, action: &str, object: &str, outcome: &str) {
    let entry = NewAuditEntry {
        at: now_ms(),
        actor: format!("ferry (for {on_behalf_of})"),
        source: "server".into(),
        action: action.into(),
        object: object.into(),
        outcome: bounded(outcome, 1024),
        summary: String::new(),
    };
    if let Err(e) = state.audit.append(state.db.as_ref(), &entry).await {
        tracing::error!(action = %entry.action, "cannot record the audit entry: {e}");
    }
}

/// Who made a request, as the trail names them: the user of a user token,
/// `agent:HOST` for an agent credential, `invalid token` for one that
/// resolves to no one, `anonymous` without one. Kept to this one function so
/// that new kinds of identity are named here.
pub async fn actor(state: &AppState, headers: &HeaderMap) -> String {
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
    else {
        // A browser signs in with a session cookie instead.
        return match crate::auth::session_user(state, headers).await {
            Some(user) => user.name,
            None => "anonymous".into(),
        };
    };
    if token.starts_with(USER_TOKEN_PREFIX)
        && let Ok(Some(user)) = state.db.user_for_token(&token_hash(token)).await
    {
        return user.name;
    }
    if token.starts_with(AGENT_TOKEN_PREFIX)
        && let Ok(Some(host)) = state.db.host_by_token(&token_hash(token)).await
    {
        return format!("agent:{}", host.name);
    }
    "invalid token".into()
}

/// Routes about a deployment, a build or a release request by id, and the
/// creation of a project, name their project too, so `ferry audit --project P` finds them.
async fn with_project(state: &AppState, route: Option<&str>, object: String, summary: &str) -> String {
    let Some(route) = route else { return object };
    // The web interface's routes name projects, deployments and builds like
    // the API's.
    let route = route.strip_prefix("/api/v1").unwrap_or(route);
    if route == "/projects" {
        let name = serde_json::from_str::<Value>(summary).ok().and_then(|v| v["name"].as_str().map(one_word));
        return name.map(|n| format!("project={n}")).unwrap_or(object);
    }
    let id = object.split(' ').find_map(|kv| kv.strip_prefix("id=")).and_then(|id| id.parse::<i64>().ok());
    let Some(id) = id else { return object };
    let project = if route.starts_with("/deployments/{id}") {
        state.db.deployment(id).await.ok().map(|d| d.project)
    } else if route.starts_with("/builds/{id}") {
        state.db.build(id).await.ok().map(|b| b.project)
    } else if route.starts_with("/requests/{id}") {
        // Pass, send back, approve, reject, resubmit, release, withdraw.
        state.db.request(id).await.ok().map(|r| r.project)
    } else {
        None
    };
    match project {
        Some(p) => format!("project={p} {object}"),
        None => object,
    }
}

/// Reads the body for the summary and gives the handler the same bytes; a
/// body that is not JSON is passed through, counted.
/// The route of an upload's release: its body is a whole manifest, which
/// the trail records as [`release_summary`].
const RELEASE_ROUTE: &str = "/api/v1/projects/{project}/releases";

async fn summarize(headers: &HeaderMap, body: Body, route: Option<&str>) -> Result<(Body, Summary), AppError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let json = content_type.starts_with("application/json");
    // The web interface's forms: small, and recorded like JSON, secrets
    // (the password, the CSRF token) masked.
    let form = content_type.starts_with("application/x-www-form-urlencoded");
    if form {
        let bytes = axum::body::to_bytes(body, FORM_BODY_LIMIT)
            .await
            .map_err(|e| AppError::BadRequest(format!("cannot read the form: {e}")))?;
        let fields: serde_json::Map<String, Value> =
            form_urlencoded::parse(&bytes).map(|(k, v)| (k.into_owned(), Value::String(v.into_owned()))).collect();
        let mut v = Value::Object(fields);
        mask_secrets(&mut v);
        return Ok((Body::from(bytes), Summary::Text(bounded(&v.to_string(), SUMMARY_LIMIT))));
    }
    if !json {
        let counter = Arc::new(AtomicU64::new(0));
        let seen = counter.clone();
        let stream = body.into_data_stream().map(move |chunk| {
            if let Ok(bytes) = &chunk {
                seen.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            }
            chunk
        });
        return Ok((Body::from_stream(stream), Summary::Counted(counter)));
    }
    let bytes = axum::body::to_bytes(body, JSON_BODY_LIMIT)
        .await
        .map_err(|e| AppError::BadRequest(format!("cannot read the request body: {e}")))?;
    let summary = if route == Some(RELEASE_ROUTE) { release_summary(&bytes) } else { json_summary(&bytes) };
    Ok((Body::from(bytes), Summary::Text(summary)))
}

/// An upload's release as the trail keeps it: its labels, how many files
/// and bytes its manifest lists, and the SHA-256 of the manifest as sent,
/// instead of the manifest itself (which can be megabytes).
pub fn release_summary(bytes: &Bytes) -> String {
    use sha2::Digest;
    let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
        return format!("unreadable JSON body of {} bytes", bytes.len());
    };
    let manifest = &v["manifest"];
    let entries = manifest["entries"].as_array().map(Vec::as_slice).unwrap_or_default();
    let files: Vec<&Value> = entries.iter().filter(|e| e["kind"] == "file").collect();
    let total: u64 = files.iter().filter_map(|e| e["size"].as_u64()).fold(0, u64::saturating_add);
    let digest = hex::encode(sha2::Sha256::digest(manifest.to_string().as_bytes()));
    let mut out = serde_json::Map::new();
    for key in ["version", "branch", "committer"] {
        if let Some(s) = v[key].as_str() {
            out.insert(key.into(), Value::String(bounded(s, 256)));
        }
    }
    out.insert("entries".into(), Value::from(entries.len()));
    out.insert("files".into(), Value::from(files.len()));
    out.insert("total_bytes".into(), Value::from(total));
    out.insert("manifest_sha256".into(), Value::String(digest));
    let mut v = Value::Object(out);
    mask_secrets(&mut v);
    v.to_string()
}

/// A JSON body as the trail keeps it: secrets masked, cut at
/// [`SUMMARY_LIMIT`].
pub fn json_summary(bytes: &Bytes) -> String {
    if bytes.is_empty() {
        return String::new();
    }
    if bytes.len() > PARSE_LIMIT {
        return format!("JSON body of {} bytes (too large to record)", bytes.len());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(mut v) => {
            mask_secrets(&mut v);
            bounded(&v.to_string(), SUMMARY_LIMIT)
        }
        // Not recorded as text: it could hold a secret in a shape the
        // masking does not recognise.
        Err(_) => format!("unreadable JSON body of {} bytes", bytes.len()),
    }
}

/// Whether a field's name says its value is a secret.
fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "passwd", "token", "secret", "credential", "private_key", "csrf"].iter().any(|s| k.contains(s))
}

/// Replaces secrets with `***`: every field whose name says it is one
/// (except a `true`/`false` flag such as `secret`), and the `value` of an
/// object marked `secret: true` (a secret variable).
pub fn mask_secrets(v: &mut Value) {
    match v {
        Value::Object(map) => {
            let marked_secret = map.get("secret").and_then(Value::as_bool) == Some(true);
            for (k, val) in map.iter_mut() {
                let secret = (is_secret_key(k) && !val.is_boolean()) || (marked_secret && k == "value");
                if secret {
                    if !val.is_null() {
                        *val = Value::String(MASK.into());
                    }
                } else {
                    mask_secrets(val);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_secrets),
        _ => {}
    }
}

/// A query string with secret-looking parameters masked.
fn masked_query(q: &str) -> String {
    q.split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if is_secret_key(k) => format!("{k}={MASK}"),
            _ => kv.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The error message of a failed answer, and the answer rebuilt.
async fn error_message(response: Response) -> (Response, Option<String>) {
    // The web interface's error pages are HTML; they carry the message here.
    if let Some(m) = response.headers().get(ERROR_HEADER) {
        let message = String::from_utf8_lossy(m.as_bytes()).trim().to_string();
        return (response, Some(message).filter(|m| !m.is_empty()));
    }
    let (parts, body) = response.into_parts();
    match axum::body::to_bytes(body, ERROR_BODY_LIMIT).await {
        Ok(bytes) => {
            let message = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).trim().to_string());
            (Response::from_parts(parts, Body::from(bytes)), Some(message).filter(|m| !m.is_empty()))
        }
        Err(_) => (Response::from_parts(parts, Body::empty()), None),
    }
}

/// A path parameter as one word of the object: spaces would make
/// `key=value` pairs ambiguous.
fn one_word(v: &str) -> String {
    bounded(&v.replace(char::is_whitespace, "%20"), 256)
}

/// `s` cut at `max` bytes (on a character boundary), saying how long it was.
fn bounded(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &s[..end], s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_fields_and_secret_values_are_masked() {
        let mut v = serde_json::json!({
            "key": "API_KEY", "value": "s3cret", "secret": true, "env": "prod",
        });
        mask_secrets(&mut v);
        assert_eq!(v, serde_json::json!({"key": "API_KEY", "value": "***", "secret": true, "env": "prod"}));

        let mut v = serde_json::json!({"key": "DB_HOST", "value": "db1", "secret": false});
        let plain = v.clone();
        mask_secrets(&mut v);
        assert_eq!(v, plain);

        let mut v = serde_json::json!({
            "name": "app", "webhook_secret": "w", "join_token": "fy_j_1", "password": "p",
            "nested": [{"api_token": "t"}], "repo_url": null, "client_secret": null,
        });
        mask_secrets(&mut v);
        assert_eq!(
            v,
            serde_json::json!({
                "name": "app", "webhook_secret": "***", "join_token": "***", "password": "***",
                "nested": [{"api_token": "***"}], "repo_url": null, "client_secret": null,
            })
        );
    }

    #[test]
    fn a_release_upload_is_recorded_as_a_summary_not_its_manifest() {
        let entries: Vec<Value> = (0..2000)
            .map(
                |i| serde_json::json!({"path": format!("f{i}"), "kind": "file", "digest": "ab".repeat(32), "size": 10}),
            )
            .chain([serde_json::json!({"path": "d", "kind": "dir"})])
            .collect();
        let body = serde_json::json!({"version": "1.2.3", "branch": "main", "committer": "ann",
            "manifest": {"entries": entries}});
        let s = release_summary(&Bytes::from(body.to_string()));
        assert!(s.len() < 400, "{s}");
        let v: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["version"], "1.2.3");
        assert_eq!(v["files"], 2000);
        assert_eq!(v["entries"], 2001);
        assert_eq!(v["total_bytes"], 20000);
        assert_eq!(v["manifest_sha256"].as_str().unwrap().len(), 64);
        assert!(release_summary(&Bytes::from_static(b"{nope")).starts_with("unreadable"));
    }

    #[test]
    fn summaries_are_bounded_and_never_raw_text() {
        let big = serde_json::json!({"reason": "x".repeat(10_000)}).to_string();
        let s = json_summary(&Bytes::from(big));
        assert!(s.len() < SUMMARY_LIMIT + 32, "{}", s.len());
        assert!(s.ends_with(" bytes)"));
        assert_eq!(json_summary(&Bytes::from_static(b"{\"password\": oops")), "unreadable JSON body of 17 bytes");
        assert_eq!(json_summary(&Bytes::new()), "");
        assert_eq!(bounded("héllo", 2), "h... (6 bytes)");
    }

    #[test]
    fn queries_and_objects_stay_unambiguous_and_masked() {
        assert_eq!(masked_query("env=prod&token=abc"), "env=prod&token=***");
        assert_eq!(one_word("a b"), "a%20b");
    }
}
