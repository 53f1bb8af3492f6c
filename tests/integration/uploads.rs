//! Uploading releases: archives and directories, and the archives that must
//! be refused before anything is stored.

use std::path::Path;

use crate::harness::{Ferry, write_tree};

/// One raw tar entry: name, type, link target.
pub(crate) type RawEntry<'a> = (&'a str, tar::EntryType, Option<&'a str>);

/// Writes a tar whose entry names are taken literally, so that `..` and
/// absolute paths reach the server as an attacker would send them.
pub(crate) fn raw_tar(path: &Path, entries: &[RawEntry], gzip: bool) {
    let mut b = tar::Builder::new(Vec::new());
    for (name, ty, link) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*ty);
        let data: &[u8] = if *ty == tar::EntryType::Regular { b"payload\n" } else { b"" };
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            h.set_link_name(l).unwrap();
        }
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    let bytes = b.into_inner().unwrap();
    if gzip {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&bytes).unwrap();
        std::fs::write(path, gz.finish().unwrap()).unwrap();
    } else {
        std::fs::write(path, bytes).unwrap();
    }
}

#[test]
fn archives_that_escape_the_release_are_refused_naming_the_entry() {
    let f = Ferry::start();
    f.project_app();
    let dir = f.dir.path();
    let cases: [(&str, Vec<RawEntry>, &str); 4] = [
        (
            "dotdot.tar",
            vec![("ok.txt", tar::EntryType::Regular, None), ("../evil", tar::EntryType::Regular, None)],
            "'../evil'",
        ),
        ("abs.tar.gz", vec![("/etc/cron.d/evil", tar::EntryType::Regular, None)], "'/etc/cron.d/evil'"),
        ("link.tar", vec![("conf", tar::EntryType::Symlink, Some("../../../etc"))], "'conf'"),
        ("abslink.tar", vec![("passwd", tar::EntryType::Symlink, Some("/etc/passwd"))], "'passwd'"),
    ];
    for (file, entries, named) in cases {
        let path = dir.join(file);
        raw_tar(&path, &entries, file.ends_with(".gz"));
        let err = f.fails(&["release", "upload", "app", path.to_str().unwrap(), "--version", "v1"]);
        assert!(err.contains(named), "{file}: {err}");
    }
    // A header claiming 60 GiB in front of a few bytes: a clear error naming
    // the entry and the limit, not an abort while allocating the claim.
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_path("huge.bin").unwrap();
    header.set_size(60 << 30);
    header.set_mode(0o644);
    header.set_cksum();
    let mut lying = header.as_bytes().to_vec();
    lying.extend_from_slice(b"a few bytes");
    let path = dir.join("huge.tar");
    std::fs::write(&path, lying).unwrap();
    let err = f.fails(&["release", "upload", "app", path.to_str().unwrap(), "--version", "v1"]);
    assert!(err.contains("'huge.bin'") && err.contains("2 GiB"), "{err}");
    let list = f.json(&["release", "list", "app"]);
    assert_eq!(list.as_array().unwrap().len(), 0, "nothing was stored");
    let blobs = std::fs::read_dir(dir.join("server/artifacts"))
        .unwrap()
        .filter(|e| e.as_ref().map(|e| e.file_name() != "tmp").unwrap_or(false));
    assert_eq!(blobs.count(), 0, "no content was stored either");
}

#[test]
fn archives_and_directories_upload_alike() {
    let mut f = Ferry::start();
    f.start_agents(&["web-1"], "role=web");
    f.project_app();
    let tree = f.dir.path().join("tree");
    write_tree(&tree, "v7", 5);
    // The same tree as .tar.gz, built with the system's tar as an operator would.
    let tgz = f.dir.path().join("app.tar.gz");
    let status = std::process::Command::new("tar")
        .args(["czf", tgz.to_str().unwrap(), "-C", tree.to_str().unwrap(), "."])
        .status()
        .unwrap();
    assert!(status.success());
    f.ok(&["release", "upload", "app", tgz.to_str().unwrap(), "--version", "v7"]);
    f.ok(&["release", "upload", "app", tree.to_str().unwrap(), "--version", "v7-dir"]);
    let list = f.json(&["release", "list", "app"]);
    let digests: Vec<&str> = list.as_array().unwrap().iter().map(|r| r["manifest_digest"].as_str().unwrap()).collect();
    assert_eq!(digests[0], digests[1], "same tree, same manifest, whatever the packaging");

    f.ok(&["deploy", "app", "prod", "--version", "v7", "--wait"]);
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v7"));

    // Any release can be taken away as one .tar.zst, and that file uploads
    // back to the very same content.
    let file = f.dir.path().join("v7.tar.zst");
    f.ok(&["release", "download", "app", "v7", "-O", file.to_str().unwrap()]);
    f.ok(&["release", "upload", "app", file.to_str().unwrap(), "--version", "v7-again"]);
    let list = f.json(&["release", "list", "app"]);
    assert_eq!(list[0]["manifest_digest"], list[1]["manifest_digest"]);
    let err = f.fails(&["release", "download", "app", "v404"]);
    assert!(err.contains("version 'v404' of project 'app' not found"), "{err}");

    let err = f.fails(&["release", "upload", "app", tree.to_str().unwrap(), "--version", "v7"]);
    assert!(err.contains("version 'v7' already exists"), "{err}");
    let err = f.fails(&["release", "upload", "app", tree.to_str().unwrap(), "--version", "bad/version"]);
    assert!(err.contains("version 'bad/version'"), "{err}");
    let err = f.fails(&["release", "upload", "nope", tree.to_str().unwrap(), "--version", "v1"]);
    assert!(err.contains("project 'nope' not found"), "{err}");
    let err = f.fails(&["release", "upload", "app", "/nonexistent/dir", "--version", "v9"]);
    assert!(err.contains("/nonexistent/dir"), "{err}");
}
