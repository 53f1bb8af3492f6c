//! Stories for the contract's concurrency words: callers racing on separate
//! connections of one database. Each runs its calls at once (`tokio::join!`
//! polls them together, and a pooled backend runs each on its own
//! connection), then checks the outcome the contract names: "exactly one
//! caller wins", "serialised", "idempotent". A backend that only passes the
//! one-caller stories fails here.

use super::*;

/// Build numbers are handed out once each, in order, however many callers
/// ask at once; each queued build is claimed by exactly one claimer; one of
/// two callers ends a build.
pub(super) async fn racing_builds_get_distinct_numbers_and_one_claimer_each(db: &dyn Database) {
    let p = db.create_project(&project("app"), 1).await.unwrap();
    let new = build_of(&p);
    let (a, b, c, d) = tokio::join!(
        db.create_build(&new, 2),
        db.create_build(&new, 2),
        db.create_build(&new, 2),
        db.create_build(&new, 2)
    );
    let mut numbers = [a.unwrap().number, b.unwrap().number, c.unwrap().number, d.unwrap().number];
    numbers.sort_unstable();
    assert_eq!(numbers, [1, 2, 3, 4], "each number once, none skipped");

    // Three projects with a queued build each: three claims succeed, each a
    // different build, and the fourth claimer finds nothing (app's next
    // build waits for its running one).
    let q = db.create_project(&project("q"), 1).await.unwrap();
    let r = db.create_project(&project("r"), 1).await.unwrap();
    db.create_build(&build_of(&q), 3).await.unwrap();
    db.create_build(&build_of(&r), 3).await.unwrap();
    let (a, b, c, d) = tokio::join!(
        db.claim_build("s", 4, 1_000),
        db.claim_build("s", 4, 1_000),
        db.claim_build("s", 4, 1_000),
        db.claim_build("s", 4, 1_000)
    );
    let mut claimed: Vec<i64> = [a, b, c, d].into_iter().filter_map(|c| c.unwrap()).map(|b| b.id).collect();
    claimed.sort_unstable();
    claimed.dedup();
    assert_eq!(claimed.len(), 3, "three builds, each claimed once: {claimed:?}");

    let ok = BuildOutcome { status: BuildStatus::Succeeded, error: None, version: None, release_id: None };
    let (x, y) = tokio::join!(db.finish_build(claimed[0], &ok, 5), db.finish_build(claimed[0], &ok, 5));
    assert!(x.unwrap() ^ y.unwrap(), "exactly one caller ends a build");
}

/// Log lines appended at once to one build get every sequence number once.
pub(super) async fn racing_log_appends_leave_no_gap_or_repeat(db: &dyn Database) {
    let p = db.create_project(&project("app"), 1).await.unwrap();
    let build = db.create_build(&build_of(&p), 1).await.unwrap();
    let lines = |n: &str| vec![(1, "stdout".to_string(), format!("{n}1")), (2, "stdout".to_string(), format!("{n}2"))];
    let (a, b, c) = (lines("a"), lines("b"), lines("c"));
    let (x, y, z) = tokio::join!(
        db.append_build_log(build.id, &a),
        db.append_build_log(build.id, &b),
        db.append_build_log(build.id, &c)
    );
    x.unwrap();
    y.unwrap();
    z.unwrap();
    let log = db.build_log(build.id, 0, 100).await.unwrap();
    assert_eq!(log.iter().map(|l| l.seq).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6]);
    // A caller's lines stay together and in its order.
    for pair in log.chunks(2) {
        assert_eq!(pair[0].line[..1], pair[1].line[..1], "{log:?}");
        assert!(pair[0].line.ends_with('1') && pair[1].line.ends_with('2'));
    }
}

/// Entries appended at once still form one chain that verifies: it never
/// forks.
pub(super) async fn racing_audit_appends_keep_one_chain(db: &dyn Database) {
    use ferry_domain::audit::{AuditKey, ChainVerifier};
    let key = AuditKey::from_bytes([5; 32]);
    let (a, b, c, d) = (
        audit_entry(1, "a", "project=a", ""),
        audit_entry(1, "b", "project=b", ""),
        audit_entry(1, "c", "project=c", ""),
        audit_entry(1, "d", "project=d", ""),
    );
    let (w, x, y, z) = tokio::join!(
        db.append_audit(&a, &key),
        db.append_audit(&b, &key),
        db.append_audit(&c, &key),
        db.append_audit(&d, &key)
    );
    for r in [w, x, y, z] {
        r.unwrap();
    }
    let chain = db.audit_chain(0, 100).await.unwrap();
    assert_eq!(chain.iter().map(|e| e.record.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
    let mut v = ChainVerifier::new(&key, 1);
    for e in &chain {
        v.push(&e.record, &e.scheme, &e.prev_hash, &e.hash).unwrap();
    }
    v.finish().unwrap();
}

/// Two deployments of one environment created at once: exactly one is
/// created, the other is told the environment is locked by it.
pub(super) async fn racing_deployments_of_one_environment_lock_out_all_but_one(db: &dyn Database) {
    let (p, e, r1, r2, h1, h2) = fixture(db).await;
    let (a, b) = tokio::join!(
        db.create_deployment(deploy(&p, &e, &r1, &[&h1, &h2]), 10),
        db.create_deployment(deploy(&p, &e, &r2, &[&h1, &h2]), 10)
    );
    match (a, b) {
        (Ok(id), Err(StoreError::Locked { running })) | (Err(StoreError::Locked { running }), Ok(id)) => {
            assert_eq!(running, id)
        }
        other => panic!("expected one deployment and one Locked, got {other:?}"),
    }
    assert_eq!(db.running_deployments().await.unwrap().len(), 1);
}

/// "Exactly one caller wins" for the methods that answer `true` to the
/// winner, and "idempotent" for the ones that must not fail a second
/// caller.
pub(super) async fn racing_callers_get_one_winner(db: &dyn Database) {
    let p = db.create_project(&project("app"), 1).await.unwrap();
    let (a, b) =
        tokio::join!(db.record_delivery(p.id, "github", "d-1", 1), db.record_delivery(p.id, "github", "d-1", 1));
    assert!(a.unwrap() ^ b.unwrap(), "one delivery is recorded once");

    let (a, b) = tokio::join!(db.init_setting("k", "first"), db.init_setting("k", "second"));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a, b, "both callers get the value stored first");
    assert_eq!(db.get_setting("k").await.unwrap(), Some(a));

    let user = db.create_user(&new_user("ann", false), 1).await.unwrap();
    db.create_web_session(user.id, "s-1", 1, 100).await.unwrap();
    let (a, b) = tokio::join!(db.end_web_session("s-1"), db.end_web_session("s-1"));
    assert!(a.unwrap() ^ b.unwrap(), "a session is ended once");

    let d = [Digest([9; 32])];
    let (a, b) = tokio::join!(db.add_project_blobs(p.id, &d), db.add_project_blobs(p.id, &d));
    a.unwrap();
    b.unwrap();
    assert!(db.project_blobs_missing(p.id, &d).await.unwrap().is_empty());
}

/// Callers stepping one rollout at once (two servers, a report and the
/// ticker) take each step once: one batch starts, its history line is
/// written once, and the next caller finds it running. The same for the
/// end: when its last hosts report at once, the deployment ends once.
pub(super) async fn racing_steps_take_each_rollout_step_once(db: &dyn Database) {
    use HostDeployState::*;
    let (p, e, r1, r2, h1, h2) = fixture(db).await;
    let hosts = fleet_on(db, &p, &e, &r1, h1, h2).await;
    let id = db.create_deployment(rolling(&p, &e, &r2, &hosts, 2), 10).await.unwrap();
    let (a, b, c, d) = tokio::join!(
        db.advance_deployment(id, 11),
        db.advance_deployment(id, 11),
        db.advance_deployment(id, 11),
        db.advance_deployment(id, 11)
    );
    let started = [a, b, c, d].into_iter().filter(|s| matches!(s.as_ref().unwrap(), Advanced::Changed { .. })).count();
    assert_eq!(started, 1, "exactly one caller starts the first batch");
    let rows = db.deployment_hosts(id).await.unwrap();
    assert_eq!(states(&rows), [("h1", Pending), ("h2", Pending), ("h3", Queued), ("h4", Queued)]);
    let batches = |events: &[DeploymentEvent]| events.iter().filter(|e| e.what.to_string().contains("started")).count();
    assert_eq!(batches(&db.deployment_events(id).await.unwrap()), 1, "one history line for one batch");

    // Both hosts of batch 1 report at once, each followed by a step, as the
    // server does: batch 2 starts once.
    let done = ProjectReport { desired_since: 11, ..report(Some(&r2), Activity::Idle) };
    let (x, y) = tokio::join!(apply(db, hosts[0].id, &done, 12), apply(db, hosts[1].id, &done, 12));
    x.unwrap();
    y.unwrap();
    let (a, b) = tokio::join!(db.advance_deployment(id, 13), db.advance_deployment(id, 13));
    a.unwrap();
    b.unwrap();
    let rows = db.deployment_hosts(id).await.unwrap();
    let ev = db.deployment_events(id).await.unwrap();
    assert_eq!(batches(&ev), 2, "batch 2 started once: {:?} {ev:?}", states(&rows));

    let done = ProjectReport { desired_since: 13, ..report(Some(&r2), Activity::Idle) };
    let (x, y) = tokio::join!(apply(db, hosts[2].id, &done, 14), apply(db, hosts[3].id, &done, 14));
    x.unwrap();
    y.unwrap();
    let (a, b) = tokio::join!(db.advance_deployment(id, 15), db.advance_deployment(id, 15));
    a.unwrap();
    b.unwrap();
    assert_eq!(db.deployment(id).await.unwrap().status, DeploymentStatus::Succeeded);
    let events = db.deployment_events(id).await.unwrap();
    let ends = events.iter().filter(|e| e.what.to_string() == "succeeded").count();
    assert_eq!(ends, 1, "the deployment ends once: {events:?}");
}

/// Names and state moves: of callers racing for one name or one move from
/// a state, one wins and the others are told; hosts gone silent are marked
/// offline once.
pub(super) async fn racing_names_moves_and_sweeps_have_one_winner(db: &dyn Database) {
    let same = project("same");
    let (a, b) = tokio::join!(db.create_project(&same, 1), db.create_project(&same, 1));
    match (a, b) {
        (Ok(_), Err(StoreError::Conflict(_))) | (Err(StoreError::Conflict(_)), Ok(_)) => {}
        other => panic!("expected one project and one Conflict, got {other:?}"),
    }

    let (p, e, r1, _, h1, h2) = fixture(db).await;
    let new = request_of(&p, &e, &r1);
    let q = db.create_request(&new, 10).await.unwrap();
    let pass = |actor: &str| RequestChange {
        from: RequestState::Testing,
        to: RequestState::AwaitingApproval,
        action: RequestAction::Pass,
        actor: actor.into(),
        note: None,
        release: None,
        deployment_id: None,
    };
    let (qa1, qa2) = (pass("qa1"), pass("qa2"));
    let (a, b) = tokio::join!(db.change_request(q.id, &qa1, 11), db.change_request(q.id, &qa2, 11));
    match (a, b) {
        (Ok(_), Err(StoreError::Refused(_))) | (Err(StoreError::Refused(_)), Ok(_)) => {}
        other => panic!("expected one move and one Refused, got {other:?}"),
    }
    let passes =
        db.request_events(q.id).await.unwrap().iter().filter(|e| e.action == RequestAction::Pass.as_str()).count();
    assert_eq!(passes, 1, "one move, one history line");

    db.host_seen(h1.id, 5).await.unwrap();
    db.host_seen(h2.id, 5).await.unwrap();
    let (a, b, c) =
        tokio::join!(db.mark_silent_hosts_offline(6), db.mark_silent_hosts_offline(6), db.mark_silent_hosts_offline(6));
    let mut marked: Vec<i64> = [a, b, c].into_iter().flat_map(|m| m.unwrap()).collect();
    marked.sort_unstable();
    assert_eq!(marked, vec![h1.id, h2.id], "each silent host is marked once");
}
