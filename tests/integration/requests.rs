//! Release requests (R24), the workflow of the field reports: a developer
//! asks, staging is updated, a tester sends it back, the developer fixes it
//! and staging is updated again, the tester passes it, an approver (never
//! the requester) approves, the requester releases it. Rollbacks of the
//! guarded environment go through a request too, unless someone with the
//! production right calls an emergency.

use serde_json::Value;

use crate::harness::{Ferry, Person};

/// Runs `ferry request show ID -o json` as `who`.
fn request(who: &Person, id: &str) -> Value {
    serde_json::from_str(&who.ok(&["request", "show", id, "-o", "json"])).unwrap()
}

/// A project `app` with `stage` (one host) and `prod` (two hosts), prod
/// guarded: production, approval required, tested on stage first. dave and
/// quinn are developers, alice a developer with the production right.
fn guarded_app() -> (Ferry, [Person; 3]) {
    let mut f = Ferry::start();
    f.start_agents(&["stage-1"], "env=stage");
    f.start_agents(&["prod-1", "prod-2"], "env=prod");
    f.ok(&["project", "create", "app"]);
    f.ok(&["env", "create", "app", "stage", "--select", "env=stage"]);
    f.ok(&["env", "create", "app", "prod", "--select", "env=prod", "--production", "--require-approval"]);
    let set = f.ok(&["env", "update", "app", "prod", "--staging", "stage"]);
    assert!(set.contains("requests are tested on stage first"), "{set}");
    for v in ["v1", "v2", "v3"] {
        f.upload("app", v);
    }
    let people = [("dave", &[][..]), ("quinn", &[][..]), ("alice", &["--production"][..])]
        .map(|(name, flags)| f.person(name, flags));
    for p in &people {
        f.ok(&["member", "add", "app", p.name, "developer"]);
    }
    (f, people)
}

#[test]
fn a_release_goes_through_staging_testing_and_approval() {
    let (f, [dave, quinn, alice]) = guarded_app();
    // Straight to a guarded environment is refused, naming the way.
    dave.refused(&["deploy", "app", "prod", "--version", "v1"], "needs the production right");
    alice.refused(&["deploy", "app", "prod", "--version", "v1"], "requires an approved release request: ferry request");
    dave.refused(&["request", "create", "app", "prod", "--version", "v1", "--reason", " "], "give a reason");
    dave.refused(&["request", "create", "app", "prod", "--version", "v9", "--reason", "x"], "v9");

    // Asked for: staging runs it at once, and testers see it in their inbox.
    let created = dave.ok(&["request", "create", "app", "prod", "--version", "v1", "--reason", "new checkout"]);
    assert!(created.contains("request 1: release v1 to app/prod, testing"), "{created}");
    f.wait_version("stage-1", "app", "v1");
    assert_eq!(f.version_on("prod-1", "app"), None, "production is untouched");
    let inbox: Value = serde_json::from_str(&quinn.ok(&["request", "list", "--waiting", "-o", "json"])).unwrap();
    assert_eq!(inbox.as_array().unwrap().len(), 1, "{inbox}");
    // Not in the approvers' inbox yet, and not approvable.
    alice.refused(&["request", "approve", "1"], "request is testing: it cannot be approved");

    // Sent back; the developer resubmits a fixed version; staging follows.
    quinn.refused(&["request", "send-back", "1", "--reason", ""], "give a reason");
    quinn.ok(&["request", "send-back", "1", "--reason", "checkout button missing"]);
    assert_eq!(request(&dave, "1")["state"], "sent_back");
    quinn.refused(&["request", "resubmit", "1", "--version", "v2"], "only the requester");
    dave.ok(&["request", "resubmit", "1", "--version", "v2", "--note", "button restored"]);
    f.wait_version("stage-1", "app", "v2");
    quinn.ok(&["request", "pass", "1"]);
    assert_eq!(request(&dave, "1")["state"], "awaiting_approval");

    // Approvers: never the requester; for production, the production right.
    dave.refused(&["request", "approve", "1"], "needs the production right");
    quinn.refused(&["request", "approve", "1"], "needs the production right");
    let inbox: Value = serde_json::from_str(&alice.ok(&["request", "list", "--waiting", "-o", "json"])).unwrap();
    assert_eq!(inbox[0]["id"], 1, "{inbox}");
    alice.ok(&["request", "approve", "1", "--note", "go"]);
    alice.refused(&["request", "reject", "1", "--reason", "late"], "request is approved: it cannot be rejected");

    // Only the requester releases it; it rolls out to every prod host.
    quinn.refused(&["request", "release", "1"], "only the requester");
    let released = dave.ok(&["request", "release", "1", "--wait"]);
    assert!(released.contains("succeeded"), "{released}");
    for host in ["prod-1", "prod-2"] {
        assert_eq!(f.version_on(host, "app").as_deref(), Some("v2"));
    }
    crate::harness::wait_until(std::time::Duration::from_secs(10), "request 1 to be done", || {
        request(&dave, "1")["state"] == "done"
    });

    // Who did what when, in order.
    let shown = request(&dave, "1");
    let steps: Vec<(String, String)> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["actor"].as_str().unwrap().to_string(), e["action"].as_str().unwrap().to_string()))
        .collect();
    let expected = [
        ("dave", "create"),
        ("ferry", "staging"),
        ("quinn", "send-back"),
        ("dave", "resubmit"),
        ("ferry", "staging"),
        ("quinn", "pass"),
        ("alice", "approve"),
        ("dave", "release"),
        ("ferry", "deployment"),
        ("ferry", "succeed"),
    ];
    let expected: Vec<(String, String)> = expected.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    assert_eq!(steps, expected);
    assert_eq!(shown["history"][2]["note"], "checkout button missing");
    let text = dave.ok(&["request", "show", "1"]);
    assert!(text.contains("sent_back -> testing") && text.contains("waiting for: nothing: it is closed"), "{text}");
    // Its deployments: two staging updates and the release.
    let envs: Vec<&str> = shown["deployments"].as_array().unwrap().iter().map(|d| d["env"].as_str().unwrap()).collect();
    assert_eq!(envs, ["prod", "stage", "stage"]);
    dave.refused(&["request", "withdraw", "1"], "request is done: it cannot be withdrawn (that is final)");
}

#[test]
fn rollbacks_of_a_guarded_environment_need_a_request_or_an_emergency() {
    let (f, [dave, quinn, alice]) = guarded_app();
    f.ok(&["env", "update", "app", "prod", "--staging", "none"]);
    // Without staging, a request waits for its approval at once.
    for (version, reason) in [("v1", "first"), ("v2", "second")] {
        let out = dave.ok(&["request", "create", "app", "prod", "--version", version, "--reason", reason]);
        assert!(out.contains("awaiting_approval"), "{out}");
        let id = if version == "v1" { "1" } else { "2" };
        alice.ok(&["request", "approve", id]);
        dave.ok(&["request", "release", id, "--wait"]);
    }
    f.wait_version("prod-2", "app", "v2");

    // A plain rollback is refused; a rollback request goes back to v1.
    dave.refused(&["rollback", "app", "prod"], "needs the production right");
    alice.refused(&["rollback", "app", "prod"], "requires an approved release request");
    let asked = dave.ok(&["request", "create", "app", "prod", "--rollback", "--reason", "v2 is slow"]);
    assert!(asked.contains("request 3: rollback v1 to app/prod, awaiting_approval"), "{asked}");
    quinn.refused(&["request", "pass", "3"], "a rollback request has no version to test");
    alice.ok(&["request", "approve", "3"]);
    dave.ok(&["request", "release", "3", "--wait"]);
    for host in ["prod-1", "prod-2"] {
        assert_eq!(f.version_on(host, "app").as_deref(), Some("v1"));
    }

    // Rejected and withdrawn requests are closed.
    // Nobody approves their own request, not even with the production right.
    alice.ok(&["request", "create", "app", "prod", "--version", "v3", "--reason", "third"]);
    alice.refused(&["request", "approve", "4"], "you created this request: someone else must approve it");
    alice.refused(&["request", "reject", "4", "--reason", "x"], "withdraw it instead");
    f.ok(&["request", "reject", "4", "--reason", "not this week"]);
    alice.refused(&["request", "release", "4"], "request is rejected");
    dave.ok(&["request", "create", "app", "prod", "--version", "v3", "--reason", "third again"]);
    dave.ok(&["request", "withdraw", "5"]);
    let closed: Value =
        serde_json::from_str(&dave.ok(&["request", "list", "app", "--state", "rejected,withdrawn", "-o", "json"]))
            .unwrap();
    assert_eq!(closed.as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect::<Vec<_>>(), [5, 4]);

    // A release that waits between batches ...
    f.ok(&["env", "set-rollout", "app", "prod", "--strategy", "one-at-a-time", "--approve-each-batch"]);
    dave.ok(&["request", "create", "app", "prod", "--version", "v3", "--reason", "fourth"]);
    alice.ok(&["request", "approve", "6"]);
    dave.ok(&["request", "release", "6"]);
    crate::harness::wait_until(std::time::Duration::from_secs(20), "the first batch of request 6", || {
        request(&dave, "6")["deployments"][0]["hold"].as_str().is_some_and(|h| h.contains("promote"))
    });

    // ... when minutes matter: an emergency rollback by someone with the
    // production right skips the approval, takes over, and is flagged and
    // recorded; the request it took over from fails at once.
    dave.refused(&["rollback", "app", "prod", "--emergency"], "needs the production right");
    let out = alice.ok(&["rollback", "app", "prod", "--to", "v2", "--emergency", "--wait"]);
    assert!(out.contains("EMERGENCY"), "{out}");
    f.wait_version("prod-1", "app", "v2");
    f.wait_version("prod-2", "app", "v2");
    let taken_over = request(&dave, "6");
    assert_eq!(taken_over["state"], "failed", "{taken_over}");
    let last = taken_over["history"].as_array().unwrap().last().unwrap().clone();
    assert!(last["note"].as_str().unwrap().contains("an emergency rollback took over"), "{last}");
    let deployments = f.json(&["deployments", "app"]);
    let emergency = deployments.as_array().unwrap().iter().find(|d| d["emergency"] == true).expect("flagged");
    assert_eq!(emergency["created_by"], "alice");
    let audit = f.json(&["audit", "--user", "alice"]);
    let recorded = audit.as_array().unwrap().iter().any(|e| {
        let text = e.to_string();
        text.contains("/deployments") && text.contains("\\\"emergency\\\":true")
    });
    assert!(recorded, "the emergency is in the audit trail: {audit}");
}
