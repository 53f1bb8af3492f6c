//! Driving the load balancers this host runs (R14).
//!
//! A load-balancer host is an ordinary host whose tags an environment's load
//! balancer selects; the server sends it, with its desired state, every
//! backend host of that environment with its address and whether it is
//! drained. This module makes the balancer match, level-triggered like the
//! rest of the agent, and reports the generation it applied
//! (`AgentMsg::LbApplied`):
//!
//! - nginx: the agent owns one file holding `upstream NAME { ... }`, written
//!   whole and atomically (temporary file, then rename); the reload command
//!   runs when the content changed, and once after each agent start (a reload
//!   that an earlier agent did not get to run is never lost).
//! - HAProxy: `set server BACKEND/HOST state drain|ready` over the stats
//!   socket, for every backend on every pass (it is idempotent and cheap).
//! - command: `drain` or `ready` runs for each backend whose state changed
//!   since it last succeeded; what was last applied is kept in
//!   `<root>/.ferry/lb/`, so that a restarted agent runs nothing twice.
//!
//! The server is never contacted from here, and this module never reaches a
//! backend host: it only touches the local balancer.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ferry_domain::LbDriver;
use ferry_domain::lb::validate_address;
use ferry_process::RunOutcome;
use ferry_proto::agent::{AgentMsg, LbBackend, LbDesired};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// How long a reload, drain or ready command may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one exchange on HAProxy's stats socket may take.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(5);

/// What the agent remembers between passes.
#[derive(Default)]
pub struct LbMemory {
    /// nginx files whose content is current and whose reload succeeded
    /// since this agent started.
    reloaded: HashSet<PathBuf>,
    /// What was last reported per (project, env), and on which connection:
    /// a report goes up when it changes, and again on each new connection.
    reported: HashMap<(String, String), (u64, Option<String>)>,
    reported_on: Option<u64>,
}

/// Brings every balancer this host drives to its desired state and reports
/// each one whose outcome is news to the server. `connection` counts the
/// agent's connections, so that a new one hears every outcome again.
pub async fn converge(
    root: &Path,
    desired: &[LbDesired],
    memory: &mut LbMemory,
    connection: u64,
    reports: &mpsc::UnboundedSender<AgentMsg>,
) {
    if memory.reported_on != Some(connection) {
        memory.reported.clear();
        memory.reported_on = Some(connection);
    }
    let mut files: HashMap<&str, &LbDesired> = HashMap::new();
    for lb in desired {
        // Two environments writing one file would undo each other on every pass.
        let shared = match &lb.driver {
            LbDriver::Nginx { file, .. } => files.insert(file, lb).map(|other| (file, other)),
            _ => None,
        };
        let outcome = match shared {
            Some((file, other)) => Err(format!(
                "{file} is the upstream file of {}/{} too: give each environment its own --file",
                other.project, other.env
            )),
            None => apply(root, lb, memory).await,
        };
        if let Err(e) = &outcome {
            tracing::warn!(project = %lb.project, env = %lb.env, generation = lb.generation, "load balancer: {e}");
        }
        let key = (lb.project.clone(), lb.env.clone());
        let now = (lb.generation, outcome.err());
        if memory.reported.get(&key) == Some(&now) {
            continue;
        }
        let (generation, error) = now.clone();
        let msg = AgentMsg::LbApplied { project: lb.project.clone(), env: lb.env.clone(), generation, error };
        if reports.send(msg).is_ok() {
            memory.reported.insert(key, now);
        }
    }
}

async fn apply(root: &Path, lb: &LbDesired, memory: &mut LbMemory) -> Result<(), String> {
    // The server checked these; an agent writes them into a file or a command
    // line, so it does not rely on that.
    lb.driver.validate().map_err(|e| format!("refusing the load balancer's configuration: {e}"))?;
    if let Some(b) = lb.backends.iter().find(|b| validate_address(&b.address).is_err()) {
        return Err(format!("refusing backend {}: '{}' is not an address", b.host, b.address));
    }
    match &lb.driver {
        LbDriver::Nginx { upstream, file, reload } => {
            let text = render_nginx_upstream(&lb.project, &lb.env, upstream, &lb.backends)?;
            apply_nginx(root, Path::new(file), &text, reload, memory).await
        }
        LbDriver::Haproxy { socket, backend } => apply_haproxy(Path::new(socket), backend, &lb.backends).await,
        LbDriver::Command { drain, ready } => apply_command(root, lb, drain, ready).await,
    }
}

/// The upstream file's content: every backend, drained ones marked `down`,
/// in a stable order so that the same state is the same text.
pub fn render_nginx_upstream(
    project: &str,
    env: &str,
    upstream: &str,
    backends: &[LbBackend],
) -> Result<String, String> {
    if backends.is_empty() {
        // nginx refuses an upstream without servers, and with it the whole
        // configuration at its next reload.
        return Err(format!("environment {env} has no hosts: an nginx upstream needs at least one server"));
    }
    let mut sorted: Vec<&LbBackend> = backends.iter().collect();
    sorted.sort_by(|a, b| a.host.cmp(&b.host));
    let mut text = format!(
        "# Written by the Ferry agent for {project}/{env}: `ferry env lb show {project} {env}`.\n\
         # Rewritten whole on every change; edits here are lost.\n\
         upstream {upstream} {{\n"
    );
    for b in sorted {
        let down = if b.drained { " down" } else { "" };
        text.push_str(&format!("    server {}{down};  # {}\n", b.address, b.host));
    }
    text.push_str("}\n");
    Ok(text)
}

/// Writes the upstream file when its content differs, and reloads nginx
/// unless this agent already did for this very content.
async fn apply_nginx(root: &Path, file: &Path, text: &str, reload: &str, memory: &mut LbMemory) -> Result<(), String> {
    let current = std::fs::read_to_string(file).ok();
    if current.as_deref() != Some(text) {
        write_atomically(file, text).map_err(|e| format!("writing {}: {e}", file.display()))?;
        memory.reloaded.remove(file);
        tracing::info!(file = %file.display(), "nginx upstream file rewritten");
    }
    if memory.reloaded.contains(file) {
        return Ok(());
    }
    run(root, "reload", reload, &[]).await.map_err(|e| format!("{} is written, but the {e}", file.display()))?;
    memory.reloaded.insert(file.to_path_buf());
    Ok(())
}

/// Replaces `path` with `text` in one rename: nginx, reloading at any
/// moment, reads the old file or the new one, never half of one.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // A name nginx's `include *.conf` does not pick up.
    let tmp = path.with_file_name(format!(".{name}.ferry-tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    drop(f);
    // Readable by nginx's workers and whoever checks the configuration.
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    std::fs::rename(&tmp, path)
}

async fn apply_haproxy(socket: &Path, backend: &str, backends: &[LbBackend]) -> Result<(), String> {
    let mut errors = Vec::new();
    for b in backends {
        let state = if b.drained { "drain" } else { "ready" };
        let command = format!("set server {backend}/{} state {state}", b.host);
        match haproxy_command(socket, &command).await {
            Ok(answer) if answer.is_empty() => {}
            Ok(answer) => errors.push(format!("`{command}`: HAProxy answered: {answer}")),
            Err(e) => errors.push(format!("`{command}` on {}: {e}", socket.display())),
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
}

/// Sends one command on HAProxy's stats socket and returns its answer
/// (empty when a `set` command succeeded).
pub async fn haproxy_command(socket: &Path, command: &str) -> Result<String, String> {
    let exchange = async {
        let mut stream = tokio::net::UnixStream::connect(socket).await?;
        // One command per connection: HAProxy answers and closes.
        stream.write_all(format!("{command}\n").as_bytes()).await?;
        stream.shutdown().await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    match tokio::time::timeout(SOCKET_TIMEOUT, exchange).await {
        Err(_) => Err(format!("no answer within {} s", SOCKET_TIMEOUT.as_secs())),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(answer)) => Ok(answer.trim().to_string()),
    }
}

/// What the command driver last applied for one environment: host to drained.
type Applied = BTreeMap<String, bool>;

fn applied_path(root: &Path, lb: &LbDesired) -> PathBuf {
    root.join(".ferry").join("lb").join(format!("{}.{}.json", lb.project, lb.env))
}

async fn apply_command(root: &Path, lb: &LbDesired, drain: &str, ready: &str) -> Result<(), String> {
    let path = applied_path(root, lb);
    let before: Applied = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    let mut applied = before.clone();
    let mut errors = Vec::new();
    for b in &lb.backends {
        if applied.get(&b.host) == Some(&b.drained) {
            continue;
        }
        let (what, command) = if b.drained { ("drain", drain) } else { ("ready", ready) };
        let env = [
            ("FERRY_PROJECT".to_string(), lb.project.clone()),
            ("FERRY_ENV".to_string(), lb.env.clone()),
            ("FERRY_LB_HOST".to_string(), b.host.clone()),
            ("FERRY_LB_ADDRESS".to_string(), b.address.clone()),
        ];
        match run(root, what, command, &env).await {
            Ok(()) => {
                tracing::info!(project = %lb.project, env = %lb.env, host = %b.host, "load balancer: {what} done");
                applied.insert(b.host.clone(), b.drained);
            }
            Err(e) => errors.push(format!("{}: {e}", b.host)),
        }
    }
    // Hosts no longer in the environment are forgotten: if one comes back,
    // its state is applied again.
    applied.retain(|host, _| lb.backends.iter().any(|b| &b.host == host));
    if applied != before {
        save(&path, &applied).map_err(|e| format!("recording what was applied in {}: {e}", path.display()))?;
    }
    if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
}

fn save(path: &Path, applied: &Applied) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let json = serde_json::to_vec(applied).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, path)
}

/// Runs a driver's command in `root`; the failure names it and quotes its
/// last lines.
async fn run(root: &Path, what: &str, command: &str, env: &[(String, String)]) -> Result<(), String> {
    let what_owned = what.to_string();
    let sink: ferry_process::LineSink =
        Arc::new(move |stream, line| tracing::info!(lb = %what_owned, stream, "{line}"));
    match ferry_process::run(command, root, env, COMMAND_TIMEOUT, &sink, ferry_process::never).await? {
        RunOutcome::Succeeded => Ok(()),
        RunOutcome::Failed { code, tail } => Err(format!(
            "{what} command `{command}` {}{}",
            code.map_or("was killed by a signal".to_string(), |c| format!("exited with code {c}")),
            if tail.is_empty() { String::new() } else { format!(": {}", tail.join(" | ")) }
        )),
        RunOutcome::TimedOut => {
            Err(format!("{what} command `{command}` ran longer than {} s and was stopped", COMMAND_TIMEOUT.as_secs()))
        }
        RunOutcome::Canceled => Err(format!("{what} command `{command}` was canceled")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(host: &str, address: &str, drained: bool) -> LbBackend {
        LbBackend { host: host.into(), address: address.into(), drained }
    }

    fn nginx_lb(dir: &Path, generation: u64, backends: Vec<LbBackend>) -> LbDesired {
        LbDesired {
            project: "app".into(),
            env: "prod".into(),
            generation,
            driver: LbDriver::Nginx {
                upstream: "app".into(),
                file: dir.join("app.conf").to_string_lossy().into_owned(),
                // Counts its runs.
                reload: format!("echo reload >> {}", dir.join("reloads").display()),
            },
            backends,
        }
    }

    fn reloads(dir: &Path) -> usize {
        std::fs::read_to_string(dir.join("reloads")).unwrap_or_default().lines().count()
    }

    /// Runs one pass and returns the reports it sent.
    async fn pass(root: &Path, desired: &[LbDesired], memory: &mut LbMemory, connection: u64) -> Vec<AgentMsg> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        converge(root, desired, memory, connection, &tx).await;
        drop(tx);
        let mut out = Vec::new();
        while let Some(m) = rx.recv().await {
            out.push(m);
        }
        out
    }

    fn applied(generation: u64, error: Option<&str>) -> AgentMsg {
        AgentMsg::LbApplied { project: "app".into(), env: "prod".into(), generation, error: error.map(Into::into) }
    }

    #[test]
    fn the_upstream_lists_every_host_drained_ones_down() {
        let text = render_nginx_upstream(
            "app",
            "prod",
            "app_prod",
            &[backend("web-2", "10.0.0.2:8080", true), backend("web-1", "10.0.0.1:8080", false)],
        )
        .unwrap();
        let body: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            body,
            [
                "upstream app_prod {",
                "    server 10.0.0.1:8080;  # web-1",
                "    server 10.0.0.2:8080 down;  # web-2",
                "}"
            ],
            "{text}"
        );
        assert!(text.starts_with("# Written by the Ferry agent for app/prod"), "{text}");
        let none = render_nginx_upstream("app", "prod", "app", &[]).unwrap_err();
        assert!(none.contains("needs at least one server"), "{none}");
    }

    #[tokio::test]
    async fn nginx_reloads_only_when_the_file_changes_but_always_reports() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut memory = LbMemory::default();
        let one = vec![backend("web-1", "127.0.0.1:8001", false), backend("web-2", "127.0.0.1:8002", false)];
        let lb = nginx_lb(root, 1, one.clone());
        assert_eq!(pass(root, std::slice::from_ref(&lb), &mut memory, 1).await, [applied(1, None)]);
        assert_eq!(reloads(root), 1);
        let text = std::fs::read_to_string(root.join("app.conf")).unwrap();
        assert!(text.contains("server 127.0.0.1:8002;"), "{text}");

        // The same state again: nothing to write, nothing to reload or report.
        assert!(pass(root, std::slice::from_ref(&lb), &mut memory, 1).await.is_empty());
        assert_eq!(reloads(root), 1);
        // A new generation with the same content still gets its report.
        let same = nginx_lb(root, 2, one.clone());
        assert_eq!(pass(root, std::slice::from_ref(&same), &mut memory, 1).await, [applied(2, None)]);
        assert_eq!(reloads(root), 1, "nothing changed on disk");
        // A new connection hears it again.
        assert_eq!(pass(root, &[same], &mut memory, 2).await, [applied(2, None)]);

        // Draining web-2 rewrites the file and reloads.
        let drained = nginx_lb(root, 3, vec![one[0].clone(), backend("web-2", "127.0.0.1:8002", true)]);
        assert_eq!(pass(root, std::slice::from_ref(&drained), &mut memory, 2).await, [applied(3, None)]);
        assert_eq!(reloads(root), 2);
        assert!(std::fs::read_to_string(root.join("app.conf")).unwrap().contains("server 127.0.0.1:8002 down;"));
        let leftovers: Vec<_> = std::fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("ferry-tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");

        // A restarted agent reloads once even though the file is current: the
        // agent before it may have died between the write and the reload.
        let mut fresh = LbMemory::default();
        assert_eq!(pass(root, std::slice::from_ref(&drained), &mut fresh, 1).await, [applied(3, None)]);
        assert_eq!(reloads(root), 3);
        assert!(pass(root, &[drained], &mut fresh, 1).await.is_empty());
        assert_eq!(reloads(root), 3);
    }

    #[tokio::test]
    async fn a_failed_reload_is_reported_and_retried() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let flag = root.join("nginx-is-down");
        std::fs::write(&flag, "").unwrap();
        let mut lb = nginx_lb(root, 4, vec![backend("web-1", "127.0.0.1:8001", false)]);
        let LbDriver::Nginx { reload, .. } = &mut lb.driver else { unreachable!() };
        *reload = format!("if [ -e {} ]; then echo 'nginx: no pid' >&2; exit 1; fi; {reload}", flag.display());
        let mut memory = LbMemory::default();
        let reports = pass(root, std::slice::from_ref(&lb), &mut memory, 1).await;
        let [AgentMsg::LbApplied { generation: 4, error: Some(error), .. }] = reports.as_slice() else {
            panic!("{reports:?}")
        };
        assert!(error.contains("is written, but the reload command") && error.contains("nginx: no pid"), "{error}");
        assert_eq!(reloads(root), 0);
        // The file is current, yet the reload is tried again until it works.
        std::fs::remove_file(&flag).unwrap();
        assert_eq!(pass(root, &[lb], &mut memory, 1).await, [applied(4, None)]);
        assert_eq!(reloads(root), 1);
    }

    #[tokio::test]
    async fn refuses_what_it_should_not_write() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut memory = LbMemory::default();
        let evil = nginx_lb(root, 1, vec![backend("web-1", "1.2.3.4:80; server 6.6.6.6", false)]);
        let reports = pass(root, &[evil], &mut memory, 1).await;
        assert!(
            matches!(&reports[..], [AgentMsg::LbApplied { error: Some(e), .. }] if e.contains("refusing backend web-1"))
        );
        assert!(!root.join("app.conf").exists());
        // Two environments, one file.
        let a = nginx_lb(root, 1, vec![backend("web-1", "127.0.0.1:1", false)]);
        let mut b = a.clone();
        b.env = "staging".into();
        let reports = pass(root, &[a, b], &mut memory, 1).await;
        assert!(
            matches!(&reports[1], AgentMsg::LbApplied { error: Some(e), .. } if e.contains("give each environment its own --file")),
            "{reports:?}"
        );
    }

    #[tokio::test]
    async fn haproxy_servers_are_set_over_the_stats_socket() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("admin.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let seen2 = seen.clone();
        // A stand-in for HAProxy: one command per connection, an empty answer
        // on success, "No such server." for a server it does not have.
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else { return };
                let mut command = String::new();
                stream.read_to_string(&mut command).await.unwrap();
                let answer = if command.contains("/web-3 ") { "No such server.\n\n" } else { "\n" };
                seen2.lock().unwrap().push(command.trim_end().to_string());
                stream.write_all(answer.as_bytes()).await.unwrap();
            }
        });
        let lb = |backends| LbDesired {
            project: "app".into(),
            env: "prod".into(),
            generation: 9,
            driver: LbDriver::Haproxy { socket: socket.to_string_lossy().into_owned(), backend: "web".into() },
            backends,
        };
        let mut memory = LbMemory::default();
        let ok = lb(vec![backend("web-1", "10.0.0.1:80", true), backend("web-2", "10.0.0.2:80", false)]);
        assert_eq!(pass(dir.path(), &[ok], &mut memory, 1).await, [applied(9, None)]);
        assert_eq!(*seen.lock().unwrap(), ["set server web/web-1 state drain", "set server web/web-2 state ready"]);

        let unknown = lb(vec![backend("web-3", "10.0.0.3:80", false)]);
        let reports = pass(dir.path(), &[unknown], &mut memory, 1).await;
        assert!(
            matches!(&reports[..], [AgentMsg::LbApplied { error: Some(e), .. }] if e.contains("HAProxy answered: No such server.")),
            "{reports:?}"
        );
        let gone = LbDesired {
            driver: LbDriver::Haproxy { socket: "/nonexistent/haproxy.sock".into(), backend: "web".into() },
            ..lb(vec![backend("web-1", "10.0.0.1:80", false)])
        };
        let reports = pass(dir.path(), &[gone], &mut memory, 1).await;
        assert!(
            matches!(&reports[..], [AgentMsg::LbApplied { error: Some(e), .. }] if e.contains("/nonexistent/haproxy.sock")),
            "{reports:?}"
        );
    }

    #[tokio::test]
    async fn commands_run_for_the_hosts_whose_state_changed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let log = root.join("commands");
        let lb = |generation, backends| LbDesired {
            project: "app".into(),
            env: "prod".into(),
            generation,
            driver: LbDriver::Command {
                drain: format!("echo \"drain $FERRY_LB_HOST $FERRY_LB_ADDRESS $FERRY_ENV\" >> {}", log.display()),
                ready: format!(
                    "[ \"$FERRY_LB_HOST\" != web-9 ] || exit 4; echo \"ready $FERRY_LB_HOST\" >> {}",
                    log.display()
                ),
            },
            backends,
        };
        let lines = || std::fs::read_to_string(&log).unwrap_or_default().lines().map(String::from).collect::<Vec<_>>();
        let mut memory = LbMemory::default();
        let first = lb(1, vec![backend("web-1", "10.0.0.1:80", false), backend("web-2", "10.0.0.2:80", false)]);
        assert_eq!(pass(root, &[first], &mut memory, 1).await, [applied(1, None)]);
        assert_eq!(lines(), ["ready web-1", "ready web-2"], "a first sight applies every host's state");

        let second = lb(2, vec![backend("web-1", "10.0.0.1:80", false), backend("web-2", "10.0.0.2:80", true)]);
        assert_eq!(pass(root, std::slice::from_ref(&second), &mut memory, 1).await, [applied(2, None)]);
        assert_eq!(lines()[2..], ["drain web-2 10.0.0.2:80 prod"]);
        // A restarted agent remembers what it applied.
        assert_eq!(pass(root, &[second], &mut LbMemory::default(), 1).await, [applied(2, None)]);
        assert_eq!(lines().len(), 3);

        // A failing command is reported, and retried on the next pass.
        let failing = lb(3, vec![backend("web-9", "10.0.0.9:80", false)]);
        let reports = pass(root, std::slice::from_ref(&failing), &mut memory, 1).await;
        assert!(
            matches!(&reports[..], [AgentMsg::LbApplied { generation: 3, error: Some(e), .. }] if e.contains("web-9: ready command") && e.contains("exited with code 4")),
            "{reports:?}"
        );
        let again = pass(root, &[failing], &mut memory, 1).await;
        assert!(again.is_empty(), "the same outcome is not reported twice: {again:?}");
        assert_eq!(lines().len(), 3);
    }
}
