//! The agent replacing its own executable (issue 15), and going back by
//! itself when the new one does not come up.
//!
//! 1. The server sends `ServerMsg::Upgrade` (version, SHA-256, signature)
//!    while the host is to upgrade. The converger takes it between two
//!    passes, so no install or hook is running ([`Upgrader::perform`]).
//! 2. The signature must verify with the server key the agent keeps beside
//!    its credential (learned at enrolment, or on first sight over the
//!    authenticated channel for agents enrolled before). The binary is
//!    downloaded from `GET /api/v1/agent/binary` into a file beside the
//!    executable (`std::env::current_exe()`), hashed while it is written and
//!    refused unless it hashes to the signed digest; then fsynced.
//! 3. The running executable is kept as `<exe>.previous` (a hard link), a
//!    **guard** is started from that old binary (`ferry agent upgrade-guard`,
//!    its own process group, so it outlives what happens next), the new file
//!    is renamed over the executable, and the agent `exec`s it with its own
//!    arguments: the same PID, so a systemd unit keeps its main PID and the
//!    services stay this process's children. Services need no hand-over:
//!    their output goes to files, and each has a record in
//!    `.ferry/services/` from which the new agent adopts it (same pid and
//!    kernel start time) without restarting it; every file descriptor the
//!    agent holds is close-on-exec.
//! 4. The new agent, once the server accepted its hello, writes
//!    `.ferry/upgrade.confirmed` with its digest ([`confirm`]); the guard sees
//!    it and ends. If no confirmation comes within the timeout (the binary
//!    does not start, or never connects), the guard puts the old binary back
//!    over the executable path, kills the new agent (by PID, only if it is
//!    still the process it watched: same kernel start time), records why in
//!    `.ferry/upgrade-failed.json`, and starts the old agent with the
//!    original arguments. That agent reports the failure to the server
//!    (`AgentMsg::UpgradeFailed`), which stops the rollout, and it never
//!    tries that binary again on its own.
//!
//! **systemd.** With `Restart=always` systemd restarts the unit when its
//! main process (the killed new agent) dies. So under systemd (the guard
//! sees `INVOCATION_ID`) the guard does not start the old agent itself: it
//! restores the binary, kills, records, and leaves the start to systemd;
//! the unit needs `KillMode=process` so that services survive any restart
//! of the agent anyway. In every case an exclusive lock on
//! `.ferry/agent.lock` ([`lock_root`]) makes sure two agents never run on
//! one root: a second one waits for the lock and gives up after a while.
//!
//! Never: run a binary whose bytes do not hash to a digest the server
//! signed; kill a process other than the one the guard watched; stop or
//! restart a service for an upgrade.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_proto::agent::UpgradeOrder;
use futures_util::StreamExt;
use sha2::{Digest as _, Sha256};

use crate::client::AgentApi;
use crate::credential::write_private;

/// What the agent runs: the digest of its executable and, when it got it by
/// an upgrade, the version label it was uploaded under.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// An upgrade the agent started and the guard watches.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Pending {
    sha256: String,
    version: String,
}

/// An upgrade that did not happen, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Failure {
    pub sha256: String,
    pub version: String,
    pub error: String,
    /// When it failed (milliseconds since the epoch).
    #[serde(default)]
    pub at_ms: i64,
}

/// How long a failed binary is refused without trying again: the server
/// repeats its order until the failure report reaches it, and a fallen-back
/// agent must not take the same binary again meanwhile. A later `set` of the
/// same binary tries again.
const REFUSE_FAILED_FOR_MS: i64 = 10 * 60 * 1000;

fn dir(root: &Path) -> PathBuf {
    root.join(".ferry")
}
fn pending_path(root: &Path) -> PathBuf {
    dir(root).join("upgrade.json")
}
fn confirmed_path(root: &Path) -> PathBuf {
    dir(root).join("upgrade.confirmed")
}
fn failed_path(root: &Path) -> PathBuf {
    dir(root).join("upgrade-failed.json")
}
fn identity_path(root: &Path) -> PathBuf {
    dir(root).join("agent-binary.json")
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    std::fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok())
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// The running executable's digest, and its version label when an upgrade
/// installed it (`.ferry/agent-binary.json` maps the digests of binaries
/// upgrades installed to their labels, so a fallback keeps its label).
pub fn identity(root: &Path) -> Identity {
    let sha256 = std::env::current_exe().and_then(|exe| sha256_file(&exe)).unwrap_or_default();
    let labels: BTreeMap<String, String> = read_json(&identity_path(root)).unwrap_or_default();
    Identity { version: labels.get(&sha256).cloned(), sha256 }
}

/// Records the label of a binary an upgrade installs (the last few kept).
fn remember_label(root: &Path, sha256: &str, version: &str) {
    let mut labels: BTreeMap<String, String> = read_json(&identity_path(root)).unwrap_or_default();
    if labels.len() >= 16 {
        labels.clear();
    }
    labels.insert(sha256.to_string(), version.to_string());
    if let Ok(json) = serde_json::to_vec(&labels) {
        let _ = write_private(&identity_path(root), &json);
    }
}

/// Called once the server accepted this agent's hello: confirms an upgrade
/// to the binary it runs, so that its guard stands down.
pub fn confirm(root: &Path, me: &Identity) {
    let Some(pending) = read_json::<Pending>(&pending_path(root)) else { return };
    if pending.sha256 != me.sha256 {
        return;
    }
    if let Err(e) = write_private(&confirmed_path(root), me.sha256.as_bytes()) {
        tracing::warn!("confirming the agent upgrade: {e}");
        return;
    }
    tracing::info!(version = %pending.version, "agent upgrade confirmed: the new binary is connected");
}

/// The failure an earlier upgrade left, to report to the server.
pub fn last_failure(root: &Path) -> Option<Failure> {
    read_json(&failed_path(root))
}

/// The failure to report on a new connection: a recent one only, so that a
/// later upgrade to the same binary is not failed by an old report.
pub fn failure_to_report(root: &Path) -> Option<Failure> {
    last_failure(root).filter(|f| crate::now_ms() - f.at_ms < REFUSE_FAILED_FOR_MS)
}

/// Verifies the server's signature over the order's digest and version.
pub fn verify(order: &UpgradeOrder, public_hex: &str) -> Result<(), String> {
    let key = hex::decode(public_hex).map_err(|_| "the stored server key is not hex".to_string())?;
    let sig = hex::decode(&order.signature).map_err(|_| "the signature is not hex".to_string())?;
    let message = ferry_domain::agent_upgrade::signed_message(&order.sha256, &order.version);
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key).verify(&message, &sig).map_err(|_| {
        format!("the signature of agent binary {} does not verify with the server's key: refused", order.version)
    })
}

/// Exclusive lock on the agent root, held for the process's life (the file
/// descriptor is close-on-exec, so an upgrade's exec hands it on by taking
/// it again). Waits up to `wait` for an agent that is going away.
pub fn lock_root(root: &Path, wait: Duration) -> Result<nix::fcntl::Flock<std::fs::File>, String> {
    let path = dir(root).join("agent.lock");
    let started = std::time::Instant::now();
    loop {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(mut lock) => {
                let _ = lock.set_len(0);
                let _ = writeln!(&mut *lock, "{}", std::process::id());
                return Ok(lock);
            }
            Err((_, errno)) if started.elapsed() < wait => {
                tracing::debug!("waiting for the lock on {}: {errno}", path.display());
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(_) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                return Err(format!(
                    "another agent (pid {}) runs on this root: {} is locked",
                    holder.trim(),
                    path.display()
                ));
            }
        }
    }
}

/// Carries out upgrade orders.
#[derive(Clone)]
pub struct Upgrader {
    pub root: PathBuf,
    pub api: AgentApi,
    pub me: Identity,
    /// How long the guard waits for the new agent to confirm; `None`: this
    /// agent does not upgrade itself.
    pub timeout: Option<Duration>,
}

impl Upgrader {
    /// Upgrades to `order`: on success this never returns (the process is
    /// the new binary); on failure the agent keeps running as it is and the
    /// error is what to report.
    pub async fn perform(&self, order: &UpgradeOrder) -> Result<(), String> {
        if order.sha256 == self.me.sha256 {
            return Ok(());
        }
        let recent = |f: &Failure| f.sha256 == order.sha256 && crate::now_ms() - f.at_ms < REFUSE_FAILED_FOR_MS;
        if let Some(f) = last_failure(&self.root).filter(recent) {
            return Err(f.error);
        }
        let result = self.replace_and_exec(order).await;
        if let Err(error) = &result {
            let failure = Failure {
                sha256: order.sha256.clone(),
                version: order.version.clone(),
                error: error.clone(),
                at_ms: crate::now_ms(),
            };
            if let Ok(json) = serde_json::to_vec(&failure) {
                let _ = write_private(&failed_path(&self.root), &json);
            }
        }
        result
    }

    async fn replace_and_exec(&self, order: &UpgradeOrder) -> Result<(), String> {
        let timeout = self.timeout.ok_or("this agent runs inside `ferry dev` and does not replace itself")?;
        let key = crate::credential::signing_key(&self.root)
            .ok_or("this agent knows no server key to check agent binaries with: refused")?;
        verify(order, &key)?;
        let exe = std::env::current_exe().map_err(|e| format!("finding the agent's own executable: {e}"))?;
        let exe_dir = exe.parent().ok_or("the agent's executable has no directory")?.to_path_buf();
        let name = exe.file_name().ok_or("the agent's executable has no name")?.to_string_lossy().into_owned();
        let new = exe_dir.join(format!(".{name}.upgrade"));
        let backup = exe_dir.join(format!("{name}.previous"));
        tracing::info!(version = %order.version, sha256 = %order.sha256, "upgrading the agent");
        if let Err(e) = self.download(order, &new).await {
            let _ = std::fs::remove_file(&new);
            return Err(e);
        }
        // The old binary stays as the backup, and the guard runs from it.
        let backup_tmp = exe_dir.join(format!(".{name}.previous"));
        let _ = std::fs::remove_file(&backup_tmp);
        std::fs::hard_link(&exe, &backup_tmp)
            .or_else(|_| std::fs::copy(&exe, &backup_tmp).map(|_| ()))
            .and_then(|()| std::fs::rename(&backup_tmp, &backup))
            .map_err(|e| format!("keeping the old binary as {}: {e}", backup.display()))?;
        let pending = Pending { sha256: order.sha256.clone(), version: order.version.clone() };
        let _ = std::fs::remove_file(confirmed_path(&self.root));
        write_private(&pending_path(&self.root), &serde_json::to_vec(&pending).map_err(|e| e.to_string())?)
            .map_err(|e| format!("recording the upgrade: {e}"))?;
        let args: Vec<OsString> = std::env::args_os().skip(1).collect();
        let mut guard = std::process::Command::new(&backup);
        guard
            .args(["agent", "upgrade-guard", "--root"])
            .arg(&self.root)
            .arg("--exe")
            .arg(&exe)
            .arg("--backup")
            .arg(&backup)
            .arg("--pid")
            .arg(std::process::id().to_string())
            .arg("--timeout")
            .arg(format!("{}ms", timeout.as_millis()))
            .arg("--")
            .args(&args)
            .stdin(std::process::Stdio::null())
            .process_group(0);
        let mut guard = guard.spawn().map_err(|e| format!("starting the upgrade guard: {e}"))?;
        let undo = |why: String, guard: &mut std::process::Child| {
            let _ = guard.kill();
            let _ = guard.wait();
            let _ = std::fs::remove_file(pending_path(&self.root));
            why
        };
        if let Err(e) = std::fs::rename(&new, &exe) {
            return Err(undo(format!("putting the new binary in place: {e}"), &mut guard));
        }
        sync_dir(&exe_dir);
        remember_label(&self.root, &order.sha256, &order.version);
        tracing::info!("executing the new agent binary {}", exe.display());
        // Only returns when the exec failed. "Text file busy" passes: a
        // child forked while the file was open for writing holds it until
        // its own exec.
        let error = tokio::task::block_in_place(|| {
            // No service is between its start and its record (supervisor).
            let _handover = crate::supervisor::HANDOVER.lock().unwrap_or_else(|e| e.into_inner());
            let mut error = std::process::Command::new(&exe).args(&args).exec();
            for _ in 0..20 {
                if error.kind() != std::io::ErrorKind::ExecutableFileBusy {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
                error = std::process::Command::new(&exe).args(&args).exec();
            }
            error
        });
        // Still the old code in memory: put the old binary back.
        let _ = std::fs::hard_link(&backup, &backup_tmp).and_then(|()| std::fs::rename(&backup_tmp, &exe));
        Err(undo(format!("the new agent binary cannot be executed: {error}; kept the old one"), &mut guard))
    }

    /// Downloads the binary into `to`, refusing bytes that do not hash to
    /// the order's digest.
    async fn download(&self, order: &UpgradeOrder, to: &Path) -> Result<(), String> {
        let resp = self.api.agent_binary().await?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o700)
            .open(to)
            .map_err(|e| format!("{}: {e}", to.display()))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| format!("downloading agent binary {}: {e}", order.version))?;
            size += chunk.len() as u64;
            if size > order.size {
                return Err(format!(
                    "agent binary {} is larger than the {} bytes announced: refused",
                    order.version, order.size
                ));
            }
            hasher.update(&chunk);
            file.write_all(&chunk).map_err(|e| format!("{}: {e}", to.display()))?;
        }
        let got = hex::encode(hasher.finalize());
        if got != order.sha256 {
            return Err(format!(
                "agent binary {} has sha256 {got}, not the signed {}: refused, still running the old binary",
                order.version, order.sha256
            ));
        }
        file.set_permissions(std::fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
        file.sync_all().map_err(|e| format!("{}: {e}", to.display()))?;
        Ok(())
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// What the guard is told.
#[derive(Debug, Clone)]
pub struct GuardArgs {
    pub root: PathBuf,
    pub exe: PathBuf,
    pub backup: PathBuf,
    pub pid: i32,
    pub timeout: Duration,
    /// The agent's original arguments.
    pub args: Vec<OsString>,
}

/// `ferry agent upgrade-guard`: waits for the new agent's confirmation, and
/// otherwise goes back to the old binary (see the module documentation).
pub fn guard(g: &GuardArgs) -> Result<(), String> {
    let ticks = crate::supervisor::start_ticks(g.pid);
    let Some(pending) = read_json::<Pending>(&pending_path(&g.root)) else {
        return Err("no upgrade is pending under this root".into());
    };
    let started = std::time::Instant::now();
    while started.elapsed() < g.timeout {
        if std::fs::read_to_string(confirmed_path(&g.root)).is_ok_and(|s| s.trim() == pending.sha256) {
            let _ = std::fs::remove_file(pending_path(&g.root));
            let _ = std::fs::remove_file(confirmed_path(&g.root));
            let _ = std::fs::remove_file(failed_path(&g.root));
            eprintln!("ferry upgrade guard: agent {} confirmed; standing down", pending.version);
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let error = format!(
        "the new agent binary {} did not connect to the server within {:.1} s; went back to the previous binary",
        pending.version,
        g.timeout.as_secs_f64()
    );
    eprintln!("ferry upgrade guard: {error}");
    // The old binary back over the executable path, atomically.
    let tmp = g.exe.with_file_name(format!(
        ".{}.restore",
        g.exe.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    ));
    let _ = std::fs::remove_file(&tmp);
    std::fs::hard_link(&g.backup, &tmp)
        .or_else(|_| std::fs::copy(&g.backup, &tmp).map(|_| ()))
        .and_then(|()| std::fs::rename(&tmp, &g.exe))
        .map_err(|e| format!("putting back {}: {e}", g.backup.display()))?;
    if let Some(dir) = g.exe.parent() {
        sync_dir(dir);
    }
    // The new agent, only if it is still the process this guard watched.
    if ticks.is_some() && crate::supervisor::start_ticks(g.pid) == ticks {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(g.pid), nix::sys::signal::Signal::SIGKILL);
        let gone = std::time::Instant::now();
        while crate::supervisor::start_ticks(g.pid) == ticks && gone.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let failure =
        Failure { sha256: pending.sha256.clone(), version: pending.version.clone(), error, at_ms: crate::now_ms() };
    write_private(&failed_path(&g.root), &serde_json::to_vec(&failure).map_err(|e| e.to_string())?)
        .map_err(|e| format!("recording the failure: {e}"))?;
    let _ = std::fs::remove_file(pending_path(&g.root));
    if std::env::var_os("INVOCATION_ID").is_some() {
        eprintln!("ferry upgrade guard: under systemd; it restarts the agent");
        return Ok(());
    }
    std::process::Command::new(&g.exe)
        .args(&g.args)
        .stdin(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("starting the previous agent again: {e}"))?;
    eprintln!("ferry upgrade guard: the previous agent is running again");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    #[test]
    fn only_the_servers_signature_over_this_digest_and_version_verifies() {
        let rng = ring::rand::SystemRandom::new();
        let pair = Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref()).unwrap();
        let other = Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref()).unwrap();
        let public = hex::encode(pair.public_key().as_ref());
        let sign = |k: &Ed25519KeyPair, sha: &str, v: &str| {
            hex::encode(k.sign(&ferry_domain::agent_upgrade::signed_message(sha, v)).as_ref())
        };
        let order = |sha: &str, v: &str, signature: String| UpgradeOrder {
            version: v.into(),
            sha256: sha.into(),
            size: 1,
            signature,
        };
        assert!(verify(&order("aa", "v2", sign(&pair, "aa", "v2")), &public).is_ok());
        // Another digest or version under the same signature, or another key.
        assert!(verify(&order("bb", "v2", sign(&pair, "aa", "v2")), &public).is_err());
        assert!(verify(&order("aa", "v3", sign(&pair, "aa", "v2")), &public).is_err());
        let err = verify(&order("aa", "v2", sign(&other, "aa", "v2")), &public).unwrap_err();
        assert!(err.contains("does not verify"), "{err}");
        assert!(verify(&order("aa", "v2", "zz".into()), &public).is_err());
    }

    #[test]
    fn a_confirmation_needs_the_pending_digest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".ferry")).unwrap();
        let pending = Pending { sha256: "aa".into(), version: "v2".into() };
        write_private(&pending_path(dir.path()), &serde_json::to_vec(&pending).unwrap()).unwrap();
        confirm(dir.path(), &Identity { sha256: "bb".into(), version: None });
        assert!(!confirmed_path(dir.path()).exists());
        confirm(dir.path(), &Identity { sha256: "aa".into(), version: Some("v2".into()) });
        assert_eq!(std::fs::read_to_string(confirmed_path(dir.path())).unwrap(), "aa");
    }

    #[test]
    fn two_agents_never_hold_one_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".ferry")).unwrap();
        let held = lock_root(dir.path(), Duration::ZERO).unwrap();
        let err = lock_root(dir.path(), Duration::from_millis(300)).unwrap_err();
        assert!(err.contains("another agent"), "{err}");
        drop(held);
        assert!(lock_root(dir.path(), Duration::ZERO).is_ok());
    }
}
