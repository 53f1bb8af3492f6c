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
    let mut crate_dir = None;
    let mut named = Vec::new();
    for line in section.lines() {
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

/// The web pages are views over the application layer, as the API is: a
/// page calls `app::*`, never an API handler (whose extractors, JSON and
/// status codes are HTTP's), so the two cannot drift apart.
#[test]
fn no_web_page_calls_an_api_handler() {
    let offenders =
        lines_of_views("crates/server/src/ui", |line| line.contains("crate::api::") || line.contains("super::api::"));
    assert!(offenders.is_empty(), "web pages reaching into the API instead of `app`: {offenders:#?}");
}

/// API handlers and web pages only read the request, call a use case of
/// `app` and shape the answer: neither reads or writes the store itself, so
/// every rule lives once, in `app`, and both interfaces keep it.
#[test]
fn no_api_handler_or_web_page_calls_the_store() {
    let is_store_call = |line: &str| line.contains(".db.") || line.contains("db.as_ref()");
    let mut offenders = lines_of_views("crates/server/src/api", is_store_call);
    offenders.extend(lines_of_views("crates/server/src/ui", is_store_call));
    assert!(offenders.is_empty(), "handlers or pages calling the store instead of `app`: {offenders:#?}");
}

/// The lines of the Rust files below `dir` (its tests and benchmarks left
/// out, comments too) that `matches`, as `path:line: text`.
fn lines_of_views(dir: &str, matches: impl Fn(&str) -> bool) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&Path::new(ROOT).join(dir), &mut files);
    assert!(files.len() > 5, "read only {} files below {dir}", files.len());
    let mut offenders = Vec::new();
    for file in files {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name == "tests.rs" || name == "bench.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if !line.trim_start().starts_with("//") && matches(line) {
                offenders.push(format!("{}:{}: {}", file.strip_prefix(ROOT).unwrap().display(), n + 1, line.trim()));
            }
        }
    }
    offenders
}

/// The server's top-level modules (a file or a directory below
/// crates/server/src) and the others each names as `crate::NAME`, comments
/// left out. `lib.rs` is the root that wires them all and is not one.
fn server_module_graph() -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let src = Path::new(ROOT).join("crates/server/src");
    let mut modules = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap().flatten() {
        let path = entry.path();
        let name = path.file_stem().and_then(|n| n.to_str()).unwrap_or("").to_string();
        if name == "lib" {
            continue;
        }
        let mut files = Vec::new();
        if path.is_dir() {
            rust_files(&path, &mut files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path.clone());
        } else {
            continue;
        }
        modules.insert(name, files);
    }
    let names: std::collections::BTreeSet<String> = modules.keys().cloned().collect();
    let mut graph = std::collections::BTreeMap::new();
    for (name, files) in &modules {
        let mut uses = std::collections::BTreeSet::new();
        for file in files {
            let text = std::fs::read_to_string(file).unwrap();
            for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for (i, _) in line.match_indices("crate::") {
                    let rest = &line[i + "crate::".len()..];
                    // `crate::name` and `crate::{a, b::c}`.
                    let group = rest.strip_prefix('{').map(|g| g.split('}').next().unwrap_or(""));
                    let heads: Vec<&str> = match group {
                        Some(g) => g.split(',').map(|p| p.trim().split("::").next().unwrap_or("")).collect(),
                        None => {
                            vec![rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).next().unwrap_or("")]
                        }
                    };
                    for head in heads {
                        if head != name && names.contains(head) {
                            uses.insert(head.to_string());
                        }
                    }
                }
            }
        }
        graph.insert(name.clone(), uses);
    }
    graph
}

/// The groups of modules that reach each other (strongly connected
/// components of more than one module), each sorted, in order.
fn cycles(graph: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>) -> Vec<Vec<String>> {
    let reach = |from: &str| {
        let mut seen = std::collections::BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(m) = todo.pop() {
            for next in graph.get(&m).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reaches: std::collections::BTreeMap<&String, _> = graph.keys().map(|m| (m, reach(m))).collect();
    let mut groups: Vec<Vec<String>> = Vec::new();
    for m in graph.keys() {
        let group: Vec<String> =
            graph.keys().filter(|o| *o == m || (reaches[m].contains(*o) && reaches[*o].contains(m))).cloned().collect();
        if group.len() > 1 && !groups.contains(&group) {
            groups.push(group);
        }
    }
    groups
}

/// The server's modules depend on each other one way, so each can be read,
/// tested and changed knowing only what is below it: `api` and `ui` over
/// `app`, `app` over the owners of each concern, all over `error` and the
/// store. A module that needs something of one above it takes it as a
/// function wired in `lib.rs` (as `AppState::on_deployment_ended`), or the
/// shared piece moves down.
#[test]
fn the_servers_modules_have_no_cycles() {
    let graph = server_module_graph();
    assert!(graph.len() > 20, "read only {} modules of crates/server/src", graph.len());
    let found = cycles(&graph);
    assert!(found.is_empty(), "modules of the server that depend on each other both ways: {found:?}");
}

/// The check above finds a cycle when there is one, through a third module.
#[test]
fn the_cycle_check_finds_a_cycle() {
    let edges = [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("e", "d")];
    let mut graph: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = Default::default();
    for (from, to) in edges {
        graph.entry(from.to_string()).or_default().insert(to.to_string());
        graph.entry(to.to_string()).or_default();
    }
    assert_eq!(cycles(&graph), vec![vec!["a".to_string(), "b".to_string(), "c".to_string()]]);
}
