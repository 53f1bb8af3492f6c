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
