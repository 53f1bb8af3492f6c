//! The property the manifest validator exists for: no manifest it accepts,
//! materialised on a real filesystem, has a path that resolves outside the
//! release. Trees are random mixes of directories, files and links
//! (relative, absolute, chained through each other); the kernel, not a
//! second copy of the rules, decides where each path ends.

// A test that meets an unexpected error should stop right there, loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use ferry_domain::{Digest, Entry, EntryKind, Manifest};
use proptest::prelude::*;

/// Names every generated path is made of, so that links often hit entries.
const NAMES: [&str; 3] = ["a", "b", "u"];
/// How deep the release lies below the temporary directory: an escape has
/// that many real levels to land in.
const DEPTH: usize = 6;

fn name() -> impl Strategy<Value = String> {
    proptest::sample::select(NAMES.to_vec()).prop_map(str::to_string)
}

fn rel_path() -> impl Strategy<Value = String> {
    proptest::collection::vec(name(), 1..3).prop_map(|c| c.join("/"))
}

fn link_target() -> impl Strategy<Value = String> {
    let component = prop_oneof![2 => Just("..".to_string()), 1 => Just(".".to_string()), 5 => name()];
    (proptest::bool::weighted(0.1), proptest::collection::vec(component, 1..9))
        .prop_map(|(absolute, c)| if absolute { format!("/{}", c.join("/")) } else { c.join("/") })
}

fn entry() -> impl Strategy<Value = Entry> {
    let kind = prop_oneof![
        2 => Just(EntryKind::Dir),
        1 => Just(EntryKind::File { digest: Digest([7; 32]), size: 0, executable: false }),
        4 => link_target().prop_map(|target| EntryKind::Symlink { target }),
    ];
    (rel_path(), kind).prop_map(|(path, kind)| Entry { path, kind })
}

/// Drops what the validator refuses for reasons other than links (the same
/// path twice, entries below a file or a link), so that most generated trees
/// reach the link checks.
fn tidy(entries: Vec<Entry>) -> Manifest {
    let mut kept: std::collections::BTreeMap<String, EntryKind> = std::collections::BTreeMap::new();
    for entry in entries {
        let mut ancestors = entry.path.match_indices('/').map(|(i, _)| &entry.path[..i]);
        let blocked = ancestors.any(|a| kept.get(a).is_some_and(|k| !matches!(k, EntryKind::Dir)));
        let shadows = kept.keys().any(|k| k.starts_with(&format!("{}/", entry.path)));
        if !blocked && (!shadows || matches!(entry.kind, EntryKind::Dir)) {
            kept.entry(entry.path).or_insert(entry.kind);
        }
    }
    Manifest::new(kept.into_iter().map(|(path, kind)| Entry { path, kind }).collect())
}

/// Makes every name of `NAMES`, two levels deep, in `dir`: a path that
/// leaves the release then finds real directories to resolve through.
fn decoy(dir: &Path) {
    for a in NAMES {
        for b in NAMES {
            let _ = fs::create_dir_all(dir.join(a).join(b));
        }
    }
}

/// The directories above every release: `DEPTH` levels, each full of
/// decoys. Made once; each case's release is a new directory at the bottom.
fn decoys() -> &'static Path {
    static DIR: std::sync::OnceLock<(tempfile::TempDir, std::path::PathBuf)> = std::sync::OnceLock::new();
    let (_, bottom) = DIR.get_or_init(|| {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut outer = tmp.path().to_path_buf();
        decoy(&outer);
        for level in 0..DEPTH {
            outer = outer.join(format!("level{level}"));
            fs::create_dir(&outer).expect("level");
            decoy(&outer);
        }
        (tmp, outer)
    });
    bottom
}

/// Writes the manifest's tree under `root` as an agent would: directories,
/// empty files, links verbatim.
fn materialise(root: &Path, manifest: &Manifest) {
    for entry in &manifest.entries {
        let path = root.join(&entry.path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("parent directory");
        }
        match &entry.kind {
            EntryKind::Dir => fs::create_dir_all(&path).expect("directory"),
            EntryKind::File { .. } => fs::write(&path, b"").expect("file"),
            EntryKind::Symlink { target } => symlink(target, &path).expect("link"),
        }
    }
}

/// Every path the agent or a hook could name inside the release (release
/// paths never hold `..`): each entry, and each entry with one or two names
/// appended, so a link to a directory is also entered.
fn probes(manifest: &Manifest) -> Vec<String> {
    let mut out = Vec::new();
    for entry in &manifest.entries {
        out.push(entry.path.clone());
        for n in NAMES {
            out.push(format!("{}/{n}", entry.path));
            for m in NAMES {
                out.push(format!("{}/{n}/{m}", entry.path));
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 4000,
        max_global_rejects: 200_000,
        failure_persistence: None,
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    })]

    #[test]
    fn no_accepted_manifest_resolves_outside_its_root(entries in proptest::collection::vec(entry(), 1..10)) {
        let manifest = tidy(entries);
        prop_assume!(manifest.validate().is_ok());
        let outer = decoys();
        let tmp = tempfile::tempdir_in(outer).expect("release directory");
        let root = tmp.path().to_path_buf();
        materialise(&root, &manifest);
        let real_root = fs::canonicalize(&root).expect("root resolves");
        for probe in probes(&manifest) {
            // A path that does not resolve (dangling, loop) reaches nothing.
            if let Ok(resolved) = fs::canonicalize(root.join(&probe)) {
                prop_assert!(
                    resolved.starts_with(&real_root),
                    "'{}' resolves to {} outside the release; manifest: {:?}",
                    probe, resolved.display(), manifest.entries
                );
            }
        }
    }
}
