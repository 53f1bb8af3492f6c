//! Tidy tests: the structure the documents describe, held true by the code.
//! They read the source tree and start nothing, so they cost milliseconds.

use std::path::{Path, PathBuf};

/// The workspace root.
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Every `.rs` file below `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source files of the binary and of every crate, as
/// (the crate's source directory, the file's path below it).
fn source_files() -> Vec<(PathBuf, String)> {
    let root = Path::new(ROOT);
    let mut dirs = vec![root.join("src")];
    for entry in std::fs::read_dir(root.join("crates")).unwrap().flatten() {
        dirs.push(entry.path().join("src"));
    }
    let mut files = Vec::new();
    for dir in dirs {
        let mut found = Vec::new();
        rust_files(&dir, &mut found);
        for file in found {
            let below = file.strip_prefix(&dir).unwrap().to_string_lossy().into_owned();
            files.push((dir.clone(), below));
        }
    }
    files
}

/// The files the code map (docs/ARCHITECTURE.md, `## Code map`) names, as
/// (the crate's source directory relative to the root, the file below it):
/// each `### \`DIR\`` heading opens a crate, each "- `FILE` —" line names a
/// file of it (several files may share a line: "- `A`, `B` —").
fn code_map() -> Vec<(String, String)> {
    let doc = std::fs::read_to_string(Path::new(ROOT).join("docs/ARCHITECTURE.md")).unwrap();
    let section = doc.split("\n## Code map\n").nth(1).expect("docs/ARCHITECTURE.md has a '## Code map' section");
    let section = section.split("\n## ").next().unwrap_or(section);
    // Sections `## Code map additions (...)` name files the same way, until
    // they are folded into the map.
    let additions: Vec<&str> =
        doc.split("\n## Code map additions").skip(1).map(|s| s.split("\n## ").next().unwrap_or(s)).collect();
    let mut crate_dir = None;
    let mut named = Vec::new();
    for line in std::iter::once(section).chain(additions).flat_map(str::lines) {
        if let Some(heading) = line.strip_prefix("### `") {
            let dir = heading.split('`').next().unwrap_or("").trim_end_matches('/');
            crate_dir = Some(if dir == "src" { "src".to_string() } else { format!("{dir}/src") });
        } else if let (Some(dir), Some(item)) = (&crate_dir, line.strip_prefix("- ")) {
            // Every `FILE` before the dash: files that share one line share
            // what it says.
            let names = item.split(" — ").next().unwrap_or("");
            for file in names.split('`').skip(1).step_by(2) {
                named.push((dir.clone(), file.to_string()));
            }
        }
    }
    named
}

/// A newcomer finds every module in the code map, one line each: every
/// source file is named under its crate (a nested one with its directory,
/// `api/builds.rs`), and nothing named there is gone, so a new file cannot
/// slip in undescribed and a moved one cannot leave a stale line.
#[test]
fn every_source_file_is_named_in_the_code_map() {
    let named = code_map();
    assert!(named.len() > 100, "the code map names only {} files: is its format still '- `FILE` —'?", named.len());
    let files: Vec<(String, String)> = source_files()
        .into_iter()
        .map(|(dir, below)| (dir.strip_prefix(ROOT).unwrap().display().to_string(), below))
        .collect();
    let missing: Vec<String> =
        files.iter().filter(|f| !named.contains(f)).map(|(dir, below)| format!("{dir}/{below}")).collect();
    assert!(missing.is_empty(), "not named in docs/ARCHITECTURE.md's code map: {missing:?}");
    let stale: Vec<String> =
        named.iter().filter(|f| !files.contains(f)).map(|(dir, below)| format!("{dir}/{below}")).collect();
    assert!(stale.is_empty(), "named in docs/ARCHITECTURE.md's code map but not in the tree: {stale:?}");
}

/// The domain crate is rules without I/O (docs/ARCHITECTURE.md): a new
/// dependency there is a decision, made here and in the document together.
#[test]
fn the_domain_crate_depends_only_on_its_allow_list() {
    const ALLOWED: &[&str] = &["serde", "serde_json", "thiserror", "time", "toml", "humantime", "sha2", "hmac"];
    let found = dependencies("crates/domain/Cargo.toml", "[dependencies]");
    assert!(!found.is_empty(), "no [dependencies] read from crates/domain/Cargo.toml");
    let extra: Vec<&String> = found.iter().filter(|d| !ALLOWED.contains(&d.as_str())).collect();
    assert!(extra.is_empty(), "crates/domain depends on {extra:?}, beyond its allow-list {ALLOWED:?}");
}

/// The store records what reports mean (`ferry_domain::report`), never the
/// protocol that carries them: a change to the agent channel cannot reach
/// a storage backend, and a backend needs no wire types.
#[test]
fn the_store_does_not_depend_on_the_wire_protocol() {
    for section in ["[dependencies]", "[dev-dependencies]"] {
        let found = dependencies("crates/store/Cargo.toml", section);
        assert!(!found.iter().any(|d| d == "ferry-proto"), "crates/store {section} has ferry-proto");
    }
    let mut files = Vec::new();
    rust_files(&Path::new(ROOT).join("crates/store"), &mut files);
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(!text.contains("ferry_proto"), "{} uses ferry_proto", file.display());
    }
}

/// The names of a manifest's dependencies in one section.
fn dependencies(manifest: &str, wanted: &str) -> Vec<String> {
    let text = std::fs::read_to_string(Path::new(ROOT).join(manifest)).unwrap();
    let mut section = String::new();
    let mut found = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.to_string();
            continue;
        }
        if section == wanted
            && !line.starts_with('#')
            && let Some((name, _)) = line.split_once('=')
        {
            found.push(name.trim().trim_end_matches(".workspace").to_string());
        }
    }
    found
}

/// A file over this many lines says why at its top.
const LONG_FILE: usize = 800;

/// Long files are a choice, not an accident: one over [`LONG_FILE`] lines
/// says why in its module documentation ("Long file: ..."), so that growing
/// past it makes someone either split the file or write the reason down.
#[test]
fn a_long_source_file_says_why() {
    let unexplained: Vec<String> = source_files()
        .into_iter()
        .filter_map(|(dir, below)| {
            let path = dir.join(&below);
            let text = std::fs::read_to_string(&path).unwrap();
            let long = text.lines().count() > LONG_FILE;
            let explained = text.lines().take_while(|l| l.starts_with("//!")).any(|l| l.contains("Long file: "));
            (long && !explained).then(|| path.strip_prefix(ROOT).unwrap().display().to_string())
        })
        .collect();
    assert!(
        unexplained.is_empty(),
        "over {LONG_FILE} lines without a '//! Long file: <why>' in the module documentation: {unexplained:?}"
    );
}
