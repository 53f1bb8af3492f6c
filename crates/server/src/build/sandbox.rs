//! How builds are walled off from the server. A build script is untrusted
//! code: anyone who can push to the repository can change it. It must not
//! read the server's tokens, its secrets key, its database or other
//! projects' checkouts, whatever user the server runs as.
//!
//! The wall is bubblewrap ([`ferry_process::Sandbox`]): the data directory
//! is an empty directory inside it, everything else read-only but the
//! build's own checkout, and nothing it starts outlives it. A server running
//! as root also drops the build to an unprivileged user (`--build-user`,
//! `nobody` by default), who owns the checkout. Without bubblewrap, builds
//! are refused with a message saying so, unless the operator chose
//! `--build-isolation none` for a machine where only they push.

use std::path::{Path, PathBuf};

use ferry_process::{RunAs, Sandbox};

/// What the operator asked for (`ferry server --build-isolation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// bubblewrap when it is installed; builds are refused otherwise.
    #[default]
    Auto,
    /// bubblewrap, or the server does not start.
    Bubblewrap,
    /// No wall: builds run as the server's user (with a clean environment).
    None,
}

impl std::str::FromStr for Isolation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Isolation::Auto),
            "bwrap" | "bubblewrap" => Ok(Isolation::Bubblewrap),
            "none" => Ok(Isolation::None),
            other => Err(format!("'{other}' is not one of auto, bwrap, none")),
        }
    }
}

/// How this server runs builds, decided once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildWall {
    /// In bubblewrap, as this user when the server is root.
    Bubblewrap { program: PathBuf, user: Option<RunAs> },
    /// As the server's user: only for `--build-isolation none`.
    Unconfined,
    /// Builds are refused, for this reason.
    Unavailable(String),
}

impl BuildWall {
    /// Decides the wall: `build_user` applies when the server is root.
    pub fn decide(isolation: Isolation, build_user: &str) -> Result<BuildWall, String> {
        if isolation == Isolation::None {
            return Ok(BuildWall::Unconfined);
        }
        let Some(program) = find_program("bwrap") else {
            let why = "builds run code from the repository, and this server walls it off with bubblewrap, \
                       which is not installed (Debian/Ubuntu: apt install bubblewrap); on a machine where \
                       only you push, `ferry server --build-isolation none` runs builds without the wall";
            return match isolation {
                Isolation::Bubblewrap => Err(why.to_string()),
                _ => Ok(BuildWall::Unavailable(why.to_string())),
            };
        };
        let user = if ferry_process::is_root() {
            let user = RunAs::lookup(build_user).map_err(|e| format!("--build-user: {e}"))?;
            if user.uid == 0 {
                return Err(format!("--build-user '{build_user}' is root; builds must not run as root"));
            }
            Some(user)
        } else {
            None
        };
        Ok(BuildWall::Bubblewrap { program, user })
    }

    /// The sandbox for one build in `workdir`, hiding `data_dir`.
    pub fn sandbox(&self, workdir: &Path, data_dir: &Path) -> Result<Option<Sandbox>, String> {
        match self {
            BuildWall::Unconfined => Ok(None),
            BuildWall::Unavailable(why) => Err(why.clone()),
            BuildWall::Bubblewrap { program, user } => Ok(Some(Sandbox {
                bwrap: program.clone(),
                writable: workdir.to_path_buf(),
                hidden: vec![data_dir.to_path_buf()],
                // Its home is its checkout: tools that cache in $HOME work.
                user: user.as_ref().map(|u| RunAs { home: workdir.to_path_buf(), ..u.clone() }),
            })),
        }
    }

    /// The user the checkout must belong to, if not the server's.
    pub fn owner(&self) -> Option<&RunAs> {
        match self {
            BuildWall::Bubblewrap { user, .. } => user.as_ref(),
            _ => None,
        }
    }

    /// One line for the server's start-up log and the README's promise.
    pub fn describe(&self) -> String {
        match self {
            BuildWall::Bubblewrap { program, user: Some(u) } => {
                format!("builds run in {} as user {}", program.display(), u.name)
            }
            BuildWall::Bubblewrap { program, user: None } => format!("builds run in {}", program.display()),
            BuildWall::Unconfined => {
                "builds run WITHOUT isolation (--build-isolation none): a build script can read this \
                 server's tokens and keys"
                    .to_string()
            }
            BuildWall::Unavailable(_) => "builds are refused: bubblewrap is not installed".to_string(),
        }
    }
}

/// `name` found on `PATH`, as an executable file.
fn find_program(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// Gives the checkout to the build's user, without following any link in
/// it (the repository's content decides what is there).
pub fn hand_over(dir: &Path, user: &RunAs) -> std::io::Result<()> {
    std::os::unix::fs::lchown(dir, Some(user.uid), Some(user.gid))?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            hand_over(&entry.path(), user)?;
        } else {
            std::os::unix::fs::lchown(entry.path(), Some(user.uid), Some(user.gid))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isolation_parses_and_none_needs_nothing() {
        assert_eq!("auto".parse::<Isolation>(), Ok(Isolation::Auto));
        assert_eq!("bwrap".parse::<Isolation>(), Ok(Isolation::Bubblewrap));
        assert!("chroot".parse::<Isolation>().is_err());
        assert_eq!(BuildWall::decide(Isolation::None, "nobody"), Ok(BuildWall::Unconfined));
        let refused = BuildWall::Unavailable("no".into());
        assert_eq!(refused.sandbox(Path::new("/w"), Path::new("/d")), Err("no".to_string()));
    }
}
