//! The host's content store: every file content the host holds, once, named
//! by digest, under `<root>/.ferry/objects/`.
//!
//! Release files are hard links to these objects, so a release costs only
//! the content it does not share with earlier ones (R20), and an installed
//! release's files are exactly the verified bytes. Objects are read-only
//! (0444, or 0555 for executables): release trees are immutable, and writable
//! data belongs in `shared/`. Identical content with different modes needs two
//! inodes, so an executable variant lives beside the plain one as `<digest>.x`.
//!
//! Read-only modes do not stop root, and a release file is the object's own
//! inode: an edit in place on the host edits the object too. So an object is
//! trusted only while it is *sealed*: once its bytes were verified against
//! its digest, its modification time gets the nanoseconds [`SEAL_NANOS`].
//! Any write sets the modification time to the clock, which ends the seal
//! (a clock that lands on those nanoseconds is a one-in-a-billion chance,
//! and the rotating content check still hashes such a file). An object
//! without a seal is hashed before it is reused or linked again, and
//! dropped if it no longer matches, so that it is downloaded again.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ferry_artifact::{BlobDir, BlobError, PendingBlob};
use ferry_domain::Digest;

pub const PLAIN_MODE: u32 = 0o444;
pub const EXEC_MODE: u32 = 0o555;

/// The nanoseconds of a verified object's modification time (see the
/// module documentation).
pub const SEAL_NANOS: i64 = 271_828_182;

/// Whether a file (an object, or a release file that is one of its links)
/// still carries the seal of its verification.
pub fn is_sealed(meta: &fs::Metadata) -> bool {
    meta.mtime_nsec() == SEAL_NANOS
}

/// Seals a file whose bytes were just verified: its modification time keeps
/// its second (the garbage collector reads the age) and gets the seal's
/// nanoseconds. Best effort: a file system without nanosecond times keeps no
/// seal, and its objects are hashed again when they are reused.
pub fn seal(path: &Path) -> io::Result<()> {
    let meta = fs::metadata(path)?;
    let secs = u64::try_from(meta.mtime()).unwrap_or(0);
    let nanos = u32::try_from(SEAL_NANOS).unwrap_or(0);
    let at = SystemTime::UNIX_EPOCH + Duration::new(secs, nanos);
    fs::File::open(path)?.set_modified(at)
}

/// Hashes a file and compares it with `digest`.
pub fn matches(path: &Path, digest: &Digest) -> bool {
    fs::read(path).is_ok_and(|bytes| ferry_artifact::digest_of(&bytes) == *digest)
}

#[derive(Debug, Clone)]
pub struct ObjectStore {
    dir: BlobDir,
}

impl ObjectStore {
    pub fn open(root: &Path) -> Result<Self, BlobError> {
        Ok(ObjectStore { dir: BlobDir::open(root.join(".ferry").join("objects"))? })
    }

    pub fn path_for(&self, digest: &Digest, executable: bool) -> PathBuf {
        let plain = self.dir.path_of(digest);
        if executable { plain.with_extension("x") } else { plain }
    }

    /// True when the content is here in either mode.
    pub fn has_content(&self, digest: &Digest) -> bool {
        self.path_for(digest, false).exists() || self.path_for(digest, true).exists()
    }

    /// True when the content is here, in either mode, and known intact:
    /// sealed, or hashed now and found to match (then sealed). A variant
    /// that no longer matches its digest is removed, so that it is
    /// downloaded again (R2).
    pub fn intact(&self, digest: &Digest) -> bool {
        let mut any = false;
        for path in [self.path_for(digest, false), self.path_for(digest, true)] {
            let Ok(meta) = fs::symlink_metadata(&path) else { continue };
            if meta.is_file() && is_sealed(&meta) {
                any = true;
            } else if meta.is_file() && matches(&path, digest) {
                let _ = seal(&path);
                any = true;
            } else {
                tracing::warn!(object = %path.display(), "stored content no longer matches its digest: dropped");
                let _ = fs::remove_file(&path);
            }
        }
        any
    }

    /// Starts writing downloaded content; it is stored in the plain mode.
    pub fn begin(&self, digest: Digest, len: u64) -> Result<PendingBlob, BlobError> {
        self.dir.begin(digest, len)
    }

    /// Makes sure the object exists in the wanted mode, copying the other
    /// mode's object locally if needed. Returns its path.
    pub fn ensure(&self, digest: &Digest, executable: bool) -> io::Result<PathBuf> {
        let want = self.path_for(digest, executable);
        if want.exists() {
            return Ok(want);
        }
        let other = self.path_for(digest, !executable);
        let tmp = self.dir.root().join("tmp").join(format!("{}.variant", digest.to_hex()));
        fs::copy(&other, &tmp)?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(if executable { EXEC_MODE } else { PLAIN_MODE }))?;
        // The copy is as good as its source: sealed only if that still is.
        if fs::metadata(&other).is_ok_and(|m| is_sealed(&m)) {
            let _ = seal(&tmp);
        }
        fs::rename(&tmp, &want)?;
        Ok(want)
    }

    /// Drops a damaged object (both modes), so that it is downloaded again.
    pub fn forget(&self, digest: &Digest) {
        let _ = fs::remove_file(self.path_for(digest, false));
        let _ = fs::remove_file(self.path_for(digest, true));
    }

    /// Where the objects are.
    pub fn root(&self) -> &Path {
        self.dir.root()
    }

    /// Bytes free for an unprivileged writer on the store's filesystem.
    pub fn available_bytes(&self) -> io::Result<u64> {
        let st = nix::sys::statvfs::statvfs(self.dir.root()).map_err(io::Error::from)?;
        // The C types are narrower on some targets.
        #[allow(clippy::useless_conversion)]
        Ok(u64::from(st.blocks_available()).saturating_mul(u64::from(st.fragment_size())))
    }

    /// Removes those of `digests` (both modes) that no release links to: what
    /// an install that failed had downloaded, so that a full disk does not
    /// stay full. Returns bytes freed.
    pub fn remove_unlinked(&self, digests: &[Digest]) -> u64 {
        let mut freed = 0;
        for digest in digests {
            for path in [self.path_for(digest, false), self.path_for(digest, true)] {
                if let Ok(meta) = fs::symlink_metadata(&path)
                    && meta.is_file()
                    && meta.nlink() == 1
                    && fs::remove_file(&path).is_ok()
                {
                    freed += meta.len();
                }
            }
        }
        freed
    }

    /// Removes objects no release links to any more (link count 1) that are
    /// older than `min_age`, so content downloaded for an install that has
    /// not finished yet survives for its retry. Returns bytes freed.
    pub fn collect_garbage(&self, min_age: Duration) -> u64 {
        let mut freed = 0;
        let Ok(fanout) = fs::read_dir(self.dir.root()) else {
            return 0;
        };
        let cutoff = SystemTime::now().checked_sub(min_age).unwrap_or(SystemTime::UNIX_EPOCH);
        for sub in fanout.flatten() {
            if sub.file_name() == "tmp" {
                continue;
            }
            let Ok(entries) = fs::read_dir(sub.path()) else {
                continue;
            };
            for entry in entries.flatten() {
                let Ok(meta) = entry.metadata() else { continue };
                let old = meta.modified().map(|m| m < cutoff).unwrap_or(false);
                if meta.is_file() && meta.nlink() == 1 && old && fs::remove_file(entry.path()).is_ok() {
                    freed += meta.len();
                }
            }
        }
        freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(root: &Path, bytes: &[u8]) -> (ObjectStore, Digest) {
        let objects = ObjectStore::open(root).unwrap();
        let digest = ferry_artifact::digest_of(bytes);
        let mut w = objects.begin(digest, bytes.len() as u64).unwrap();
        w.write(bytes).unwrap();
        w.finish().unwrap();
        (objects, digest)
    }

    #[test]
    fn content_is_trusted_while_sealed_checked_when_written_and_dropped_when_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let (objects, digest) = store(dir.path(), b"the verified bytes");
        let path = objects.path_for(&digest, false);
        seal(&path).unwrap();
        assert!(is_sealed(&fs::metadata(&path).unwrap()));
        assert!(objects.intact(&digest));

        // Written with the same bytes: the seal ends, a hash finds it intact
        // and seals it again.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&path, b"the verified bytes").unwrap();
        assert!(!is_sealed(&fs::metadata(&path).unwrap()));
        assert!(objects.intact(&digest));
        assert!(is_sealed(&fs::metadata(&path).unwrap()));

        // Edited: it is dropped, so that it is downloaded again.
        fs::write(&path, b"the edited bytes!!").unwrap();
        assert!(!objects.intact(&digest));
        assert!(!objects.has_content(&digest));
    }

    #[test]
    fn a_failed_install_takes_back_only_what_no_release_uses() {
        let dir = tempfile::tempdir().unwrap();
        let (objects, used) = store(dir.path(), b"linked by a release");
        let (_, fresh) = store(dir.path(), b"downloaded for the failed install");
        let release = dir.path().join("release");
        fs::create_dir(&release).unwrap();
        fs::hard_link(objects.path_for(&used, false), release.join("file")).unwrap();
        let freed = objects.remove_unlinked(&[used, fresh]);
        assert_eq!(freed, b"downloaded for the failed install".len() as u64);
        assert!(objects.has_content(&used) && !objects.has_content(&fresh));
        assert!(objects.available_bytes().unwrap() > 0);
    }

    #[test]
    fn garbage_is_what_no_release_links_to() {
        let dir = tempfile::tempdir().unwrap();
        let (objects, kept) = store(dir.path(), b"still in a release");
        let (_, dropped) = store(dir.path(), b"in no release any more");
        let release = dir.path().join("release");
        fs::create_dir(&release).unwrap();
        fs::hard_link(objects.path_for(&kept, false), release.join("file")).unwrap();
        // The executable variant shares nothing with the plain object: it is an inode of its own.
        let x = objects.ensure(&kept, true).unwrap();
        assert_eq!(fs::metadata(&x).unwrap().permissions().mode() & 0o777, EXEC_MODE);
        fs::hard_link(&x, release.join("tool")).unwrap();

        assert_eq!(objects.collect_garbage(Duration::from_secs(600)), 0, "young content waits for a retry");
        let freed = objects.collect_garbage(Duration::ZERO);
        assert_eq!(freed, b"in no release any more".len() as u64);
        assert!(!objects.has_content(&dropped));
        assert!(objects.path_for(&kept, false).exists() && x.exists());
        fs::remove_dir_all(&release).unwrap();
        objects.collect_garbage(Duration::ZERO);
        assert!(!objects.has_content(&kept));
    }
}
