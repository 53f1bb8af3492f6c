//! A thin JSON client for the server API that turns error responses into the
//! server's own message.

use std::path::Path;

use anyhow::{Context, Result, bail};
use ferry_proto::api::ErrorBody;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::exit::{Failed, Kind};

/// Server address and credential, from flags or `FERRY_SERVER` / `FERRY_TOKEN`.
#[derive(Clone)]
pub struct Client {
    base: String,
    token: String,
    pub(crate) http: reqwest::Client,
}

impl Client {
    /// `ca_cert`: a PEM file of CA certificates trusted for an https server
    /// besides the public web roots (`--ca-cert`).
    pub fn new(server: &str, token: &str, ca_cert: Option<&Path>) -> Result<Client> {
        if server.is_empty() {
            bail!("no server given: pass --server URL, set FERRY_SERVER, or sign in with ferry login");
        }
        if token.is_empty() {
            bail!("no API token given: pass --token TOKEN, set FERRY_TOKEN, or sign in with ferry login");
        }
        let http = http_client(ca_cert)?;
        Ok(Client { base: server.trim_end_matches('/').to_string(), token: token.trim().to_string(), http })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let resp = self.http.get(self.url(path)).bearer_auth(&self.token).send().await;
        decode(path, resp).await
    }

    /// GETs a streamed answer (a log, an archive); fails with the server's
    /// message unless it is a success.
    pub async fn get_stream(&self, path: &str) -> Result<reqwest::Response> {
        let resp =
            self.http.get(self.url(path)).bearer_auth(&self.token).send().await.map_err(|e| unreachable(path, &e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let _: serde_json::Value = decode(path, Ok(resp)).await?;
        bail!("unexpected answer to {path}")
    }

    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        let resp = self.http.post(self.url(path)).bearer_auth(&self.token).json(body).send().await;
        decode(path, resp).await
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let resp = self.http.delete(self.url(path)).bearer_auth(&self.token).send().await;
        decode(path, resp).await
    }
}

/// Decodes a JSON answer, or fails with the server's error message.
pub(crate) async fn decode<T: DeserializeOwned>(
    path: &str,
    resp: Result<reqwest::Response, reqwest::Error>,
) -> Result<T> {
    let resp = resp.map_err(|e| unreachable(path, &e))?;
    let status = resp.status();
    let bytes = resp.bytes().await.with_context(|| format!("reading the answer to {path}"))?;
    if !status.is_success() {
        let (message, code) = match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(e) => (e.error, Some(e.code)),
            Err(_) => (format!("server answered {status} to {path}: {}", String::from_utf8_lossy(&bytes).trim()), None),
        };
        // The exit status follows the answer (see `exit`).
        return Err(match Kind::of_answer(status, code.as_deref()) {
            Some(kind) => Failed::error(kind, message),
            None => anyhow::anyhow!(message),
        });
    }
    serde_json::from_slice(&bytes).with_context(|| format!("unreadable answer to {path}"))
}

/// The HTTP client of every command: https verified against the public web
/// roots plus `ca_cert`; there is no way to turn verification off.
pub(crate) fn http_client(ca_cert: Option<&Path>) -> Result<reqwest::Client> {
    ferry_tls::install_crypto_provider();
    let tls = ferry_tls::client_config(ca_cert).context("--ca-cert")?;
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .tls_backend_preconfigured(tls)
        .build()
        .context("building the HTTP client")
}

/// A request that got no answer; says what to do when it was the server's
/// certificate that was refused.
pub(crate) fn unreachable(path: &str, e: &reqwest::Error) -> anyhow::Error {
    let message = match ferry_tls::untrusted_certificate(e) {
        Some(message) => format!("cannot reach the Ferry server ({path}): {message}"),
        None => format!("cannot reach the Ferry server ({path}): {}", error_chain(e)),
    };
    Failed::error(Kind::Unreachable, message)
}

/// An error with its causes: reqwest's own message alone ("error sending
/// request") does not say what went wrong.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        next = cause.source();
    }
    text
}

/// Percent-encodes a query value: everything but RFC 3986's unreserved
/// characters (user names may hold spaces, versions `+`).
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
