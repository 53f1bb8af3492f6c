//! `ferry dev`: the whole system on one machine. A server on an embedded
//! SQLite database and a local artifact store, a few agents in the same
//! process, and a sample project with a first release deployed. Running it
//! again resumes the same state.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ferry_cli::Client;
use ferry_cli::upload::{ReleaseLabels, upload_release};
use ferry_domain::{DeploymentKind, DeploymentStatus, Tags};
use ferry_proto::api::{CreateDeployment, CreateEnvironment, CreateProject, DeploymentInfo, ProjectInfo};

use crate::args::DevArgs;
use crate::run::shutdown_signal;

const SAMPLE_PROJECT: &str = "sample";
const SAMPLE_ENV: &str = "dev";

pub async fn run(args: DevArgs) -> Result<()> {
    let data = std::path::absolute(&args.data).context("--data")?;
    let mut config = ferry_server::ServerConfig::new(data.join("server"), args.listen);
    // `ferry dev` runs on the developer's own machine, for their own code:
    // without bubblewrap, builds run unwalled rather than not at all.
    if let ferry_server::build_sandbox::BuildWall::Unavailable(why) = &config.build_wall {
        eprintln!("note: {why}; ferry dev runs builds without the wall");
        config.build_wall = ferry_server::build_sandbox::BuildWall::Unconfined;
    }
    let server = ferry_server::Server::start(config).await?;
    let admin_token = std::fs::read_to_string(&server.init.admin_token_file)
        .with_context(|| format!("reading {}", server.init.admin_token_file.display()))?;
    let join_token = std::fs::read_to_string(&server.init.join_token_file)
        .with_context(|| format!("reading {}", server.init.join_token_file.display()))?;
    // The token files the README points at, beside the server's own.
    std::fs::copy(&server.init.admin_token_file, data.join("admin.token")).context("writing admin.token")?;
    std::fs::copy(&server.init.join_token_file, data.join("join.token")).context("writing join.token")?;

    let service = service_user();
    let service_defaults = ferry_agent::config::ServiceDefaults {
        service_user: service.as_ref().map(|(user, _)| user.clone()),
        allow_root_services: false,
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut agents = Vec::new();
    for k in 1..=args.agents {
        let config = ferry_agent::AgentConfig {
            server: server.url.clone(),
            ca_cert: None,
            join_token: Some(join_token.trim().to_string()),
            name: format!("dev-{k}"),
            tags: Tags::parse("role=web")?,
            address: None,
            root: data.join("agents").join(format!("dev-{k}")),
            check_interval: Duration::from_secs(30),
            service_defaults: service_defaults.clone(),
            // In-process agents: an exec would replace the whole of `ferry dev`.
            upgrade_timeout: None,
        };
        let mut stop = stop_rx.clone();
        agents.push(tokio::spawn(async move {
            let name = config.name.clone();
            let shutdown = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = ferry_agent::run(config, shutdown).await {
                tracing::error!(agent = %name, "agent stopped: {e}");
            }
        }));
    }

    let client = Client::new(&server.url, admin_token.trim(), None)?;
    let web_user = match web_user(&client, &data).await {
        Ok(u) => Some(u),
        Err(e) => {
            eprintln!("note: no web user made: {e:#}");
            None
        }
    };
    if let Err(e) = seed(&client, &data, args.agents).await {
        tracing::warn!("sample project not ready: {e:#}");
    }
    print_welcome(&server.url, &data, web_user.as_ref(), service.as_ref().map(|(_, said)| said.as_str()));

    shutdown_signal().await;
    println!("\nstopping ...");
    let _ = stop_tx.send(true);
    for a in agents {
        let _ = a.await;
    }
    server.stop().await;
    Ok(())
}

/// The dedicated user services run as when `ferry dev` runs as root (a
/// container, CI, a fresh VM), with the sentence the banner says about it;
/// `None` when not root (services run as the developer).
///
/// `FERRY_SERVICE_USER` names one; else `ferry-svc`, created if missing;
/// else `nobody`.
fn service_user() -> Option<(String, String)> {
    if !is_root() {
        return None;
    }
    if let Ok(user) = std::env::var("FERRY_SERVICE_USER")
        && !user.trim().is_empty()
    {
        let user = user.trim().to_string();
        let said = format!("services run as user {user} (FERRY_SERVICE_USER)");
        return Some((user, said));
    }
    const DEDICATED: &str = "ferry-svc";
    if user_exists(DEDICATED) {
        return Some((DEDICATED.into(), format!("services run as user {DEDICATED}")));
    }
    let made = std::process::Command::new("useradd")
        .args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", DEDICATED])
        .stdin(std::process::Stdio::null())
        .output();
    match made {
        Ok(out) if out.status.success() || user_exists(DEDICATED) => {
            Some((DEDICATED.into(), format!("services run as user {DEDICATED} (created for ferry dev)")))
        }
        Ok(out) => Some((
            "nobody".into(),
            format!(
                "services run as user nobody: creating user {DEDICATED} failed ({}); set FERRY_SERVICE_USER to choose one",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        )),
        Err(e) => Some((
            "nobody".into(),
            format!("services run as user nobody: cannot run useradd ({e}); set FERRY_SERVICE_USER to choose one"),
        )),
    }
}

fn is_root() -> bool {
    // The effective uid, as `id -u` prints it; no libc binding needed here.
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .is_some_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn user_exists(name: &str) -> bool {
    std::process::Command::new("id")
        .arg(name)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The web user `ferry dev` signs in with.
struct WebUser {
    name: String,
    password: String,
}

const WEB_USER: &str = "dev";

/// Creates the web user with a random password on the first start, kept in
/// `DATA/web-user.password` (mode 0600) so a restart prints it again.
async fn web_user(client: &Client, data: &Path) -> Result<WebUser> {
    let file = data.join("web-user.password");
    if let Ok(saved) = std::fs::read_to_string(&file)
        && !saved.trim().is_empty()
    {
        return Ok(WebUser { name: WEB_USER.into(), password: saved.trim().to_string() });
    }
    let password = random_password()?;
    let req = ferry_proto::api::CreateUser {
        name: WEB_USER.into(),
        admin: true,
        production: true,
        password: password.clone(),
        email: None,
    };
    let _: serde_json::Value = client.post("/api/v1/users", &req).await.context("creating the web user")?;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&file)
        .with_context(|| format!("writing {}", file.display()))?;
    writeln!(f, "{password}").with_context(|| format!("writing {}", file.display()))?;
    Ok(WebUser { name: WEB_USER.into(), password })
}

/// 20 letters and digits from the system's random source.
fn random_password() -> Result<String> {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 64];
    use std::io::Read;
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).context("reading /dev/urandom")?;
    // Rejection sampling keeps every character equally likely.
    let limit = 256 - 256 % ALPHABET.len();
    let password: String = bytes
        .iter()
        .filter(|&&b| (b as usize) < limit)
        .take(20)
        .map(|&b| ALPHABET[b as usize % ALPHABET.len()] as char)
        .collect();
    if password.len() < 20 {
        bail!("not enough randomness for a password");
    }
    Ok(password)
}

/// Creates the sample project with release v1 deployed, unless it exists.
async fn seed(client: &Client, data: &Path, agents: u32) -> Result<()> {
    let projects: Vec<ProjectInfo> = client.get("/api/v1/projects").await?;
    if projects.iter().any(|p| p.name == SAMPLE_PROJECT) {
        return Ok(());
    }
    let _: ProjectInfo = client
        .post(
            "/api/v1/projects",
            &CreateProject { name: SAMPLE_PROJECT.into(), keep_releases: None, ..Default::default() },
        )
        .await?;
    let _: serde_json::Value = client
        .post(
            &format!("/api/v1/projects/{SAMPLE_PROJECT}/environments"),
            &CreateEnvironment { name: SAMPLE_ENV.into(), selector: "role=web".into(), ..Default::default() },
        )
        .await?;
    let app = data.join("sample-app");
    write_sample_app(&app, "v1")?;
    let labels = ReleaseLabels { version: "v1".into(), branch: "main".into(), committer: "ferry-dev".into() };
    upload_release(client, SAMPLE_PROJECT, &app, labels).await?;
    // Give the local agents a moment to connect, so v1 lands on all of them.
    wait_for_hosts(client, agents).await;
    let req = CreateDeployment::of(SAMPLE_ENV, Some("v1".into()), DeploymentKind::Deploy);
    let d: DeploymentInfo = client.post(&format!("/api/v1/projects/{SAMPLE_PROJECT}/deployments"), &req).await?;
    for _ in 0..150 {
        let now: DeploymentInfo = client.get(&format!("/api/v1/deployments/{}", d.id)).await?;
        if now.status == DeploymentStatus::Succeeded {
            return Ok(());
        }
        if now.status == DeploymentStatus::Failed {
            bail!("the first deployment of the sample project failed: see `ferry deployment show {}`", d.id);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("the first deployment of the sample project is still running")
}

async fn wait_for_hosts(client: &Client, n: u32) {
    for _ in 0..50 {
        let hosts: Vec<ferry_proto::api::HostInfo> = client.get("/api/v1/hosts").await.unwrap_or_default();
        if hosts.iter().filter(|h| h.online).count() >= n as usize {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn write_sample_app(dir: &Path, version: &str) -> Result<()> {
    std::fs::create_dir_all(dir.join("bin"))?;
    std::fs::write(dir.join("VERSION"), format!("{version}\n"))?;
    std::fs::write(
        dir.join("index.html"),
        format!("<!doctype html><title>sample</title><h1>Hello from the Ferry sample app, {version}</h1>\n"),
    )?;
    std::fs::write(dir.join("bin/hello.sh"), "#!/bin/sh\necho \"sample $(cat \"$(dirname \"$0\")/../VERSION\")\"\n")?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("bin/hello.sh"), std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

fn print_welcome(url: &str, data: &Path, web: Option<&WebUser>, services: Option<&str>) {
    let token = data.join("admin.token");
    let rel = |p: &Path| p.strip_prefix(std::env::current_dir().unwrap_or_default()).unwrap_or(p).display().to_string();
    let web = match web {
        Some(w) => format!("web interface: {url}/ (sign in as {} with password {})", w.name, w.password),
        None => format!(
            "web interface: {url}/ (sign in as a user made with ferry user create NAME --admin --password-stdin)"
        ),
    };
    let services = services.map(|s| format!("{s}\n")).unwrap_or_default();
    println!(
        "\nFerry is running at {url}\n\
         {web}\n\
         {services}\
         admin API token: {token}\n\
         join token for more agents: {join}\n\
         agents' release roots: {agents}\n\n\
         Next, in another terminal:\n\
         \x20 export FERRY_SERVER={url} FERRY_TOKEN=$(cat {token})\n\
         \x20 ferry status sample\n\
         \x20 echo v2 > {app}/VERSION && ferry release upload sample {app} --version v2 && ferry deploy sample dev --version v2 --wait\n\
         \x20 ferry rollback sample dev --wait\n\n\
         Ctrl-C stops everything; running `ferry dev` again resumes.",
        token = rel(&token),
        join = rel(&data.join("join.token")),
        agents = rel(&data.join("agents")),
        app = rel(&data.join("sample-app")),
    );
}
