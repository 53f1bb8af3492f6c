//! `ferry release upload`: send a directory or archive as a release, moving
//! only the content the server does not already hold.

use std::path::Path;

use anyhow::{Context, Result};
use bytes::Bytes;
use ferry_artifact::{SourceTree, frame};
use ferry_proto::api::{BlobQuery, BlobQueryAnswer, CreateRelease, ProjectInfo, ReleaseInfo};

use crate::Client;
use crate::client::decode;

/// What to call the release.
pub struct ReleaseLabels {
    pub version: String,
    pub branch: String,
    pub committer: String,
}

/// Reads `path`, uploads missing blobs, and registers the release.
pub async fn upload_release(client: &Client, project: &str, path: &Path, labels: ReleaseLabels) -> Result<ReleaseInfo> {
    ferry_domain::validate_version(&labels.version)?;
    // Fail on an unknown project before reading or sending any bytes.
    let _: ProjectInfo = client.get(&format!("/api/v1/projects/{project}")).await?;
    let owned = path.to_path_buf();
    let tree = tokio::task::spawn_blocking(move || SourceTree::read(&owned))
        .await?
        .with_context(|| format!("cannot upload {}", path.display()))?;

    let digests: Vec<_> = tree.blobs.keys().copied().collect();
    let answer: BlobQueryAnswer =
        client.post(&format!("/api/v1/projects/{project}/blobs/missing"), &BlobQuery { digests }).await?;
    if !answer.missing.is_empty() {
        send_blobs(client, project, &tree, answer.missing).await?;
    }
    let body = CreateRelease {
        version: labels.version,
        branch: labels.branch,
        committer: labels.committer,
        manifest: tree.manifest,
    };
    client.post(&format!("/api/v1/projects/{project}/releases"), &body).await
}

/// Streams the blobs as frames; a reader thread feeds the request body.
async fn send_blobs(
    client: &Client,
    project: &str,
    tree: &SourceTree,
    missing: Vec<ferry_domain::Digest>,
) -> Result<()> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let sources: Vec<_> =
        missing.iter().filter_map(|d| tree.blobs.get(d).map(|(len, src)| (*d, *len, src.clone()))).collect();
    std::thread::spawn(move || {
        for (digest, len, source) in sources {
            let data = match source.read() {
                Ok(d) => d,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            if data.len() as u64 != len {
                let _ = tx.blocking_send(Err(std::io::Error::other("a file changed while it was being uploaded")));
                return;
            }
            if tx.blocking_send(Ok(Bytes::copy_from_slice(&frame::header(&digest, len)))).is_err()
                || tx.blocking_send(Ok(Bytes::from(data))).is_err()
            {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let resp = client
        .http
        .post(client.url(&format!("/api/v1/projects/{project}/blobs")))
        .bearer_auth(client.token())
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await;
    let _: serde_json::Value = decode(&format!("/api/v1/projects/{project}/blobs"), resp).await?;
    Ok(())
}
