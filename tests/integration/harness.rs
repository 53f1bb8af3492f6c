//! Starting the real `ferry` binary as a user would: a server on an
//! OS-given port in a temporary directory, agents as separate processes,
//! and the CLI with `FERRY_SERVER` / `FERRY_TOKEN`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

/// Polls `cond` every 50 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A process that is killed when dropped.
pub struct Proc {
    child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
    /// Waits for the process to exit by itself and returns its log.
    pub fn wait_exit(&mut self, timeout: Duration) -> (bool, String) {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return (status.success(), std::fs::read_to_string(&self.log).unwrap_or_default());
            }
            if start.elapsed() > timeout {
                panic!("process {} did not exit within {timeout:?}", self.pid());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- last lines of {} ---", self.log.display());
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

fn spawn(args: &[&str], log: PathBuf, envs: &[(&str, &str)]) -> Proc {
    spawn_exe(Path::new(FERRY), args, log, envs)
}

fn spawn_exe(exe: &Path, args: &[&str], log: PathBuf, envs: &[(&str, &str)]) -> Proc {
    let file = std::fs::File::create(&log).expect("create log file");
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .env("FERRY_LOG", "info,sqlx=warn")
        .env_remove("FERRY_SERVER")
        .env_remove("FERRY_TOKEN")
        .env_remove("FERRY_CA_CERT")
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("clone log"))
        .stderr(file);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    // A copy just written may be briefly "busy": a process another test
    // thread forked meanwhile holds its write descriptor until it execs.
    let mut tries = 0;
    let child = loop {
        match cmd.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            other => break other.expect("spawn ferry"),
        }
    };
    Proc { child, log }
}

/// A server, its temporary directory, and the agents started for it.
pub struct Ferry {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub token: String,
    pub join_token: String,
    pub server: Proc,
    pub agents: Vec<(String, Proc)>,
    /// Options the server was started with on top of the usual ones, kept for restarts.
    server_extra: Vec<String>,
    /// The CA certificate agents and CLI calls get as `--ca-cert`
    /// (`FERRY_CA_CERT`), for a server started with TLS.
    pub ca_cert: Option<PathBuf>,
    /// Agents run from their own copy of the binary, `DIR/bin/HOST/ferry`,
    /// with these options added ([`Ferry::agents_from_copies`]).
    agent_copies: Option<Vec<String>>,
}

/// Services outlive their agent by design: end those this test's agents
/// started (by the process groups their records name).
impl Drop for Ferry {
    fn drop(&mut self) {
        for (_, agent) in &mut self.agents {
            agent.kill();
        }
        if self.agent_copies.is_some() {
            self.kill_copied_agents();
        }
        let Ok(hosts) = std::fs::read_dir(self.dir.path().join("hosts")) else { return };
        for host in hosts.flatten() {
            for record in std::fs::read_dir(host.path().join(".ferry/services")).into_iter().flatten().flatten() {
                let json: Value = std::fs::read(record.path())
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .unwrap_or(Value::Null);
                if let Some(pid) = json["pid"].as_i64() {
                    kill_group(pid);
                }
            }
        }
    }
}

/// SIGKILL to a process group this test started.
pub fn kill_group(pgid: i64) {
    let _ =
        Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).stderr(std::process::Stdio::null()).status();
}

impl Ferry {
    /// Starts a server with short heartbeats so tests notice offline hosts fast.
    pub fn start() -> Ferry {
        Self::start_with(&[])
    }

    /// Like [`Ferry::start`], with more server options (e.g. `--smtp-url`).
    pub fn start_with(extra: &[&str]) -> Ferry {
        // Tests build reqwest clients, which have no crypto provider of their own.
        ferry_tls::install_crypto_provider();
        let server_extra: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        let dir = tempfile::tempdir().expect("tempdir");
        // Services run as an unprivileged user when the tests run as root:
        // it must be able to reach the release directories.
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        let server = Self::spawn_server(dir.path(), "127.0.0.1:0", &server_extra);
        let url = wait_for_server(dir.path());
        let token = read_trimmed(&dir.path().join("server/admin.token"));
        let join_token = read_trimmed(&dir.path().join("server/join.token"));
        Ferry {
            dir,
            url,
            token,
            join_token,
            server,
            agents: Vec::new(),
            server_extra,
            ca_cert: None,
            agent_copies: None,
        }
    }

    fn spawn_server(dir: &Path, listen: &str, extra: &[String]) -> Proc {
        let data = dir.join("server");
        let _ = std::fs::remove_file(data.join("server.url"));
        let args = [
            "server",
            "--data",
            data.to_str().expect("utf-8 path"),
            "--listen",
            listen,
            "--heartbeat-interval",
            "250ms",
            "--heartbeat-timeout",
            "1500ms",
            "--resync-interval",
            "3s",
        ];
        // An option given in `extra` replaces the usual one.
        let mut args: Vec<&str> = args.into_iter().collect();
        if let Some(at) = args.iter().position(|a| *a == "--resync-interval")
            && extra.iter().any(|a| a == "--resync-interval")
        {
            args.drain(at..at + 2);
        }
        let args: Vec<&str> = args.into_iter().chain(extra.iter().map(String::as_str)).collect();
        let n = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
        spawn(&args, dir.join(format!("server-{n}.log")), &[])
    }

    /// Starts a second server process on the same data directory (one
    /// database file, one artifact directory) on its own port; returns it
    /// and its URL.
    pub fn start_replica(&self) -> (Proc, String) {
        let server = Self::spawn_server(self.dir.path(), "127.0.0.1:0", &self.server_extra);
        let url = wait_for_server(self.dir.path());
        (server, url)
    }

    /// Kills the server with SIGKILL and starts it again on the same port and data.
    pub fn restart_server(&mut self) {
        self.server.kill();
        let addr = host_port(&self.url).to_string();
        self.server = Self::spawn_server(self.dir.path(), &addr, &self.server_extra);
        self.url = wait_for_server(self.dir.path());
    }

    pub fn root_of(&self, name: &str) -> PathBuf {
        self.dir.path().join("hosts").join(name)
    }

    /// Everything this host's agent processes have logged so far.
    pub fn agent_log(&self, name: &str) -> String {
        let prefix = format!("agent-{name}-");
        let mut logs: Vec<_> = std::fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix)))
            .collect();
        logs.sort();
        logs.iter().filter_map(|p| std::fs::read_to_string(p).ok()).collect()
    }

    /// Starts an agent process (enrolling it on its first start).
    pub fn start_agent(&mut self, name: &str, tags: &str) {
        let proc = self.spawn_agent(name, tags, Some(&self.join_token.clone()));
        self.agents.retain(|(n, _)| n != name);
        self.agents.push((name.to_string(), proc));
    }

    /// From now on each agent runs from its own copy of the `ferry` binary
    /// (`DIR/bin/HOST/ferry`), as on a real host, where it may replace its
    /// own executable; `extra` options go to every agent.
    pub fn agents_from_copies(&mut self, extra: &[&str]) {
        self.agent_copies = Some(extra.iter().map(|s| s.to_string()).collect());
    }

    /// The executable an agent started from a copy runs.
    pub fn agent_exe(&self, name: &str) -> PathBuf {
        self.dir.path().join("bin").join(name).join("ferry")
    }

    /// The agent process running on a host's root now: the pid in its lock
    /// file, if that process runs an executable of this test's.
    pub fn agent_pid(&self, name: &str) -> Option<i32> {
        let text = std::fs::read_to_string(self.root_of(name).join(".ferry/agent.lock")).ok()?;
        let pid: i32 = text.trim().parse().ok()?;
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
        exe.starts_with(self.dir.path().join("bin")).then_some(pid)
    }

    /// Agents that an upgrade's guard started again are not this harness's
    /// children: end them by the pid their root's lock names.
    fn kill_copied_agents(&self) {
        let Ok(hosts) = std::fs::read_dir(self.dir.path().join("hosts")) else { return };
        for host in hosts.flatten() {
            if let Some(pid) = host.file_name().to_str().and_then(|n| self.agent_pid(n)) {
                let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            }
        }
    }

    pub fn spawn_agent(&self, name: &str, tags: &str, join_token: Option<&str>) -> Proc {
        let root = self.root_of(name);
        let mut args = vec![
            "agent".to_string(),
            "--server".into(),
            self.url.clone(),
            "--name".into(),
            name.into(),
            "--tags".into(),
            tags.into(),
            "--root".into(),
            root.to_string_lossy().into_owned(),
            "--check-interval".into(),
            "1s".into(),
            // Used only when the agent runs as root (R34).
            "--service-user".into(),
            "nobody".into(),
        ];
        if let Some(t) = join_token {
            args.push("--join-token".into());
            args.push(t.into());
        }
        if let Some(ca) = &self.ca_cert {
            args.push("--ca-cert".into());
            args.push(ca.to_string_lossy().into_owned());
        }
        let n = std::fs::read_dir(self.dir.path()).map(|d| d.count()).unwrap_or(0);
        let log = self.dir.path().join(format!("agent-{name}-{n}.log"));
        if let Some(extra) = &self.agent_copies {
            let exe = self.agent_exe(name);
            if !exe.exists() {
                std::fs::create_dir_all(exe.parent().expect("bin dir")).expect("mkdir bin");
                std::fs::copy(FERRY, &exe).expect("copy the ferry binary");
            }
            args.extend(extra.iter().cloned());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            return spawn_exe(&exe, &args, log, &[]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        spawn(&args, log, &[])
    }

    pub fn agent(&mut self, name: &str) -> &mut Proc {
        &mut self.agents.iter_mut().find(|(n, _)| n == name).expect("no such agent").1
    }

    /// Starts agents and waits until all are online.
    pub fn start_agents(&mut self, names: &[&str], tags: &str) {
        for n in names {
            self.start_agent(n, tags);
        }
        for n in names {
            self.wait_online(n, true);
        }
    }

    pub fn wait_online(&self, name: &str, online: bool) {
        wait_until(Duration::from_secs(15), &format!("{name} online={online}"), || {
            self.hosts().iter().any(|h| h["name"] == name && h["online"] == online)
        });
    }

    pub fn hosts(&self) -> Vec<Value> {
        serde_json::from_str(&self.ok(&["hosts", "-o", "json"])).unwrap_or_default()
    }

    /// A `ferry` command with this server's CA certificate, if any, in `FERRY_CA_CERT`.
    fn command(&self) -> Command {
        let mut cmd = Command::new(FERRY);
        match &self.ca_cert {
            Some(ca) => cmd.env("FERRY_CA_CERT", ca),
            None => cmd.env_remove("FERRY_CA_CERT"),
        };
        cmd
    }

    /// Runs the CLI against this server.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .env("FERRY_SERVER", &self.url)
            .env("FERRY_TOKEN", &self.token)
            .env("USER", "tester")
            .output()
            .expect("run ferry")
    }

    /// Runs the CLI as the administrator with `input` on standard input.
    pub fn cli_stdin(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .command()
            .args(args)
            .env("FERRY_SERVER", &self.url)
            .env("FERRY_TOKEN", &self.token)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run ferry");
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input.as_bytes()).expect("write stdin");
        }
        child.wait_with_output().expect("run ferry")
    }

    /// Runs the CLI with another API token.
    pub fn cli_token(&self, token: &str, args: &[&str]) -> Output {
        self.command().args(args).env("FERRY_SERVER", &self.url).env("FERRY_TOKEN", token).output().expect("run ferry")
    }

    /// Runs the CLI, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "ferry {args:?} failed:\nstdout: {stdout}\nstderr: {stderr}");
        stdout
    }

    /// Runs the CLI, asserts failure, returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "ferry {args:?} should have failed:\nstdout: {stdout}\nstderr: {stderr}");
        stderr
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["-o", "json"]);
        let text = self.ok(&all);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {text}"))
    }

    /// Creates a user with password `NAME-password` and these flags
    /// (`--admin`, `--production`), signed in at their own terminal.
    pub fn person(&self, name: &'static str, flags: &[&str]) -> Person {
        let mut args = vec!["user", "create", name, "--password-stdin"];
        args.extend(flags);
        let out = self.cli_stdin(&args, &format!("{name}-password\n"));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let person = Person::new(self, name);
        let out = person.login(self, &format!("{name}-password"));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        person
    }

    /// A project `app` with environment `prod` selecting role=web.
    pub fn project_app(&self) {
        self.ok(&["project", "create", "app"]);
        self.ok(&["env", "create", "app", "prod", "--select", "role=web"]);
    }

    /// The common starting point: these hosts (role=web) running `app` v1 in
    /// `prod`, with v2 uploaded and not yet deployed.
    pub fn fleet_on_v1(hosts: &[&str]) -> Ferry {
        let mut f = Ferry::start();
        f.start_agents(hosts, "role=web");
        f.project_app();
        f.upload("app", "v1");
        f.upload("app", "v2");
        f.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);
        f
    }

    /// Deploys `version` of `app` to `prod` one host at a time, each batch
    /// after the first waiting for `ferry deployment promote`, so that it
    /// stays running; returns the deployment's id.
    pub fn deploy_held(&self, version: &str) -> i64 {
        let args = [
            "deploy",
            "app",
            "prod",
            "--version",
            version,
            "--strategy",
            "rolling",
            "--batch",
            "1",
            "--approve-each-batch",
        ];
        self.ok(&args);
        self.json(&["deployments", "app"])[0]["id"].as_i64().expect("the new deployment's id")
    }

    /// Whether deployment `id` waits for a promotion now (its hold, not the
    /// "waits for promote" of its rollout's description, which is there from
    /// the start).
    pub fn deployment_held_for_promote(&self, id: i64) -> bool {
        self.json(&["deployment", "show", &id.to_string()])["hold"]
            .as_str()
            .is_some_and(|h| h.starts_with("waiting for promote"))
    }

    /// Writes a small release tree whose VERSION file holds `version`, and uploads it.
    pub fn upload(&self, project: &str, version: &str) -> PathBuf {
        let tree = self.dir.path().join("trees").join(version);
        write_tree(&tree, version, 20);
        self.ok(&["release", "upload", project, tree.to_str().expect("utf-8"), "--version", version]);
        tree
    }

    /// The version `current` of a project points at on a host, read from disk.
    pub fn version_on(&self, host: &str, project: &str) -> Option<String> {
        let current = self.root_of(host).join(project).join("current");
        std::fs::read_to_string(current.join("VERSION")).ok().map(|s| s.trim().to_string())
    }

    pub fn wait_version(&self, host: &str, project: &str, version: &str) {
        wait_until(Duration::from_secs(20), &format!("{host} to run {project} {version}"), || {
            self.version_on(host, project).as_deref() == Some(version)
        });
    }
}

/// Writes `files` small files plus VERSION, an executable script and a link.
pub fn write_tree(dir: &Path, version: &str, files: usize) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir.join("lib")).expect("mkdir");
    std::fs::create_dir_all(dir.join("bin")).expect("mkdir");
    std::fs::write(dir.join("VERSION"), format!("{version}\n")).expect("write");
    for i in 0..files {
        std::fs::write(dir.join("lib").join(format!("f{i}.txt")), format!("file {i} shared by all versions\n"))
            .expect("write");
    }
    std::fs::write(dir.join("bin/run.sh"), "#!/bin/sh\necho run\n").expect("write");
    std::fs::set_permissions(dir.join("bin/run.sh"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let _ = std::fs::remove_file(dir.join("latest"));
    std::os::unix::fs::symlink("bin/run.sh", dir.join("latest")).expect("symlink");
}

fn read_trimmed(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).trim().to_string()
}

fn wait_for_server(dir: &Path) -> String {
    let url_file = dir.join("server/server.url");
    wait_until(Duration::from_secs(20), "server.url", || url_file.exists());
    let url = read_trimmed(&url_file);
    wait_until(Duration::from_secs(20), "/healthz", || std::net::TcpStream::connect(host_port(&url)).is_ok());
    url
}

/// `127.0.0.1:PORT` of `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
pub fn host_port(url: &str) -> &str {
    url.trim_start_matches("https://").trim_start_matches("http://")
}

/// A real git repository in a temporary directory, changed with the git CLI.
pub struct Repo {
    pub dir: PathBuf,
}

impl Repo {
    /// A repository on branch `main` with `ferry.toml` and an executable
    /// `build.sh` whose body is `script`; the artifact is `dist/`.
    pub fn new(parent: &Path, script: &str) -> Repo {
        let dir = parent.join("repo");
        std::fs::create_dir_all(&dir).unwrap();
        let repo = Repo { dir };
        repo.git(&["init", "--quiet", "--initial-branch", "main"]);
        repo.git(&["config", "user.name", "Li Lei"]);
        repo.git(&["config", "user.email", "lilei@example.com"]);
        repo.write(
            "ferry.toml",
            "[build]\ncommand = \"./build.sh\"\nartifact = \"dist\"\ntimeout = \"2m\"\n[build.env]\nPROFILE = \"release\"\n",
        );
        repo.script(script);
        repo.commit("first commit");
        repo
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.dir.display())
    }

    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git").arg("-C").arg(&self.dir).args(args).output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn write(&self, path: &str, text: &str) {
        let p = self.dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// Replaces build.sh.
    pub fn script(&self, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        self.write("build.sh", &format!("#!/bin/sh\nset -e\n{body}\n"));
        std::fs::set_permissions(self.dir.join("build.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Commits everything; returns the commit's SHA.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "--quiet", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }
}

/// The usual build script: writes the version into `dist/VERSION`.
pub const BUILD_VERSION: &str = "echo \"building $FERRY_PROJECT at $FERRY_COMMIT as $FERRY_VERSION ($PROFILE)\"\nmkdir -p dist\necho \"$FERRY_VERSION\" > dist/VERSION";

/// A person at their own terminal: their own config directory, no
/// FERRY_SERVER or FERRY_TOKEN, so the CLI uses what `ferry login` saved.
pub struct Person {
    pub name: &'static str,
    pub config: PathBuf,
}

impl Person {
    pub fn new(f: &Ferry, name: &'static str) -> Person {
        Person { name, config: f.dir.path().join("people").join(name) }
    }

    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(FERRY)
            .args(args)
            .env_remove("FERRY_SERVER")
            .env_remove("FERRY_TOKEN")
            .env("XDG_CONFIG_HOME", &self.config)
            .env("USER", self.name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args, None);
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{} ran {args:?}:\nstdout: {stdout}\nstderr: {stderr}", self.name);
        stdout.into_owned()
    }

    pub fn refused(&self, args: &[&str], needs: &str) {
        let out = self.run(args, None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{} should not be able to run {args:?}", self.name);
        assert!(stderr.contains(needs), "{} ran {args:?}: expected '{needs}' in: {stderr}", self.name);
    }

    pub fn login(&self, f: &Ferry, password: &str) -> Output {
        self.run(&["login", &f.url, "--user", self.name, "--password-stdin"], Some(&format!("{password}\n")))
    }
}
