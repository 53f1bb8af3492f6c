//! Files below a directory the agent does not fully control, opened so that
//! no path can lead the agent (root, on most hosts) out of it.
//!
//! Two kinds of directory need this. A *release* comes from a developer's
//! upload: its links were checked against each other when it was registered,
//! and here the kernel checks again that resolving a path never leaves the
//! release ([`Links::Inside`], `openat2` with `RESOLVE_BENEATH`). `shared/`
//! belongs to the service's user, who can replace any entry in it with a
//! link to `/etc/shadow`: below it no link is followed at all
//! ([`Links::Refused`], `RESOLVE_NO_SYMLINKS`), and a file with a second
//! hard link is refused too, since it may be someone else's file.
//!
//! Every operation names its path relative to the directory; a path with
//! `..`, an absolute path or an empty one is refused before any system call.
//! On kernels without `openat2` (before 5.6) each component is opened with
//! `O_NOFOLLOW` instead, which refuses every link, in both kinds.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{Mode, SFlag};

/// Which links a path below the directory may pass through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Links that stay inside the directory (a release's own links).
    Inside,
    /// None: the directory is writable by another user (`shared/`).
    Refused,
}

/// An open directory; every path below it is resolved by the kernel without
/// leaving it.
#[derive(Debug)]
pub struct Beneath {
    dir: OwnedFd,
    shown: PathBuf,
    links: Links,
}

/// Set once `openat2` answered ENOSYS: the component walk is used from then on.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

impl Beneath {
    /// Opens `path` itself, which must be a directory and not a link (its
    /// parents are the agent's own directories).
    pub fn open(path: &Path, links: Links) -> io::Result<Beneath> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let dir = nix::fcntl::open(path, flags, Mode::empty()).map_err(|e| explain(path, e, links))?;
        Ok(Beneath { dir, shown: path.to_path_buf(), links })
    }

    /// The full path of `rel`, for messages.
    pub fn display(&self, rel: &Path) -> PathBuf {
        self.shown.join(rel)
    }

    /// Opens `rel` with `flags` (and `mode` when creating).
    fn open_at(&self, rel: &Path, flags: OFlag, mode: Mode) -> io::Result<OwnedFd> {
        check_relative(rel)?;
        let flags = flags | OFlag::O_CLOEXEC;
        let resolve = match self.links {
            Links::Inside => ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS,
            Links::Refused => ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS,
        };
        if !NO_OPENAT2.load(Ordering::Relaxed) {
            let how = OpenHow::new().flags(flags).mode(mode).resolve(resolve);
            // EAGAIN: a rename raced the resolution; the kernel asks for a retry.
            let mut tries = 0;
            loop {
                match nix::fcntl::openat2(self.dir.as_fd(), rel, how) {
                    Err(Errno::EAGAIN) if tries < 8 => tries += 1,
                    Err(Errno::ENOSYS) => {
                        NO_OPENAT2.store(true, Ordering::Relaxed);
                        break;
                    }
                    other => return other.map_err(|e| explain(&self.display(rel), e, self.links)),
                }
            }
        }
        self.walk(rel, flags, mode)
    }

    /// The fallback for kernels without `openat2`: one `openat` per
    /// component, none of which may be a link.
    fn walk(&self, rel: &Path, flags: OFlag, mode: Mode) -> io::Result<OwnedFd> {
        let fail = |e| explain(&self.display(rel), e, Links::Refused);
        let names: Vec<&OsStr> = rel.iter().collect();
        let Some((last, parents)) = names.split_last() else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty path"));
        };
        let dir_flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let mut at = self.dir.try_clone()?;
        for name in parents {
            at = open_no_follow(&at, name, dir_flags, Mode::empty()).map_err(fail)?;
        }
        open_no_follow(&at, last, flags | OFlag::O_NOFOLLOW, mode).map_err(fail)
    }

    /// The directory holding `rel` and `rel`'s last component.
    fn parent_of<'p>(&self, rel: &'p Path) -> io::Result<(Beneath, &'p OsStr)> {
        check_relative(rel)?;
        let name = rel.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty path"))?;
        let parent = rel.parent().filter(|p| !p.as_os_str().is_empty());
        let dir = match parent {
            None => self.dir.try_clone()?,
            Some(p) => self.open_at(p, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty())?,
        };
        let shown = parent.map_or_else(|| self.shown.clone(), |p| self.shown.join(p));
        Ok((Beneath { dir, shown, links: self.links }, name))
    }

    /// Opens a directory below this one, with the same rule for links.
    pub fn open_dir(&self, rel: &Path) -> io::Result<Beneath> {
        let dir = self.open_at(rel, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty())?;
        Ok(Beneath { dir, shown: self.display(rel), links: self.links })
    }

    /// Creates `rel` and its missing parents as directories (mode 0755).
    pub fn create_dir_all(&self, rel: &Path) -> io::Result<()> {
        check_relative(rel)?;
        let mut so_far = PathBuf::new();
        for name in rel.iter() {
            so_far.push(name);
            let (parent, name) = self.parent_of(&so_far)?;
            match nix::sys::stat::mkdirat(parent.dir.as_fd(), name, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(explain(&self.display(&so_far), e, self.links)),
            }
        }
        // What existed may be a link or a file: opening it as a directory
        // under the rule says.
        self.open_dir(rel).map(drop)
    }

    /// Reads a whole file.
    pub fn read(&self, rel: &Path) -> io::Result<Vec<u8>> {
        let mut file = self.open_read(rel)?;
        let mut out = Vec::new();
        file.read_to_end(&mut out).map_err(|e| context(&self.display(rel), e))?;
        Ok(out)
    }

    /// Opens a regular file for reading.
    pub fn open_read(&self, rel: &Path) -> io::Result<File> {
        let file = File::from(self.open_at(rel, OFlag::O_RDONLY, Mode::empty())?);
        self.check_regular(rel, &file)?;
        Ok(file)
    }

    /// Opens a file for appending, creating it (mode 0644) if missing.
    pub fn open_append(&self, rel: &Path) -> io::Result<File> {
        let flags = OFlag::O_WRONLY | OFlag::O_APPEND | OFlag::O_CREAT;
        let file = File::from(self.open_at(rel, flags, Mode::from_bits_truncate(0o644))?);
        self.check_regular(rel, &file)?;
        Ok(file)
    }

    /// Opens an existing regular file for writing (to truncate it).
    pub fn open_write(&self, rel: &Path) -> io::Result<File> {
        let file = File::from(self.open_at(rel, OFlag::O_WRONLY, Mode::empty())?);
        self.check_regular(rel, &file)?;
        Ok(file)
    }

    /// Creates `rel` as a new file with `mode`; an existing entry of that name
    /// (a link included) is an error.
    pub fn create_new(&self, rel: &Path, mode: u32) -> io::Result<File> {
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL;
        Ok(File::from(self.open_at(rel, flags, Mode::from_bits_truncate(mode))?))
    }

    /// Replaces `rel` with `bytes` (mode `mode`, owned by `owner` when given):
    /// written to a new file beside it, then renamed over it, so a reader sees
    /// the old content or the new, and an existing link at `rel` is replaced,
    /// never followed.
    pub fn write_replace(&self, rel: &Path, bytes: &[u8], mode: u32, owner: Option<(u32, u32)>) -> io::Result<()> {
        let (parent, name) = self.parent_of(rel)?;
        let mut tmp_name = b".".to_vec();
        tmp_name.extend_from_slice(name.as_bytes());
        tmp_name.extend_from_slice(b".ferry-tmp");
        let tmp = Path::new(OsStr::from_bytes(&tmp_name));
        let _ = nix::unistd::unlinkat(parent.dir.as_fd(), tmp, nix::unistd::UnlinkatFlags::NoRemoveDir);
        let shown = self.display(rel);
        let mut file = parent.create_new(tmp, mode)?;
        let written = (|| {
            file.write_all(bytes)?;
            if let Some((uid, gid)) = owner {
                nix::unistd::fchown(file.as_fd(), Some(uid.into()), Some(gid.into()))?;
            }
            file.sync_all()?;
            nix::fcntl::renameat(parent.dir.as_fd(), tmp, parent.dir.as_fd(), name)?;
            Ok::<(), io::Error>(())
        })();
        if written.is_err() {
            let _ = nix::unistd::unlinkat(parent.dir.as_fd(), tmp, nix::unistd::UnlinkatFlags::NoRemoveDir);
        }
        written.map_err(|e| context(&shown, e))
    }

    /// Changes the owner of `rel` itself. A link there is refused, not
    /// followed or changed: whoever could write the directory made it.
    pub fn chown(&self, rel: &Path, uid: u32, gid: u32) -> io::Result<()> {
        let (parent, name) = self.parent_of(rel)?;
        let shown = self.display(rel);
        let stat = nix::sys::stat::fstatat(parent.dir.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| context(&shown, e.into()))?;
        if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK {
            return Err(explain(&shown, Errno::ELOOP, Links::Refused));
        }
        nix::unistd::fchownat(
            parent.dir.as_fd(),
            name,
            Some(uid.into()),
            Some(gid.into()),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| context(&shown, e.into()))
    }

    /// Renames `from` to `to`, both in this directory tree. A link is moved
    /// as the link itself.
    pub fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (a, a_name) = self.parent_of(from)?;
        let (b, b_name) = self.parent_of(to)?;
        nix::fcntl::renameat(a.dir.as_fd(), a_name, b.dir.as_fd(), b_name)
            .map_err(|e| context(&self.display(from), e.into()))
    }

    /// Removes the file (or link) `rel`; a missing one is not an error.
    pub fn remove_file(&self, rel: &Path) -> io::Result<()> {
        let (parent, name) = self.parent_of(rel)?;
        match nix::unistd::unlinkat(parent.dir.as_fd(), name, nix::unistd::UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(context(&self.display(rel), e.into())),
        }
    }

    /// Whether something (a link included) exists at `rel`.
    pub fn exists(&self, rel: &Path) -> io::Result<bool> {
        let (parent, name) = match self.parent_of(rel) {
            Ok(found) => found,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        match nix::sys::stat::fstatat(parent.dir.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(_) => Ok(true),
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => Err(context(&self.display(rel), e.into())),
        }
    }

    /// A file the agent writes to or reads for someone must be a plain file
    /// of its own: below `shared/` a second hard link may be a link to a file
    /// the service's user could not otherwise touch.
    fn check_regular(&self, rel: &Path, file: &File) -> io::Result<()> {
        let meta = file.metadata().map_err(|e| context(&self.display(rel), e))?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: not a regular file", self.display(rel).display()),
            ));
        }
        if self.links == Links::Refused && meta.nlink() > 1 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{}: has {} hard links; ferry does not write or read files below this directory that \
                     are also elsewhere (the service's user could have linked a file it may not touch); \
                     remove it",
                    self.display(rel).display(),
                    meta.nlink()
                ),
            ));
        }
        Ok(())
    }
}

/// `openat` with `O_NOFOLLOW`; a link met as a directory (ENOTDIR) is
/// reported as the link it is (ELOOP).
fn open_no_follow(at: &OwnedFd, name: &OsStr, flags: OFlag, mode: Mode) -> Result<OwnedFd, Errno> {
    nix::fcntl::openat(at.as_fd(), name, flags, mode).map_err(|e| {
        let is_link = || {
            nix::sys::stat::fstatat(at.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW)
                .is_ok_and(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK)
        };
        if e == Errno::ENOTDIR && is_link() { Errno::ELOOP } else { e }
    })
}

/// Only plain relative paths: no `..`, no root, not empty.
fn check_relative(rel: &Path) -> io::Result<()> {
    let plain = rel.components().all(|c| matches!(c, Component::Normal(_)));
    if plain && rel.components().next().is_some() {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::InvalidInput, format!("'{}' is not a plain relative path", rel.display())))
    }
}

fn context(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Says what a refusal by the kernel means here.
fn explain(path: &Path, e: Errno, links: Links) -> io::Error {
    let text = match (e, links) {
        (Errno::ELOOP, Links::Refused) => format!(
            "{}: is or passes through a symbolic link; ferry follows no link in a directory another user \
             can write (it would let that user aim the agent at any file); replace the link with a real \
             file or directory",
            path.display()
        ),
        (Errno::ELOOP, Links::Inside) => format!("{}: too many levels of symbolic links", path.display()),
        (Errno::EXDEV, _) => format!(
            "{}: resolves outside its directory through a symbolic link; ferry does not follow it",
            path.display()
        ),
        (e, _) => return context(path, e.into()),
    };
    io::Error::new(io::ErrorKind::PermissionDenied, text)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;

    use super::*;

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        fs::create_dir(&root).unwrap();
        fs::write(tmp.path().join("secret"), b"outside").unwrap();
        (tmp, root)
    }

    #[test]
    fn a_release_may_use_its_own_links_but_not_leave() {
        let (tmp, root) = setup();
        fs::create_dir(root.join("conf")).unwrap();
        fs::write(root.join("conf/app.tmpl"), b"inside").unwrap();
        symlink("conf", root.join("config")).unwrap();
        symlink("../secret", root.join("esc")).unwrap();
        symlink(tmp.path().join("secret"), root.join("abs")).unwrap();
        let dir = Beneath::open(&root, Links::Inside).unwrap();
        assert_eq!(dir.read(Path::new("config/app.tmpl")).unwrap(), b"inside");
        for rel in ["esc", "abs"] {
            let err = dir.read(Path::new(rel)).unwrap_err().to_string();
            assert!(err.contains("outside its directory"), "{rel}: {err}");
        }
        assert!(dir.read(Path::new("../secret")).is_err());
        assert!(!dir.exists(Path::new("no/such/file")).unwrap());
        assert!(dir.read(Path::new("/etc/passwd")).is_err());
    }

    #[test]
    fn a_shared_directory_follows_no_link_at_all() {
        let (tmp, root) = setup();
        fs::create_dir(root.join("real")).unwrap();
        symlink("real", root.join("log")).unwrap();
        symlink(tmp.path().join("secret"), root.join("out.log")).unwrap();
        let dir = Beneath::open(&root, Links::Refused).unwrap();
        for rel in ["log/x.log", "out.log"] {
            let err = dir.open_append(Path::new(rel)).unwrap_err().to_string();
            assert!(err.contains("symbolic link"), "{rel}: {err}");
        }
        let err = dir.create_dir_all(Path::new("log/sub")).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        assert!(dir.chown(Path::new("out.log"), 0, 0).unwrap_err().to_string().contains("symbolic link"));
        assert_eq!(fs::read(tmp.path().join("secret")).unwrap(), b"outside");
        assert!(!root.join("real/sub").exists());
    }

    #[test]
    fn a_second_hard_link_below_shared_is_refused() {
        let (tmp, root) = setup();
        fs::hard_link(tmp.path().join("secret"), root.join("service.log")).unwrap();
        let dir = Beneath::open(&root, Links::Refused).unwrap();
        let err = dir.open_append(Path::new("service.log")).unwrap_err().to_string();
        assert!(err.contains("hard links"), "{err}");
        assert!(dir.open_read(Path::new("service.log")).is_err());
    }

    #[test]
    fn write_replace_replaces_a_link_instead_of_following_it() {
        let (tmp, root) = setup();
        symlink(tmp.path().join("secret"), root.join("app.conf")).unwrap();
        let dir = Beneath::open(&root, Links::Inside).unwrap();
        dir.write_replace(Path::new("app.conf"), b"rendered", 0o640, None).unwrap();
        assert_eq!(fs::read(tmp.path().join("secret")).unwrap(), b"outside");
        assert!(!fs::symlink_metadata(root.join("app.conf")).unwrap().file_type().is_symlink());
        assert_eq!(fs::read(root.join("app.conf")).unwrap(), b"rendered");
    }

    #[test]
    fn the_directory_itself_must_not_be_a_link() {
        let (tmp, root) = setup();
        symlink(&root, tmp.path().join("alias")).unwrap();
        assert!(Beneath::open(&tmp.path().join("alias"), Links::Inside).is_err());
    }

    #[test]
    fn the_fallback_walk_refuses_every_link() {
        let (_tmp, root) = setup();
        fs::create_dir(root.join("real")).unwrap();
        fs::write(root.join("real/f"), b"x").unwrap();
        symlink("real", root.join("log")).unwrap();
        let dir = Beneath::open(&root, Links::Inside).unwrap();
        let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC;
        assert!(dir.walk(Path::new("real/f"), flags, Mode::empty()).is_ok());
        assert!(dir.walk(Path::new("log/f"), flags, Mode::empty()).is_err());
    }
}
