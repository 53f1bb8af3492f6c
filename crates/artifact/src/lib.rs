//! Release trees on disk and on the wire.
//!
//! - [`tree`]: read a directory or a `.tar`, `.tar.gz`, `.tar.zst` archive into
//!   a validated [`Manifest`](ferry_domain::Manifest) plus the source of each
//!   blob, so a client can upload only what the server lacks.
//! - [`blobdir`]: a directory of blobs named by digest, written through a
//!   temporary file and verified before it becomes visible. The server's local
//!   artifact store and each agent's content store are both a `BlobDir`.
//! - [`frame`]: the framing that carries many blobs in one HTTP body.
//!
//! Architecture invariant: nothing here activates or deletes a release; this
//! crate only reads trees and stores verified blobs.

pub mod archive;
pub mod blobdir;
pub mod frame;
pub mod tree;

pub use blobdir::{BlobDir, BlobError, PendingBlob};
pub use tree::{ArchiveFormat, BlobSource, MAX_ARCHIVE_BYTES, SourceTree, TreeError};

use ferry_domain::Digest;
use sha2::{Digest as _, Sha256};

/// The SHA-256 digest of a byte slice.
pub fn digest_of(bytes: &[u8]) -> Digest {
    Digest(Sha256::digest(bytes).into())
}

/// An incremental SHA-256.
#[derive(Default, Clone)]
pub struct Hasher(Sha256);

impl Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    pub fn finish(self) -> Digest {
        Digest(self.0.finalize().into())
    }
}
