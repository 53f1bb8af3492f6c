//! Builds from git (R5-R8, R25, R30): real repositories, real webhooks.

use std::time::Duration;

use hmac::{KeyInit, Mac};
use serde_json::Value;

use crate::harness::{BUILD_VERSION, Ferry, Repo, wait_until};

pub fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// POSTs a webhook; returns (status, JSON body).
pub fn hook(f: &Ferry, forge: &str, project: &str, headers: &[(&str, String)], body: &str) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut req =
            reqwest::Client::new().post(format!("{}/api/v1/hooks/{forge}/{project}", f.url)).body(body.to_string());
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    })
}

/// A signed GitHub push of `after` to `git_ref`.
pub fn github_push(f: &Ferry, secret: &str, delivery: &str, git_ref: &str, after: &str) -> (u16, Value) {
    let body = format!(r#"{{"ref":"{git_ref}","after":"{after}"}}"#);
    let sig = format!("sha256={}", hmac_hex(secret, body.as_bytes()));
    let headers = [
        ("x-github-event", "push".to_string()),
        ("x-github-delivery", delivery.to_string()),
        ("x-hub-signature-256", sig),
    ];
    hook(f, "github", "app", &headers, &body)
}

pub fn builds(f: &Ferry) -> Vec<Value> {
    f.json(&["builds", "app"]).as_array().cloned().unwrap_or_default()
}

pub fn wait_build(f: &Ferry, id: i64) -> Value {
    let mut last = Value::Null;
    wait_until(Duration::from_secs(60), &format!("build {id} to end"), || {
        last = f.json(&["build", "show", &id.to_string()]);
        matches!(last["status"].as_str(), Some("succeeded" | "failed" | "canceled"))
    });
    last
}

#[test]
fn a_commit_builds_into_a_versioned_tagged_release_that_deploys() {
    let mut f = Ferry::start();
    f.start_agents(&["web-1", "web-2"], "role=web");
    let repo = Repo::new(f.dir.path(), BUILD_VERSION);
    f.ok(&["project", "create", "app", "--repo", &repo.url()]);
    f.ok(&["env", "create", "app", "prod", "--select", "role=web"]);

    let out = f.ok(&["build", "app", "--follow"]);
    assert!(out.contains("building app at"), "the script's output is in the log: {out}");
    assert!(out.contains("(release)"), "[build.env] reaches the script: {out}");
    assert!(out.contains("build 1 (#1) succeeded: version 1"), "{out}");

    // R25: the next build of a new commit is version 2; R6: any commit can be built.
    repo.write("README", "second\n");
    let second = repo.commit("second commit");
    f.ok(&["build", "app", "--follow"]);
    let first_sha = repo.git(&["rev-list", "--max-parents=0", "HEAD"]);
    f.ok(&["build", "app", "--ref", &first_sha, "--follow"]);
    let list = builds(&f);
    let versions: Vec<&str> = list.iter().map(|b| b["version"].as_str().unwrap()).collect();
    assert_eq!(versions, ["3", "2", "1"], "newest first");
    assert_eq!(list[1]["commit"], second.as_str());
    assert_eq!(list[1]["author"], "Li Lei");
    assert_eq!(list[1]["message"], "second commit");
    assert_eq!(list[0]["commit"], first_sha.as_str());

    // The commit is tagged in the server's mirror.
    let tags = std::process::Command::new("git")
        .args(["-C", f.dir.path().join("server/git/app.git").to_str().unwrap(), "tag", "--points-at", &second])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&tags.stdout).trim(), "2");

    // R8: deploy a build; the release name carries branch and committer (R16).
    f.ok(&["deploy", "app", "prod", "--build", "2", "--wait"]);
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("2"));
    let recipe = std::fs::read_to_string(f.root_of("web-1").join("app/current/ferry.toml")).unwrap();
    assert!(recipe.contains("[build]"), "the recipe travels with the release");
    let link = std::fs::read_link(f.root_of("web-1").join("app/current")).unwrap();
    let name = link.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("app_prod_2_main_") && name.ends_with("_Li-Lei"), "{name}");
    f.ok(&["deploy", "app", "prod", "--build", "latest", "--wait"]);
    assert_eq!(f.version_on("web-2", "app").as_deref(), Some("3"));

    // A tag builds as that version.
    repo.git(&["tag", "v5.0"]);
    f.ok(&["build", "app", "--ref", "v5.0", "--follow"]);
    assert_eq!(builds(&f)[0]["version"], "v5.0");
}

#[test]
fn version_tags_are_pushed_back_when_asked() {
    let f = Ferry::start();
    let repo = Repo::new(f.dir.path(), BUILD_VERSION);
    f.ok(&["project", "create", "app", "--repo", &repo.url(), "--push-tags"]);
    f.ok(&["build", "app", "--follow"]);
    assert_eq!(repo.git(&["tag", "--points-at", "HEAD"]), "1", "the repository got the version tag");
    let err = f.fails(&["project", "create", "nogit", "--push-tags"]);
    assert!(err.contains("need --repo"), "{err}");
    f.ok(&["project", "create", "plain"]);
    let err = f.fails(&["build", "plain"]);
    assert!(err.contains("has no repository"), "{err}");
}

#[test]
fn a_failing_build_shows_its_error_and_cannot_be_deployed() {
    let f = Ferry::start();
    let repo = Repo::new(f.dir.path(), "echo compiling\necho 'Traceback: NullPointer at Foo.java:42' >&2\nexit 3");
    f.ok(&["project", "create", "app", "--repo", &repo.url()]);
    f.ok(&["env", "create", "app", "prod", "--select", "role=web"]);
    let out = f.cli(&["build", "app", "--follow"]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("Traceback: NullPointer at Foo.java:42"), "{stdout}");
    assert!(stdout.contains("exited with code 3"), "{stdout}");
    assert!(stderr.contains("build 1 failed") && stderr.contains("exited with code 3"), "{stderr}");
    let b = f.json(&["build", "show", "1"]);
    assert_eq!(b["status"], "failed");
    assert!(b["error"].as_str().unwrap().contains("Foo.java:42"), "{b}");

    let err = f.fails(&["deploy", "app", "prod", "--build", "1"]);
    assert!(err.contains("only successful builds can be deployed"), "{err}");
    let err = f.fails(&["deploy", "app", "prod", "--build", "latest"]);
    assert!(err.contains("no successful build"), "{err}");

    // Fix the script and retry the same ref.
    repo.script(BUILD_VERSION);
    repo.commit("fix");
    f.ok(&["build", "retry", "1", "--follow"]);
    assert_eq!(builds(&f)[0]["trigger"], "retry");
    assert_eq!(builds(&f)[0]["status"], "succeeded");
}

#[test]
fn recipe_mistakes_name_the_file_and_key() {
    let f = Ferry::start();
    let repo = Repo::new(f.dir.path(), BUILD_VERSION);
    f.ok(&["project", "create", "app", "--repo", &repo.url()]);
    let cases = [
        ("[build]\nartifact = \"dist\"\n", "command"),
        ("[build]\ncommand = \"./build.sh\"\nartifact = \"dist\"\ntimeout = \"soon\"\n", "build.timeout"),
        ("[build]\ncommand = \"./build.sh\"\nartifact = \"../etc\"\n", "build.artifact"),
        ("[build]\ncommand = \"true\"\nartifact = \"dist\"\n", "not a directory"),
    ];
    for (recipe, key) in cases {
        repo.write("ferry.toml", recipe);
        repo.commit(&format!("recipe with {key}"));
        let err = f.fails(&["build", "app", "--follow"]);
        assert!(err.contains("ferry.toml") && err.contains(key), "{recipe}: {err}");
    }
    repo.git(&["rm", "--quiet", "ferry.toml"]);
    repo.commit("no recipe");
    let err = f.fails(&["build", "app", "--follow"]);
    assert!(err.contains("ferry.toml not found"), "{err}");
    let err = f.fails(&["build", "app", "--ref", "no-such-branch", "--follow"]);
    assert!(err.contains("'no-such-branch' is not a branch, tag or commit"), "{err}");
    assert!(builds(&f).iter().all(|b| b["status"] == "failed"));
}

#[test]
fn a_build_that_outlives_its_timeout_is_stopped_with_its_children() {
    let f = Ferry::start();
    // The build cannot write outside its checkout, so its child is found by
    // a command line nothing else runs.
    let marker = format!("61.{}", std::process::id());
    let script = format!("sleep {marker} &\nwait");
    let repo = Repo::new(f.dir.path(), &script);
    repo.write("ferry.toml", "[build]\ncommand = \"./build.sh\"\nartifact = \"dist\"\ntimeout = \"2s\"\n");
    repo.commit("short timeout");
    f.ok(&["project", "create", "app", "--repo", &repo.url()]);
    let started = std::time::Instant::now();
    let err = f.fails(&["build", "app", "--follow"]);
    assert!(err.contains("longer than its timeout of 2s"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20), "stopped promptly");
    // Gone, or a zombie waiting for init to reap it: either way not running.
    let running = || {
        std::fs::read_dir("/proc").unwrap().flatten().any(|p| {
            let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
            let stat = std::fs::read_to_string(p.path().join("stat")).unwrap_or_default();
            let state = stat.rsplit(')').next().unwrap_or("").split_whitespace().next().unwrap_or("X");
            String::from_utf8_lossy(&cmdline).contains(&marker) && !matches!(state, "X" | "Z")
        })
    };
    wait_until(Duration::from_secs(5), "the build's background child to be stopped", || !running());
}

#[test]
fn builds_of_one_project_queue_and_different_projects_run_together() {
    let f = Ferry::start();
    let slow = "sleep 1\nmkdir -p dist\necho $FERRY_VERSION > dist/VERSION";
    let repo = Repo::new(f.dir.path(), slow);
    f.ok(&["project", "create", "app", "--repo", &repo.url()]);
    f.ok(&["project", "create", "other", "--repo", &repo.url()]);
    for p in ["app", "app", "app", "other"] {
        f.ok(&["build", p]);
    }
    let last = builds(&f)[0]["id"].as_i64().unwrap();
    wait_build(&f, last);
    let app = builds(&f);
    let other = f.json(&["builds", "other"]);
    // RFC 3339 with the fraction's trailing zeros dropped ("19.05Z" is after
    // "19.007Z"): pad it to milliseconds so that text order is time order.
    let span = |b: &Value, k: &str| {
        let t = b[k].as_str().unwrap().trim_end_matches('Z');
        let (secs, frac) = t.split_once('.').unwrap_or((t, ""));
        format!("{secs}.{frac:0<3}Z")
    };
    let mut windows: Vec<(String, String)> =
        app.iter().map(|b| (span(b, "started_at"), span(b, "finished_at"))).collect();
    windows.sort();
    for pair in windows.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "builds of one project overlapped: {pair:?}");
    }
    let o = &other[0];
    let (os, of) = (span(o, "started_at"), span(o, "finished_at"));
    assert!(windows.iter().any(|(s, e)| *s < of && os < *e), "the other project's build ran alongside");
}

#[test]
fn a_running_build_can_be_canceled() {
    let f = Ferry::start();
    let repo = Repo::new(f.dir.path(), "echo started\nsleep 60");
    f.ok(&["project", "create", "app", "--repo", &repo.url()]);
    f.ok(&["build", "app"]);
    wait_until(Duration::from_secs(20), "the build to run", || builds(&f)[0]["status"] == "running");
    f.ok(&["build", "cancel", "1"]);
    let b = wait_build(&f, 1);
    assert_eq!(b["status"], "canceled");
    let err = f.fails(&["build", "cancel", "1"]);
    assert!(err.contains("already canceled"), "{err}");
}

#[test]
fn push_webhooks_build_only_when_signed_new_and_wanted() {
    let mut f = Ferry::start();
    f.start_agents(&["web-1"], "role=web");
    let repo = Repo::new(f.dir.path(), BUILD_VERSION);
    f.ok(&[
        "project",
        "create",
        "app",
        "--repo",
        &repo.url(),
        "--webhook-secret",
        "s3cret",
        "--branches",
        "main,release/*",
    ]);
    // Continuous deploy: successful builds of main go to prod by themselves.
    f.ok(&["env", "create", "app", "prod", "--select", "role=web", "--auto-deploy-branch", "main"]);
    let head = repo.git(&["rev-parse", "HEAD"]);
    let head = head.as_str();

    let (status, _) = github_push(&f, "wrong", "d-0", "refs/heads/main", head);
    assert_eq!(status, 401, "a bad signature starts nothing");
    assert!(builds(&f).is_empty());

    let (status, body) = github_push(&f, "s3cret", "d-1", "refs/heads/main", head);
    assert_eq!(status, 202, "{body}");
    let id = body["build"]["id"].as_i64().unwrap();
    assert_eq!(body["build"]["trigger"], "webhook:github");
    let (_, again) = github_push(&f, "s3cret", "d-1", "refs/heads/main", head);
    assert!(again["ignored"].as_str().unwrap().contains("already handled"), "{again}");
    let (_, other) = github_push(&f, "s3cret", "d-2", "refs/heads/feature/x", head);
    assert!(other["ignored"].as_str().unwrap().contains("feature/x"), "{other}");
    // The same signed push replayed under a new delivery id builds nothing.
    let (_, replay) = github_push(&f, "s3cret", "d-3", "refs/heads/main", head);
    assert!(replay["ignored"].as_str().unwrap().contains("already"), "{replay}");
    // A ref that git would take as an option is refused like a manual one.
    let (status, evil) = github_push(&f, "s3cret", "d-4", "refs/tags/--upload-pack=touch${IFS}pwned", head);
    assert_eq!(status, 400, "{evil}");
    assert_eq!(builds(&f).len(), 1);

    assert_eq!(wait_build(&f, id)["status"], "succeeded");
    f.wait_version("web-1", "app", "1");
    // The server deployed on its own: that is on record too.
    let audit = f.json(&["audit", "--project", "app"]);
    let auto = audit.as_array().unwrap().iter().find(|e| e["action"] == "auto-deploy").expect("auto-deploy audited");
    assert_eq!(auto["actor"], "ferry (for github)");
    assert!(auto["outcome"].as_str().unwrap().starts_with("started deployment"), "{auto}");

    // GitLab: the token header; a tag push builds the tag.
    repo.git(&["tag", "v2.0"]);
    let body = &format!(r#"{{"ref":"refs/tags/v2.0","after":"{head}"}}"#);
    let gl = [("x-gitlab-token", "s3cret".to_string()), ("x-gitlab-event", "Tag Push Hook".to_string())];
    let (status, answer) = hook(&f, "gitlab", "app", &gl, body);
    assert_eq!(status, 202, "{answer}");
    assert_eq!(wait_build(&f, answer["build"]["id"].as_i64().unwrap())["version"], "v2.0");
    let bad = [("x-gitlab-token", "guess".to_string())];
    assert_eq!(hook(&f, "gitlab", "app", &bad, body).0, 401);

    // Gitea signs like GitHub without the prefix; Gerrit's relay signs with the shared secret.
    let body = &format!(r#"{{"ref":"refs/heads/release/1","after":"{head}"}}"#);
    repo.git(&["branch", "release/1"]);
    let gitea = [("x-gitea-signature", hmac_hex("s3cret", body.as_bytes())), ("x-gitea-event", "push".to_string())];
    let (status, answer) = hook(&f, "gitea", "app", &gitea, body);
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["build"]["git_ref"], "release/1");
    let body = &format!(r#"{{"type":"ref-updated","refUpdate":{{"refName":"refs/heads/main","newRev":"{head}"}}}}"#);
    let gerrit = [("x-ferry-signature", format!("sha256={}", hmac_hex("s3cret", body.as_bytes())))];
    let (status, answer) = hook(&f, "gerrit", "app", &gerrit, body);
    assert_eq!(status, 202, "{answer}");
    let (status, _) = hook(&f, "gerrit", "app", &[("x-ferry-signature", "sha256=00".into())], body);
    assert_eq!(status, 401);
    let (status, _) = hook(&f, "github", "nope", &[], "{}");
    assert_eq!(status, 401, "unknown projects look like bad signatures");
}

#[test]
fn the_live_log_is_server_sent_events() {
    let f = Ferry::start();
    let repo =
        Repo::new(f.dir.path(), "for i in 1 2 3; do echo line $i; sleep 0.2; done\nmkdir -p dist && echo x > dist/x");
    f.ok(&["project", "create", "app", "--repo", &repo.url()]);
    f.ok(&["build", "app"]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (ctype, text) = rt.block_on(async {
        let resp = reqwest::Client::new()
            .get(format!("{}/api/v1/builds/1/log?follow=1", f.url))
            .bearer_auth(&f.token)
            .send()
            .await
            .unwrap();
        let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
        (ctype, resp.text().await.unwrap())
    });
    assert_eq!(ctype, "text/event-stream");
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("data:") && l.contains("line ")).collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].contains(r#""stream":"stdout""#) && lines[0].contains(r#""at":""#), "{}", lines[0]);
    assert!(text.contains("event: end"), "{text}");
    assert!(text.trim_end().ends_with('}'), "the end event carries the build: {text}");
}

#[test]
fn a_build_interrupted_by_a_server_restart_is_marked_failed() {
    let mut f = Ferry::start();
    let repo = Repo::new(f.dir.path(), "sleep 60");
    f.ok(&["project", "create", "app", "--repo", &repo.url()]);
    f.ok(&["build", "app"]);
    wait_until(Duration::from_secs(20), "the build to run", || builds(&f)[0]["status"] == "running");
    f.restart_server();
    // The killed server's lease on the build runs out within seconds; the
    // restarted server then fails it.
    wait_until(Duration::from_secs(15), "the build to fail", || builds(&f)[0]["status"] == "failed");
    let b = f.json(&["build", "show", "1"]);
    assert!(b["error"].as_str().unwrap().contains("server stopped"), "{b}");
}
