//! Writing a release back out as one `.tar.zst` file, for operators who want
//! the artifact as a single file (to inspect it, archive it, or carry it to a
//! host by hand when the server is out of reach).
//!
//! The archive is deterministic: entries in manifest order, owner 0, time 0,
//! modes 0644/0755, so the same release always gives the same bytes.

use std::io::{self, Write};

use ferry_domain::{Digest, EntryKind, Manifest};

/// zstd level: fast, and still a good ratio for source-like trees.
const LEVEL: i32 = 3;

/// Writes `manifest`'s tree as tar + zstd into `out`, reading each file's
/// content with `read_blob`.
pub fn write_tar_zst(
    manifest: &Manifest,
    mut read_blob: impl FnMut(&Digest) -> io::Result<Vec<u8>>,
    out: impl Write,
) -> io::Result<()> {
    let encoder = zstd::stream::write::Encoder::new(out, LEVEL)?;
    let mut tar = tar::Builder::new(encoder);
    tar.mode(tar::HeaderMode::Deterministic);
    for entry in &manifest.entries {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        match &entry.kind {
            EntryKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                tar.append_data(&mut header, format!("{}/", entry.path), io::empty())?;
            }
            EntryKind::Symlink { target } => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                tar.append_link(&mut header, &entry.path, target)?;
            }
            EntryKind::File { digest, size, executable } => {
                let bytes = read_blob(digest)?;
                if bytes.len() as u64 != *size {
                    return Err(io::Error::other(format!("blob {digest} of '{}' has the wrong size", entry.path)));
                }
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(if *executable { 0o755 } else { 0o644 });
                header.set_size(*size);
                tar.append_data(&mut header, &entry.path, &bytes[..])?;
            }
        }
    }
    tar.into_inner()?.finish()?.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SourceTree;

    #[test]
    fn a_tree_survives_the_round_trip_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("bin")).unwrap();
        std::fs::create_dir_all(src.join("empty")).unwrap();
        std::fs::write(src.join("bin/run"), b"#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(src.join("bin/run"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(src.join("VERSION"), b"v1\n").unwrap();
        std::os::unix::fs::symlink("bin/run", src.join("latest")).unwrap();
        let tree = SourceTree::from_dir(&src).unwrap();
        let write = |out: &mut Vec<u8>| {
            write_tar_zst(
                &tree.manifest,
                |d| tree.blobs.get(d).map(|(_, s)| s.read()).unwrap_or_else(|| Err(io::Error::other("missing"))),
                out,
            )
            .unwrap()
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        write(&mut a);
        write(&mut b);
        assert_eq!(a, b, "deterministic");
        let path = dir.path().join("r.tar.zst");
        std::fs::write(&path, &a).unwrap();
        assert_eq!(SourceTree::read(&path).unwrap().manifest, tree.manifest);
    }
}
