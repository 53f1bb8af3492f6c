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

use crate::beneath::{Beneath, Links};
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
    /// The server's `desired_since` of the deployment that last activated
    /// this release here: a newer one of the same release (a redeploy)
    /// activates it again, rendering templates and restarting the service.
    #[serde(default)]
    pub activated_since: i64,
    /// Set just before `current` switches to this release, to the release
    /// it switched from (empty for none), and cleared once the activation
    /// has passed its checks: an agent that dies in between finishes the
    /// activation (service, health, validate) on restart instead of taking
    /// the unchecked release as done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_from: Option<String>,
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

    /// Records which deployment (its `desired_since`) activated the release:
    /// the activation is complete.
    pub fn set_activated_since(&self, name: &str, since: i64) -> io::Result<()> {
        self.update_meta(name, |meta| {
            meta.activated_since = since;
            meta.pending_from = None;
        })
    }

    /// Marks an activation of `name` as begun (`Some(previous)`) or abandoned.
    pub fn set_pending_from(&self, name: &str, previous: Option<&str>) -> io::Result<()> {
        self.update_meta(name, |meta| meta.pending_from = previous.map(str::to_string))
    }

    fn update_meta(&self, name: &str, change: impl FnOnce(&mut ReleaseMeta)) -> io::Result<()> {
        let Some(mut meta) = self.release_meta(name) else { return Ok(()) };
        change(&mut meta);
        let path = self.meta_path(name);
        let tmp = path.with_extension("json.tmp");
        fs::write(&tmp, serde_json::to_vec(&meta).map_err(io::Error::other)?).map_err(ctx(&tmp, "writing"))?;
        fs::rename(&tmp, &path).map_err(ctx(&path, "writing"))
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
        shared: &[String],
    ) -> io::Result<()> {
        let releases = self.releases_dir();
        fs::create_dir_all(&releases).map_err(ctx(&releases, "creating"))?;
        fs::create_dir_all(self.shared_dir()).map_err(ctx(&self.shared_dir(), "creating"))?;
        let partial = releases.join(format!(".partial-{name}"));
        build_tree(&partial, manifest, objects, &self.shared_dir(), shared)?;
        // Kept beside the release so that drift can be checked without the server.
        let manifest_path = self.manifest_path(name);
        if let Some(parent) = manifest_path.parent() {
            fs::create_dir_all(parent).map_err(ctx(parent, "creating"))?;
        }
        fs::write(&manifest_path, serde_json::to_vec(manifest).map_err(io::Error::other)?)
            .map_err(ctx(&manifest_path, "writing"))?;
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

    fn manifest_path(&self, name: &str) -> PathBuf {
        self.dir.join(".ferry").join("releases").join(format!("{name}.manifest.json"))
    }

    /// The manifest an installed release was built from.
    pub fn manifest(&self, name: &str) -> Option<Manifest> {
        serde_json::from_slice(&fs::read(self.manifest_path(name)).ok()?).ok()
    }

    /// Compares an installed release with its manifest (R2). Every entry's
    /// type, size, mode and link target are checked; file contents are hashed
    /// for the files from `*cursor` on, up to `hash_budget` bytes per call, so
    /// the cost of a check stays bounded and the whole tree is covered over
    /// successive checks. Entries at or below `host_owned` paths (shared
    /// links, rendered templates) belong to the host, not the manifest, and
    /// are skipped. Returns the problems found, each naming its path.
    pub fn check(
        &self,
        name: &str,
        manifest: &Manifest,
        host_owned: &[String],
        cursor: &mut usize,
        hash_budget: u64,
    ) -> Vec<Drift> {
        use std::os::unix::fs::PermissionsExt;
        let dir = self.release_dir(name);
        let mut problems = Vec::new();
        let owned = |path: &str| host_owned.iter().any(|o| under(path, o));
        for entry in manifest.entries.iter().filter(|e| !owned(&e.path)) {
            let path = dir.join(&entry.path);
            let meta = fs::symlink_metadata(&path);
            let wrong = match (&entry.kind, &meta) {
                (_, Err(_)) => Some("missing".to_string()),
                (EntryKind::Dir, Ok(m)) => (!m.is_dir()).then(|| "not a directory".to_string()),
                (EntryKind::Symlink { target }, Ok(m)) => {
                    let now = fs::read_link(&path).ok();
                    (!m.file_type().is_symlink() || now.as_deref() != Some(Path::new(target)))
                        .then(|| "link changed".to_string())
                }
                (EntryKind::File { size, executable, digest }, Ok(m)) => {
                    if !m.is_file() {
                        Some("not a file".to_string())
                    } else if m.len() != *size {
                        Some(format!("size {} instead of {size}", m.len()))
                    } else if (m.permissions().mode() & 0o111 != 0) != *executable {
                        Some("mode changed".to_string())
                    } else if !crate::objects::is_sealed(m) {
                        // Written since its bytes were verified (an edit in
                        // place, through any of the object's links): hash it
                        // now rather than when the rotation comes round.
                        if crate::objects::matches(&path, digest) {
                            let _ = crate::objects::seal(&path);
                            None
                        } else {
                            problems.push(Drift {
                                path: entry.path.clone(),
                                what: "content changed".into(),
                                content: true,
                            });
                            continue;
                        }
                    } else {
                        None
                    }
                }
            };
            if let Some(what) = wrong {
                problems.push(Drift { path: entry.path.clone(), what, content: false });
            }
        }
        // The rotating content check.
        let files: Vec<_> = manifest.files().filter(|f| !owned(f.0)).collect();
        let mut spent = 0u64;
        let mut checked = 0usize;
        while !files.is_empty() && spent < hash_budget && checked < files.len() {
            let (path, digest, size, _) = files[*cursor % files.len()];
            *cursor = (*cursor + 1) % files.len();
            checked += 1;
            spent += size;
            if problems.iter().any(|p| p.path == path) {
                continue;
            }
            if let Ok(bytes) = fs::read(dir.join(path))
                && ferry_artifact::digest_of(&bytes) != digest
            {
                problems.push(Drift { path: path.to_string(), what: "content changed".into(), content: true });
            }
        }
        problems
    }

    /// Rebuilds `releases/<name>` from the content store and swaps it in with
    /// one atomic exchange, so `current` never sees a half-built tree.
    pub fn rebuild(&self, name: &str, manifest: &Manifest, objects: &ObjectStore, shared: &[String]) -> io::Result<()> {
        let releases = self.releases_dir();
        let fresh = releases.join(format!(".repair-{name}"));
        build_tree(&fresh, manifest, objects, &self.shared_dir(), shared)?;
        let dir = fs::File::open(&releases).map_err(ctx(&releases, "opening"))?;
        nix::fcntl::renameat2(
            &dir,
            fresh.file_name().unwrap_or_default(),
            &dir,
            name,
            nix::fcntl::RenameFlags::RENAME_EXCHANGE,
        )
        .map_err(|e| io::Error::other(format!("swapping in the repaired release: {e}")))?;
        // `fresh` now holds the damaged tree.
        fs::remove_dir_all(&fresh).map_err(ctx(&fresh, "removing"))
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

    /// The release directories on disk, most recently installed or activated
    /// first (partial and repair trees excluded).
    pub fn releases_newest_first(&self) -> io::Result<Vec<String>> {
        let mut releases: Vec<(std::time::SystemTime, String)> = Vec::new();
        for entry in fs::read_dir(self.releases_dir())?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') {
                releases.push((self.meta_mtime(&name).unwrap_or(std::time::SystemTime::UNIX_EPOCH), name));
            }
        }
        releases.sort_by(|a, b| b.cmp(a));
        Ok(releases.into_iter().map(|(_, name)| name).collect())
    }

    /// Removes the oldest releases beyond `keep`, never the current one.
    pub fn prune(&self, keep: u32) -> io::Result<Vec<String>> {
        let current = self.current().map(|(n, _)| n);
        let mut removed = Vec::new();
        for name in self.releases_newest_first()?.into_iter().skip(keep.max(1) as usize) {
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

/// One difference between an installed release and its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub path: String,
    pub what: String,
    /// The bytes differ: the shared content object is damaged too.
    pub content: bool,
}

/// `path` is `dir` or lies below it.
fn under(path: &str, dir: &str) -> bool {
    path == dir || path.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))
}

/// Creates `dest` (replacing any leftover) as the tree of `manifest`, with
/// files hard-linked from the content store, and each `shared` path a link
/// into `shared_dir` (R15).
fn build_tree(
    dest: &Path,
    manifest: &Manifest,
    objects: &ObjectStore,
    shared_dir: &Path,
    shared: &[String],
) -> io::Result<()> {
    if dest.exists() {
        fs::remove_dir_all(dest).map_err(ctx(dest, "removing"))?;
    }
    fs::create_dir(dest).map_err(ctx(dest, "creating"))?;
    // Each directory is created once, not once per file in it.
    let mut made: std::collections::HashSet<PathBuf> = std::collections::HashSet::new();
    made.insert(dest.to_path_buf());
    let is_shared = |path: &str| shared.iter().any(|s| under(path, s));
    for entry in manifest.entries.iter().filter(|e| !is_shared(&e.path)) {
        let path = dest.join(&entry.path);
        if let Some(parent) = path.parent()
            && !made.contains(parent)
        {
            fs::create_dir_all(parent).map_err(ctx(parent, "creating"))?;
            made.insert(parent.to_path_buf());
        }
        match &entry.kind {
            EntryKind::Dir => {
                if made.insert(path.clone()) {
                    fs::create_dir_all(&path).map_err(ctx(&path, "creating"))?;
                }
            }
            EntryKind::Symlink { target } => symlink(target, &path).map_err(ctx(&path, "linking"))?,
            EntryKind::File { digest, executable, .. } => {
                // Link first: the object in the wanted mode is almost always
                // there, and one syscall per file is the whole cost of an update.
                let object = objects.path_for(digest, *executable);
                if fs::hard_link(&object, &path).is_err() {
                    let object = objects.ensure(digest, *executable).map_err(ctx(&path, "preparing content for"))?;
                    if fs::hard_link(&object, &path).is_err() {
                        // Another filesystem, or too many links: copy instead.
                        fs::copy(&object, &path).map_err(ctx(&path, "copying"))?;
                    }
                }
            }
        }
    }
    for path in shared {
        link_shared(dest, manifest, objects, shared_dir, path)?;
    }
    Ok(())
}

/// Links `release/<path>` to `shared/<path>`. The first time, the shared
/// entry is made from what the release ships there (a file is copied, a
/// directory created), or else as an empty directory: a shared *file* the
/// release does not ship must be put into `shared/` by the operator.
///
/// `shared/` belongs to the service's user, so everything in it is reached
/// through [`Beneath`] with no link followed: a `shared/log` turned into a
/// link to `/etc` stops the install with an error naming it.
fn link_shared(
    dest: &Path,
    manifest: &Manifest,
    objects: &ObjectStore,
    shared_dir: &Path,
    path: &str,
) -> io::Result<()> {
    let shared = Beneath::open(shared_dir, Links::Refused)?;
    let rel = Path::new(path);
    if !shared.exists(rel)? {
        if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
            shared.create_dir_all(parent)?;
        }
        match manifest.entries.iter().find(|e| e.path == path).map(|e| &e.kind) {
            Some(EntryKind::File { digest, executable, .. }) => {
                let target = shared.display(rel);
                let object = objects.ensure(digest, *executable).map_err(ctx(&target, "preparing content for"))?;
                // A copy, not the read-only object: the data is the service's to change.
                let mode = if *executable { 0o755 } else { 0o644 };
                let mut to = shared.create_new(rel, mode)?;
                let mut from = fs::File::open(&object).map_err(ctx(&object, "reading"))?;
                io::copy(&mut from, &mut to).map_err(ctx(&target, "seeding"))?;
            }
            _ => shared.create_dir_all(rel)?,
        }
    } else {
        // Existing: it must still be what it was made as, not a link.
        match shared.open_dir(rel) {
            Ok(_) => {}
            Err(_) => drop(shared.open_read(rel)?),
        }
    }
    let link = dest.join(path);
    if let Some(parent) = link.parent() {
        fs::create_dir_all(parent).map_err(ctx(parent, "creating"))?;
    }
    // Relative, so the project directory can move: up from the link's
    // directory to the project, then into shared/.
    let depth = path.split('/').count() - 1 + 2;
    let relative = format!("{}shared/{path}", "../".repeat(depth));
    symlink(relative, &link).map_err(ctx(&link, "linking"))
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
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with(".partial-") || n.starts_with(".repair-") {
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
