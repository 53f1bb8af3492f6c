//! Builds from what the forges really send (R5, R6, R25): their payload
//! shapes, content types, resends and replays, against a real repository.

use std::time::Duration;

use serde_json::Value;

use crate::builds::{builds, github_push, hmac_hex, hook, wait_build};
use crate::harness::{Ferry, Repo, wait_until};

/// Writes what was checked out into the release, so the release shows
/// which commit it was built from.
const BUILD_CONTENT: &str = "mkdir -p dist\ncp content.txt dist/\necho \"$FERRY_COMMIT\" > dist/COMMIT";

/// A server with project `app` building `repo` (tags pushed back, so each
/// release's commit can be read from the repository) under secret `s3cret`.
fn forge_project() -> (Ferry, Repo) {
    let f = Ferry::start();
    let repo = Repo::new(f.dir.path(), BUILD_CONTENT);
    repo.write("content.txt", "A\n");
    repo.commit("content A");
    f.ok(&["project", "create", "app", "--repo", &repo.url(), "--webhook-secret", "s3cret", "--push-tags"]);
    (f, repo)
}

fn build_id(answer: &Value) -> i64 {
    answer["build"]["id"].as_i64().unwrap_or_else(|| panic!("no build queued: {answer}"))
}

/// A GitLab push in the documented shape (`checkout_sha` beside `after`).
fn gitlab_body(branch: &str, before: &str, sha: &str) -> String {
    format!(
        r#"{{"object_kind":"push","event_name":"push","before":"{before}","after":"{sha}","ref":"refs/heads/{branch}",
"ref_protected":true,"checkout_sha":"{sha}","user_name":"Li Lei","project_id":15,
"project":{{"name":"app","path_with_namespace":"team/app","default_branch":"main"}},
"commits":[{{"id":"{sha}","message":"change","author":{{"name":"Li Lei","email":"lilei@example.com"}}}}],
"total_commits_count":1,"repository":{{"name":"app"}}}}"#
    )
}

/// A Gitea push in the documented shape.
fn gitea_body(branch: &str, before: &str, sha: &str) -> String {
    format!(
        r#"{{
  "ref": "refs/heads/{branch}",
  "before": "{before}",
  "after": "{sha}",
  "compare_url": "http://gitea.example.com/team/app/compare/{before}...{sha}",
  "commits": [{{"id": "{sha}", "message": "change\n", "author": {{"name": "Li Lei", "email": "lilei@example.com"}}}}],
  "repository": {{"id": 1, "full_name": "team/app", "default_branch": "main"}},
  "pusher": {{"login": "lilei"}},
  "sender": {{"login": "lilei"}}
}}"#
    )
}

#[test]
fn a_late_webhook_builds_the_commit_that_was_pushed() {
    let (f, repo) = forge_project();
    f.ok(&["env", "create", "app", "prod", "--select", "role=web", "--auto-deploy-branch", "main"]);
    let a = repo.git(&["rev-parse", "HEAD"]);
    repo.write("content.txt", "B\n");
    let b = repo.commit("content B");
    // A's delivery arrives after B is already on main.
    let (status, answer) = github_push(&f, "s3cret", "d-a", "refs/heads/main", &a);
    assert_eq!(status, 202, "{answer}");
    let built = wait_build(&f, build_id(&answer));
    assert_eq!(built["status"], "succeeded", "{built}");
    assert_eq!(built["commit"], a.as_str(), "the pushed commit was built, not the branch's head");
    assert_eq!(built["version"], "1");
    assert_eq!(repo.git(&["rev-parse", "1^{commit}"]), a, "release 1 is commit A");
    // Main has moved past A: A's release is kept but not deployed over B.
    let auto_deploys = || -> Vec<Value> {
        let audit = f.json(&["audit", "--project", "app"]);
        audit.as_array().unwrap().iter().filter(|e| e["action"] == "auto-deploy").cloned().collect()
    };
    // The auto-deploy decision comes just after the build ends.
    wait_until(Duration::from_secs(30), "A's auto-deploy decision", || !auto_deploys().is_empty());
    let auto = auto_deploys();
    assert_eq!(auto.len(), 1, "{auto:?}");
    assert!(auto[0]["outcome"].as_str().unwrap_or_default().contains("moved on"), "{}", auto[0]);

    let (_, answer) = github_push(&f, "s3cret", "d-b", "refs/heads/main", &b);
    let built = wait_build(&f, build_id(&answer));
    assert_eq!((built["commit"].as_str(), built["version"].as_str()), (Some(b.as_str()), Some("2")));
    assert_eq!(repo.git(&["rev-parse", "2^{commit}"]), b, "release 2 is commit B");

    // A commit the repository does not have fails the build, saying so.
    let ghost = "0123456789abcdef0123456789abcdef01234567";
    let (_, answer) = github_push(&f, "s3cret", "d-c", "refs/heads/main", ghost);
    let failed = wait_build(&f, build_id(&answer));
    assert_eq!(failed["status"], "failed");
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(error.contains(ghost) && error.contains("not in the repository"), "{error}");
    assert_eq!(builds(&f).len(), 3);
}

#[test]
fn github_form_encoded_deliveries_build() {
    let (f, repo) = forge_project();
    let a = repo.git(&["rev-parse", "HEAD"]);
    let json = format!(
        r#"{{"ref":"refs/heads/main","before":"0000000000000000000000000000000000000000","after":"{a}","created":true,"deleted":false,"forced":false,"repository":{{"full_name":"team/app"}},"pusher":{{"name":"lilei"}},"head_commit":{{"id":"{a}","message":"content A & more"}}}}"#
    );
    let form: String = form_urlencoded::Serializer::new(String::new()).append_pair("payload", &json).finish();
    let headers = |sig: String| {
        [
            ("content-type", "application/x-www-form-urlencoded".to_string()),
            ("x-github-event", "push".to_string()),
            ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958".to_string()),
            ("x-hub-signature-256", format!("sha256={sig}")),
            ("user-agent", "GitHub-Hookshot/044aadd".to_string()),
        ]
    };
    // GitHub signs the form body as sent; a signature over the JSON inside is not it.
    let (status, _) = hook(&f, "github", "app", &headers(hmac_hex("s3cret", json.as_bytes())), &form);
    assert_eq!(status, 401);
    let (status, answer) = hook(&f, "github", "app", &headers(hmac_hex("s3cret", form.as_bytes())), &form);
    assert_eq!(status, 202, "{answer}");
    let built = wait_build(&f, build_id(&answer));
    assert_eq!((built["status"].as_str(), built["commit"].as_str()), (Some("succeeded"), Some(a.as_str())));

    // Gitea's form deliveries sign the JSON inside.
    repo.write("content.txt", "B\n");
    let b = repo.commit("content B");
    let json = gitea_body("main", &a, &b);
    let form: String = form_urlencoded::Serializer::new(String::new()).append_pair("payload", &json).finish();
    let gitea = |sig: String| {
        [
            ("content-type", "application/x-www-form-urlencoded".to_string()),
            ("x-gitea-event", "push".to_string()),
            ("x-gitea-delivery", "f6266f16-1bf3-46a5-9ea4-602e06ead473".to_string()),
            ("x-gitea-signature", sig),
        ]
    };
    let (status, _) = hook(&f, "gitea", "app", &gitea(hmac_hex("s3cret", form.as_bytes())), &form);
    assert_eq!(status, 401, "Gitea's signature covers the JSON, not the form");
    let (status, answer) = hook(&f, "gitea", "app", &gitea(hmac_hex("s3cret", json.as_bytes())), &form);
    assert_eq!(status, 202, "{answer}");
    assert_eq!(wait_build(&f, build_id(&answer))["commit"], b.as_str());
}

#[test]
fn resends_and_replays_build_once() {
    let (f, repo) = forge_project();
    let a = repo.git(&["rev-parse", "HEAD"]);
    let zero = "0000000000000000000000000000000000000000";
    let body = gitlab_body("main", zero, &a);
    let gitlab = |uuid: &str| {
        [
            ("content-type", "application/json".to_string()),
            ("x-gitlab-event", "Push Hook".to_string()),
            ("x-gitlab-token", "s3cret".to_string()),
            ("x-gitlab-event-uuid", uuid.to_string()),
            ("x-gitlab-webhook-uuid", "b9ba5b2c-2c29-4d2f-9d47-4d1c3dfd9d0b".to_string()),
            ("idempotency-key", "0b1c7b9e-4a52-4b8b-9d3c-0d7c7a1f5e11".to_string()),
        ]
    };
    let (status, first) = hook(&f, "gitlab", "app", &gitlab("7e3a1f9c-0000-4000-8000-000000000001"), &body);
    assert_eq!(status, 202, "{first}");
    build_id(&first);
    // "Resend request": new event UUID, same Idempotency-Key.
    let (status, resend) = hook(&f, "gitlab", "app", &gitlab("7e3a1f9c-0000-4000-8000-000000000002"), &body);
    assert_eq!(status, 202, "{resend}");
    assert!(resend["build"].is_null(), "a resend builds nothing: {resend}");
    assert!(resend["ignored"].as_str().unwrap_or_default().contains("already"), "{resend}");
    assert_eq!(builds(&f).len(), 1);

    // Gitea's "Replay": the same body under a new delivery id.
    repo.write("content.txt", "B\n");
    let b = repo.commit("content B");
    let body = gitea_body("main", &a, &b);
    let gitea = |delivery: &str| {
        [
            ("content-type", "application/json".to_string()),
            ("x-gitea-event", "push".to_string()),
            ("x-gitea-delivery", delivery.to_string()),
            ("x-gitea-signature", hmac_hex("s3cret", body.as_bytes())),
        ]
    };
    let (status, first) = hook(&f, "gitea", "app", &gitea("a0b1c2d3-0001"), &body);
    assert_eq!(status, 202, "{first}");
    build_id(&first);
    let (status, replay) = hook(&f, "gitea", "app", &gitea("a0b1c2d3-0002"), &body);
    assert_eq!(status, 202, "{replay}");
    assert!(replay["build"].is_null(), "a replay builds nothing: {replay}");
    assert_eq!(builds(&f).len(), 2);
    for b in builds(&f) {
        assert_eq!(wait_build(&f, b["id"].as_i64().unwrap())["status"], "succeeded");
    }
}

#[test]
fn numbering_goes_on_from_the_last_numbered_version() {
    let (f, repo) = forge_project();
    let built = |args: &[&str]| {
        let out = f.ok(args);
        let last: Vec<Value> = builds(&f);
        let id = last[0]["id"].as_i64().unwrap_or_else(|| panic!("no build after {args:?}: {out}"));
        wait_build(&f, id)
    };
    assert_eq!(built(&["build", "app", "--follow"])["version"], "1");
    repo.git(&["tag", "simple-tag"]);
    assert_eq!(built(&["build", "app", "--ref", "refs/tags/simple-tag", "--follow"])["version"], "simple-tag");
    repo.write("content.txt", "B\n");
    repo.commit("content B");
    assert_eq!(built(&["build", "app", "--follow"])["version"], "2", "not simple-tag.1");
    repo.write("content.txt", "C\n");
    repo.commit("content C");
    assert_eq!(built(&["build", "app", "--follow"])["version"], "3");
}
