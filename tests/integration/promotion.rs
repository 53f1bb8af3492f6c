//! Environments in order (R23): prod comes after stage, so a version reaches
//! prod only once it succeeded on every host of stage; `ferry promote`
//! takes what stage runs on; someone with the production right may skip the
//! order, saying why, and the trail keeps it. Also the records of the same
//! issue: request actions in a project's audit trail, owners reading their
//! own project's trail, and requesters not passing their own requests.

use serde_json::Value;

use crate::harness::{Ferry, Person};
use crate::web::{PASSWORD, Web, csrf_of, user};

/// `app` with `stage` (stage-1, stage-2) and `prod` (prod-1) after it, and
/// v1..v3 uploaded.
fn ordered_app() -> Ferry {
    let mut f = Ferry::start();
    f.start_agents(&["stage-1", "stage-2"], "env=stage");
    f.start_agents(&["prod-1"], "env=prod");
    f.ok(&["project", "create", "app"]);
    f.ok(&["env", "create", "app", "stage", "--select", "env=stage"]);
    f.ok(&["env", "create", "app", "prod", "--select", "env=prod", "--after", "stage"]);
    for v in ["v1", "v2", "v3"] {
        f.upload("app", v);
    }
    f
}

/// The audit entries `who` reads for `project`, as JSON.
fn audit_of(who: &Person, project: &str) -> Vec<Value> {
    let text = who.ok(&["audit", "--project", project, "--limit", "1000", "-o", "json"]);
    serde_json::from_str::<Value>(&text).unwrap().as_array().unwrap().clone()
}

#[test]
fn prod_takes_only_what_succeeded_on_every_stage_host_and_promote_moves_it_on() {
    let f = ordered_app();
    let envs = f.json(&["env", "list", "app"]);
    let prod = envs.as_array().unwrap().iter().find(|e| e["name"] == "prod").unwrap();
    assert_eq!(prod["after"], "stage", "{envs}");

    // Never on stage: refused, naming stage and the way round; nothing moves.
    let err = f.fails(&["deploy", "app", "prod", "--version", "v1"]);
    assert!(err.contains("comes after 'stage'") && err.contains("v1 never succeeded on 'stage'"), "{err}");
    assert!(f.json(&["deployments", "app"]).as_array().unwrap().is_empty(), "nothing was recorded");

    // On one of stage's two hosts only: refused, naming the other.
    f.ok(&["deploy", "app", "stage", "--version", "v1", "--hosts", "stage-1", "--wait"]);
    let err = f.fails(&["deploy", "app", "prod", "--version", "v1"]);
    assert!(err.contains("not on stage-2 (1 of 2)"), "{err}");
    assert_eq!(f.version_on("prod-1", "app"), None);

    // On all of stage: allowed.
    f.ok(&["deploy", "app", "stage", "--version", "v1", "--wait"]);
    f.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);
    assert_eq!(f.version_on("prod-1", "app").as_deref(), Some("v1"));

    // `ferry promote` takes what stage runs; --wait follows it to the end.
    f.ok(&["deploy", "app", "stage", "--version", "v2", "--wait"]);
    let out = f.cli(&["promote", "app", "--from", "stage", "--to", "prod", "--wait"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("to version v2"));
    assert_eq!(f.version_on("prod-1", "app").as_deref(), Some("v2"));

    // Going back is never held up by the order.
    f.ok(&["rollback", "app", "prod", "--to", "v1", "--wait"]);
    assert_eq!(f.version_on("prod-1", "app").as_deref(), Some("v1"));

    // Stage on mixed versions: nothing to promote, and the versions named.
    f.ok(&["deploy", "app", "stage", "--version", "v3", "--hosts", "stage-2", "--wait"]);
    let err = f.fails(&["promote", "app", "--from", "stage", "--to", "prod"]);
    assert!(err.contains("mixed versions (v2 (1) / v3 (1))"), "{err}");
    assert_eq!(f.version_on("prod-1", "app").as_deref(), Some("v1"));
    // A "rollback" to a newer version is no way round the order.
    let err = f.fails(&["rollback", "app", "prod", "--to", "v3"]);
    assert!(err.contains("not on stage-1 (1 of 2)"), "{err}");
    let err = f.fails(&["promote", "app", "--from", "stage", "--to", "nowhere"]);
    assert!(err.contains("nowhere"), "{err}");

    // The project page's grid: stage mixed, prod behind nothing (stage has
    // no single version), in the order versions travel.
    user(&f, "viewer", false, Some(("app", "developer")));
    let mut web = Web::new(&f);
    web.sign_in("viewer", PASSWORD);
    let page = web.get("/projects/app").body;
    let grid = &page[page.find(r#"id="promotion-grid""#).expect("the grid")..];
    let grid = &grid[..grid.find("</table>").unwrap()];
    assert!(grid.contains(r#"id="mixed-stage""#) && grid.contains("v2 (1) / v3 (1)"), "{grid}");
    assert!(grid.find(">stage").unwrap() < grid.find(">prod").unwrap(), "{grid}");
    assert!(!grid.contains(r#"id="mixed-prod""#) && !grid.contains("promote-prod"), "{grid}");

    // Stage on one version prod lacks: the grid offers the promotion, and
    // its button (with the session's CSRF token) deploys it.
    f.ok(&["deploy", "app", "stage", "--version", "v3", "--wait"]);
    let page = web.get("/projects/app").body;
    assert!(page.contains(r#"id="promote-prod""#), "{page}");
    let refused = web.post("/projects/app/promote", &[("from", "stage"), ("to", "prod")]);
    assert_eq!(refused.status, 403, "no CSRF token: {}", refused.body);
    let csrf = csrf_of(&page);
    let a = web.post("/projects/app/promote", &[("csrf", &csrf), ("from", "stage"), ("to", "prod")]);
    assert_eq!(a.status, 303, "{}", a.body);
    assert!(a.location.starts_with("/deployments/"), "{}", a.location);
    f.wait_version("prod-1", "app", "v3");
}

#[test]
fn skipping_the_order_needs_the_production_right_and_a_reason_that_is_recorded() {
    let f = ordered_app();
    let dave = f.person("dave", &[]);
    let alice = f.person("alice", &["--production"]);
    for p in [&dave, &alice] {
        f.ok(&["member", "add", "app", p.name, "developer"]);
    }
    let skip = ["deploy", "app", "prod", "--version", "v2", "--skip-promotion", "--reason", "hotfix INC-7"];
    dave.refused(&skip, "--skip-promotion) needs the production right");
    dave.refused(&["deploy", "app", "prod", "--version", "v2", "--skip-promotion"], "--reason");
    alice.refused(&["deploy", "app", "prod", "--version", "v2", "--skip-promotion", "--reason", " "], "reason");
    assert!(f.json(&["deployments", "app"]).as_array().unwrap().is_empty(), "refusals change nothing");
    // Nothing to skip where there is no order.
    alice.refused(
        &["deploy", "app", "stage", "--version", "v2", "--skip-promotion", "--reason", "x"],
        "no promotion order to skip",
    );

    alice.ok(&[&skip[..], &["--wait"]].concat());
    assert_eq!(f.version_on("prod-1", "app").as_deref(), Some("v2"));
    let list = f.json(&["deployments", "app"]);
    let id = list[0]["id"].to_string();
    let d = f.json(&["deployment", "show", &id]);
    let events: Vec<String> =
        d["events"].as_array().unwrap().iter().map(|e| e["what"].as_str().unwrap().to_string()).collect();
    assert!(
        events.iter().any(|e| e.contains("promotion order skipped by alice") && e.contains("hotfix INC-7")),
        "{events:?}"
    );
    let audit = f.ok(&["audit", "--project", "app", "--user", "alice"]);
    let json = f.json(&["audit", "--project", "app", "--user", "alice"]);
    let entry = json
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "POST /api/v1/projects/{project}/deployments" && e["outcome"] == "200")
        .unwrap_or_else(|| panic!("{audit}"));
    assert!(entry["summary"].as_str().unwrap().contains("hotfix INC-7"), "{entry}");
}

#[test]
fn a_request_may_skip_the_order_with_the_production_right_and_is_checked_again_at_release() {
    let mut f = Ferry::start();
    f.start_agents(&["stage-1"], "env=stage");
    f.start_agents(&["prod-1"], "env=prod");
    f.ok(&["project", "create", "app"]);
    f.ok(&["env", "create", "app", "stage", "--select", "env=stage"]);
    f.ok(&["env", "create", "app", "prod", "--select", "env=prod", "--require-approval", "--after", "stage"]);
    f.upload("app", "v1");
    f.upload("app", "v2");
    let dave = f.person("dave", &[]);
    let alice = f.person("alice", &["--production"]);
    let olga = f.person("olga", &[]);
    f.ok(&["member", "add", "app", "dave", "developer"]);
    f.ok(&["member", "add", "app", "alice", "developer"]);
    f.ok(&["member", "add", "app", "olga", "owner"]);

    // Without staging to test on, a request for a version stage never ran
    // is refused at once, naming stage.
    dave.refused(
        &["request", "create", "app", "prod", "--version", "v1", "--reason", "x"],
        "never succeeded on 'stage'",
    );
    // Skipping needs the production right.
    let skip = ["request", "create", "app", "prod", "--version", "v2", "--reason", "INC-9 hotfix", "--skip-promotion"];
    dave.refused(&skip, "needs the production right");
    alice.ok(&skip);
    let shown: Value = serde_json::from_str(&olga.ok(&["request", "show", "1", "-o", "json"])).unwrap();
    assert!(shown.to_string().contains("skips the promotion order (after 'stage')"), "{shown}");
    olga.ok(&["request", "approve", "1"]);
    alice.ok(&["request", "release", "1", "--wait"]);
    assert_eq!(f.version_on("prod-1", "app").as_deref(), Some("v2"));
    let list = f.json(&["deployments", "app"]);
    let d = f.json(&["deployment", "show", &list[0]["id"].to_string()]);
    assert!(
        d.to_string().contains("promotion order skipped by alice") && d.to_string().contains("INC-9 hotfix"),
        "{d}"
    );

    // A request that does not skip is checked when it is made, and again
    // when it is released: here the order changed in between, and the
    // refusal leaves the request where it was.
    f.upload("app", "v3");
    f.ok(&["env", "create", "app", "qa", "--select", "env=qa"]);
    f.ok(&["deploy", "app", "stage", "--version", "v3", "--wait"]);
    dave.ok(&["request", "create", "app", "prod", "--version", "v3", "--reason", "the slow way"]);
    olga.ok(&["request", "approve", "2"]);
    f.ok(&["env", "update", "app", "prod", "--after", "qa"]);
    dave.refused(&["request", "release", "2"], "comes after 'qa', which has no hosts");
    let shown: Value = serde_json::from_str(&dave.ok(&["request", "show", "2", "-o", "json"])).unwrap();
    assert_eq!(shown["state"], "approved");
    assert_eq!(f.version_on("prod-1", "app").as_deref(), Some("v2"));
    f.ok(&["env", "update", "app", "prod", "--after", "stage"]);
    dave.ok(&["request", "release", "2", "--wait"]);
    assert_eq!(f.version_on("prod-1", "app").as_deref(), Some("v3"));
}

#[test]
fn the_order_refuses_cycles_and_other_projects() {
    let f = Ferry::start();
    f.ok(&["project", "create", "app"]);
    f.ok(&["project", "create", "other"]);
    f.ok(&["env", "create", "other", "qa", "--select", "env=qa"]);
    f.ok(&["env", "create", "app", "dev", "--select", "env=dev"]);
    f.ok(&["env", "create", "app", "test", "--select", "env=test", "--after", "dev"]);
    f.ok(&["env", "create", "app", "prod", "--select", "env=prod"]);
    let set = f.ok(&["env", "update", "app", "prod", "--after", "test"]);
    assert!(set.contains("versions come from test"), "{set}");

    let err = f.fails(&["env", "update", "app", "dev", "--after", "prod"]);
    assert!(err.contains("would close a cycle (dev -> test -> prod -> dev)"), "{err}");
    let err = f.fails(&["env", "update", "app", "dev", "--after", "dev"]);
    assert!(err.contains("cannot come after itself"), "{err}");
    let err = f.fails(&["env", "update", "app", "dev", "--after", "qa"]);
    assert!(err.contains("project 'app' has no environment 'qa'"), "{err}");
    let err = f.fails(&["env", "create", "app", "late", "--select", "env=late", "--after", "qa"]);
    assert!(err.contains("has no environment 'qa'"), "{err}");
    let envs = f.json(&["env", "list", "app"]);
    let after = |name: &str| envs.as_array().unwrap().iter().find(|e| e["name"] == name).unwrap()["after"].clone();
    assert_eq!((after("dev"), after("test"), after("prod")), (Value::Null, "dev".into(), "test".into()));
    assert!(envs.as_array().unwrap().iter().all(|e| e["name"] != "late"), "a refused create makes nothing");

    // `none` lifts the order; then the old cycle is a fine order.
    f.ok(&["env", "update", "app", "test", "--after", "none"]);
    f.ok(&["env", "update", "app", "dev", "--after", "prod"]);
}

#[test]
fn requesters_pass_their_own_requests_only_where_allowed_and_request_actions_are_in_the_project_trail() {
    let mut f = Ferry::start();
    f.start_agents(&["stage-1"], "env=stage");
    f.start_agents(&["prod-1"], "env=prod");
    f.ok(&["project", "create", "app"]);
    f.ok(&["env", "create", "app", "stage", "--select", "env=stage"]);
    f.ok(&["env", "create", "app", "prod", "--select", "env=prod", "--require-approval", "--staging", "stage"]);
    f.ok(&["env", "update", "app", "prod", "--after", "stage"]);
    for v in ["v1", "v2"] {
        f.upload("app", v);
    }
    let dave = f.person("dave", &[]);
    let quinn = f.person("quinn", &[]);
    let olga = f.person("olga", &[]);
    f.ok(&["member", "add", "app", "dave", "developer"]);
    f.ok(&["member", "add", "app", "quinn", "developer"]);
    f.ok(&["member", "add", "app", "olga", "owner"]);

    // Through staging: the request creates with a version prod's order
    // would refuse yet, because its staging update puts it on stage.
    dave.ok(&["request", "create", "app", "prod", "--version", "v1", "--reason", "first"]);
    f.wait_version("stage-1", "app", "v1");
    dave.refused(&["request", "pass", "1"], "someone else must pass it as tested");
    quinn.ok(&["request", "send-back", "1", "--reason", "typo on the front page"]);
    dave.ok(&["request", "resubmit", "1", "--version", "v2"]);
    f.wait_version("stage-1", "app", "v2");
    dave.refused(&["request", "pass", "1"], "--self-test allow");
    f.ok(&["env", "update", "app", "prod", "--self-test", "allow"]);
    dave.ok(&["request", "pass", "1"]);
    olga.ok(&["request", "approve", "1"]);
    dave.ok(&["request", "release", "1", "--wait"]);
    assert_eq!(f.version_on("prod-1", "app").as_deref(), Some("v2"));

    // Every action on the request is in the project's trail, read by its
    // owner.
    let entries = audit_of(&olga, "app");
    for action in ["send-back", "resubmit", "pass", "approve", "release"] {
        let route = format!("POST /api/v1/requests/{{id}}/{action}");
        assert!(
            entries.iter().any(|e| e["action"] == route.as_str() && e["outcome"] == "200"),
            "{action} missing from the trail of app: {entries:?}"
        );
    }
    // The refused self-pass is in it too.
    assert!(entries.iter().any(|e| e["action"] == "POST /api/v1/requests/{id}/pass"
        && e["actor"] == "dave"
        && e["outcome"].as_str().unwrap().starts_with("409")));

    // And the web audit page filtered by the project shows the approval and
    // the release.
    crate::web::user(&f, "auditor", true, None);
    let mut web = crate::web::Web::new(&f);
    web.sign_in("auditor", crate::web::PASSWORD);
    let page = web.get("/audit?project=app");
    assert_eq!(page.status, 200);
    for action in ["approve", "release"] {
        assert!(page.body.contains(&format!("/api/v1/requests/{{id}}/{action}")), "{action}: {}", page.body);
    }
}

#[test]
fn owners_read_their_own_projects_trail_and_no_other() {
    let f = Ferry::start();
    f.ok(&["project", "create", "app"]);
    f.ok(&["project", "create", "other"]);
    f.ok(&["env", "create", "app", "prod", "--select", "env=prod"]);
    f.ok(&["env", "create", "other", "prod", "--select", "env=other"]);
    let olga = f.person("olga", &[]);
    let dave = f.person("dave", &[]);
    f.ok(&["member", "add", "app", "olga", "owner"]);
    f.ok(&["member", "add", "other", "olga", "developer"]);
    f.ok(&["member", "add", "app", "dave", "developer"]);

    let mine = audit_of(&olga, "app");
    assert!(mine.iter().any(|e| e["action"] == "POST /api/v1/projects/{project}/environments"), "{mine:?}");
    assert!(mine.iter().all(|e| e["object"].as_str().unwrap().contains("project=app")), "{mine:?}");
    olga.refused(&["audit", "--project", "other"], "needs the owner role");
    olga.refused(&["audit"], "needs the administrator");
    dave.refused(&["audit", "--project", "app"], "needs the owner role");

    // The web interface: the same rule.
    user(&f, "wendy", false, Some(("app", "owner")));
    let mut web = Web::new(&f);
    web.sign_in("wendy", PASSWORD);
    let a = web.get("/projects/app/audit");
    assert_eq!(a.status, 200);
    assert!(a.body.contains("/api/v1/projects/{project}/environments"), "{}", a.body);
    assert_eq!(web.get("/projects/other/audit").status, 403);
    assert_eq!(web.get("/audit").status, 403);
}
