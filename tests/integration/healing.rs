//! A host heals for real (R2): release files are hard links into the host's
//! content store, so an edit in place on the host edits the stored object
//! too. Repairs must restore the manifest's bytes (fetching damaged content
//! again), and damaged content is never reused by a later install or
//! rollback.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::harness::{Ferry, wait_until, write_tree};

/// Writes through an existing file, keeping its inode (as an editor that
/// preserves hard links does), even though it is read-only.
fn edit_in_place(path: &Path, bytes: &[u8]) {
    let mut file = std::fs::OpenOptions::new().write(true).truncate(true).open(path).unwrap();
    file.write_all(bytes).unwrap();
}

/// Every object in the host's content store.
fn objects(f: &Ferry, host: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&f.root_of(host).join(".ferry/objects"), &mut out);
    out
}

/// Uploads `version` of `app`: the usual tree plus `extra` files.
fn upload(f: &Ferry, version: &str, extra: &[(&str, &str)]) {
    let tree = f.dir.path().join("heal-trees").join(version);
    write_tree(&tree, version, 8);
    for (path, body) in extra {
        std::fs::write(tree.join(path), body).unwrap();
    }
    f.ok(&["release", "upload", "app", tree.to_str().unwrap(), "--version", version]);
}

fn status_note(f: &Ferry) -> String {
    let s = f.json(&["status", "app"]);
    s["environments"][0]["hosts"][0]["error"].as_str().unwrap_or("").to_string()
}

#[test]
fn an_edit_in_place_is_repaired_from_verified_content_and_not_carried_into_the_next_release() {
    let mut f = Ferry::start();
    f.start_agents(&["web-1"], "role=web");
    f.project_app();
    upload(&f, "v1", &[]);
    upload(&f, "v2", &[]);
    f.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);

    let current = f.root_of("web-1").join("app/current");
    let edited = current.join("lib/f5.txt");
    let original = std::fs::read(&edited).unwrap();
    assert!(std::fs::metadata(&edited).unwrap().nlink() >= 2, "release files are links into the content store");
    // An operator fixes a "typo" in place: the object is the same inode.
    let tampered = b"edited on the host, and longer than before\n".to_vec();
    edit_in_place(&edited, &tampered);
    assert!(
        objects(&f, "web-1").iter().any(|o| std::fs::read(o).unwrap() == tampered),
        "the edit reached the stored object"
    );

    wait_until(Duration::from_secs(30), "the edited file to be repaired", || {
        std::fs::read(&edited).ok().as_deref() == Some(&original[..])
    });
    // The repaired file is a link to an object with the manifest's bytes,
    // and the damaged bytes are gone from the store.
    let ino = std::fs::metadata(&edited).unwrap().ino();
    let linked: Vec<PathBuf> =
        objects(&f, "web-1").into_iter().filter(|o| std::fs::metadata(o).unwrap().ino() == ino).collect();
    assert_eq!(linked.len(), 1, "the repaired file is one object's link");
    assert_eq!(std::fs::read(&linked[0]).unwrap(), original);
    assert!(
        !objects(&f, "web-1").iter().any(|o| std::fs::read(o).unwrap() == tampered),
        "the damaged object was dropped, not reused"
    );
    wait_until(Duration::from_secs(15), "status to report the repair", || {
        let note = status_note(&f);
        note.contains("drift repaired") && note.contains("lib/f5.txt")
    });

    // The repair holds: no repair loop, the file stays right.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(std::fs::read(&edited).unwrap(), original);
    let log = f.agent_log("web-1");
    assert_eq!(log.matches("drift found").count(), 1, "one repair, not one per check:\n{log}");

    // The next release shares that content: it gets the good bytes.
    f.ok(&["deploy", "app", "prod", "--version", "v2", "--wait"]);
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v2"));
    assert_eq!(std::fs::read(current.join("lib/f5.txt")).unwrap(), original);
}

#[test]
fn damaged_content_outside_the_running_release_is_fetched_again_not_reused() {
    let mut f = Ferry::start();
    f.start_agents(&["web-1"], "role=web");
    f.project_app();
    let only = "content that v2 does not ship\n";
    upload(&f, "v1", &[("only.txt", only)]);
    upload(&f, "v2", &[]);
    upload(&f, "v3", &[("only.txt", only)]);
    f.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);
    f.ok(&["deploy", "app", "prod", "--version", "v2", "--wait"]);

    // v1 is still on the host (kept for rollbacks), and with it the object
    // of only.txt, which no running release checks. Damage it, same size.
    let releases = f.root_of("web-1").join("app/releases");
    let v1 = std::fs::read_dir(&releases)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("VERSION").is_file() && std::fs::read_to_string(p.join("VERSION")).unwrap().trim() == "v1")
        .expect("v1 kept on the host");
    let damaged = "CONTENT THAT V2 DOES NOT SHIP\n";
    assert_eq!(damaged.len(), only.len());
    edit_in_place(&v1.join("only.txt"), damaged.as_bytes());

    // A new install that needs the content downloads it again.
    f.ok(&["deploy", "app", "prod", "--version", "v3", "--wait"]);
    let current = f.root_of("web-1").join("app/current");
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v3"));
    assert_eq!(std::fs::read_to_string(current.join("only.txt")).unwrap(), only);

    // A rollback to the damaged release (a relink) repairs it first.
    f.ok(&["rollback", "app", "prod", "--to", "v1", "--wait"]);
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v1"));
    assert_eq!(std::fs::read_to_string(current.join("only.txt")).unwrap(), only);
}

/// The object with these bytes in a host's content store.
fn object_with(f: &Ferry, host: &str, bytes: &[u8]) -> PathBuf {
    objects(f, host).into_iter().find(|o| std::fs::read(o).unwrap() == bytes).expect("no object with these bytes")
}

#[test]
fn an_object_replaced_in_the_store_is_downloaded_again_not_reused() {
    let f = Ferry::fleet_on_v1(&["web-1"]);
    let original = std::fs::read(f.dir.path().join("trees/v1/lib/f7.txt")).unwrap();
    let object = object_with(&f, "web-1", &original);
    let v1_file = f.root_of("web-1").join("app/current/lib/f7.txt");
    // Damaged on its own, as a new inode: the v1 release file keeps its good
    // bytes, so no drift shows there.
    let bad = object.with_extension("bad");
    std::fs::write(&bad, b"damaged in the store\n").unwrap();
    std::fs::rename(&bad, &object).unwrap();
    assert_eq!(std::fs::read(&v1_file).unwrap(), original);

    f.ok(&["deploy", "app", "prod", "--version", "v2", "--wait"]);
    let v2_file = f.root_of("web-1").join("app/current/lib/f7.txt");
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v2"));
    assert_eq!(std::fs::read(&v2_file).unwrap(), original, "v2 got the manifest's bytes, not the damaged object");
    assert!(!objects(&f, "web-1").iter().any(|o| std::fs::read(o).unwrap() == b"damaged in the store\n"));
    assert!(f.agent_log("web-1").contains("no longer matches its digest"));
}

#[test]
fn a_repair_that_cannot_download_says_so_and_repairs_once_it_can() {
    let mut f = Ferry::fleet_on_v1(&["web-1"]);
    let original = std::fs::read(f.dir.path().join("trees/v1/lib/f2.txt")).unwrap();
    let edited = f.root_of("web-1").join("app/current/lib/f2.txt");
    f.server.kill();
    edit_in_place(&edited, b"edited while the server is away\n");
    wait_until(Duration::from_secs(30), "the agent to say it could not repair", || {
        f.agent_log("web-1").contains("repair failed")
    });
    assert_ne!(std::fs::read(&edited).unwrap(), original);
    assert!(!f.agent_log("web-1").contains("drift repaired"));
    f.restart_server();
    wait_until(Duration::from_secs(40), "the repair once the server is back", || {
        std::fs::read(&edited).ok().as_deref() == Some(&original[..])
    });
}

#[test]
fn the_service_user_cannot_change_a_release_file_or_its_object() {
    let f = Ferry::fleet_on_v1(&["web-1"]);
    let original = std::fs::read(f.dir.path().join("trees/v1/lib/f4.txt")).unwrap();
    let file = f.root_of("web-1").join("app/current/lib/f4.txt");
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!((meta.mode() & 0o7777, meta.uid()), (0o444, 0), "read-only, the agent's (root's)");
    let as_nobody = |script: &str| {
        std::process::Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "sh", "-c", script])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(as_nobody(&format!("cat '{}' >/dev/null", file.display())), "the service user reads its release");
    for attempt in [format!("echo x >> '{}'", file.display()), format!("chmod 666 '{}'", file.display())] {
        assert!(!as_nobody(&attempt), "the service user could: {attempt}");
    }
    assert_eq!(std::fs::read(&file).unwrap(), original);
    assert_eq!(std::fs::read(object_with(&f, "web-1", &original)).unwrap(), original);
}
