//! Trust boundaries, tried as an attacker would: each test acts as one actor
//! reaching beyond its rights (a developer's hostile upload, the service's
//! user on a host, ...) and checks that it fails and changes nothing.
//! docs/SECURITY.md names the test for each line of the threat model.

use std::os::unix::fs::{MetadataExt, symlink};
use std::path::Path;

use serde_json::json;

use crate::harness::{Ferry, write_tree};
use crate::service::upload_with;
use crate::uploads::{RawEntry, raw_tar};

/// `a/b/u -> ../..` and `esc -> a/b/u/a/b/u/.../../etc/passwd`: each link is
/// harmless read alone, together they reach /etc/passwd.
fn chained_escape() -> (String, String) {
    let depth = 6;
    ("a/b/u".to_string(), format!("{}{}etc/passwd", "a/b/u/".repeat(depth), "../".repeat(depth)))
}

#[test]
fn a_developer_cannot_upload_links_that_chain_out_of_the_release() {
    let f = Ferry::start();
    f.project_app();
    let (hop, esc) = chained_escape();
    // Through the CLI, as an archive.
    let archive = f.dir.path().join("chain.tar");
    let entries: Vec<RawEntry> = vec![
        ("a/", tar::EntryType::Directory, None),
        ("a/b/", tar::EntryType::Directory, None),
        (&hop, tar::EntryType::Symlink, Some("../..")),
        ("esc", tar::EntryType::Symlink, Some(&esc)),
    ];
    raw_tar(&archive, &entries, false);
    let err = f.fails(&["release", "upload", "app", archive.to_str().unwrap(), "--version", "v1"]);
    assert!(err.contains("'esc'") && err.contains("outside the release"), "{err}");

    // Past the CLI, straight to the API: the server applies the same rule.
    let manifest = json!({"entries": [
        {"path": "a", "kind": "dir"},
        {"path": "a/b", "kind": "dir"},
        {"path": hop, "kind": "symlink", "target": "../.."},
        {"path": "esc", "kind": "symlink", "target": esc},
    ]});
    let body = json!({"version": "v1", "branch": "", "committer": "", "manifest": manifest});
    let (status, text) = post_json(&f, &f.token, "/api/v1/projects/app/releases", &body);
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("'esc'"), "{text}");
    assert_eq!(f.json(&["release", "list", "app"]).as_array().unwrap().len(), 0, "nothing was stored");
}

#[test]
fn a_developer_cannot_aim_a_template_through_a_link() {
    let f = Ferry::start();
    f.project_app();
    // `t -> data`, and data is shared: on the host the template would be read
    // (as root) from shared/, where the service's user can plant a link to
    // /etc/shadow, and rendered back there for that user to read.
    let tree = f.dir.path().join("tmpl");
    write_tree(&tree, "v1", 2);
    std::fs::write(tree.join("ferry.toml"), "[deploy]\nshared = [\"data\"]\ntemplates = [\"t/app.conf.tmpl\"]\n")
        .unwrap();
    symlink("data", tree.join("t")).unwrap();
    let err = f.fails(&["release", "upload", "app", tree.to_str().unwrap(), "--version", "v1"]);
    assert!(err.contains("deploy.templates") && err.contains("t/app.conf.tmpl"), "{err}");
}

const RECIPE: &str = "[deploy]\nshared = [\"data\"]\n\
    [service]\ncommand = \"./bin/app\"\nstop_timeout = \"3s\"\nstart_period = \"1s\"\n";
const APP: &str = "#!/bin/sh\necho \"app $FERRY_VERSION up\"\nexec sleep 1000\n";

/// A file only the agent's user may touch: what the service's user wants.
fn victim(dir: &Path, name: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, "root:secret-hash:19000::::::\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// What the deployment said about its one host.
fn host_error(f: &Ferry, id: &str) -> String {
    let d = f.json(&["deployment", "show", id]);
    let log = crate::deploy_log::untimed(f.ok(&["deployment", "log", id]));
    format!("{d}\n{log}")
}

#[test]
fn the_service_user_cannot_turn_shared_entries_into_links_to_root_files() {
    let mut f = Ferry::start();
    f.start_agents(&["web-1"], "role=web");
    f.project_app();
    for v in ["v1", "v2", "v3"] {
        upload_with(&f, v, RECIPE, &[("bin/app", APP)]);
    }
    f.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);
    let shared = f.root_of("web-1").join("app/shared");
    let outside = f.dir.path().join("root-only");
    std::fs::create_dir(&outside).unwrap();
    let shadow = victim(&outside, "shadow");
    let before = std::fs::metadata(&shadow).unwrap();

    // The service's user owns shared/: it swaps shared/data for a link to a
    // root file, hoping the next deploy's chown gives the file to it.
    std::fs::remove_dir_all(shared.join("data")).unwrap();
    symlink(&shadow, shared.join("data")).unwrap();
    let out = f.cli(&["deploy", "app", "prod", "--version", "v2", "--wait"]);
    assert!(!out.status.success(), "the deploy must fail");
    let id = f.json(&["deployments", "app"])[0]["id"].as_i64().unwrap().to_string();
    let said = host_error(&f, &id);
    assert!(said.contains("shared/data") && said.contains("symbolic link"), "{said}");
    let after = std::fs::metadata(&shadow).unwrap();
    assert_eq!((after.uid(), after.gid(), after.mode()), (before.uid(), before.gid(), before.mode()));
    assert_eq!(std::fs::read_to_string(&shadow).unwrap(), "root:secret-hash:19000::::::\n");
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v1"), "the host stays on v1");

    // The service's log files, appended to and truncated by the agent: a
    // link there must not make the agent write (or rotate) the root file.
    std::fs::remove_file(shared.join("data")).unwrap();
    std::fs::create_dir(shared.join("data")).unwrap();
    let log = shared.join("log/service.stdout.log");
    std::fs::remove_file(&log).unwrap();
    symlink(&shadow, &log).unwrap();
    let out = f.cli(&["deploy", "app", "prod", "--version", "v3", "--wait"]);
    assert!(!out.status.success(), "the deploy must fail");
    let id = f.json(&["deployments", "app"])[0]["id"].as_i64().unwrap().to_string();
    let said = host_error(&f, &id);
    assert!(said.contains("service.stdout.log") && said.contains("symbolic link"), "{said}");
    assert_eq!(std::fs::read_to_string(&shadow).unwrap(), "root:secret-hash:19000::::::\n");
    let after = std::fs::metadata(&shadow).unwrap();
    assert_eq!((after.uid(), after.mode()), (before.uid(), before.mode()));
}

#[test]
fn a_host_restarted_with_other_tags_keeps_its_enrolled_ones() {
    let mut f = Ferry::start();
    // A low-value host and another project's production host.
    f.start_agents(&["web-1"], "role=web");
    f.start_agents(&["bank-1"], "role=prod");
    f.project_app();
    f.ok(&["project", "create", "bank"]);
    f.ok(&["env", "create", "bank", "prod", "--select", "role=prod"]);
    f.ok(&["var", "set", "bank", "--env", "prod", "DB_PASSWORD", "hunter2-bank", "--secret"]);
    f.upload("bank", "b1");
    f.ok(&["deploy", "bank", "prod", "--version", "b1", "--wait"]);
    f.wait_version("bank-1", "bank", "b1");

    // Whoever controls web-1 restarts its agent asking for the bank's tags.
    f.agent("web-1").kill();
    f.start_agent("web-1", "role=prod");
    crate::harness::wait_until(std::time::Duration::from_secs(20), "the mismatch to show", || {
        f.ok(&["hosts"]).contains("role=web (agent asks for role=prod)")
    });
    // A new deploy of the bank goes where the enrolled tags say, only.
    f.ok(&["deploy", "bank", "prod", "--version", "b1", "--wait"]);
    let id = f.json(&["deployments", "bank"])[0]["id"].as_i64().unwrap().to_string();
    let targets: Vec<String> = f.json(&["deployment", "show", &id])["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(targets, ["bank-1"]);
    std::thread::sleep(std::time::Duration::from_secs(1));
    let web = f.root_of("web-1");
    assert!(!web.join("bank").exists(), "web-1 received the bank's release");
    let leaked = std::fs::read_dir(&web)
        .unwrap()
        .flatten()
        .any(|e| std::fs::read_to_string(e.path().join(".ferry/vars.json")).is_ok_and(|t| t.contains("hunter2-bank")));
    assert!(!leaked, "web-1 received the bank's secret");

    // Re-tagging is the administrator's, and audited; an owner cannot.
    let owner = f.person("olga", &[]);
    f.ok(&["member", "add", "app", "olga", "owner"]);
    owner.refused(&["host", "tag", "web-1", "role=prod"], "needs the administrator");
    f.ok(&["host", "tag", "web-1", "role=web,team=shop"]);
    let hosts = f.ok(&["hosts"]);
    assert!(hosts.contains("role=web,team=shop (agent asks for role=prod)"), "{hosts}");
    let audit = f.ok(&["audit"]);
    assert!(audit.contains("/api/v1/hosts/{name}/tags"), "{audit}");
}

#[test]
fn a_project_owner_cannot_reach_hosts_beyond_the_project() {
    let f = Ferry::start();
    f.ok(&["project", "create", "shop", "--hosts", "team=shop"]);
    let owner = f.person("olga", &[]);
    f.ok(&["member", "add", "shop", "olga", "owner"]);
    // An environment must select within the project's hosts.
    owner.refused(&["env", "create", "shop", "prod", "--select", "role=db"], "outside project 'shop''s hosts");
    owner.refused(&["env", "create", "shop", "prod", "--select", "team=bank"], "must include team=shop");
    owner.ok(&["env", "create", "shop", "prod", "--select", "team=shop,role=web"]);
    // Only the administrator widens the scope.
    owner.refused(&["project", "hosts", "shop", "--any"], "needs the administrator");
    let e = f.fails(&["project", "hosts", "shop", "team=other"]);
    assert!(e.contains("environment 'prod' selects"), "{e}");

    // Load balancers run commands as root on the hosts they select: an owner
    // cannot set one up (or remove one); the administrator can.
    let lb = [
        "env", "lb", "set", "shop", "prod", "--driver", "command", "--select", "role=db", "--drain", "id", "--ready",
        "id",
    ];
    owner.refused(&lb, "needs the administrator");
    owner.refused(&["env", "lb", "unset", "shop", "prod"], "needs the administrator");
}

#[test]
fn a_hook_that_echoes_a_secret_shows_stars_to_the_project() {
    const SECRET: &str = "s3cr3t-Pa55word-9000";
    let mut f = Ferry::start();
    f.start_agents(&["web-1"], "role=web");
    f.project_app();
    let out = f.cli_stdin(&["var", "set", "app", "DB_PASSWORD", "-", "--secret"], &format!("{SECRET}\n"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let echo = "[hooks]\nafter_install = \"echo the password is $DB_PASSWORD; echo on stderr $DB_PASSWORD >&2\"\n";
    let fail = "[hooks]\nvalidate = \"echo validate saw $DB_PASSWORD >&2; exit 1\"\n";
    upload_with(&f, "v1", echo, &[]);
    upload_with(&f, "v2", fail, &[]);
    f.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);
    let log = f.ok(&["deployment", "log", "1"]);
    assert!(log.contains("the password is ***") && log.contains("on stderr ***"), "{log}");
    // A failure's text carries the hook's last lines: masked too.
    let out = f.cli(&["deploy", "app", "prod", "--version", "v2", "--wait"]);
    assert!(!out.status.success());
    let said = host_error(&f, "2");
    assert!(said.contains("validate saw ***"), "{said}");
    let mut seen = String::from_utf8_lossy(&out.stdout).into_owned();
    seen.push_str(&String::from_utf8_lossy(&out.stderr));
    seen.push_str(&said);
    assert!(!seen.contains(SECRET), "{seen}");
    // Nothing the server keeps holds it either.
    let data = f.dir.path().join("server");
    for entry in std::fs::read_dir(&data).unwrap().flatten() {
        if let Ok(bytes) = std::fs::read(entry.path()) {
            let found = bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());
            assert!(!found, "{} holds the secret", entry.path().display());
        }
    }
    let _ = &mut f;
}

#[test]
fn a_build_script_cannot_read_the_servers_data_or_environment() {
    let f = Ferry::start();
    let data = f.dir.path().join("server");
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap().trim().to_string();
    // Whoever can push writes the build script: it tries the server's data
    // directory (tokens, secrets key, database, other checkouts) and its
    // environment, and puts what it found into the artifact and the log.
    let script = format!(
        "mkdir -p dist\n\
         echo v > dist/VERSION\n\
         cat {d}/admin.token > dist/stolen 2>&1 || true\n\
         cat {d}/secrets.key >> dist/stolen 2>&1 || true\n\
         ls -la {d} 2>&1 || true\n\
         cat {d}/admin.token 2>&1 || true\n\
         env | sort\n\
         echo whoami: $(id -un)",
        d = data.display()
    );
    let repo = crate::harness::Repo::new(f.dir.path(), &script);
    f.ok(&["project", "create", "app", "--repo", &repo.url()]);
    let out = f.ok(&["build", "app", "--follow"]);
    assert!(out.contains("succeeded"), "{out}");
    assert!(!out.contains(&token), "the build read the admin token: {out}");
    assert!(!out.contains("ferry.db") && !out.contains("secrets.key"), "the build saw the data directory: {out}");
    // Nothing of the server's environment (here: what cargo gave the test).
    assert!(!out.contains("CARGO_"), "the build inherited the server's environment: {out}");
    assert!(out.contains("FERRY_COMMIT="), "its own variables are there: {out}");
    let me = String::from_utf8(std::process::Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    if me.trim() == "root" {
        assert!(out.contains("whoami: nobody"), "a root server builds as the build user: {out}");
    }
    // And the artifact it made carries nothing of it either.
    let archive = f.dir.path().join("stolen.tar.zst");
    f.ok(&["release", "download", "app", "1", "-O", archive.to_str().unwrap()]);
    let tree = ferry_artifact::SourceTree::read(&archive).unwrap();
    let stolen = tree.manifest.entries.iter().find(|e| e.path == "stolen").expect("the script wrote dist/stolen");
    let ferry_domain::EntryKind::File { digest, .. } = &stolen.kind else { panic!("{stolen:?}") };
    let text = String::from_utf8_lossy(&tree.blobs[digest].1.read().unwrap()).into_owned();
    assert!(text.contains("No such file") || text.contains("Permission denied"), "{text}");
    assert!(!text.contains(&token), "the artifact holds the admin token");
}

/// POSTs JSON with a bearer token; returns the status and body.
pub(crate) fn post_json(f: &Ferry, token: &str, path: &str, body: &serde_json::Value) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let resp =
            reqwest::Client::new().post(format!("{}{path}", f.url)).bearer_auth(token).json(body).send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    })
}

/// The credential a host's agent keeps under its root.
pub(crate) fn agent_token(f: &Ferry, host: &str) -> String {
    let cred = std::fs::read_to_string(f.root_of(host).join(".ferry/agent.json")).unwrap();
    serde_json::from_str::<serde_json::Value>(&cred).unwrap()["token"].as_str().unwrap().to_string()
}

#[test]
fn content_is_reachable_only_through_its_own_project() {
    let mut f = Ferry::start();
    f.start_agents(&["web-1"], "role=web");
    f.start_agents(&["bank-1"], "role=prod");
    f.project_app();
    f.ok(&["project", "create", "bank"]);
    f.ok(&["env", "create", "bank", "prod", "--select", "role=prod"]);
    // The bank ships a file whose content someone would like to confirm.
    let tree = f.dir.path().join("bank-tree");
    write_tree(&tree, "b1", 1);
    std::fs::write(tree.join("config.ini"), "iban=DE00 1234 5678\n").unwrap();
    f.ok(&["release", "upload", "bank", tree.to_str().unwrap(), "--version", "b1"]);
    f.ok(&["deploy", "bank", "prod", "--version", "b1", "--wait"]);
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(b"iban=DE00 1234 5678\n"))
    };

    // A developer of app only: asking about the bank's content tells nothing.
    let dev = f.person("dave", &[]);
    f.ok(&["member", "add", "app", "dave", "developer"]);
    let dave = std::fs::read_to_string(dev.config.join("ferry/credentials.json")).unwrap();
    let dave: serde_json::Value = serde_json::from_str(&dave).unwrap();
    let dave_token = dave["token"].as_str().unwrap().to_string();
    let (status, body) =
        post_json(&f, &dave_token, "/api/v1/projects/app/blobs/missing", &json!({"digests": [digest]}));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&digest), "the bank's content must look missing to app: {body}");
    let (status, body) =
        post_json(&f, &dave_token, "/api/v1/projects/bank/blobs/missing", &json!({"digests": [digest]}));
    assert_eq!(status, 403, "dave is not a member of the bank: {body}");
    // Nor can he register a release of it by naming the digest.
    let manifest = json!({"entries": [{"path": "config.ini", "kind": "file", "digest": digest, "size": 20}]});
    let body = json!({"version": "stolen", "branch": "", "committer": "", "manifest": manifest});
    let (status, text) = post_json(&f, &dave_token, "/api/v1/projects/app/releases", &body);
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("not uploaded to project 'app'"), "{text}");

    // A host of app cannot fetch the bank's content with its credential.
    let web_token = agent_token(&f, "web-1");
    let (status, text) = post_json(&f, &web_token, "/api/v1/agent/blobs", &json!({"digests": [digest]}));
    assert_eq!(status, 403, "{text}");
    assert!(!text.contains("DE00"), "{text}");
    // The bank's own host can.
    let bank_token = agent_token(&f, "bank-1");
    let (status, text) = post_json(&f, &bank_token, "/api/v1/agent/blobs", &json!({"digests": [digest]}));
    assert_eq!(status, 200);
    assert!(text.contains("DE00"));

    // Uploading the same bytes to app makes it app's too: proof of holding
    // the content, not its name, is what counts.
    let mine = f.dir.path().join("app-tree");
    write_tree(&mine, "v1", 1);
    std::fs::write(mine.join("config.ini"), "iban=DE00 1234 5678\n").unwrap();
    f.ok(&["release", "upload", "app", mine.to_str().unwrap(), "--version", "v1"]);
    let _ = &mut f;
}

/// A small filesystem of its own for a host's root (root only: `mount`).
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| SmallDisk(dir.to_path_buf()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazy: the agent may still hold files there while the test unwinds.
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_refused_before_downloading_and_a_smaller_release_still_fits() {
    let mut f = Ferry::start();
    let Some(_disk) = SmallDisk::mount(&f.root_of("web-1"), "48m") else {
        let me = String::from_utf8(std::process::Command::new("id").arg("-u").output().unwrap().stdout).unwrap();
        assert_ne!(me.trim(), "0", "root must be able to mount the small disk this test needs");
        eprintln!("skipped: mounting a small filesystem needs root");
        return;
    };
    f.start_agents(&["web-1"], "role=web");
    f.project_app();
    let big = f.dir.path().join("big");
    write_tree(&big, "big", 1);
    // 40 MB that no compression or deduplication makes smaller.
    let mut noise = vec![0u8; 40 * 1024 * 1024];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in noise.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(big.join("data.bin"), &noise).unwrap();
    f.ok(&["release", "upload", "app", big.to_str().unwrap(), "--version", "big"]);
    f.upload("app", "small");

    let out = f.cli(&["deploy", "app", "prod", "--version", "big", "--wait"]);
    assert!(!out.status.success());
    let said = host_error(&f, "1");
    assert!(said.contains("not enough disk space") && said.contains("is available"), "{said}");
    // Nothing of it was downloaded, so the smaller release fits, and still
    // does after the agent restarts.
    f.agent("web-1").kill();
    f.start_agent("web-1", "role=web");
    // Online again first: a deploy skips a host that is offline at its start.
    f.wait_online("web-1", true);
    f.ok(&["deploy", "app", "prod", "--version", "small", "--wait"]);
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("small"));
}

#[test]
fn a_read_only_data_directory_stops_the_server_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let Some(_disk) = SmallDisk::mount(&data, "16m") else {
        let me = String::from_utf8(std::process::Command::new("id").arg("-u").output().unwrap().stdout).unwrap();
        assert_ne!(me.trim(), "0", "root must be able to mount the filesystem this test needs");
        eprintln!("skipped: mounting a filesystem needs root");
        return;
    };
    let start = || {
        std::process::Command::new(crate::harness::FERRY)
            .args(["server", "--data", data.to_str().unwrap(), "--listen", "127.0.0.1:0"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // A first start initialises it; then it becomes read-only.
    let mut first = start();
    crate::harness::wait_until(std::time::Duration::from_secs(20), "the first start", || {
        data.join("server.url").exists()
    });
    first.kill().unwrap();
    first.wait().unwrap();
    let remount = std::process::Command::new("mount").args(["-o", "remount,ro"]).arg(&data).status().unwrap();
    assert!(remount.success());
    let out = start().wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&format!("cannot use data directory {}", data.display())), "{stderr}");
    assert!(stderr.contains("not writable") && stderr.contains("Read-only file system"), "{stderr}");
}

/// `POST /api/v1/login` from a chosen loopback address.
fn login_from(f: &Ferry, from: &str, user: &str, password: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client =
            reqwest::Client::builder().local_address(from.parse::<std::net::IpAddr>().unwrap()).build().unwrap();
        let resp = client
            .post(format!("{}/api/v1/login", f.url))
            .json(&json!({"user": user, "password": password}))
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    })
}

#[test]
fn nobody_can_keep_an_account_locked_from_another_address() {
    let f = Ferry::start();
    f.person("ann", &["--admin"]);
    // Someone at 127.0.0.2 guesses ann's password until it locks there.
    for _ in 0..5 {
        assert_eq!(login_from(&f, "127.0.0.2", "ann", "guess").0, 401);
    }
    let (status, text) = login_from(&f, "127.0.0.2", "ann", "ann-password");
    assert_eq!(status, 401, "locked from the guessing address: {text}");
    // ann, elsewhere, still signs in.
    let (status, text) = login_from(&f, "127.0.0.1", "ann", "ann-password");
    assert_eq!(status, 200, "{text}");

    // Trying many accounts from one address is refused there after a while,
    // whoever the account, and only there.
    for i in 0..30 {
        assert_eq!(login_from(&f, "127.0.0.3", &format!("user{i}"), "guess").0, 401);
    }
    let (status, text) = login_from(&f, "127.0.0.3", "ann", "ann-password");
    assert_eq!(status, 401);
    assert!(text.contains("too many failed sign-ins from your address"), "{text}");
    assert_eq!(login_from(&f, "127.0.0.1", "ann", "ann-password").0, 200);
}

#[test]
fn a_limited_join_token_enrols_hosts_only_with_its_tags() {
    let mut f = Ferry::start();
    let token = f.ok(&["join-token", "create", "--tags", "team=shop,role=web"]).trim().to_string();
    assert!(token.starts_with("fy_j_"), "{token}");
    let wait = std::time::Duration::from_secs(20);

    // Within its tags, or none (then the token's own).
    let mut shop = f.spawn_agent("shop-1", "team=shop", Some(&token));
    let mut plain = f.spawn_agent("shop-2", "", Some(&token));
    crate::harness::wait_until(wait, "both hosts to enrol", || f.hosts().len() == 2);
    let hosts = f.ok(&["hosts"]);
    assert!(hosts.contains("shop-1") && hosts.contains("team=shop"), "{hosts}");
    let tags_of = |name: &str| f.hosts().into_iter().find(|h| h["name"] == name).unwrap()["tags"].clone();
    assert_eq!(tags_of("shop-2"), json!({"team": "shop", "role": "web"}));

    // Asking for another team's tags with it is refused, naming what it allows.
    let (enrolled, log) = f.spawn_agent("evil-1", "role=prod", Some(&token)).wait_exit(wait);
    assert!(!enrolled && log.contains("allows only the tags role=web,team=shop"), "{log}");
    assert!(f.hosts().iter().all(|h| h["name"] != "evil-1"));

    // Only the administrator makes and revokes them; a revoked one enrols nobody.
    let owner = f.person("olga", &[]);
    owner.refused(&["join-token", "create", "--tags", "team=shop"], "needs the administrator");
    let id = f.json(&["join-token", "list"])[0]["id"].as_i64().unwrap().to_string();
    f.ok(&["join-token", "revoke", &id]);
    let (enrolled, log) = f.spawn_agent("shop-3", "team=shop", Some(&token)).wait_exit(wait);
    assert!(!enrolled && log.contains("wrong join token"), "{log}");
    shop.kill();
    plain.kill();
    let _ = &mut f;
}

#[test]
fn a_release_s_health_command_runs_as_the_service_user_not_root() {
    let me = String::from_utf8(std::process::Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    let mut f = Ferry::start();
    f.start_agents(&["web-1"], "role=web");
    f.project_app();
    // The release's own code: like its hooks, never the agent's user.
    let recipe = "[deploy]\nshared = [\"data\"]\n[health]\ncommand = \"id -un > $FERRY_SHARED_DIR/data/health_user\"\n";
    upload_with(&f, "v1", recipe, &[]);
    f.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);
    let ran_as = std::fs::read_to_string(f.root_of("web-1").join("app/shared/data/health_user")).unwrap();
    let expected = if me.trim() == "root" { "nobody" } else { me.trim() };
    assert_eq!(ran_as.trim(), expected, "the health command ran as {ran_as}");
    let _ = &mut f;
}

#[test]
fn a_release_cannot_make_its_service_root_without_the_hosts_consent() {
    let mut f = Ferry::start();
    f.start_agents(&["web-1"], "role=web");
    f.project_app();
    let root_service = "[service]\ncommand = \"sleep 1000\"\nuser = \"root\"\nallow_root = true\n";
    upload_with(&f, "v1", root_service, &[]);
    let out = f.cli(&["deploy", "app", "prod", "--version", "v1", "--wait"]);
    assert!(!out.status.success());
    let error = f.json(&["deployment", "show", "1"])["hosts"][0]["error"].as_str().unwrap().to_string();
    assert!(error.contains("--allow-root-services"), "{error}");
    assert_eq!(f.version_on("web-1", "app"), None, "refused before the switch");
    let _ = &mut f;
}
