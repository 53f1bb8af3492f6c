//! HTTP calls the agent makes besides its WebSocket: the release manifest
//! and the blob stream.

use std::time::Duration;

use ferry_domain::{Digest, Manifest};
use ferry_proto::api::{BlobRequest, ErrorBody};

/// The HTTP client, with timeouts that catch a dead server without cutting
/// off a long download, trusting what `tls` trusts.
pub fn http_client(tls: &rustls::ClientConfig) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        .tls_backend_preconfigured(tls.clone())
        .build()
        .unwrap_or_default()
}

/// What went wrong with a request that got no answer, with its causes
/// (reqwest's own message alone says only "error sending request"), and what
/// to do when it was the server's certificate that was refused.
pub fn request_error(e: &reqwest::Error) -> String {
    if let Some(message) = ferry_tls::untrusted_certificate(e) {
        return message;
    }
    let mut text = e.to_string();
    let mut next = std::error::Error::source(e);
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

/// The message of an error response, whatever its shape.
pub async fn error_text(resp: reqwest::Response) -> String {
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    match serde_json::from_str::<ErrorBody>(&body) {
        Ok(e) => e.error,
        Err(_) => format!("HTTP {status}: {}", body.trim()),
    }
}

#[derive(Clone)]
pub struct AgentApi {
    http: reqwest::Client,
    server: String,
    token: String,
}

impl AgentApi {
    pub fn new(http: reqwest::Client, server: String, token: String) -> Self {
        AgentApi { http, server: server.trim_end_matches('/').to_string(), token }
    }

    pub async fn manifest(&self, release_id: i64) -> Result<Manifest, String> {
        let url = format!("{}/api/v1/agent/releases/{release_id}/manifest", self.server);
        let resp = self.http.get(url).bearer_auth(&self.token).send().await.map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("fetching the manifest: {}", error_text(resp).await));
        }
        let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| format!("the manifest of release {release_id} is unreadable: {e}"))
    }

    /// Starts the download of the agent binary this host is upgrading to.
    pub async fn agent_binary(&self) -> Result<reqwest::Response, String> {
        let url = format!("{}/api/v1/agent/binary", self.server);
        let resp = self.http.get(url).bearer_auth(&self.token).send().await.map_err(|e| request_error(&e))?;
        if !resp.status().is_success() {
            return Err(format!("downloading the agent binary: {}", error_text(resp).await));
        }
        Ok(resp)
    }

    /// Starts the framed download of these blobs.
    pub async fn blobs(&self, digests: Vec<Digest>) -> Result<reqwest::Response, String> {
        let url = format!("{}/api/v1/agent/blobs", self.server);
        let resp = self
            .http
            .post(url)
            .bearer_auth(&self.token)
            .json(&BlobRequest { digests })
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("downloading content: {}", error_text(resp).await));
        }
        Ok(resp)
    }
}
