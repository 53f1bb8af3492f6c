//! A release manifest: every entry of a release tree with its content digest.
//!
//! The manifest is what makes delta transfer and verification possible: a
//! host fetches only the digests it does not hold, and every file is checked
//! against its digest before a release is activated. Validation here is the
//! single place that decides whether a tree may be unpacked on a host: no
//! absolute paths, no `..`, no symlink that leads out of the release, nothing
//! written through a symlink.

use std::collections::{BTreeMap, HashSet};

use crate::Digest;

/// One entry of a release tree. Paths are relative, `/`-separated.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    pub path: String,
    #[serde(flatten)]
    pub kind: EntryKind,
}

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum EntryKind {
    /// A regular file. Modes are normalised to 0644, or 0755 when executable,
    /// so identical content can be shared between releases by hard link.
    File {
        digest: Digest,
        size: u64,
        #[serde(default, skip_serializing_if = "is_false")]
        executable: bool,
    },
    /// A directory (listed so that empty directories survive).
    Dir,
    /// A symbolic link; its target must stay inside the release.
    Symlink { target: String },
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The full list of entries of one release, sorted by path.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub entries: Vec<Entry>,
}

/// Why a manifest (and so the archive or directory it came from) was refused.
/// Every variant names the offending entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("entry '{0}': absolute paths are not allowed in a release")]
    AbsolutePath(String),
    #[error("entry '{0}': '..' is not allowed in a release path")]
    ParentComponent(String),
    #[error("entry '{0}': empty or '.' path components are not allowed")]
    EmptyComponent(String),
    #[error("entry '{0}': the path contains a NUL byte")]
    NulByte(String),
    #[error("entry '{path}': a path component of {len} bytes is longer than a filesystem allows ({max})")]
    ComponentTooLong { path: String, len: usize, max: usize },
    #[error("entry '{path}...': the path is {len} bytes long; at most {max} are allowed")]
    PathTooLong { path: String, len: usize, max: usize },
    #[error("entry '{0}' appears twice")]
    Duplicate(String),
    #[error("entry '{path}': symlink target '{target}' is absolute; links must stay inside the release")]
    AbsoluteLink { path: String, target: String },
    #[error("entry '{path}': symlink target '{target}' points outside the release")]
    LinkEscapes { path: String, target: String },
    #[error(
        "entry '{path}': symlink target '{target}' leads through other links ({hops} or more) without ending; \
         link loops are not allowed in a release"
    )]
    LinkLoop { path: String, target: String, hops: u32 },
    #[error("entry '{path}': symlink target is {len} bytes long; at most {max} are allowed")]
    LinkTooLong { path: String, len: usize, max: usize },
    #[error("entry '{path}' lies below symlink '{link}'; nothing may be written through a link")]
    UnderSymlink { path: String, link: String },
    #[error("entry '{path}' lies below file '{file}'")]
    UnderFile { path: String, file: String },
    #[error("the release is empty")]
    Empty,
}

impl Manifest {
    /// Builds a manifest, sorting entries by path.
    pub fn new(mut entries: Vec<Entry>) -> Self {
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Manifest { entries }
    }

    /// Checks every rule a host relies on before unpacking. See the module doc.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.entries.is_empty() {
            return Err(ManifestError::Empty);
        }
        let mut seen = HashSet::with_capacity(self.entries.len());
        let mut kinds: BTreeMap<&str, &EntryKind> = BTreeMap::new();
        for entry in &self.entries {
            validate_path(&entry.path)?;
            if !seen.insert(entry.path.as_str()) {
                return Err(ManifestError::Duplicate(entry.path.clone()));
            }
            if let EntryKind::Symlink { target } = &entry.kind {
                validate_link(&entry.path, target)?;
            }
            kinds.insert(&entry.path, &entry.kind);
        }
        // No entry may live below a symlink or a file: writing it would go
        // through the link (possibly out of the release) or fail half-way.
        for entry in &self.entries {
            let mut ancestor = entry.path.as_str();
            while let Some((parent, _)) = ancestor.rsplit_once('/') {
                match kinds.get(parent) {
                    Some(EntryKind::Symlink { .. }) => {
                        return Err(ManifestError::UnderSymlink { path: entry.path.clone(), link: parent.to_string() });
                    }
                    Some(EntryKind::File { .. }) => {
                        return Err(ManifestError::UnderFile { path: entry.path.clone(), file: parent.to_string() });
                    }
                    _ => {}
                }
                ancestor = parent;
            }
        }
        // Lexically every link stays inside, but a link may lead through
        // other links (`a/b/u -> ../..`, `esc -> a/b/u/a/b/u/../../etc`):
        // follow each one through the tree as the kernel would.
        for entry in &self.entries {
            if let EntryKind::Symlink { target } = &entry.kind {
                resolve_link(&kinds, &entry.path, target)?;
            }
        }
        Ok(())
    }

    /// Total bytes of file content. Sizes come from a client's manifest:
    /// the sum saturates rather than overflow (the server checks each size
    /// against its blob before it trusts any of them).
    pub fn total_size(&self) -> u64 {
        self.files().map(|(_, _, size, _)| size).fold(0, u64::saturating_add)
    }

    /// Number of regular files.
    pub fn file_count(&self) -> usize {
        self.files().count()
    }

    /// Iterates regular files as (path, digest, size, executable).
    pub fn files(&self) -> impl Iterator<Item = (&str, Digest, u64, bool)> {
        self.entries.iter().filter_map(|e| match &e.kind {
            EntryKind::File { digest, size, executable } => Some((e.path.as_str(), *digest, *size, *executable)),
            _ => None,
        })
    }

    /// The distinct content digests, with their sizes.
    pub fn distinct_blobs(&self) -> BTreeMap<Digest, u64> {
        self.files().map(|(_, d, s, _)| (d, s)).collect()
    }
}

/// The longest name of one file or directory: what Linux filesystems allow.
pub const MAX_NAME: usize = 255;
/// The longest release path: leaves room below the kernel's 4096 for the
/// host's root, the project and the release directory's name.
pub const MAX_PATH: usize = 3072;

/// Checks one relative release path.
pub fn validate_path(path: &str) -> Result<(), ManifestError> {
    if path.contains('\0') {
        return Err(ManifestError::NulByte(path.to_string()));
    }
    if path.len() > MAX_PATH {
        let shown: String = path.chars().take(80).collect();
        return Err(ManifestError::PathTooLong { path: shown, len: path.len(), max: MAX_PATH });
    }
    if let Some(long) = path.split('/').find(|c| c.len() > MAX_NAME) {
        return Err(ManifestError::ComponentTooLong { path: path.to_string(), len: long.len(), max: MAX_NAME });
    }
    if path.starts_with('/') {
        return Err(ManifestError::AbsolutePath(path.to_string()));
    }
    for component in path.split('/') {
        match component {
            ".." => return Err(ManifestError::ParentComponent(path.to_string())),
            "" | "." => return Err(ManifestError::EmptyComponent(path.to_string())),
            _ => {}
        }
    }
    Ok(())
}

/// The longest link target accepted: the kernel's own limit for a path.
pub const MAX_LINK_TARGET: usize = 4095;

/// How many links one resolution may pass through, as Linux allows (40):
/// more is a loop, or a chain built to be expensive to check.
const MAX_LINK_HOPS: u32 = 40;

/// Checks that a symlink at `path` pointing at `target` resolves, lexically,
/// to a place inside the release.
fn validate_link(path: &str, target: &str) -> Result<(), ManifestError> {
    if target.len() > MAX_LINK_TARGET {
        return Err(ManifestError::LinkTooLong { path: path.to_string(), len: target.len(), max: MAX_LINK_TARGET });
    }
    if target.starts_with('/') {
        return Err(ManifestError::AbsoluteLink { path: path.to_string(), target: target.to_string() });
    }
    if target.is_empty() || target.contains('\0') {
        return Err(ManifestError::LinkEscapes { path: path.to_string(), target: target.to_string() });
    }
    // Depth of the directory holding the link, below the release root.
    let mut depth: i64 = path.matches('/').count() as i64;
    for component in target.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return Err(ManifestError::LinkEscapes { path: path.to_string(), target: target.to_string() });
                }
            }
            _ => depth += 1,
        }
    }
    Ok(())
}

/// Follows the link at `path` through the release's own links, component by
/// component as the kernel resolves a path, and fails if any step climbs
/// above the release root. Components the manifest does not list are taken
/// as plain directories: on a host they either do not exist (the kernel then
/// stops) or were made by the agent, which makes nothing a link leads through
/// except the `[deploy] shared` links, and a link through those is caught by
/// the host's own check (it opens release paths beneath the release only).
fn resolve_link(kinds: &BTreeMap<&str, &EntryKind>, path: &str, target: &str) -> Result<(), ManifestError> {
    let escapes = || ManifestError::LinkEscapes { path: path.to_string(), target: target.to_string() };
    let mut hops = 0u32;
    let dir: Vec<String> = path.split('/').map(str::to_string).collect();
    let dir = &dir[..dir.len() - 1];
    let mut walk = Walk { kinds, hops: &mut hops };
    match walk.follow(dir.to_vec(), target) {
        Ok(_) => Ok(()),
        Err(WalkError::Escapes) => Err(escapes()),
        Err(WalkError::Loop) => {
            Err(ManifestError::LinkLoop { path: path.to_string(), target: target.to_string(), hops: MAX_LINK_HOPS })
        }
    }
}

enum WalkError {
    Escapes,
    Loop,
}

/// One link's resolution: the hop count is shared by every link it passes
/// through, so a chain costs at most `MAX_LINK_HOPS` expansions.
struct Walk<'a, 'k> {
    kinds: &'a BTreeMap<&'k str, &'k EntryKind>,
    hops: &'a mut u32,
}

impl Walk<'_, '_> {
    /// Resolves `target` from the directory `at` (components below the
    /// root) and returns where it ends.
    fn follow(&mut self, mut at: Vec<String>, target: &str) -> Result<Vec<String>, WalkError> {
        if target.starts_with('/') {
            return Err(WalkError::Escapes);
        }
        for component in target.split('/') {
            match component {
                "" | "." => {}
                ".." => {
                    if at.pop().is_none() {
                        return Err(WalkError::Escapes);
                    }
                }
                name => {
                    at.push(name.to_string());
                    let here = at.join("/");
                    if let Some(EntryKind::Symlink { target: next }) = self.kinds.get(here.as_str()) {
                        *self.hops += 1;
                        if *self.hops > MAX_LINK_HOPS {
                            return Err(WalkError::Loop);
                        }
                        at.pop();
                        at = self.follow(at, next)?;
                    }
                }
            }
        }
        Ok(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> Entry {
        Entry { path: path.into(), kind: EntryKind::File { digest: Digest([1; 32]), size: 3, executable: false } }
    }
    fn link(path: &str, target: &str) -> Entry {
        Entry { path: path.into(), kind: EntryKind::Symlink { target: target.into() } }
    }
    fn dir(path: &str) -> Entry {
        Entry { path: path.into(), kind: EntryKind::Dir }
    }

    #[test]
    fn accepts_an_ordinary_tree() {
        let m = Manifest::new(vec![
            dir("bin"),
            file("bin/app"),
            file("VERSION"),
            link("bin/latest", "app"),
            link("docs/up", "../VERSION"),
            link("here", "."),
        ]);
        assert_eq!(m.validate(), Ok(()));
        assert_eq!(m.file_count(), 2);
        assert_eq!(m.total_size(), 6);
    }

    #[test]
    fn refuses_paths_that_leave_the_release() {
        let cases = [
            ("../evil", "'..' is not allowed"),
            ("a/../../evil", "'..' is not allowed"),
            ("/etc/passwd", "absolute paths"),
            ("a//b", "empty or '.'"),
            ("./a", "empty or '.'"),
        ];
        for (path, msg) in cases {
            let err = Manifest::new(vec![file(path)]).validate().unwrap_err().to_string();
            assert!(err.contains(msg) && err.contains(path), "{path}: {err}");
        }
    }

    #[test]
    fn refuses_links_that_leave_the_release() {
        for (path, target) in
            [("l", "/etc"), ("l", ".."), ("a/l", "../../x"), ("a/b/l", "../../../x"), ("l", "a/../../x")]
        {
            let err = Manifest::new(vec![link(path, target)]).validate().unwrap_err();
            assert!(
                matches!(err, ManifestError::AbsoluteLink { .. } | ManifestError::LinkEscapes { .. }),
                "{path} -> {target}: {err}"
            );
            assert!(err.to_string().contains(path));
        }
        assert_eq!(Manifest::new(vec![link("a/b/l", "../../x")]).validate(), Ok(()));
    }

    #[test]
    fn refuses_writing_through_a_link_or_below_a_file() {
        let m = Manifest::new(vec![link("etc", "sub"), dir("sub"), file("etc/passwd")]);
        assert!(matches!(m.validate(), Err(ManifestError::UnderSymlink { .. })));
        let m = Manifest::new(vec![file("a"), file("a/b")]);
        assert!(matches!(m.validate(), Err(ManifestError::UnderFile { .. })));
    }

    #[test]
    fn refuses_a_chain_of_links_that_climbs_out() {
        // Each link is lexically harmless; together they reach /etc/passwd.
        let deep = "a/b/u/".repeat(8);
        let m = Manifest::new(vec![
            dir("a"),
            dir("a/b"),
            link("a/b/u", "../.."),
            link("esc", &format!("{deep}{}etc/passwd", "../".repeat(8))),
        ]);
        let err = m.validate().unwrap_err();
        assert!(matches!(&err, ManifestError::LinkEscapes { path, .. } if path == "esc"), "{err}");
        // The same chain that stays inside is fine.
        let m = Manifest::new(vec![dir("a"), dir("a/b"), link("a/b/u", "../.."), link("ok", "a/b/u/a/b/u/a")]);
        assert_eq!(m.validate(), Ok(()));
    }

    #[test]
    fn follows_links_to_deeper_or_shallower_places() {
        // `up` is one level deep but leads to the root: `up/..` leaves.
        let m = Manifest::new(vec![dir("d"), link("d/up", ".."), link("x", "d/up/..")]);
        assert!(matches!(m.validate(), Err(ManifestError::LinkEscapes { path, .. }) if path == "x"));
        // A link to a deep directory makes `..` through it land there.
        let m = Manifest::new(vec![dir("p"), dir("p/q"), dir("p/q/r"), link("deep", "p/q/r"), link("y", "deep/..")]);
        assert_eq!(m.validate(), Ok(()));
        // Each link must also stay inside read as text alone (components the
        // host adds are plain directories to it): `deep/../..` resolves to
        // `p` through the links, but not as text, and is refused.
        let m = Manifest::new(vec![dir("p"), dir("p/q"), dir("p/q/r"), link("deep", "p/q/r"), link("y", "deep/../..")]);
        assert!(m.validate().is_err());
        // The final component is followed too: a link to a link that leaves.
        let m = Manifest::new(vec![dir("d"), link("d/out", "../.."), link("z", "d/out")]);
        assert!(m.validate().is_err());
    }

    #[test]
    fn refuses_link_loops_and_overlong_targets() {
        let m = Manifest::new(vec![link("a", "b"), link("b", "a")]);
        assert!(matches!(m.validate(), Err(ManifestError::LinkLoop { .. })));
        let m = Manifest::new(vec![link("self", "self/x")]);
        assert!(matches!(m.validate(), Err(ManifestError::LinkLoop { .. })));
        let long = "x/".repeat(MAX_LINK_TARGET);
        let err = Manifest::new(vec![link("l", &long)]).validate().unwrap_err();
        assert!(matches!(err, ManifestError::LinkTooLong { .. }), "{err}");
    }

    #[test]
    fn a_wide_chain_is_checked_quickly() {
        // 40 hops are the limit per link, so a manifest built to make the
        // check expensive costs at most entries x 40 expansions.
        let mut entries = vec![link("l0", ".")];
        for i in 1..2000 {
            entries.push(link(&format!("l{i}"), &format!("l{}/l{}", i - 1, i - 1)));
        }
        let started = std::time::Instant::now();
        let _ = Manifest::new(entries).validate();
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
    }

    #[test]
    fn total_size_of_lying_sizes_does_not_overflow() {
        let big = |p: &str| Entry {
            path: p.into(),
            kind: EntryKind::File { digest: Digest([2; 32]), size: u64::MAX, executable: false },
        };
        assert_eq!(Manifest::new(vec![big("a"), big("b")]).total_size(), u64::MAX);
    }

    #[test]
    fn refuses_names_no_filesystem_can_hold() {
        let long = "n".repeat(MAX_NAME + 1);
        let err = Manifest::new(vec![file(&format!("dir/{long}"))]).validate().unwrap_err();
        assert!(matches!(err, ManifestError::ComponentTooLong { len: 256, .. }), "{err}");
        assert_eq!(Manifest::new(vec![file(&"n".repeat(MAX_NAME))]).validate(), Ok(()));
        let deep = vec!["d".repeat(200); 20].join("/");
        let err = Manifest::new(vec![file(&deep)]).validate().unwrap_err();
        assert!(matches!(err, ManifestError::PathTooLong { .. }), "{err}");
        assert!(err.to_string().len() < 300, "the message stays readable: {err}");
    }

    #[test]
    fn refuses_duplicates_and_empty() {
        assert!(matches!(Manifest::new(vec![file("a"), file("a")]).validate(), Err(ManifestError::Duplicate(_))));
        assert_eq!(Manifest::default().validate(), Err(ManifestError::Empty));
    }
}
