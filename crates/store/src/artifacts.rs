//! The artifact store: release content addressed by SHA-256.
//!
//! Blobs are immutable and verified on the way in, so a reader can trust that
//! a present digest means present, complete bytes. Agents still verify every
//! blob they receive: the store's disk may rot after the write.

use std::path::PathBuf;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use ferry_artifact::{BlobDir, BlobError, PendingBlob, SourceTree, frame};
use ferry_domain::Digest;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use crate::{Result, StoreError};

/// A blob being written; `finish` verifies it and makes it visible.
#[async_trait]
pub trait BlobWriter: Send {
    async fn write(&mut self, bytes: &[u8]) -> Result<()>;
    async fn finish(self: Box<Self>) -> Result<()>;
}

/// A blob being read, with its length.
pub struct BlobReader {
    pub len: u64,
    pub reader: Pin<Box<dyn AsyncRead + Send>>,
}

/// Where release content lives. See the module documentation.
#[async_trait]
pub trait ArtifactStore: Send + Sync + 'static {
    async fn contains(&self, digest: &Digest) -> Result<bool>;
    /// Starts writing a blob that must hash to `digest` and be `len` bytes.
    async fn begin(&self, digest: Digest, len: u64) -> Result<Box<dyn BlobWriter>>;
    async fn open(&self, digest: &Digest) -> Result<BlobReader>;
    /// Succeeds when blobs can be stored and read right now (`/readyz`).
    /// The error is for the server's log: it may name paths.
    async fn check_ready(&self) -> Result<()>;

    /// The digests of `digests` that are not stored, each once, in order.
    async fn missing(&self, digests: &[Digest]) -> Result<Vec<Digest>> {
        let mut missing = Vec::new();
        for d in digests {
            if !self.contains(d).await? && !missing.contains(d) {
                missing.push(*d);
            }
        }
        Ok(missing)
    }

    /// Writes a whole blob from memory.
    async fn put(&self, digest: Digest, bytes: &[u8]) -> Result<()> {
        let mut writer = self.begin(digest, bytes.len() as u64).await?;
        writer.write(bytes).await?;
        writer.finish().await
    }

    /// Sends the blobs into `tx` as frames (see `ferry_artifact::frame`):
    /// the body of a blob download. Stops early if the receiver goes away.
    async fn send_framed(&self, digests: Vec<Digest>, tx: mpsc::Sender<std::io::Result<Bytes>>) {
        for d in digests {
            let mut blob = match self.open(&d).await {
                Ok(b) => b,
                Err(e) => {
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
            };
            if tx.send(Ok(Bytes::copy_from_slice(&frame::header(&d, blob.len)))).await.is_err() {
                return;
            }
            let mut left = blob.len;
            while left > 0 {
                let mut buf = vec![0u8; usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK)];
                if let Err(e) = blob.reader.read_exact(&mut buf).await {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
                left -= buf.len() as u64;
                if tx.send(Ok(Bytes::from(buf))).await.is_err() {
                    return;
                }
            }
        }
    }

    /// Stores every file of a directory on this machine and returns the
    /// tree (build output becoming release content). Stores that can, do it
    /// in one pass; this default hashes, then uploads what is missing.
    async fn import_dir(&self, dir: &std::path::Path) -> Result<SourceTree> {
        let owned = dir.to_path_buf();
        let tree = tokio::task::spawn_blocking(move || SourceTree::from_dir(&owned))
            .await
            .map_err(|e| StoreError::Artifact(e.to_string()))?
            .map_err(|e| StoreError::Artifact(e.to_string()))?;
        for (digest, (_, source)) in &tree.blobs {
            if !self.contains(digest).await? {
                let source = source.clone();
                let bytes = tokio::task::spawn_blocking(move || source.read())
                    .await
                    .map_err(|e| StoreError::Artifact(e.to_string()))?
                    .map_err(|e| StoreError::Artifact(e.to_string()))?;
                self.put(*digest, &bytes).await?;
            }
        }
        Ok(tree)
    }

    /// Reads a whole blob into memory.
    async fn get(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut blob = self.open(digest).await?;
        let mut out = Vec::with_capacity(usize::try_from(blob.len).unwrap_or(0));
        blob.reader.read_to_end(&mut out).await.map_err(|e| StoreError::Artifact(e.to_string()))?;
        Ok(out)
    }
}

/// Size of the pieces a blob is sent in.
const CHUNK: usize = 256 * 1024;

fn blob_err(e: BlobError) -> StoreError {
    StoreError::Artifact(e.to_string())
}

/// Blobs in a local directory (`<data>/artifacts/ab/abcd...`).
#[derive(Debug, Clone)]
pub struct LocalArtifactStore {
    dir: BlobDir,
}

impl LocalArtifactStore {
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        Ok(LocalArtifactStore { dir: BlobDir::open(root).map_err(blob_err)? })
    }

    /// The file holding a blob, for operators and tests.
    pub fn path_of(&self, digest: &Digest) -> PathBuf {
        self.dir.path_of(digest)
    }
}

struct LocalWriter(PendingBlob);

#[async_trait]
impl BlobWriter for LocalWriter {
    // Writes go to the page cache through a buffered writer; they are short
    // enough not to need a blocking thread.
    async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.0.write(bytes).map_err(blob_err)
    }
    async fn finish(self: Box<Self>) -> Result<()> {
        self.0.finish().map(|_| ()).map_err(blob_err)
    }
}

#[async_trait]
impl ArtifactStore for LocalArtifactStore {
    async fn contains(&self, digest: &Digest) -> Result<bool> {
        Ok(tokio::fs::try_exists(self.dir.path_of(digest)).await.unwrap_or(false))
    }

    async fn begin(&self, digest: Digest, len: u64) -> Result<Box<dyn BlobWriter>> {
        Ok(Box::new(LocalWriter(self.dir.begin(digest, len).map_err(blob_err)?)))
    }

    async fn check_ready(&self) -> Result<()> {
        // Writing and removing a file proves what an upload needs: the
        // directory is there, and writable by this process.
        // Checks at the same time each get their own file.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let probe = self.dir.root().join(format!(".ready-check-{}-{n}", std::process::id()));
        let checked = tokio::fs::write(&probe, b"").await;
        let removed = tokio::fs::remove_file(&probe).await;
        checked.and(removed).map_err(|e| StoreError::Artifact(format!("{}: {e}", self.dir.root().display())))
    }

    async fn open(&self, digest: &Digest) -> Result<BlobReader> {
        let path = self.dir.path_of(digest);
        let file = tokio::fs::File::open(&path).await.map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StoreError::NotFound(format!("blob {digest}")),
            _ => StoreError::Artifact(format!("{}: {e}", path.display())),
        })?;
        let len = file.metadata().await.map_err(|e| StoreError::Artifact(e.to_string()))?.len();
        Ok(BlobReader { len, reader: Box::pin(file) })
    }

    /// All on one blocking thread: a release has thousands of blobs.
    async fn missing(&self, digests: &[Digest]) -> Result<Vec<Digest>> {
        let (dir, digests) = (self.dir.clone(), digests.to_vec());
        tokio::task::spawn_blocking(move || {
            let mut seen = std::collections::HashSet::new();
            digests.into_iter().filter(|d| seen.insert(*d) && !dir.contains(d)).collect()
        })
        .await
        .map_err(|e| StoreError::Artifact(e.to_string()))
    }

    /// One pass on one blocking thread: each file is read once, hashed as
    /// it is copied in.
    async fn import_dir(&self, dir: &std::path::Path) -> Result<SourceTree> {
        let (owned, blobs) = (dir.to_path_buf(), self.dir.clone());
        tokio::task::spawn_blocking(move || SourceTree::import_dir(&owned, &blobs))
            .await
            .map_err(|e| StoreError::Artifact(e.to_string()))?
            .map_err(|e| StoreError::Artifact(e.to_string()))
    }

    /// One blocking thread reads the files in turn: a release of thousands of
    /// small files would otherwise cost several thread hand-offs per file.
    async fn send_framed(&self, digests: Vec<Digest>, tx: mpsc::Sender<std::io::Result<Bytes>>) {
        let dir = self.dir.clone();
        let _ = tokio::task::spawn_blocking(move || {
            use std::io::Read;
            for d in digests {
                let sent = (|| {
                    let mut file = std::fs::File::open(dir.path_of(&d))?;
                    let len = file.metadata()?.len();
                    if tx.blocking_send(Ok(Bytes::copy_from_slice(&frame::header(&d, len)))).is_err() {
                        return Ok(false);
                    }
                    let mut left = len;
                    while left > 0 {
                        // Filled by the read itself: no zeroing of a fresh buffer.
                        let want = left.min(CHUNK as u64);
                        let mut buf = Vec::with_capacity(usize::try_from(want).unwrap_or(CHUNK));
                        (&mut file).take(want).read_to_end(&mut buf)?;
                        if buf.is_empty() {
                            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "blob shrank"));
                        }
                        left -= buf.len() as u64;
                        if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                            return Ok(false);
                        }
                    }
                    Ok::<bool, std::io::Error>(true)
                })();
                match sent {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
            }
        })
        .await;
    }
}
