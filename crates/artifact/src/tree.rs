//! Reading a release tree from a directory or an archive.
//!
//! The result is a validated manifest plus, for each distinct digest, where
//! its bytes can be read. Nothing is written anywhere: a tree that fails
//! validation changes nothing.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_domain::{Digest, Entry, EntryKind, Manifest, ManifestError};

use crate::{BlobDir, Hasher, digest_of};

/// Why a tree could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{0}")]
    Invalid(#[from] ManifestError),
    #[error("entry '{path}': {what} cannot be part of a release")]
    Unsupported { path: String, what: String },
    #[error("entry '{0}': the name is not valid UTF-8")]
    NotUtf8(String),
    #[error("entry '{path}': hard link to '{target}', which is not an earlier file of the archive")]
    BadHardLink { path: String, target: String },
    #[error("{0}: not a directory, .tar, .tar.gz, .tgz or .tar.zst")]
    UnknownFormat(PathBuf),
    /// The archive unpacks to more than the limit (a compression bomb, or a
    /// header claiming more than any release should hold).
    #[error(
        "{origin}: entry '{entry}' takes the archive past {}, the most an archive may unpack to; \
         unpack it and upload the directory instead",
        human_bytes(*limit)
    )]
    TooLarge { origin: PathBuf, entry: String, limit: u64 },
    /// An entry's header claims more bytes than the archive holds.
    #[error("{origin}: entry '{entry}' claims {claimed} bytes but the archive ends after {got}")]
    Truncated { origin: PathBuf, entry: String, claimed: u64, got: u64 },
}

/// The most bytes an archive may unpack to: the sum of everything read out of
/// the (decompressed) tar stream, headers included. An archive's content is
/// held in memory until it is uploaded, so this bounds the memory `ferry
/// release upload` can be made to use by a compression bomb or a lying
/// header. A directory has no such limit: its files are read from disk as
/// they are sent.
pub const MAX_ARCHIVE_BYTES: u64 = 2 << 30;

/// `bytes` for a message: whole GiB or MiB when it is one, else bytes.
fn human_bytes(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    if bytes >= GIB && bytes.is_multiple_of(GIB) {
        format!("{} GiB", bytes / GIB)
    } else if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> TreeError + '_ {
    move |source| TreeError::Io { path: path.to_path_buf(), source }
}

/// A regular file after pass 2 of a walk: its entry's index, executable bit,
/// digest, size and source.
type HashedFile = (usize, bool, (Digest, u64, BlobSource));

/// Where the bytes of one blob can be read.
#[derive(Debug, Clone)]
pub enum BlobSource {
    File(PathBuf),
    Memory(Arc<Vec<u8>>),
}

impl BlobSource {
    /// Reads the whole blob.
    pub fn read(&self) -> io::Result<Vec<u8>> {
        match self {
            BlobSource::File(p) => fs::read(p),
            BlobSource::Memory(b) => Ok(b.as_ref().clone()),
        }
    }
}

/// The archive formats a release can be uploaded as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// `.tar`
    Tar,
    /// `.tar.gz` or `.tgz`
    TarGz,
    /// `.tar.zst` or `.tzst`
    TarZst,
}

impl ArchiveFormat {
    /// The format a file name's ending (in any case) names, if any.
    pub fn of(path: &Path) -> Option<ArchiveFormat> {
        let name = path.file_name()?.to_string_lossy().to_lowercase();
        if name.ends_with(".tar") {
            Some(ArchiveFormat::Tar)
        } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
            Some(ArchiveFormat::TarGz)
        } else if name.ends_with(".tar.zst") || name.ends_with(".tzst") {
            Some(ArchiveFormat::TarZst)
        } else {
            None
        }
    }
}

/// A validated manifest with the source of each of its blobs.
#[derive(Debug, Clone)]
pub struct SourceTree {
    pub manifest: Manifest,
    pub blobs: HashMap<Digest, (u64, BlobSource)>,
}

impl SourceTree {
    /// Reads a directory, or an archive chosen by its file name's ending; an
    /// archive may unpack to at most [`MAX_ARCHIVE_BYTES`].
    pub fn read(path: &Path) -> Result<SourceTree, TreeError> {
        Self::read_limited(path, MAX_ARCHIVE_BYTES)
    }

    /// [`SourceTree::read`] with another limit for what an archive may
    /// unpack to (in bytes).
    pub fn read_limited(path: &Path, limit: u64) -> Result<SourceTree, TreeError> {
        let meta = fs::metadata(path).map_err(io_err(path))?;
        if meta.is_dir() {
            return Self::from_dir(path);
        }
        let format = ArchiveFormat::of(path).ok_or_else(|| TreeError::UnknownFormat(path.to_path_buf()))?;
        let file = fs::File::open(path).map_err(io_err(path))?;
        Self::from_archive(file, format, path, limit)
    }

    /// Reads an archive of `format` from `reader`, unpacking at most `limit`
    /// bytes (see [`SourceTree::from_tar_limited`]). `origin` is only used in
    /// messages.
    pub fn from_archive(
        reader: impl Read,
        format: ArchiveFormat,
        origin: &Path,
        limit: u64,
    ) -> Result<SourceTree, TreeError> {
        match format {
            ArchiveFormat::Tar => Self::from_tar_limited(reader, origin, limit),
            ArchiveFormat::TarGz => {
                Self::from_tar_limited(flate2::read::GzDecoder::new(io::BufReader::new(reader)), origin, limit)
            }
            ArchiveFormat::TarZst => {
                let unzstd = zstd::stream::read::Decoder::new(reader).map_err(io_err(origin))?;
                Self::from_tar_limited(unzstd, origin, limit)
            }
        }
    }

    /// Walks a directory. Symlinks are recorded as links, never followed.
    pub fn from_dir(root: &Path) -> Result<SourceTree, TreeError> {
        Self::walk(root, |full| {
            let (digest, size) = hash_file(full)?;
            Ok((digest, size, BlobSource::File(full.to_path_buf())))
        })
    }

    /// Walks a directory and stores every file into `blobs` in the same pass
    /// (read once: hashed while it is copied). The blob sources point into
    /// `blobs`. This is how build output becomes release content.
    pub fn import_dir(root: &Path, blobs: &BlobDir) -> Result<SourceTree, TreeError> {
        Self::walk(root, |full| {
            let (digest, size) =
                blobs.import_file(full).map_err(|e| TreeError::Io { path: full.to_path_buf(), source: e.into_io() })?;
            Ok((digest, size, BlobSource::File(blobs.path_of(&digest))))
        })
    }

    /// The directory walk shared by `from_dir` and `import_dir`; `file` turns
    /// a regular file into its digest, size and source. Files are handled on
    /// every available core: hashing and copying thousands of files is the
    /// cost here, and the directory walk itself is cheap.
    fn walk(
        root: &Path,
        file: impl Fn(&Path) -> Result<(Digest, u64, BlobSource), TreeError> + Sync,
    ) -> Result<SourceTree, TreeError> {
        // Pass 1: the tree's shape; regular files are collected for pass 2.
        let mut entries = Vec::new();
        let mut files: Vec<(usize, PathBuf, bool)> = Vec::new();
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let dir = root.join(&rel);
            for item in fs::read_dir(&dir).map_err(io_err(&dir))? {
                let item = item.map_err(io_err(&dir))?;
                let rel_path = rel.join(item.file_name());
                let path_str = rel_path.to_str().ok_or_else(|| TreeError::NotUtf8(rel_path.display().to_string()))?;
                let full = item.path();
                let meta = fs::symlink_metadata(&full).map_err(io_err(&full))?;
                let ft = meta.file_type();
                let kind = if ft.is_dir() {
                    stack.push(rel_path.clone());
                    EntryKind::Dir
                } else if ft.is_symlink() {
                    let target = fs::read_link(&full).map_err(io_err(&full))?;
                    let target = target.to_str().ok_or_else(|| TreeError::NotUtf8(path_str.to_string()))?.to_string();
                    EntryKind::Symlink { target }
                } else if ft.is_file() {
                    files.push((entries.len(), full, meta.permissions().mode() & 0o111 != 0));
                    // Filled in by pass 2.
                    EntryKind::Dir
                } else {
                    return Err(TreeError::Unsupported { path: path_str.to_string(), what: "a special file".into() });
                };
                entries.push(Entry { path: path_str.to_string(), kind });
            }
        }
        // Pass 2: hash (and maybe store) the files, in parallel.
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
        let results: Vec<Result<Vec<HashedFile>, TreeError>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    let (files, file) = (&files, &file);
                    s.spawn(move || {
                        files
                            .iter()
                            .skip(w)
                            .step_by(workers)
                            .map(|(index, full, exec)| Ok((*index, *exec, file(full)?)))
                            .collect::<Result<Vec<_>, TreeError>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(TreeError::Io {
                            path: root.to_path_buf(),
                            source: io::Error::other("a hashing thread panicked"),
                        })
                    })
                })
                .collect()
        });
        let mut blobs = HashMap::new();
        for result in results {
            for (index, executable, (digest, size, source)) in result? {
                blobs.entry(digest).or_insert((size, source));
                entries[index].kind = EntryKind::File { digest, size, executable };
            }
        }
        let manifest = Manifest::new(entries);
        manifest.validate()?;
        Ok(SourceTree { manifest, blobs })
    }

    /// Reads a tar stream into memory. `origin` is only used in messages. The
    /// stream may unpack to at most [`MAX_ARCHIVE_BYTES`].
    pub fn from_tar(reader: impl Read, origin: &Path) -> Result<SourceTree, TreeError> {
        Self::from_tar_limited(reader, origin, MAX_ARCHIVE_BYTES)
    }

    /// [`SourceTree::from_tar`] reading at most `limit` bytes out of `reader`
    /// (headers included); past that, [`TreeError::TooLarge`] names the entry
    /// being read. Memory follows the bytes that actually arrive, never what
    /// a header claims.
    pub fn from_tar_limited(reader: impl Read, origin: &Path, limit: u64) -> Result<SourceTree, TreeError> {
        let mut counted = Limited { inner: reader, left: limit, exceeded: false };
        // The entry being read, to name it when the limit is reached while
        // the tar reader (which sees only an I/O error) is in the middle of it.
        let mut current = String::new();
        let result = read_tar(tar::Archive::new(&mut counted), origin, limit, &mut current);
        if counted.exceeded {
            let entry = if current.is_empty() { "(before the first entry)".to_string() } else { current };
            return Err(TreeError::TooLarge { origin: origin.to_path_buf(), entry, limit });
        }
        result
    }
}

/// The walk of [`SourceTree::from_tar_limited`]; `current` is kept up to date
/// with the path of the entry being read.
fn read_tar(
    mut archive: tar::Archive<impl Read>,
    origin: &Path,
    limit: u64,
    current: &mut String,
) -> Result<SourceTree, TreeError> {
    let mut entries: Vec<Entry> = Vec::new();
    // Where each path is in `entries`: a later entry of the same path
    // replaces an earlier one without a scan of all entries so far (which
    // made an archive of many small entries quadratic).
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut blobs = HashMap::new();
    let mut files: HashMap<String, (Digest, u64, bool)> = HashMap::new();
    for item in archive.entries().map_err(io_err(origin))? {
        let mut item = item.map_err(io_err(origin))?;
        let raw = String::from_utf8(item.path_bytes().into_owned())
            .map_err(|e| TreeError::NotUtf8(String::from_utf8_lossy(e.as_bytes()).into_owned()))?;
        current.clone_from(&raw);
        let Some(path) = normalise_archive_path(&raw) else {
            continue;
        };
        ferry_domain::manifest::validate_path(&path)?;
        let header = item.header();
        let executable = header.mode().map(|m| m & 0o111 != 0).unwrap_or(false);
        let kind = match header.entry_type() {
            tar::EntryType::Directory => EntryKind::Dir,
            tar::EntryType::Symlink => {
                let target =
                    item.link_name_bytes().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
                EntryKind::Symlink { target }
            }
            tar::EntryType::Link => {
                let target =
                    item.link_name_bytes().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
                let key = normalise_archive_path(&target).unwrap_or_default();
                let Some(&(digest, size, _)) = files.get(&key) else {
                    return Err(TreeError::BadHardLink { path, target });
                };
                EntryKind::File { digest, size, executable }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let claimed = item.size();
                // Refused before a byte of it is read: the whole archive
                // could not hold it.
                if claimed > limit {
                    return Err(TreeError::TooLarge { origin: origin.to_path_buf(), entry: path, limit });
                }
                let bytes = read_entry(&mut item, claimed).map_err(io_err(origin))?;
                let size = bytes.len() as u64;
                if size != claimed {
                    return Err(TreeError::Truncated { origin: origin.to_path_buf(), entry: path, claimed, got: size });
                }
                let digest = digest_of(&bytes);
                blobs.entry(digest).or_insert_with(|| (size, BlobSource::Memory(Arc::new(bytes))));
                files.insert(path.clone(), (digest, size, executable));
                EntryKind::File { digest, size, executable }
            }
            // PAX and GNU long-name headers are consumed by the tar reader.
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => continue,
            other => {
                return Err(TreeError::Unsupported { path, what: format!("a tar entry of type {other:?}") });
            }
        };
        // A later entry of the same path replaces an earlier one, as tar does.
        match index.get(&path) {
            Some(&at) => entries[at] = Entry { path, kind },
            None => {
                index.insert(path.clone(), entries.len());
                entries.push(Entry { path, kind });
            }
        }
    }
    let manifest = Manifest::new(entries);
    manifest.validate()?;
    Ok(SourceTree { manifest, blobs })
}

/// How much of an entry is read at a time, and the first capacity of its
/// buffer.
const CHUNK: usize = 64 * 1024;

/// Reads at most `claimed` bytes of one entry. The buffer grows (doubling) as
/// bytes arrive and never past `claimed`, so a header claiming 60 GiB in
/// front of a few bytes costs a few bytes. The caller compares the length
/// with the claim.
fn read_entry(item: &mut impl Read, claimed: u64) -> io::Result<Vec<u8>> {
    let mut out: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let left = claimed - out.len() as u64;
        if left == 0 {
            return Ok(out);
        }
        let want = usize::try_from(left).map_or(CHUNK, |l| l.min(CHUNK));
        let n = match item.read(&mut chunk[..want]) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if out.capacity() - out.len() < n {
            let grow = u64::try_from(out.len().max(CHUNK)).unwrap_or(u64::MAX).min(left);
            out.try_reserve_exact(usize::try_from(grow).unwrap_or(usize::MAX).max(n)).map_err(io::Error::other)?;
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

/// A reader that yields at most `left` more bytes; asked for more while the
/// inner reader still has some, it fails and records that it did (the tar
/// reader wraps I/O errors, so the flag is what tells the limit from a
/// broken stream).
struct Limited<R> {
    inner: R,
    left: u64,
    exceeded: bool,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // One byte more than allowed tells "at the limit" from "past it".
        let max = usize::try_from(self.left.saturating_add(1)).unwrap_or(usize::MAX).min(buf.len());
        let n = self.inner.read(&mut buf[..max])?;
        if n as u64 > self.left {
            self.exceeded = true;
            self.left = 0;
            return Err(io::Error::other("the archive unpacks to more than the limit"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Strips `./` prefixes and trailing `/`; `None` for the archive root itself.
/// Absolute paths and `..` are kept so that validation can name them.
fn normalise_archive_path(raw: &str) -> Option<String> {
    let mut p = raw;
    while let Some(rest) = p.strip_prefix("./") {
        p = rest;
    }
    let p = p.trim_end_matches('/');
    if p.is_empty() || p == "." { None } else { Some(p.to_string()) }
}

/// Hashes a file, returning its digest and size.
pub fn hash_file(path: &Path) -> Result<(Digest, u64), TreeError> {
    let mut file = fs::File::open(path).map_err(io_err(path))?;
    let len = file.metadata().map_err(io_err(path))?.len();
    let mut hasher = Hasher::default();
    // Small files (most of a release) in one read; large ones streamed.
    let mut buf = vec![0u8; usize::try_from(len.clamp(1, 1024 * 1024)).unwrap_or(1024 * 1024)];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hasher.finish(), size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, ty, data, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*ty);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            // Write the raw name so that '..' and absolute paths survive.
            let name = path.as_bytes();
            h.as_old_mut().name[..name.len()].copy_from_slice(name);
            if let Some(l) = link {
                h.set_link_name(l).unwrap();
            }
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn reads_a_tar() {
        let data = tar_with(&[
            ("./", tar::EntryType::Directory, b"", None),
            ("./bin/", tar::EntryType::Directory, b"", None),
            ("./bin/app", tar::EntryType::Regular, b"#!/bin/sh\n", None),
            ("./bin/app2", tar::EntryType::Link, b"", Some("./bin/app")),
            ("./latest", tar::EntryType::Symlink, b"", Some("bin/app")),
        ]);
        let tree = SourceTree::from_tar(&data[..], Path::new("t.tar")).unwrap();
        let paths: Vec<_> = tree.manifest.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["bin", "bin/app", "bin/app2", "latest"]);
        assert_eq!(tree.blobs.len(), 1, "the hard link shares its content");
    }

    #[test]
    fn reads_compressed_archives_by_their_ending() {
        let data = tar_with(&[("./VERSION", tar::EntryType::Regular, b"v1\n", None)]);
        let dir = tempfile::tempdir().unwrap();
        let zst = dir.path().join("r.tar.zst");
        fs::write(&zst, zstd::stream::encode_all(&data[..], 3).unwrap()).unwrap();
        let gz = dir.path().join("r.tgz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &data).unwrap();
        fs::write(&gz, enc.finish().unwrap()).unwrap();
        for path in [&zst, &gz] {
            let tree = SourceTree::read(path).unwrap();
            assert_eq!(tree.manifest.entries[0].path, "VERSION", "{}", path.display());
        }
        let zip = dir.path().join("r.zip");
        fs::write(&zip, b"PK").unwrap();
        assert!(matches!(SourceTree::read(&zip), Err(TreeError::UnknownFormat(_))));
    }

    #[test]
    fn refuses_escaping_archives_naming_the_entry() {
        let cases: [(&str, tar::EntryType, Option<&str>, &str); 3] = [
            ("../evil", tar::EntryType::Regular, None, "'../evil'"),
            ("/etc/cron.d/x", tar::EntryType::Regular, None, "'/etc/cron.d/x'"),
            ("link", tar::EntryType::Symlink, Some("../../etc/passwd"), "'link'"),
        ];
        for (path, ty, link, named) in cases {
            let data = tar_with(&[(path, ty, b"x", link)]);
            let err = SourceTree::from_tar(&data[..], Path::new("t.tar")).unwrap_err().to_string();
            assert!(err.contains(named), "{path}: {err}");
        }
    }

    /// A tar of one regular entry whose header claims `claimed` bytes,
    /// followed by only `data`: what a hostile or broken archive looks like.
    fn lying_tar(name: &str, claimed: u64, data: &[u8]) -> Vec<u8> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_path(name).unwrap();
        h.set_size(claimed);
        h.set_mode(0o644);
        h.set_cksum();
        let mut out = h.as_bytes().to_vec();
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn a_header_claiming_60_gib_is_refused_without_allocating_it() {
        let data = lying_tar("huge.bin", 60 << 30, b"only a few bytes");
        let err = SourceTree::from_tar(&data[..], Path::new("t.tar")).unwrap_err();
        assert!(
            matches!(&err, TreeError::TooLarge { entry, limit, .. } if entry == "huge.bin" && *limit == MAX_ARCHIVE_BYTES)
        );
        let msg = err.to_string();
        assert!(msg.contains("'huge.bin'") && msg.contains("2 GiB"), "{msg}");
        // Even allowed by the limit, the claim is never allocated: the reader
        // finds the archive ends long before and says so.
        let err = SourceTree::from_tar_limited(&data[..], Path::new("t.tar"), u64::MAX).unwrap_err();
        assert!(
            matches!(&err, TreeError::Truncated { entry, claimed, got: 16, .. } if entry == "huge.bin" && *claimed == 60 << 30),
            "{err}"
        );
    }

    /// Inputs that crashed the `archive` fuzz target (fuzz/regressions),
    /// replayed here so that `cargo test` keeps them fixed.
    #[test]
    fn fuzzer_regressions_are_errors_not_crashes() {
        let cases: [(&str, &[u8]); 2] = [
            // A pax header whose size field overflowed `Vec::with_capacity`.
            (
                "pax-size-overflows-capacity",
                include_bytes!("../../../fuzz/regressions/archive/pax-size-overflows-capacity"),
            ),
            ("header-claims-60-gib", include_bytes!("../../../fuzz/regressions/archive/header-claims-60-gib")),
        ];
        for (name, data) in cases {
            let err = SourceTree::from_tar(data, Path::new(name)).unwrap_err();
            assert!(matches!(err, TreeError::TooLarge { .. }), "{name}: {err}");
        }
    }

    #[test]
    fn a_truncated_entry_is_an_error_not_a_short_file() {
        let data = lying_tar("short.txt", 100, b"ten bytes!");
        let err = SourceTree::from_tar(&data[..], Path::new("t.tar")).unwrap_err().to_string();
        assert!(err.contains("'short.txt' claims 100 bytes but the archive ends after 10"), "{err}");
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut enc, bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit_naming_the_entry() {
        // 8 MiB of zeros compress to a few kB; a 1 MiB limit stands in for
        // the real one so that the test does not unpack gigabytes.
        let zeros = vec![0u8; 8 << 20];
        let bomb = gzip(&tar_with(&[("./bomb.bin", tar::EntryType::Regular, &zeros, None)]));
        assert!(bomb.len() < 64 * 1024, "{} bytes", bomb.len());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bomb.tar.gz");
        fs::write(&path, &bomb).unwrap();
        let err = SourceTree::read_limited(&path, 1 << 20).unwrap_err();
        assert!(matches!(&err, TreeError::TooLarge { entry, .. } if entry == "bomb.bin"), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("'bomb.bin'") && msg.contains("1 MiB") && msg.contains("bomb.tar.gz"), "{msg}");

        // The limit is on the whole archive: many entries, each small, add up.
        let half = vec![0u8; 512 * 1024];
        let many = tar_with(&[
            ("a", tar::EntryType::Regular, &half, None),
            ("b", tar::EntryType::Regular, &half, None),
            ("c", tar::EntryType::Regular, &half, None),
        ]);
        let compressed = gzip(&many);
        let unzip = flate2::read::GzDecoder::new(&compressed[..]);
        let err = SourceTree::from_tar_limited(unzip, Path::new("m.tgz"), 1 << 20).unwrap_err();
        assert!(matches!(&err, TreeError::TooLarge { entry, .. } if entry == "b"), "{err}");
        // An archive within the limit reads as before.
        let tree = SourceTree::from_tar_limited(&many[..], Path::new("m.tar"), many.len() as u64).unwrap();
        assert_eq!(tree.manifest.entries.len(), 3);
        assert_eq!(tree.blobs.len(), 1);
    }

    #[test]
    fn a_later_entry_of_the_same_path_replaces_the_earlier() {
        let data = tar_with(&[
            ("x", tar::EntryType::Regular, b"old", None),
            ("y", tar::EntryType::Directory, b"", None),
            ("./x", tar::EntryType::Regular, b"new", None),
        ]);
        let tree = SourceTree::from_tar(&data[..], Path::new("t.tar")).unwrap();
        assert_eq!(tree.manifest.entries.len(), 2);
        assert!(matches!(tree.manifest.entries[0].kind, EntryKind::File { digest, .. } if digest == digest_of(b"new")));
    }

    #[test]
    fn importing_a_directory_stores_what_reading_it_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("a")).unwrap();
        fs::write(src.join("a/one"), b"same").unwrap();
        fs::write(src.join("two"), b"same").unwrap();
        fs::write(src.join("three"), b"other").unwrap();
        let blobs = BlobDir::open(dir.path().join("blobs")).unwrap();
        let imported = SourceTree::import_dir(&src, &blobs).unwrap();
        let read = SourceTree::from_dir(&src).unwrap();
        assert_eq!(imported.manifest, read.manifest);
        assert_eq!(imported.blobs.len(), 2);
        for (digest, (_, source)) in &imported.blobs {
            assert!(blobs.contains(digest));
            assert_eq!(digest_of(&source.read().unwrap()), *digest);
        }
        // Importing again stores nothing new and changes nothing.
        assert_eq!(SourceTree::import_dir(&src, &blobs).unwrap().manifest, read.manifest);
    }

    #[test]
    fn reads_a_directory_without_following_links() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("a/b")).unwrap();
        fs::write(dir.path().join("a/b/f.txt"), b"one").unwrap();
        fs::write(dir.path().join("run.sh"), b"#!/bin/sh").unwrap();
        fs::set_permissions(dir.path().join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("a/b/f.txt", dir.path().join("f")).unwrap();
        let tree = SourceTree::from_dir(dir.path()).unwrap();
        let run = tree.manifest.entries.iter().find(|e| e.path == "run.sh").unwrap();
        assert!(matches!(run.kind, EntryKind::File { executable: true, .. }));
        assert_eq!(tree.manifest.entries.len(), 5);

        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("bad")).unwrap();
        let err = SourceTree::from_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("'bad'") && err.contains("absolute"), "{err}");
    }
}
