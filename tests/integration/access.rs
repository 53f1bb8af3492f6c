//! Accounts and access (R26): users sign in with `ferry login`, each does
//! what their role allows and is refused the rest with a message naming
//! what they lack; a disabled user's token stops working at once.

use std::os::unix::fs::PermissionsExt;

use crate::harness::{Ferry, Person, write_tree};

#[test]
fn each_role_does_what_it_may_and_is_refused_the_rest() {
    let mut f = Ferry::start();
    f.start_agents(&["prod-1"], "env=prod");
    f.start_agents(&["stage-1"], "env=stage");
    // The administrator's token from the first start keeps working.
    f.ok(&["project", "create", "app"]);
    f.ok(&["env", "create", "app", "prod", "--select", "env=prod", "--production"]);
    f.ok(&["env", "create", "app", "stage", "--select", "env=stage"]);
    let users = [
        ("root", "--admin", "root-password"),
        ("alice", "--production", "alice-password"),
        ("bob", "", "bob-password"),
        ("vic", "", "vic-password"),
    ];
    for (name, flag, password) in users {
        let mut args = vec!["user", "create", name, "--password-stdin"];
        if !flag.is_empty() {
            args.push(flag);
        }
        let out = f.cli_stdin(&args, &format!("{password}\n"));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    f.ok(&["member", "add", "app", "alice", "developer"]);
    f.ok(&["member", "add", "app", "bob", "developer"]);
    f.ok(&["member", "add", "app", "vic", "viewer"]);
    let members = f.ok(&["member", "list", "app"]);
    assert!(members.contains("alice") && members.contains("viewer"), "{members}");

    let [root, alice, bob, vic] = ["root", "alice", "bob", "vic"].map(|n| Person::new(&f, n));
    // A wrong password is refused, and nothing is saved.
    let out = bob.login(&f, "not-bobs-password");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong user name or password"));
    bob.refused(&["status", "app"], "ferry login");
    for (person, password) in [(&root, "root-password"), (&alice, "alice-password"), (&bob, "bob-password")] {
        let out = person.login(&f, password);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(vic.login(&f, "vic-password").status.success());
    let saved = vic.config.join("ferry/credentials.json");
    assert_eq!(std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(alice.ok(&["whoami"]).contains("alice (production)"));

    // Developers upload and deploy outside production.
    let tree = f.dir.path().join("trees/v1");
    write_tree(&tree, "v1", 3);
    bob.ok(&["release", "upload", "app", tree.to_str().unwrap(), "--version", "v1"]);
    bob.ok(&["deploy", "app", "stage", "--version", "v1", "--wait"]);
    // Production needs the production right.
    let prod_refusal = "deploying to production environment 'prod' of project 'app' needs the production right";
    bob.refused(&["deploy", "app", "prod", "--version", "v1"], prod_refusal);
    bob.refused(&["rollback", "app", "prod", "--to", "v1"], prod_refusal);
    // Rights change with `user set`, from the next request on.
    f.ok(&["user", "set", "bob", "--production", "true"]);
    bob.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);
    f.ok(&["user", "set", "bob", "--production", "false"]);
    bob.refused(&["deploy", "app", "prod", "--version", "v1"], prod_refusal);
    root.refused(&["user", "set", "root", "--admin", "false"], "you cannot take the administrator flag from yourself");
    f.fails(&["user", "set", "bob"]);
    alice.ok(&["deploy", "app", "prod", "--version", "v1", "--wait"]);
    f.wait_version("prod-1", "app", "v1");
    // Managing the project is for owners; users and projects for the administrator.
    bob.refused(&["env", "update", "app", "prod", "--production", "false"], "needs the owner role in the project");
    bob.refused(&["member", "add", "app", "vic", "owner"], "managing project 'app' needs the owner role");
    // An owner without the production right cannot make production environments.
    f.ok(&["member", "add", "app", "vic", "owner"]);
    vic.refused(
        &["env", "create", "app", "live", "--select", "env=live", "--production"],
        "changing whether environment 'live' is production needs the production right",
    );
    vic.ok(&["env", "create", "app", "qa", "--select", "env=qa"]);
    f.ok(&["member", "add", "app", "vic", "viewer"]);
    bob.refused(&["var", "set", "app", "KEY", "value"], "needs the owner role in the project (you are a developer)");
    alice.refused(&["user", "list"], "managing users needs the administrator");
    alice.refused(&["project", "create", "other"], "creating projects needs the administrator");
    root.ok(&["project", "create", "other"]);
    assert!(root.ok(&["user", "list"]).contains("bob"));

    // Everyone sees the projects they are a member of, and only those.
    let listed = |who: &Person| -> Vec<String> {
        let out: serde_json::Value = serde_json::from_str(&who.ok(&["project", "list", "-o", "json"])).unwrap();
        out.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(listed(&root), ["app", "other"]);
    assert_eq!(listed(&bob), ["app"]);
    // Viewers read and nothing more.
    assert!(vic.ok(&["status", "app"]).contains("prod-1"));
    vic.ok(&["deployments", "app"]);
    vic.refused(
        &["deploy", "app", "stage", "--version", "v1"],
        "needs the developer role in the project (you are a viewer)",
    );
    vic.refused(&["release", "upload", "app", tree.to_str().unwrap(), "--version", "v2"], "needs the developer role");

    // Personal tokens: made, used, listed, revoked.
    let token = alice.ok(&["token", "create", "ci"]).trim().to_string();
    let whoami = f.cli_token(&token, &["whoami"]);
    assert!(String::from_utf8_lossy(&whoami.stdout).contains("alice"));
    let list = alice.ok(&["token", "list", "-o", "json"]);
    let tokens: serde_json::Value = serde_json::from_str(&list).unwrap();
    let ci = tokens.as_array().unwrap().iter().find(|t| t["name"] == "ci").unwrap()["id"].as_i64().unwrap();
    alice.ok(&["token", "revoke", &ci.to_string()]);
    let after = f.cli_token(&token, &["whoami"]);
    assert!(!after.status.success());
    assert!(String::from_utf8_lossy(&after.stderr).contains("unknown or revoked API token"));

    // A disabled user's token stops working at once, and so does signing in.
    f.ok(&["user", "disable", "bob"]);
    bob.refused(&["status", "app"], "user 'bob' is disabled");
    let out = bob.login(&f, "bob-password");
    assert!(String::from_utf8_lossy(&out.stderr).contains("user 'bob' is disabled"));
}

#[test]
fn repeated_failed_sign_ins_lock_the_account_until_an_administrator_lifts_it() {
    let f = Ferry::start();
    let eve = f.person("eve", &[]);
    let mut answers = Vec::new();
    for _ in 0..5 {
        let out = eve.login(&f, "guess-guess");
        answers.push(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    // The fifth failure locks the account; then even the right password is
    // refused, with the same answer (it must not tell that 'eve' exists).
    let out = eve.login(&f, "eve-password");
    answers.push(String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(!out.status.success());
    for answer in &answers {
        assert!(answer.contains("wrong user name or password, or the account refuses passwords"), "{answer}");
    }
    // The token from before still works: the lock stops guessing, not work.
    assert!(eve.ok(&["whoami"]).contains("eve"));
    // An unknown user gets the same answer as a wrong password, and no lock.
    let ghost = Person::new(&f, "ghost");
    for _ in 0..6 {
        let out = ghost.login(&f, "guess-guess");
        let answer = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(answer, answers[0].replace("eve", "ghost"), "unknown and locked users look alike");
    }
    f.ok(&["user", "enable", "eve"]);
    assert!(eve.login(&f, "eve-password").status.success());
    let failed = f.json(&["audit", "--user", "eve"]);
    let refusals =
        failed.as_array().unwrap().iter().filter(|e| e["outcome"].as_str().unwrap().starts_with("401")).count();
    assert!(refusals >= 6, "every refused sign-in is on record: {failed}");
}
