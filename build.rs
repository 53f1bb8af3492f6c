//! Stamps the binary with the commit it was built from and a build date, for
//! `ferry --version`: `ferry 0.1.0 (commit 1a2b3c4d5e6f, built 2026-12-04)`.
//!
//! The date is not "now": a rebuild of the same commit must give the same
//! binary. It is SOURCE_DATE_EPOCH when set (reproducible builds), else the
//! commit's date. FERRY_BUILD_COMMIT names the commit for a build from a
//! tarball, where there is no git checkout; without either it is "unknown".

use std::path::{Path, PathBuf};
use std::process::Command;

// The rules themselves, shared with the binary's unit tests.
#[path = "src/stamp.rs"]
mod stamp;

fn main() {
    println!("cargo::rerun-if-env-changed=FERRY_BUILD_COMMIT");
    println!("cargo::rerun-if-env-changed=SOURCE_DATE_EPOCH");
    println!("cargo::rerun-if-changed=src/stamp.rs");

    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    watch_head(&manifest_dir);

    let commit_env = std::env::var("FERRY_BUILD_COMMIT").ok();
    let epoch_env = std::env::var("SOURCE_DATE_EPOCH").ok();
    let git_commit = git(&manifest_dir, &["rev-parse", "--short=12", "HEAD"]);
    let git_epoch = git(&manifest_dir, &["log", "-1", "--format=%ct", "HEAD"]);
    let line = stamp::version_line(
        &env_or("CARGO_PKG_VERSION"),
        commit_env.as_deref(),
        git_commit.as_deref(),
        epoch_env.as_deref(),
        git_epoch.as_deref(),
    );
    println!("cargo::rustc-env=FERRY_VERSION_LONG={line}");
}

fn env_or(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

/// Runs git in the source directory; None when git or the checkout is missing.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!s.is_empty()).then_some(s)
}

/// Reruns the script when HEAD moves, and only then: HEAD itself (a checkout
/// of another branch) and the ref it points at (a new commit on the branch).
/// In a worktree `.git` is a file; git names the real paths.
fn watch_head(dir: &Path) {
    let Some(head) = git(dir, &["rev-parse", "--path-format=absolute", "--git-path", "HEAD"]) else {
        return;
    };
    watch(Path::new(&head));
    if let Some(reference) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        if let Some(path) = git(dir, &["rev-parse", "--path-format=absolute", "--git-path", &reference]) {
            watch(Path::new(&path));
        }
        // A packed ref changes packed-refs instead of the loose file.
        if let Some(common) = git(dir, &["rev-parse", "--path-format=absolute", "--git-common-dir"]) {
            watch(&Path::new(&common).join("packed-refs"));
        }
    }
}

/// Cargo treats a watched file that does not exist as always changed, which
/// would rerun the script on every build: watch only files that exist.
fn watch(path: &Path) {
    if path.is_file() {
        println!("cargo::rerun-if-changed={}", path.display());
    }
}
