//! Build benchmark: from a signed push webhook to a stored, deployable
//! artifact, on the reference workload (`../shared/bench/make-artifact.sh`:
//! 3,001 files, 41 MB), with the real `ferry` binary and a real git
//! repository.
//!
//! The repository's build copies the reference tree into `dist/`, so the
//! build output is exactly the reference release. For each repeat
//! (`FERRY_BENCH_RUNS`, default 3) it times:
//!
//! - webhook POST -> build succeeded (the release is stored and deployable),
//!   split, from the build log's timestamps, into fetch+checkout, the build
//!   command, and packing (hashing and storing the output);
//! - packing alone, as Ferry does it (into a fresh local artifact store),
//!   against the floor
//!   `tar cf - -C dist . | zstd -1 -T1 > out.tar.zst` of the same directory.
//!   Ferry's packing is `SourceTree::import_dir`: each file read once,
//!   hashed while it is copied into the content-addressed store.
//!
//! Run with `cargo bench --bench build`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use hmac::{KeyInit, Mac};
use serde_json::Value;

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

struct Server {
    child: Child,
    url: String,
    token: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sh(cmd: &str) -> Result<()> {
    let status = Command::new("sh").arg("-c").arg(cmd).status()?;
    if !status.success() {
        bail!("`{cmd}` failed");
    }
    Ok(())
}

fn ferry(s: &Server, args: &[&str]) -> Result<String> {
    let out = Command::new(FERRY).args(args).env("FERRY_SERVER", &s.url).env("FERRY_TOKEN", &s.token).output()?;
    if !out.status.success() {
        bail!("ferry {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn start_server(dir: &Path) -> Result<Server> {
    let data = dir.join("server");
    let log = std::fs::File::create(dir.join("server.log"))?;
    let child = Command::new(FERRY)
        .args(["server", "--data", data.to_str().unwrap_or_default(), "--listen", "127.0.0.1:0"])
        .env("FERRY_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?;
    let url_file = data.join("server.url");
    let start = Instant::now();
    while !url_file.exists() {
        if start.elapsed() > Duration::from_secs(30) {
            bail!("server did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    let url = std::fs::read_to_string(url_file)?.trim().to_string();
    let token = std::fs::read_to_string(data.join("admin.token"))?.trim().to_string();
    Ok(Server { child, url, token })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn millis(t: &str) -> Option<f64> {
    // RFC 3339 UTC from the API: take HH:MM:SS.fff and turn it into seconds of the day.
    let clock = t.split('T').nth(1)?.trim_end_matches('Z');
    let mut parts = clock.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.trim_end_matches("+00").parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

fn main() -> Result<()> {
    // reqwest is built without a crypto provider of its own.
    ferry_tls::install_crypto_provider();
    let runs: usize = std::env::var("FERRY_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(3).max(1);
    let generator = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/bench/make-artifact.sh");
    if !generator.exists() {
        println!("skipped: {} not found", generator.display());
        return Ok(());
    }
    let base = if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
    let tmp = tempfile::Builder::new().prefix("ferry-build-bench-").tempdir_in(&base)?;
    let artifacts = tmp.path().join("artifacts");
    sh(&format!("bash {} {} > /dev/null", generator.display(), artifacts.display()))?;
    let source = artifacts.join("app-v1");
    println!("workload: {} (tmpfs: {})", source.display(), base.starts_with("/dev/shm"));

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (mut e2e, mut fetch, mut command, mut pack_in_build, mut pack, mut floor) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for run in 0..runs {
        let dir = tmp.path().join(format!("run-{run}"));
        std::fs::create_dir_all(&dir)?;
        // The repository: its build copies the reference tree into dist/.
        let repo = dir.join("repo");
        std::fs::create_dir_all(&repo)?;
        std::fs::write(
            repo.join("ferry.toml"),
            format!("[build]\ncommand = \"cp -a {}/. dist/\"\nartifact = \"dist\"\n", source.display()),
        )?;
        std::fs::create_dir_all(repo.join("dist"))?;
        std::fs::write(repo.join(".gitignore"), "dist/\n")?;
        sh(&format!(
            "cd {} && git init -q -b main && git -c user.name=b -c user.email=b@x add -A && \
             git -c user.name=b -c user.email=b@x commit -qm bench",
            repo.display()
        ))?;
        let server = start_server(&dir)?;
        ferry(
            &server,
            &["project", "create", "app", "--repo", &format!("file://{}", repo.display()), "--webhook-secret", "k"],
        )?;
        let body = r#"{"ref":"refs/heads/main","after":"1111111111111111111111111111111111111111"}"#;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"k")?;
        mac.update(body.as_bytes());
        let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));

        let started = Instant::now();
        let id = rt.block_on(async {
            let resp = reqwest::Client::new()
                .post(format!("{}/api/v1/hooks/github/app", server.url))
                .header("x-github-event", "push")
                .header("x-github-delivery", format!("bench-{run}"))
                .header("x-hub-signature-256", sig)
                .body(body)
                .send()
                .await?;
            let v: Value = resp.json().await?;
            anyhow::Ok(v["build"]["id"].as_i64().unwrap_or(0))
        })?;
        loop {
            let b: Value = serde_json::from_str(&ferry(&server, &["build", "show", &id.to_string(), "-o", "json"])?)?;
            match b["status"].as_str() {
                Some("succeeded") => break,
                Some("failed" | "canceled") => bail!("bench build failed: {b}"),
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        e2e.push(started.elapsed().as_secs_f64());

        // Phase split from the log's own timestamps.
        let log = ferry(&server, &["build", "log", &id.to_string(), "-o", "json"])?;
        let lines: Vec<Value> = log.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        let at = |needle: &str| {
            lines
                .iter()
                .find(|l| l["line"].as_str().is_some_and(|s| s.contains(needle)))
                .and_then(|l| millis(l["at"].as_str()?))
        };
        if let (Some(f0), Some(run_at), Some(stored)) = (at("fetching"), at("running `"), at("stored release")) {
            fetch.push(run_at - f0);
            pack_in_build.push(stored - run_at);
        }
        let copy = dir.join("copy");
        std::fs::create_dir_all(&copy)?;
        let cmd_start = Instant::now();
        sh(&format!("cp -a {}/. {}/", source.display(), copy.display()))?;
        command.push(cmd_start.elapsed().as_secs_f64());
        drop(server);

        // Packing alone: Ferry's path vs tar | zstd.
        let out = dir.join("pack-store");
        let t = Instant::now();
        let store = ferry_artifact::BlobDir::open(&out)?;
        ferry_artifact::SourceTree::import_dir(&source, &store)?;
        pack.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        sh(&format!("tar cf - -C {} . | zstd -q -1 -T1 -o {}", source.display(), dir.join("out.tar.zst").display()))?;
        floor.push(t.elapsed().as_secs_f64());
        std::fs::remove_dir_all(&dir)?;
    }
    let (e2e, fetch, pack_b, pack, floor) =
        (median(e2e), median(fetch), median(pack_in_build), median(pack), median(floor));
    println!("\n| measure (median of {runs}) | seconds |");
    println!("|---|---:|");
    println!("| webhook POST -> release stored (end to end) | {e2e:.2} |");
    println!("| of which: fetch + checkout + recipe | {fetch:.2} |");
    println!("| of which: build command + packing (cp -a of 41 MB, hash, store) | {pack_b:.2} |");
    println!("| plain `cp -a` of the same tree (the build command alone) | {:.2} |", median(command));
    println!("| Ferry packing alone (hash + store 3,001 files) | {pack:.2} |");
    println!("| floor: `tar cf - | zstd -1` of the same tree | {floor:.2} |");
    println!("| ratio Ferry packing / tar+zstd | {:.2}x |", pack / floor);
    Ok(())
}
