//! The server's git work: a bare mirror per project, resolving refs,
//! checking out a commit, tagging it. We shell out to `git`, so every
//! transport and credential setup the operator's git supports works.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_store::BuildCommit;
use tokio::process::Command;

const GIT_TIMEOUT: Duration = Duration::from_secs(600);

/// Runs git with no prompts; returns stdout, or an error with git's stderr.
async fn git(dir: Option<&Path>, args: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new("git");
    if let Some(d) = dir {
        cmd.arg("-C").arg(d);
    }
    cmd.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "true")
        .env("LC_ALL", "C")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(GIT_TIMEOUT, cmd.output())
        .await
        .map_err(|_| format!("git {} timed out after {} s", args.join(" "), GIT_TIMEOUT.as_secs()))?
        .map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("git {} failed: {}", args.first().unwrap_or(&""), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// A project's bare mirror under the server's data directory.
pub struct Mirror {
    pub dir: PathBuf,
}

impl Mirror {
    pub fn new(data_dir: &Path, project: &str) -> Self {
        Mirror { dir: data_dir.join("git").join(format!("{project}.git")) }
    }

    /// Creates the mirror if needed and fetches every branch and tag.
    pub async fn fetch(&self, url: &str) -> Result<(), String> {
        if !self.dir.join("HEAD").exists() {
            tokio::fs::create_dir_all(&self.dir).await.map_err(|e| format!("{}: {e}", self.dir.display()))?;
            git(Some(&self.dir), &["init", "--quiet", "--bare"]).await?;
        }
        // No --prune: tags Ferry made here must survive a fetch.
        git(
            Some(&self.dir),
            &["fetch", "--quiet", "--force", url, "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"],
        )
        .await
        .map(|_| ())
        .map_err(|e| format!("fetching {url}: {e}"))
    }

    /// Resolves a branch, tag or commit to a commit, with its metadata; with
    /// `pushed`, exactly that commit (what a push delivered) under the ref's
    /// name, wherever the ref is now.
    pub async fn resolve(&self, reference: &str, pushed: Option<&str>, url: &str) -> Result<BuildCommit, String> {
        let name = reference.trim();
        let (branch, tag, spec) = if let Some(b) = name.strip_prefix("refs/heads/") {
            (Some(b.to_string()), None, format!("refs/heads/{b}"))
        } else if let Some(t) = name.strip_prefix("refs/tags/") {
            (None, Some(t.to_string()), format!("refs/tags/{t}"))
        } else if self.has_ref(&format!("refs/heads/{name}")).await {
            (Some(name.to_string()), None, format!("refs/heads/{name}"))
        } else if self.has_ref(&format!("refs/tags/{name}")).await {
            (None, Some(name.to_string()), format!("refs/tags/{name}"))
        } else {
            (None, None, name.to_string())
        };
        let sha = match pushed {
            Some(sha) => self.pushed_commit(name, sha, url).await?,
            None => git(Some(&self.dir), &["rev-parse", "--verify", "--quiet", &format!("{spec}^{{commit}}")])
                .await
                .map_err(|_| format!("'{name}' is not a branch, tag or commit of the repository"))?
                .trim()
                .to_string(),
        };
        let info = git(Some(&self.dir), &["log", "-1", "--format=%an%x00%ct%x00%s", &sha]).await?;
        let mut parts = info.trim_end_matches('\n').splitn(3, '\0');
        let author = parts.next().unwrap_or_default().to_string();
        let committed_at = parts.next().and_then(|t| t.parse::<i64>().ok()).map(|s| s * 1000);
        let message = parts.next().unwrap_or_default().to_string();
        Ok(BuildCommit { sha, branch, tag, author, message, committed_at })
    }

    /// The full id of a pushed commit, fetching it by id if no branch or tag
    /// holds it any more (a force push since); a clear error if the
    /// repository does not have it.
    async fn pushed_commit(&self, reference: &str, sha: &str, url: &str) -> Result<String, String> {
        // Only a hex id reaches git (the webhook checked it); never an option.
        if sha.is_empty() || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("'{sha}' is not a commit id"));
        }
        let spec = format!("{sha}^{{commit}}");
        let args = ["rev-parse", "--verify", "--quiet", spec.as_str()];
        let look = || git(Some(&self.dir), &args);
        if let Ok(full) = look().await {
            return Ok(full.trim().to_string());
        }
        // Servers that allow fetching any reachable commit by id still have it.
        let _ = git(Some(&self.dir), &["fetch", "--quiet", url, sha]).await;
        match look().await {
            Ok(full) => Ok(full.trim().to_string()),
            Err(_) => Err(format!(
                "commit {sha} (pushed to {reference}) is not in the repository {url}; was it force-pushed away?"
            )),
        }
    }

    /// The commit a branch of the mirror is at (as of the last fetch).
    pub async fn head_of(&self, branch: &str) -> Result<String, String> {
        let spec = format!("refs/heads/{branch}^{{commit}}");
        git(Some(&self.dir), &["rev-parse", "--verify", "--quiet", &spec]).await.map(|s| s.trim().to_string())
    }

    async fn has_ref(&self, full: &str) -> bool {
        git(Some(&self.dir), &["show-ref", "--verify", "--quiet", full]).await.is_ok()
    }

    /// A fresh working tree of `sha` in `dest`.
    pub async fn checkout(&self, sha: &str, dest: &Path) -> Result<(), String> {
        let (mirror, dest_s) = (self.dir.to_string_lossy(), dest.to_string_lossy());
        git(None, &["clone", "--quiet", "--shared", "--no-checkout", &mirror, &dest_s]).await?;
        git(Some(dest), &["checkout", "--quiet", "--detach", sha]).await.map(|_| ())
    }

    /// Tags the commit with its version in the mirror.
    pub async fn tag(&self, version: &str, sha: &str) -> Result<(), String> {
        git(Some(&self.dir), &["tag", "--force", version, sha]).await.map(|_| ())
    }

    /// Pushes a tag back to the project's repository.
    pub async fn push_tag(&self, url: &str, version: &str) -> Result<(), String> {
        let spec = format!("refs/tags/{version}:refs/tags/{version}");
        git(Some(&self.dir), &["push", "--quiet", url, &spec]).await.map(|_| ())
    }
}
