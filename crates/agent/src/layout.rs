//! A project's directory on a host, in the layout operators know from
//! Capistrano (R15):
//!
//! ```text
//! <root>/<project>/releases/<release-name>/   one immutable tree per release
//! <root>/<project>/current -> releases/<release-name>
//! <root>/<project>/shared/                    data that outlives releases
//! <root>/<project>/.ferry/releases/<name>.json  what each release is
//! ```
//!
//! A release is assembled in `releases/.partial-<name>` and renamed into
//! place only when complete; `current` is replaced by renaming a new symlink
//! over it. Both renames are atomic, so `current` never points at a partial
//! release and never dangles.

use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use ferry_domain::{EntryKind, Manifest};

use crate::objects::ObjectStore;

/// What a release directory holds, recorded beside it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReleaseMeta {
    pub release_id: i64,
    pub version: String,
    pub env: String,
    /// Bytes of file content, so that a relink can report what it reused.
    #[serde(default)]
    pub total_size: u64,
}

#[derive(Debug, Clone)]
pub struct ProjectLayout {
    pub dir: PathBuf,
}

fn ctx(path: &Path, what: &str) -> impl FnOnce(io::Error) -> io::Error {
    let msg = format!("{what} {}", path.display());
    move |e| io::Error::new(e.kind(), format!("{msg}: {e}"))
}

impl ProjectLayout {
    pub fn new(root: &Path, project: &str) -> Self {
        ProjectLayout { dir: root.join(project) }
    }

    pub fn releases_dir(&self) -> PathBuf {
        self.dir.join("releases")
    }
    pub fn current_link(&self) -> PathBuf {
        self.dir.join("current")
    }
    pub fn shared_dir(&self) -> PathBuf {
        self.dir.join("shared")
    }
    fn meta_path(&self, name: &str) -> PathBuf {
        self.dir.join(".ferry").join("releases").join(format!("{name}.json"))
    }
    pub fn release_dir(&self, name: &str) -> PathBuf {
        self.releases_dir().join(name)
    }

    /// The release `current` points at, with its metadata, if any.
    pub fn current(&self) -> Option<(String, ReleaseMeta)> {
        let target = fs::read_link(self.current_link()).ok()?;
        let name = target.file_name()?.to_str()?.to_string();
        if !self.release_dir(&name).is_dir() {
            return None;
        }
        let meta = fs::read(self.meta_path(&name)).ok()?;
        Some((name, serde_json::from_slice(&meta).ok()?))
    }

    /// When a release was installed or last activated.
    pub fn meta_mtime(&self, name: &str) -> Option<std::time::SystemTime> {
        fs::metadata(self.meta_path(name)).and_then(|m| m.modified()).ok()
    }

    /// The metadata of a complete release of this name on disk, if any.
    pub fn release_meta(&self, name: &str) -> Option<ReleaseMeta> {
        if !self.release_dir(name).is_dir() {
            return None;
        }
        serde_json::from_slice(&fs::read(self.meta_path(name)).ok()?).ok()
    }

    /// Builds `releases/<name>` from the content store. Every file object
    /// must already be present and verified.
    pub fn assemble(
        &self,
        name: &str,
        manifest: &Manifest,
        objects: &ObjectStore,
        meta: &ReleaseMeta,
    ) -> io::Result<()> {
        let releases = self.releases_dir();
        fs::create_dir_all(&releases).map_err(ctx(&releases, "creating"))?;
        fs::create_dir_all(self.shared_dir()).map_err(ctx(&self.shared_dir(), "creating"))?;
        let partial = releases.join(format!(".partial-{name}"));
        if partial.exists() {
            fs::remove_dir_all(&partial).map_err(ctx(&partial, "removing"))?;
        }
        fs::create_dir(&partial).map_err(ctx(&partial, "creating"))?;
        // Each directory is created once, not once per file in it.
        let mut made: std::collections::HashSet<PathBuf> = std::collections::HashSet::new();
        made.insert(partial.clone());
        for entry in &manifest.entries {
            let dest = partial.join(&entry.path);
            if let Some(parent) = dest.parent()
                && !made.contains(parent)
            {
                fs::create_dir_all(parent).map_err(ctx(parent, "creating"))?;
                made.insert(parent.to_path_buf());
            }
            match &entry.kind {
                EntryKind::Dir => {
                    if made.insert(dest.clone()) {
                        fs::create_dir_all(&dest).map_err(ctx(&dest, "creating"))?;
                    }
                }
                EntryKind::Symlink { target } => symlink(target, &dest).map_err(ctx(&dest, "linking"))?,
                EntryKind::File { digest, executable, .. } => {
                    let object = objects.ensure(digest, *executable).map_err(ctx(&dest, "preparing content for"))?;
                    if fs::hard_link(&object, &dest).is_err() {
                        // Another filesystem, or too many links: copy instead.
                        fs::copy(&object, &dest).map_err(ctx(&dest, "copying"))?;
                    }
                }
            }
        }
        let meta_path = self.meta_path(name);
        if let Some(parent) = meta_path.parent() {
            fs::create_dir_all(parent).map_err(ctx(parent, "creating"))?;
        }
        let json = serde_json::to_vec(meta).map_err(io::Error::other)?;
        fs::write(&meta_path, json).map_err(ctx(&meta_path, "writing"))?;
        let dest = self.release_dir(name);
        if dest.exists() {
            // Left by an earlier attempt that died after the rename but before
            // its metadata was complete: replace it.
            fs::remove_dir_all(&dest).map_err(ctx(&dest, "removing"))?;
        }
        fs::rename(&partial, &dest).map_err(ctx(&dest, "moving into place"))
    }

    /// Points `current` at `releases/<name>` atomically.
    pub fn activate(&self, name: &str) -> io::Result<()> {
        let tmp = self.dir.join(format!(".current.tmp-{}", std::process::id()));
        let _ = fs::remove_file(&tmp);
        symlink(Path::new("releases").join(name), &tmp).map_err(ctx(&tmp, "linking"))?;
        fs::rename(&tmp, self.current_link()).map_err(ctx(&self.current_link(), "switching"))?;
        // The newest activation counts as the newest release when pruning.
        if let Ok(f) = fs::File::options().append(true).open(self.meta_path(name)) {
            let _ = f.set_modified(std::time::SystemTime::now());
        }
        // Make the switch durable, not only atomic.
        if let Ok(dir) = fs::File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    /// Removes the oldest releases beyond `keep`, never the current one.
    pub fn prune(&self, keep: u32) -> io::Result<Vec<String>> {
        let current = self.current().map(|(n, _)| n);
        let mut releases: Vec<(std::time::SystemTime, String)> = Vec::new();
        for entry in fs::read_dir(self.releases_dir())?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let mtime = fs::metadata(self.meta_path(&name))
                .and_then(|m| m.modified())
                .unwrap_or(std::time::SystemTime::UNIX_EPOCH);
            releases.push((mtime, name));
        }
        releases.sort_by(|a, b| b.cmp(a));
        let mut removed = Vec::new();
        for (_, name) in releases.into_iter().skip(keep.max(1) as usize) {
            if Some(&name) == current.as_ref() {
                continue;
            }
            fs::remove_dir_all(self.release_dir(&name))?;
            let _ = fs::remove_file(self.meta_path(&name));
            removed.push(name);
        }
        Ok(removed)
    }
}

/// Removes what an interrupted install left behind, in every project.
pub fn clean_partials(root: &Path) {
    let Ok(projects) = fs::read_dir(root) else { return };
    for project in projects.flatten() {
        if project.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let dir = project.path();
        if let Ok(entries) = fs::read_dir(dir.join("releases")) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(".partial-") {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        if let Ok(entries) = fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(".current.tmp-") {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }
}
