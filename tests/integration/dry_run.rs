//! `ferry deploy|rollback --dry-run`: the plan a deployment would follow,
//! from the same planning, with each host's download; nothing changes, and
//! it is refused as the real one would be, with the same exit status.

use std::path::Path;

use serde_json::Value;

use crate::harness::Ferry;

/// Every entry under a host's `app/releases`, to see that no agent heard of a dry run.
fn releases_on(f: &Ferry, host: &str) -> Vec<String> {
    let dir = f.root_of(host).join("app/releases");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn hosts_of(batch: &Value) -> Vec<String> {
    batch["hosts"].as_array().unwrap().iter().map(|h| h["host"].as_str().unwrap().to_string()).collect()
}

fn planned<'a>(plan: &'a Value, host: &str) -> &'a Value {
    plan["batches"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["hosts"].as_array().unwrap())
        .find(|h| h["host"] == host)
        .unwrap_or_else(|| panic!("{host} is not in the plan: {plan}"))
}

fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

#[test]
fn a_dry_run_shows_the_real_plan_and_downloads_and_changes_nothing() {
    let mut f = Ferry::start();
    f.start_agents(&["web-1", "web-2", "web-3", "web-4", "web-5"], "role=web");
    f.project_app();
    f.upload("app", "v1");
    let v2_tree = f.upload("app", "v2");
    // web-1 and web-2 run v1; web-3 and web-4 have nothing yet; web-5 goes offline.
    f.ok(&["deploy", "app", "prod", "--version", "v1", "--hosts", "web-1,web-2", "--wait"]);
    f.agent("web-5").kill();
    f.wait_online("web-5", false);

    let before: Vec<Vec<String>> = (1..=5).map(|i| releases_on(&f, &format!("web-{i}"))).collect();
    let deployments_before = f.json(&["deployments", "app"]).as_array().unwrap().len();
    let desired = |f: &Ferry| -> Vec<String> {
        let status = f.json(&["status", "app"]);
        status["environments"][0]["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["desired_version"].to_string())
            .collect()
    };
    let desired_before = desired(&f);
    assert_eq!(desired_before.len(), 5, "every host is in the status");
    let args =
        ["deploy", "app", "prod", "--version", "v2", "--strategy", "rolling", "--batch", "2", "--offline", "skip"];
    let mut dry = args.to_vec();
    dry.push("--dry-run");
    let plan = f.json(&dry);

    // The batches in order, the offline host named as skipped.
    let batches = plan["batches"].as_array().unwrap();
    assert_eq!(batches.len(), 2, "{plan}");
    assert_eq!(hosts_of(&batches[0]), ["web-1", "web-2"]);
    assert_eq!(hosts_of(&batches[1]), ["web-3", "web-4"]);
    assert_eq!(batches[1]["batch"], 2);
    assert_eq!(plan["skipped"].as_array().unwrap().len(), 1, "{plan}");
    assert_eq!(plan["skipped"][0]["host"], "web-5");
    assert_eq!(plan["version"], "v2");
    assert!(plan["rollout"].as_str().unwrap().starts_with("rolling"), "{plan}");

    // A fresh host downloads the whole release; one that runs v1 only what
    // differs (the VERSION file: the rest is the same content).
    let releases = f.json(&["release", "list", "app"]);
    let v2 = releases.as_array().unwrap().iter().find(|r| r["version"] == "v2").unwrap();
    let whole = v2["total_size"].as_u64().unwrap();
    let fresh = planned(&plan, "web-3");
    assert_eq!(fresh["download_bytes"].as_u64(), Some(whole), "{fresh}");
    assert_eq!(fresh["download_files"].as_u64(), v2["file_count"].as_u64(), "{fresh}");
    assert_eq!(fresh["from_version"], Value::Null);
    let updated = planned(&plan, "web-1");
    assert_eq!(updated["download_bytes"].as_u64(), Some(file_size(&v2_tree.join("VERSION"))), "{updated}");
    assert_eq!(updated["download_files"], 1);
    assert_eq!(updated["from_version"], "v1");
    assert_eq!(updated["reused_bytes"].as_u64(), Some(whole - file_size(&v2_tree.join("VERSION"))));

    // People get the same as a table.
    let text = f.ok(&dry);
    assert!(text.starts_with("dry run: nothing was changed"), "{text}");
    assert!(text.contains("offline, would be skipped: web-5"), "{text}");
    assert!(text.contains("2/2") && text.contains("web-4") && text.contains("v1 -> v2"), "{text}");

    // Nothing changed: no deployment, no lock, no agent heard of it, no audit entry.
    assert_eq!(f.json(&["deployments", "app"]).as_array().unwrap().len(), deployments_before);
    assert_eq!(f.json(&["locks", "app"]).as_array().map_or(0, Vec::len), 0, "no lock taken");
    let after: Vec<Vec<String>> = (1..=5).map(|i| releases_on(&f, &format!("web-{i}"))).collect();
    assert_eq!(before, after, "no host's releases changed");
    assert_eq!(desired(&f), desired_before, "no host was given anything to run");
    let trail = f.ok(&["audit", "--limit", "1000", "-o", "json"]);
    assert!(!trail.contains("deployments/plan"), "a dry run is a read, not in the trail");

    // The real deployment with the same options does what the plan said.
    f.ok(&args.iter().copied().chain(["--wait"]).collect::<Vec<_>>());
    let d = &f.json(&["deployments", "app"])[0];
    let real = f.json(&["deployment", "show", &d["id"].to_string()]);
    for h in real["hosts"].as_array().unwrap() {
        let name = h["host"].as_str().unwrap();
        if name == "web-5" {
            assert_eq!(h["state"], "skipped");
            continue;
        }
        let p = planned(&plan, name);
        let batch_of_plan = batches.iter().find(|b| hosts_of(b).iter().any(|n| n == name)).unwrap()["batch"].clone();
        assert_eq!(h["batch"], batch_of_plan, "{name}'s batch");
        assert_eq!(h["bytes_downloaded"], p["download_bytes"], "{name} downloaded what the plan said");
    }

    // A rollback's dry run: each host back to what it ran, a relink.
    let back = f.json(&["rollback", "app", "prod", "--dry-run"]);
    assert_eq!(back["kind"], "rollback");
    let web1 = planned(&back, "web-1");
    assert_eq!((web1["from_version"].as_str(), web1["version"].as_str()), (Some("v2"), Some("v1")));
    assert_eq!(web1["download_bytes"], 0, "v1 is still on web-1: {web1}");
    let notes = back["notes"].to_string();
    assert!(notes.contains("web-3 has no earlier"), "{notes}");
    assert_eq!(f.version_on("web-1", "app").as_deref(), Some("v2"), "the rollback's dry run changed nothing");
}

#[test]
fn a_dry_run_is_refused_as_the_deployment_would_be() {
    let mut f = Ferry::start();
    // Two hosts, so that a deployment one host at a time can be held running.
    f.start_agents(&["web-1", "web-2"], "role=web");
    f.project_app();
    f.upload("app", "v1");
    f.upload("app", "v2");
    let dry = ["deploy", "app", "prod", "--version", "v1", "--dry-run"];
    f.ok(&dry);

    // A freeze: the refusal's words and status (8).
    f.ok(&["lock", "app", "prod", "--reason", "release night", "--for", "1h"]);
    let out = f.cli(&dry);
    assert_eq!(out.status.code(), Some(8), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("release night"));
    f.ok(&["unlock", "app", "prod"]);

    // No right: a viewer (5).
    let vic = f.person("vic", &[]);
    f.ok(&["member", "add", "app", "vic", "viewer"]);
    let out = vic.run(&dry, None);
    assert_eq!(out.status.code(), Some(5), "{}", String::from_utf8_lossy(&out.stderr));
    // A developer may dry-run where she may deploy, and not in production.
    let dev = f.person("dev", &[]);
    f.ok(&["member", "add", "app", "dev", "developer"]);
    assert!(dev.ok(&dry).contains("dry run: nothing was changed"));
    f.ok(&["env", "update", "app", "prod", "--production", "true"]);
    let out = dev.run(&dry, None);
    assert_eq!(out.status.code(), Some(5), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("production"));

    // The environment's lock: a deployment still running (8).
    f.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);
    let held = f.deploy_held("v2");
    let out = f.cli(&["deploy", "app", "prod", "--version", "v2", "--dry-run"]);
    assert_eq!(out.status.code(), Some(8), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("still running"));
    f.ok(&["deployment", "cancel", &held.to_string()]);

    // An unknown version (7); no deployment was recorded by any dry run.
    let out = f.cli(&["deploy", "app", "prod", "--version", "v9", "--dry-run"]);
    assert_eq!(out.status.code(), Some(7), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(f.json(&["deployments", "app"]).as_array().unwrap().len(), 2);
}

#[test]
fn a_dry_run_keeps_the_order_of_environments() {
    let mut f = Ferry::start();
    f.start_agents(&["stage-1"], "env=stage");
    f.start_agents(&["prod-1"], "env=prod");
    f.ok(&["project", "create", "app"]);
    f.ok(&["env", "create", "app", "stage", "--select", "env=stage"]);
    f.ok(&["env", "create", "app", "prod", "--select", "env=prod", "--after", "stage"]);
    f.upload("app", "v1");

    // Never on stage: refused as the deploy is (8), naming the order.
    let out = f.cli(&["deploy", "app", "prod", "--version", "v1", "--dry-run"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(8), "{stderr}");
    assert!(stderr.contains("comes after 'stage'"), "{stderr}");

    // Skipping it says so in the plan, and records nothing.
    let args = ["deploy", "app", "prod", "--version", "v1", "--skip-promotion", "--reason", "hotfix", "--dry-run"];
    let plan = f.json(&args);
    assert_eq!(planned(&plan, "prod-1")["version"], "v1");
    assert!(plan["notes"].to_string().contains("hotfix"), "{plan}");
    // The same note as a code, for a reader of another language.
    let code = &plan["note_codes"][0];
    assert_eq!((code["code"].as_str(), code["reason"].as_str()), (Some("promotion_skipped"), Some("hotfix")), "{plan}");
    assert!(f.json(&["deployments", "app"]).as_array().unwrap().is_empty(), "nothing was recorded");
}
