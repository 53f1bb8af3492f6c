//! The archive reader of `ferry release upload`: tar, tar.gz or tar.zst
//! (told apart by their magic bytes, as the file name would), with a small
//! unpack limit so that bombs are refused quickly instead of filling memory.
//! A plain tar gets its header checksums fixed first, so that mutated sizes,
//! types and names reach the reader instead of failing the checksum.
#![no_main]

use std::path::Path;

use ferry_artifact::{ArchiveFormat, SourceTree};
use libfuzzer_sys::fuzz_target;

/// Far below the real limit: what matters is that it is enforced.
const LIMIT: u64 = 16 << 20;

fuzz_target!(|data: &[u8]| {
    let format = if data.starts_with(&[0x1f, 0x8b]) {
        ArchiveFormat::TarGz
    } else if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        ArchiveFormat::TarZst
    } else {
        ArchiveFormat::Tar
    };
    let mut tar;
    let data = if format == ArchiveFormat::Tar {
        tar = data.to_vec();
        ferry_fuzz::fix_tar_checksums(&mut tar);
        &tar[..]
    } else {
        data
    };
    if let Ok(tree) = SourceTree::from_archive(data, format, Path::new("fuzz.tar"), LIMIT) {
        // What the reader accepts is what a server would accept.
        assert!(tree.manifest.validate().is_ok());
        let mut total = 0u64;
        for (digest, (size, source)) in &tree.blobs {
            let bytes = source.read().expect("an in-memory blob reads");
            assert_eq!(bytes.len() as u64, *size);
            assert_eq!(ferry_artifact::digest_of(&bytes), *digest);
            total += size;
        }
        assert!(total <= LIMIT);
    }
});
