//! A directory of blobs named by their SHA-256: `<root>/ab/abcdef...`.
//!
//! A blob is written to `<root>/tmp/` (mode 0444: blobs never change),
//! hashed while it is written, and renamed into place only when its digest
//! matches. A reader therefore never sees a
//! partial or wrong blob under a digest's name, whatever moment the writer
//! dies at; leftovers in `tmp/` are removed by [`BlobDir::open`].

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use ferry_domain::Digest;

use crate::Hasher;

/// Errors writing or reading blobs.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("blob {expected} is corrupt: its bytes hash to {actual}")]
    Corrupt { expected: Digest, actual: Digest },
    #[error("blob {expected}: expected {expected_len} bytes, got {actual_len}")]
    WrongLength { expected: Digest, expected_len: u64, actual_len: u64 },
}

impl BlobError {
    /// As an I/O error, for callers that report paths themselves.
    pub fn into_io(self) -> io::Error {
        match self {
            BlobError::Io { source, .. } => source,
            other => io::Error::other(other.to_string()),
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BlobError + '_ {
    move |source| BlobError::Io { path: path.to_path_buf(), source }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct BlobDir {
    root: PathBuf,
}

impl BlobDir {
    /// Opens (creating if needed) a blob directory and clears unfinished writes.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, BlobError> {
        let root = root.into();
        let tmp = root.join("tmp");
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
        }
        fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        Ok(BlobDir { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with this digest lives (whether or not it exists).
    pub fn path_of(&self, digest: &Digest) -> PathBuf {
        let hex = digest.to_hex();
        self.root.join(&hex[..2]).join(hex)
    }

    pub fn contains(&self, digest: &Digest) -> bool {
        self.path_of(digest).is_file()
    }

    /// Starts writing a blob expected to have `digest` and `len` bytes.
    pub fn begin(&self, digest: Digest, len: u64) -> Result<PendingBlob, BlobError> {
        let tmp = self.root.join("tmp").join(format!("{}.{:016x}", digest.to_hex(), rand_suffix()));
        let file = create_read_only(&tmp)?;
        // A buffer no larger than the blob: most blobs are small, and a large
        // allocation per blob costs more than the write.
        let capacity = usize::try_from(len.clamp(1, 256 * 1024)).unwrap_or(256 * 1024);
        Ok(PendingBlob {
            file: io::BufWriter::with_capacity(capacity, file),
            guard: TempFile(Some(tmp.clone())),
            tmp,
            dest: self.path_of(&digest),
            expected: digest,
            expected_len: len,
            written: 0,
            hasher: Hasher::default(),
        })
    }

    /// Copies a file in, hashing it as it is read, and files it under its
    /// digest. Returns the digest and size. Content already present is kept
    /// as it is.
    pub fn import_file(&self, source: &Path) -> Result<(Digest, u64), BlobError> {
        let tmp = self.root.join("tmp").join(format!("import.{:016x}", rand_suffix()));
        let copied = copy_hashing(source, &tmp);
        let (digest, size) = match copied {
            Ok(done) => done,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let dest = self.path_of(&digest);
        if dest.exists() {
            let _ = fs::remove_file(&tmp);
            return Ok((digest, size));
        }
        rename_into_place(&tmp, &dest)?;
        Ok((digest, size))
    }

    /// Writes a whole blob from memory, verifying it.
    pub fn put(&self, digest: Digest, bytes: &[u8]) -> Result<(), BlobError> {
        let mut pending = self.begin(digest, bytes.len() as u64)?;
        pending.write(bytes)?;
        pending.finish().map(|_| ())
    }
}

/// Creates a new file that is read-only once closed (blobs never change); the
/// open descriptor may still write it.
fn create_read_only(path: &Path) -> Result<File, BlobError> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o444).open(path).map_err(io_err(path))
}

/// Renames a finished blob to its digest's name, creating the fan-out
/// directory the first time it is needed.
fn rename_into_place(tmp: &Path, dest: &Path) -> Result<(), BlobError> {
    match fs::rename(tmp, dest) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent).map_err(io_err(parent))?;
            }
            fs::rename(tmp, dest).map_err(io_err(dest))
        }
        Err(e) => Err(BlobError::Io { path: dest.to_path_buf(), source: e }),
    }
}

/// Files up to this size are read in one piece; larger ones are streamed.
const WHOLE_FILE_LIMIT: u64 = 8 * 1024 * 1024;

/// Copies `source` to `dest`, hashing the bytes on the way.
fn copy_hashing(source: &Path, dest: &Path) -> Result<(Digest, u64), BlobError> {
    use std::io::Read;
    let mut input = File::open(source).map_err(io_err(source))?;
    let len = input.metadata().map_err(io_err(source))?.len();
    let mut out = create_read_only(dest)?;
    let mut hasher = Hasher::default();
    if len <= WHOLE_FILE_LIMIT {
        // Small files, the common case: one read, one write, no buffer churn.
        let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0) + 1);
        input.read_to_end(&mut bytes).map_err(io_err(source))?;
        hasher.update(&bytes);
        out.write_all(&bytes).map_err(io_err(dest))?;
        return Ok((hasher.finish(), bytes.len() as u64));
    }
    let mut buf = vec![0u8; 1024 * 1024];
    let mut size = 0u64;
    loop {
        let n = input.read(&mut buf).map_err(io_err(source))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io_err(dest))?;
        size += n as u64;
    }
    Ok((hasher.finish(), size))
}

/// A unique-enough suffix for temporary names; uniqueness only matters
/// between writers of the same digest at the same moment.
fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    (u64::from(std::process::id()) << 32) ^ n
}

/// A temporary file removed when dropped, unless [`TempFile::keep`] was
/// called: an upload cut off half-way leaves nothing behind.
struct TempFile(Option<PathBuf>);

impl TempFile {
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = fs::remove_file(path);
        }
    }
}

/// A blob being written. Dropping it without [`PendingBlob::finish`] (an
/// upload cut off, an error) removes its temporary file; only a process
/// killed outright leaves one, cleared at the next open.
pub struct PendingBlob {
    file: io::BufWriter<File>,
    guard: TempFile,
    tmp: PathBuf,
    dest: PathBuf,
    expected: Digest,
    expected_len: u64,
    written: u64,
    hasher: Hasher,
}

impl PendingBlob {
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), BlobError> {
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        self.file.write_all(bytes).map_err(io_err(&self.tmp))
    }

    /// Verifies length and digest, sets `mode` if given, and moves the blob
    /// into place. Returns its final path. On a mismatch the temporary file is
    /// removed and nothing becomes visible.
    pub fn finish(self) -> Result<PathBuf, BlobError> {
        let PendingBlob { file, guard, tmp, dest, expected, expected_len, written, hasher } = self;
        let outcome = (|| {
            let file = file.into_inner().map_err(|e| BlobError::Io { path: tmp.clone(), source: e.into_error() })?;
            drop(file);
            if written != expected_len {
                return Err(BlobError::WrongLength { expected, expected_len, actual_len: written });
            }
            let actual = hasher.finish();
            if actual != expected {
                return Err(BlobError::Corrupt { expected, actual });
            }
            rename_into_place(&tmp, &dest)?;
            Ok(dest)
        })();
        if outcome.is_ok() {
            guard.keep();
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest_of;

    #[test]
    fn stores_verified_blobs_only() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobDir::open(dir.path()).unwrap();
        let good = digest_of(b"hello");
        blobs.put(good, b"hello").unwrap();
        assert!(blobs.contains(&good));
        assert_eq!(fs::read(blobs.path_of(&good)).unwrap(), b"hello");

        let claimed = digest_of(b"other");
        let err = blobs.put(claimed, b"hellx").unwrap_err();
        assert!(matches!(err, BlobError::Corrupt { .. }), "{err}");
        assert!(!blobs.contains(&claimed));
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0, "no temp file left");
    }

    #[test]
    fn short_writes_are_refused_and_leftovers_cleared_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobDir::open(dir.path()).unwrap();
        let d = digest_of(b"abc");
        let mut p = blobs.begin(d, 3).unwrap();
        p.write(b"ab").unwrap();
        assert!(matches!(p.finish(), Err(BlobError::WrongLength { .. })));
        // An upload cut off half-way (the writer dropped) leaves nothing.
        let mut p = blobs.begin(d, 3).unwrap();
        p.write(b"a").unwrap();
        drop(p);
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        // An abandoned write (as after SIGKILL) leaves a temp file ...
        let mut p = blobs.begin(d, 3).unwrap();
        p.write(b"a").unwrap();
        std::mem::forget(p);
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 1);
        // ... which the next open removes.
        BlobDir::open(dir.path()).unwrap();
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        assert!(!blobs.contains(&d));
    }
}
