//! Stories for the methods the area stories do not reach, and the test that
//! keeps every method of the contract in the suite.

use ferry_domain::Digest;
use ferry_domain::rollout::{Hold, RolloutPolicy, Step};
use ferry_domain::status::Note;

use super::*;

pub(super) async fn settings_keep_the_first_value_given_and_the_database_answers(db: &dyn Database) {
    assert_eq!(db.get_setting("k").await.unwrap(), None);
    assert_eq!(db.init_setting("k", "first").await.unwrap(), "first");
    assert_eq!(db.init_setting("k", "second").await.unwrap(), "first", "init never replaces");
    db.set_setting("k", "third").await.unwrap();
    assert_eq!(db.get_setting("k").await.unwrap().as_deref(), Some("third"));
    db.ping().await.unwrap();
    if let Some(pool) = db.pool_use() {
        assert!(pool.max >= 1 && pool.in_use + pool.idle <= pool.max, "{pool:?}");
    }
}

pub(super) async fn builds_are_found_by_number_and_keep_their_commit(db: &dyn Database) {
    let p = db.create_project(&project("app"), 1).await.unwrap();
    let other = db.create_project(&project("other"), 1).await.unwrap();
    db.create_build(&build_of(&other), 1).await.unwrap();
    let first = db.create_build(&build_of(&p), 2).await.unwrap();
    let second = db.create_build(&build_of(&p), 3).await.unwrap();
    assert_eq!((first.number, second.number), (1, 2), "numbers are the project's");
    assert_eq!(db.queued_build_count().await.unwrap(), 3);
    assert_eq!(db.build_by_number(&p, 2).await.unwrap().id, second.id);
    assert!(matches!(db.build_by_number(&p, 9).await, Err(StoreError::NotFound(_))));

    let claimed = db.claim_build("s", 4, 1_000).await.unwrap().unwrap();
    let commit = BuildCommit {
        sha: "0123456789abcdef0123456789abcdef01234567".into(),
        branch: Some("main".into()),
        tag: None,
        author: "dev".into(),
        message: "a change".into(),
        committed_at: Some(3),
    };
    db.set_build_commit(claimed.id, &commit).await.unwrap();
    assert_eq!(db.build(claimed.id).await.unwrap().commit, Some(commit));
    assert_eq!(db.queued_build_count().await.unwrap(), 2);
}

pub(super) async fn a_project_holds_only_the_blobs_recorded_for_it(db: &dyn Database) {
    let (p, _, r1, _, _, _) = fixture(db).await;
    let other = db.create_project(&project("other"), 1).await.unwrap();
    let (d1, d2, d3) = (Digest([1; 32]), Digest([2; 32]), Digest([3; 32]));
    db.add_project_blobs(p.id, &[d1, d2]).await.unwrap();
    db.add_project_blobs(p.id, &[d1]).await.unwrap();
    assert_eq!(db.project_blobs_missing(p.id, &[d1, d3, d2, d3]).await.unwrap(), vec![d3]);
    assert_eq!(db.project_blobs_missing(other.id, &[d1]).await.unwrap(), vec![d1], "never another project's");
    assert_eq!(db.release_by_id(r1.id).await.unwrap(), r1);
    assert!(matches!(db.release_by_id(r1.id + 100).await, Err(StoreError::NotFound(_))));
}

pub(super) async fn a_running_rollout_is_listed_peeked_held_and_drained(db: &dyn Database) {
    let (p, e, r1, _, h1, h2) = fixture(db).await;
    let hosts = [h1.clone(), h2.clone()];
    let id = db.create_deployment(rolling(&p, &e, &r1, &hosts, 1), 10).await.unwrap();
    assert_eq!(db.running_deployments().await.unwrap(), vec![id]);
    // Peeking takes no step: the same answer twice, and nothing started.
    let peeked = db.peek_deployment(id, 11).await.unwrap();
    assert_eq!(peeked, Some((Step::StartBatch(0), vec![h1.id])));
    assert_eq!(db.peek_deployment(id, 11).await.unwrap(), peeked);
    assert!(db.deployment_hosts(id).await.unwrap().iter().all(|h| h.state == HostDeployState::Queued));

    let hold = Note::text("waiting for the load balancer");
    db.hold_deployment(id, &hold, 12).await.unwrap();
    db.hold_deployment(id, &hold, 13).await.unwrap();
    assert_eq!(db.deployment(id).await.unwrap().hold, Some(hold.clone()));
    let told = db.deployment_events(id).await.unwrap().iter().filter(|e| e.what == hold).count();
    assert_eq!(told, 1, "a hold is told once, not on every repeat");

    assert!(db.rollout_drained(id).await.unwrap().is_empty());
    db.set_rollout_drained(id, &[h1.id]).await.unwrap();
    assert_eq!(db.rollout_drained(id).await.unwrap(), vec![h1.id]);
    db.set_rollout_drained(id, &[]).await.unwrap();
    assert!(db.rollout_drained(id).await.unwrap().is_empty());

    assert!(matches!(db.advance_deployment(id, 14).await.unwrap(), Advanced::Changed { .. }));
    assert!(matches!(db.peek_deployment(id, 15).await.unwrap(), Some((Step::Wait(Hold::BatchRunning), _))));
    db.control_deployment(id, RolloutControl::Cancel, 16).await.unwrap();
    apply(db, h1.id, &report(Some(&r1), Activity::Idle), 17).await.unwrap();
    drive(db, id, 18).await;
    assert!(db.running_deployments().await.unwrap().is_empty());
    assert_eq!(db.peek_deployment(id, 19).await.unwrap(), None);
}

pub(super) async fn hosts_are_seen_and_rights_and_rollouts_change(db: &dyn Database) {
    let (p, e, _, _, h1, _) = fixture(db).await;
    db.host_seen(h1.id, 50).await.unwrap();
    let seen = db.host("h1").await.unwrap();
    assert!(seen.online);
    assert_eq!(seen.last_seen_at, Some(50));

    let policy = RolloutPolicy {
        strategy: ferry_domain::rollout::Strategy::Rolling { batch: ferry_domain::rollout::BatchSize::Count(2) },
        ..RolloutPolicy::default()
    };
    db.set_environment_rollout(&e, &policy).await.unwrap();
    assert_eq!(db.environment(&p, "prod").await.unwrap().rollout, policy);

    let u = db.create_user(&new_user("ann", false), 1).await.unwrap();
    db.set_user_rights(u.id, true, true).await.unwrap();
    let u = db.user("ann").await.unwrap();
    assert!(u.is_admin && u.production);
    db.set_user_rights(u.id, false, false).await.unwrap();
    let u = db.user("ann").await.unwrap();
    assert!(!u.is_admin && !u.production);
}

pub(super) async fn a_request_reads_back_as_it_was_made(db: &dyn Database) {
    let (p, e, r1, _, _, _) = fixture(db).await;
    let new = request_of(&p, &e, &r1);
    let made = db.create_request(&new, 10).await.unwrap();
    assert_eq!(db.request(made.id).await.unwrap(), made);
    assert!(matches!(db.request(made.id + 100).await, Err(StoreError::NotFound(_))));
}

/// Every method of every area trait is called by some story, so a method
/// added to the contract without a story fails here, naming it.
#[test]
fn every_method_of_the_contract_is_in_the_suite() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let read_dir = |dir: &std::path::Path| -> String {
        let mut all = String::new();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            if entry.path().extension().is_some_and(|e| e == "rs") {
                all.push_str(&std::fs::read_to_string(entry.path()).unwrap());
            }
        }
        all
    };
    let contract = read_dir(&root.join("contract"));
    let suite = read_dir(&root.join("tests"));
    let methods: Vec<&str> = contract
        .split("fn ")
        .skip(1)
        .filter_map(|rest| rest.split('(').next())
        .filter(|name| name.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .collect();
    assert!(methods.len() > 100, "read only {} methods from src/contract", methods.len());
    let missing: Vec<&&str> = methods.iter().filter(|m| !suite.contains(&format!(".{m}("))).collect();
    assert!(missing.is_empty(), "methods of the storage contract no story calls: {missing:?}");
}

/// Every method of every area trait says, in its doc comment, what holds
/// under concurrent callers (a `Concurrency:` paragraph), so a second
/// backend's author never has to read the SQLite code to find out.
#[test]
fn every_method_of_the_contract_states_its_concurrency() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/contract");
    let mut silent = Vec::new();
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap();
        let mut doc = String::new();
        for line in text.lines().map(str::trim) {
            if let Some(d) = line.strip_prefix("///") {
                doc.push_str(d);
                continue;
            }
            let name = line.strip_prefix("async fn ").or_else(|| line.strip_prefix("fn "));
            if let Some(name) = name.and_then(|rest| rest.split('(').next()) {
                seen += 1;
                if !doc.contains("Concurrency:") {
                    silent.push(name.to_string());
                }
            }
            doc.clear();
        }
    }
    assert!(seen > 100, "read only {seen} methods from src/contract");
    assert!(silent.is_empty(), "methods of the storage contract that do not state their concurrency: {silent:?}");
}
