//! Running Ferry like a product: `--config` files, FERRY_* variables, `--print-config`, log formats.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{FERRY, Ferry, wait_until};

/// A `ferry` command with none of the caller's FERRY_* settings or log filters.
fn ferry(args: &[&str]) -> Command {
    let mut cmd = Command::new(FERRY);
    cmd.args(args).stdin(Stdio::null());
    for (k, _) in std::env::vars_os() {
        if k.to_str().is_some_and(|k| k.starts_with("FERRY_") || k == "RUST_LOG" || k == "NO_COLOR") {
            cmd.env_remove(k);
        }
    }
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run ferry")
}

/// A long-running `ferry` process, killed when dropped.
struct Running {
    child: Child,
    stderr: PathBuf,
}

impl Running {
    fn start(mut cmd: Command, dir: &Path, name: &str) -> Running {
        let stderr = dir.join(format!("{name}.stderr"));
        let out = std::fs::File::create(dir.join(format!("{name}.stdout"))).expect("stdout file");
        let err = std::fs::File::create(&stderr).expect("stderr file");
        let child = cmd.stdout(out).stderr(err).spawn().expect("spawn ferry");
        Running { child, stderr }
    }
    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- {} ---\n{}", self.stderr.display(), self.log());
        }
    }
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write config");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// `key = value` lines of `--print-config` output, without the comments saying where each came from.
fn settings(printed: &str) -> Vec<String> {
    printed
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split("  #").next().unwrap_or(l).trim().to_string())
        .collect()
}

#[test]
fn flag_beats_variable_beats_file_beats_default() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("server.toml");
    write_private(
        &file,
        "data = \"/srv/from-file\"\nheartbeat-interval = \"1s\"\nheartbeat_timeout = \"2s\"\nresync-interval = \"3s\"\n",
    );
    let out = run(ferry(&["server", "--print-config", "--resync-interval", "300s"])
        .env("FERRY_CONFIG", &file)
        .env("FERRY_HEARTBEAT_TIMEOUT", "20s")
        .env("FERRY_RESYNC_INTERVAL", "30s"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = text.lines().collect();
    for want in [
        "data = \"/srv/from-file\"  # config file",
        "heartbeat-interval = \"1s\"  # config file",
        "heartbeat-timeout = \"20s\"  # FERRY_HEARTBEAT_TIMEOUT",
        "resync-interval = \"300s\"  # flag",
        "listen = \"127.0.0.1:7070\"  # default",
    ] {
        assert!(lines.contains(&want), "no line {want:?} in\n{text}");
    }
}

#[test]
fn printed_config_loads_back_and_hides_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["agent", "--print-config", "--server", "http://127.0.0.1:9", "--name", "web-1", "--root", "/srv/r"];
    let out = run(ferry(&args)
        .env("FERRY_TAGS", "role=web,dc=\"x\"")
        .env("FERRY_CHECK_INTERVAL", "2s")
        .env("FERRY_JOIN_TOKEN", "very-secret-token")
        .env("FERRY_ALLOW_ROOT_SERVICES", "true"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let first = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!first.contains("very-secret-token"), "the join token was printed:\n{first}");
    assert!(first.contains("# join-token: set (FERRY_JOIN_TOKEN), a secret: not printed"), "{first}");
    let file = dir.path().join("agent.toml");
    write_private(&file, &first);
    let out = run(&mut ferry(&["agent", "--config", file.to_str().unwrap(), "--print-config"]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let second = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(settings(&first), settings(&second), "\n{first}\n---\n{second}");
    assert!(second.lines().any(|l| l.starts_with("tags = ") && l.ends_with("# config file")), "{second}");
    assert!(second.contains("allow-root-services = true  # config file"), "{second}");
}

#[test]
fn a_bad_config_file_stops_the_server_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("server.toml");
    let f = file.to_str().unwrap();
    let cases = [
        (format!("data = {:?}\nlisten = \"127.0.0.1:0\"\ncolour = \"blue\"\n", data), "unknown key `colour`"),
        (format!("data = {:?}\nbuild-workers = \"many\"\n", data), "key `build-workers`: invalid value 'many'"),
        (format!("data = {:?}\nsecure-cookies = 1\n", data), "key `secure-cookies`: expected true or false"),
        (format!("data = {:?}\nlisten = [1]\n", data), "key `listen`: expected a string, found an array"),
        ("data = \n".to_string(), "not valid TOML"),
    ];
    for (text, want) in cases {
        write_private(&file, &text);
        let out = run(&mut ferry(&["server", "--config", f]));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: not the usage status");
        assert!(err.contains(f) && err.contains(want), "{text}: wanted {want:?} and the file named in: {err}");
        assert!(!data.exists(), "the server initialised its data directory despite {text}");
    }
    let out = run(&mut ferry(&["server", "--config", &format!("{f}.absent")]));
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("cannot open it"));
    // A secret every local user can read: refused, without printing it.
    std::fs::write(&file, format!("data = {:?}\nsmtp-url = \"smtp://u:hunter2@h:25\"\nsmtp-from = \"f@x\"\n", data))
        .unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(&mut ferry(&["server", "--config", f]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("holds a secret (smtp-url)") && !err.contains("hunter2"), "{err}");
    assert!(!data.exists());
}

/// A server and an agent started from config files alone (as systemd units start them): the agent
/// enrols, and a deployment reaches it. The agent logs JSON, as its file says.
#[test]
fn an_agent_from_a_config_file_enrols_and_deploys() {
    let f = Ferry::start();
    let dir = f.dir.path();
    let root = f.root_of("cfg-1");
    let file = dir.join("agent.toml");
    write_private(
        &file,
        &format!(
            "server = {:?}\nname = \"cfg-1\"\ntags = \"role=web\"\nroot = {:?}\njoin_token = {:?}\n\
             check-interval = \"1s\"\nservice-user = \"nobody\"\nlog-format = \"json\"\n",
            f.url, root, f.join_token
        ),
    );
    let mut cmd = ferry(&["agent"]);
    cmd.env("FERRY_CONFIG", &file).env("FERRY_LOG", "info");
    let agent = Running::start(cmd, dir, "agent-cfg-1");
    f.wait_online("cfg-1", true);
    f.project_app();
    f.upload("app", "v1");
    f.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);
    f.wait_version("cfg-1", "app", "v1");

    let log = agent.log();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 2, "the agent logged almost nothing:\n{log}");
    for line in &lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["message"].is_string(), "no level or message: {line}");
        assert!(v["timestamp"].is_string() && v["target"].is_string(), "no timestamp or target: {line}");
    }
    // The harness's server logs text into a file: no colour codes there.
    let server_log = std::fs::read_to_string(&f.server.log).unwrap();
    assert!(server_log.contains(" INFO "), "no text log lines:\n{server_log}");
    assert!(!server_log.contains("\x1b["), "colour codes in a piped log:\n{server_log}");
}

/// A server started from its config file alone; FERRY_LOG beats RUST_LOG.
#[test]
fn server_from_a_config_file_and_log_filters() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("server.toml");
    write_private(&file, &format!("data = {data:?}\nlisten = \"127.0.0.1:0\"\nlog_format = \"json\"\n"));
    let levels = |env: &[(&str, &str)], name: &str| -> Vec<String> {
        let _ = std::fs::remove_file(data.join("server.url"));
        let mut cmd = ferry(&["server", "--config", file.to_str().unwrap()]);
        cmd.envs(env.iter().copied());
        let server = Running::start(cmd, dir.path(), name);
        wait_until(Duration::from_secs(20), "server.url", || data.join("server.url").exists());
        let url = std::fs::read_to_string(data.join("server.url")).unwrap();
        assert!(url.starts_with("http://127.0.0.1:") && !url.contains(":7070"), "{url}");
        wait_until(Duration::from_secs(10), "log lines", || server.log().contains("listening") || name == "quiet");
        server
            .log()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .map(|v| v["level"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let debug = levels(&[("RUST_LOG", "debug")], "rust-log");
    assert!(debug.iter().any(|l| l == "DEBUG"), "RUST_LOG=debug ignored: {debug:?}");
    let quiet = levels(&[("RUST_LOG", "debug"), ("FERRY_LOG", "warn")], "quiet");
    assert!(quiet.iter().all(|l| l == "WARN" || l == "ERROR"), "FERRY_LOG=warn did not win: {quiet:?}");
}

/// On a terminal, text logs are coloured unless NO_COLOR is set (`script` gives the process a terminal).
#[test]
fn colour_only_on_a_terminal_without_no_color() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let on_terminal = |no_color: bool| -> String {
        let line = format!("timeout 3 {FERRY} server --data {} --listen 127.0.0.1:0", data.display());
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &line, "/dev/null"]).env_remove("FERRY_LOG").env_remove("RUST_LOG").env_remove("NO_COLOR");
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        let out = cmd.output().expect("script (util-linux) runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let coloured = on_terminal(false);
    assert!(coloured.contains("listening") && coloured.contains("\x1b["), "no colour on a terminal:\n{coloured}");
    let plain = on_terminal(true);
    assert!(plain.contains("listening") && !plain.contains("\x1b["), "colour despite NO_COLOR:\n{plain}");
}
