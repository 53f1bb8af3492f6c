//! The fleet can change: hosts removed and enrolled again, re-tagged hosts,
//! environments whose selector changes, variables for hosts not enrolled yet.

use std::time::Duration;

use serde_json::json;

use crate::harness::{Ferry, wait_until};
use crate::service::upload_with;
use crate::trust::{agent_token, post_json};

fn host_names(f: &Ferry) -> Vec<String> {
    f.hosts().iter().map(|h| h["name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn a_removed_host_enrols_again_under_its_name_and_its_old_agent_is_refused() {
    let mut f = Ferry::fleet_on_v1(&["web-1", "web-2"]);
    let old_token = agent_token(&f, "web-2");
    let (status, _) = post_json(&f, &old_token, "/api/v1/agent/blobs", &json!({"digests": []}));
    assert_eq!(status, 200, "the credential works before the removal");

    let out = f.ok(&["host", "remove", "web-2"]);
    assert!(out.contains("removed host web-2"), "{out}");
    assert_eq!(host_names(&f), ["web-1"]);
    let (status, text) = post_json(&f, &old_token, "/api/v1/agent/blobs", &json!({"digests": []}));
    assert_eq!(status, 401, "the old agent's credential is refused: {text}");
    let err = f.fails(&["host", "remove", "web-2"]);
    assert!(err.contains("host 'web-2'") && err.contains("not found"), "{err}");

    // History stays readable and names the removed host.
    let d = f.json(&["deployment", "show", "1"]);
    let names: Vec<&str> = d["hosts"].as_array().unwrap().iter().map(|h| h["host"].as_str().unwrap()).collect();
    assert!(names.iter().any(|n| n.starts_with("web-2~")), "{names:?}");
    assert!(f.ok(&["audit"]).contains("/api/v1/hosts/{name}"), "the removal is audited");

    // The host is wiped and enrols again under its name with a new agent.
    f.agent("web-2").kill();
    std::fs::remove_dir_all(f.root_of("web-2")).unwrap();
    f.start_agent("web-2", "role=web");
    f.wait_online("web-2", true);
    assert_ne!(agent_token(&f, "web-2"), old_token);
    f.wait_version("web-2", "app", "v1");
    f.ok(&["deploy", "app", "prod", "--version", "v2", "--wait"]);
    assert_eq!(f.version_on("web-2", "app").as_deref(), Some("v2"));

    // Only the administrator removes hosts.
    let dev = f.person("dev", &[]);
    dev.refused(&["host", "remove", "web-1"], "the administrator");
}

#[test]
fn a_retagged_host_is_deployed_to_in_its_new_environment() {
    let f = Ferry::fleet_on_v1(&["web-1", "web-2"]);
    f.ok(&["env", "create", "app", "staging", "--select", "role=stage"]);
    f.ok(&["host", "tag", "web-2", "role=stage"]);
    // Until now every deploy there was refused: web-2 "already runs app for prod".
    f.ok(&["deploy", "app", "staging", "--version", "v2", "--wait"]);
    assert_eq!(f.version_on("web-2", "app").as_deref(), Some("v2"));
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v1"));
    let d = f.json(&["deployment", "show", "2"]);
    assert_eq!(d["hosts"].as_array().unwrap().len(), 1);
    // Prod no longer counts it.
    f.ok(&["deploy", "app", "prod", "--version", "v2", "--wait"]);
    assert_eq!(f.json(&["deployment", "show", "3"])["hosts"].as_array().unwrap().len(), 1);

    // Back into prod: it takes prod's release at once, without a deploy.
    f.ok(&["deploy", "app", "staging", "--version", "v1", "--wait"]);
    f.ok(&["host", "tag", "web-2", "role=web"]);
    f.wait_version("web-2", "app", "v2");
}

#[test]
fn env_update_select_moves_hosts_within_the_project_scope() {
    let mut f = Ferry::start();
    f.start_agents(&["web-1"], "role=web,tier=1,dc=a");
    f.start_agents(&["web-2"], "role=web,tier=1,dc=b");
    f.ok(&["project", "create", "app"]);
    f.ok(&["project", "hosts", "app", "role=web"]);
    f.ok(&["env", "create", "app", "prod", "--select", "role=web,tier=1,dc=a"]);
    f.ok(&["env", "create", "app", "staging", "--select", "role=web,tier=2"]);
    f.upload("app", "v1");
    f.upload("app", "v2");
    f.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);
    assert_eq!(f.version_on("web-2", "app"), None);

    // Outside the project's hosts, or overlapping another environment: refused, nothing changed.
    let err = f.fails(&["env", "update", "app", "prod", "--select", "role=db"]);
    assert!(err.contains("outside project 'app''s hosts"), "{err}");
    let err = f.fails(&["env", "update", "app", "prod", "--select", "role=web"]);
    assert!(err.contains("overlaps environment 'staging'"), "{err}");
    assert_eq!(f.json(&["env", "list", "app"])[0]["selector"], "dc=a,role=web,tier=1");

    let out = f.ok(&["env", "update", "app", "prod", "--select", "role=web,tier=1", "--offline", "wait"]);
    assert!(out.contains("selects hosts with role=web,tier=1; offline targets: wait"), "{out}");
    // web-2 is prod's now: it takes prod's release, and deploys include it.
    f.wait_version("web-2", "app", "v1");
    f.ok(&["deploy", "app", "prod", "--version", "v2", "--wait"]);
    assert_eq!(f.version_on("web-2", "app").as_deref(), Some("v2"));
    assert_eq!(f.json(&["deployment", "show", "2"])["hosts"].as_array().unwrap().len(), 2);
    let dev = f.person("dev", &[]);
    dev.refused(&["env", "update", "app", "prod", "--select", "role=web,dc=a"], "the owner role");
}

#[test]
fn a_variable_for_a_host_not_enrolled_yet_reaches_it_when_it_joins() {
    let mut f = Ferry::start();
    f.start_agents(&["web-1"], "role=web");
    f.project_app();
    let recipe = "[hooks]\nafter_activate = \"echo ${GREETING:-none} > $FERRY_SHARED_DIR/greeting\"\n";
    upload_with(&f, "v1", recipe, &[]);
    f.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);

    f.ok(&["var", "set", "app", "--host", "web-9", "GREETING", "hello web-9"]);
    let vars = f.json(&["var", "list", "app"]);
    assert_eq!(vars[0]["host"], "web-9");
    let err = f.fails(&["var", "set", "app", "--host", "bad name", "X", "1"]);
    assert!(err.contains("--host"), "{err}");

    f.start_agents(&["web-9"], "role=web");
    let greeting = f.root_of("web-9").join("app/shared/greeting");
    wait_until(Duration::from_secs(30), "web-9's hook to write its greeting", || greeting.is_file());
    assert_eq!(std::fs::read_to_string(&greeting).unwrap().trim(), "hello web-9");
    let other = std::fs::read_to_string(f.root_of("web-1").join("app/shared/greeting")).unwrap();
    assert_eq!(other.trim(), "none", "another host's variable never reaches web-1");
}

#[test]
fn deleting_an_environment_or_a_project_keeps_their_history_readable() {
    let mut f = Ferry::fleet_on_v1(&["web-1"]);
    f.start_agents(&["stage-1", "stage-2"], "role=stage");
    f.ok(&["env", "create", "app", "staging", "--select", "role=stage"]);
    f.ok(&["env", "create", "app", "live", "--select", "role=live", "--production"]);
    f.ok(&["deploy", "app", "staging", "--version", "v1", "--wait"]);
    // Holds the environment: one host at a time, an hour between them.
    f.ok(&["deploy", "app", "staging", "--version", "v2", "--strategy", "one-at-a-time", "--pause", "1h"]);
    let running = f.json(&["deployments", "app"])[0]["id"].as_i64().unwrap();

    // An owner without the production right deletes staging, not live.
    let olga = f.person("olga", &[]);
    f.ok(&["member", "add", "app", "olga", "owner"]);
    olga.refused(&["env", "delete", "app", "live"], "the production right");
    let err = f.fails(&["env", "delete", "app", "staging"]);
    assert!(err.contains(&format!("running deployment ({running})")), "{err}");
    f.ok(&["deployment", "cancel", &running.to_string()]);
    wait_until(Duration::from_secs(20), "the cancel", || {
        f.json(&["deployment", "show", &running.to_string()])["status"] == "canceled"
    });
    let out = olga.ok(&["env", "delete", "app", "staging"]);
    assert!(out.contains("deleted environment app/staging"), "{out}");
    let envs: Vec<String> =
        f.json(&["env", "list", "app"]).as_array().unwrap().iter().map(|e| e["name"].to_string()).collect();
    assert_eq!(envs, ["\"prod\"", "\"live\""]);
    let err = f.fails(&["deploy", "app", "staging", "--version", "v2"]);
    assert!(err.contains("environment 'staging'") && err.contains("not found"), "{err}");
    let err = f.fails(&["env", "create", "app", "staging", "--select", "role=stage"]);
    assert!(err.contains("was deleted; its name stays taken"), "{err}");
    assert_eq!(f.json(&["deployment", "show", &running.to_string()])["env"], "staging");
    assert!(f.version_on("stage-1", "app").is_some(), "its hosts keep what they run");

    // The project: owners change it; only the administrator deletes it.
    let out = olga.ok(&["project", "update", "app", "--keep-releases", "3"]);
    assert!(out.contains("keeps 3 releases"), "{out}");
    olga.refused(&["project", "update", "app", "--repo", "file:///etc"], "the administrator");
    let err = f.fails(&["project", "update", "app", "--keep-releases", "0"]);
    assert!(err.contains("between 1 and 100"), "{err}");
    olga.refused(&["project", "delete", "app"], "the administrator");
    let deployments_before = f.json(&["deployments", "app"]);
    f.ok(&["project", "delete", "app"]);
    assert!(f.json(&["project", "list"]).as_array().unwrap().is_empty());
    let err = f.fails(&["deploy", "app", "prod", "--version", "v2"]);
    assert!(err.contains("project 'app'") && err.contains("not found"), "{err}");
    let err = f.fails(&["project", "create", "app"]);
    assert!(err.contains("was deleted; its name stays taken"), "{err}");
    // History: deployments by project and by id, releases, the audit trail;
    // members keep reading it.
    assert_eq!(f.json(&["deployments", "app"]), deployments_before);
    let read: serde_json::Value = serde_json::from_str(&olga.ok(&["deployments", "app", "-o", "json"])).unwrap();
    assert_eq!(read.as_array().unwrap().len(), 3);
    assert_eq!(f.json(&["deployment", "show", "1"])["status"], "succeeded");
    assert_eq!(f.json(&["releases", "app"]).as_array().unwrap().len(), 2);
    let audit = f.ok(&["audit"]);
    assert!(audit.contains("DELETE /api/v1/projects/{project}"), "{audit}");
    assert!(audit.contains("DELETE /api/v1/projects/{project}/environments/{env}"), "{audit}");
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v1"), "hosts keep what they run");
}
