//! Races between two independent handles on one database, as two server
//! replicas hold them (`racing.rs` races connections of one handle): many
//! callers at once, each trying the same change. What the
//! contract says "exactly one caller wins" or "serialised" is checked here,
//! repeated a bounded number of times.
//!
//! A backend joins by opening two handles on one fresh database
//! (`two_handles!` below).

use std::sync::Arc;

use ferry_domain::audit::{AuditKey, ChainVerifier};
use tokio::sync::Barrier;

use super::*;

/// Callers per race, split over the two handles.
const CALLERS: usize = 8;
/// Rounds of each race.
const ROUNDS: usize = 5;

/// Runs `attempt` from [`CALLERS`] tasks at once, alternating between the
/// two handles, released together by a barrier; returns every answer.
async fn race<T, F, Fut>(a: &Arc<dyn Database>, b: &Arc<dyn Database>, attempt: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(Arc<dyn Database>, usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(CALLERS));
    let mut tasks = Vec::new();
    for i in 0..CALLERS {
        let db = if i % 2 == 0 { a.clone() } else { b.clone() };
        let barrier = barrier.clone();
        let fut = attempt(db, i);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            fut.await
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    answers
}

pub(super) async fn each_rollout_step_is_taken_by_exactly_one_caller(a: Arc<dyn Database>, b: Arc<dyn Database>) {
    let (p, e, r1, _, h1, h2) = fixture(a.as_ref()).await;
    let h3 = a.enroll_host("h3", &Tags::parse("role=web").unwrap(), "hash3", 4).await.unwrap();
    let hosts = [h1, h2, h3];
    let id = a.create_deployment(rolling(&p, &e, &r1, &hosts, 1), 10).await.unwrap();
    for (batch, host) in hosts.iter().enumerate() {
        let now = 20 + batch as i64 * 10;
        let answers = race(&a, &b, move |db, _| async move { db.advance_deployment(id, now).await.unwrap() }).await;
        let started: Vec<&Advanced> = answers.iter().filter(|x| matches!(x, Advanced::Changed { .. })).collect();
        assert_eq!(started.len(), 1, "batch {batch} started by more than one caller: {answers:?}");
        assert_eq!(started[0], &Advanced::Changed { hosts: vec![host.id] });
        a.apply_report(host.id, &report(Some(&r1), Activity::Idle), now + 1).await.unwrap();
    }
    let answers = race(&a, &b, move |db, _| async move { db.advance_deployment(id, 100).await.unwrap() }).await;
    let ended = answers.iter().filter(|x| matches!(x, Advanced::Finished { .. })).count();
    assert_eq!(ended, 1, "the deployment ended more than once: {answers:?}");
    assert_eq!(a.deployment(id).await.unwrap().status, DeploymentStatus::Succeeded);
    let events = b.deployment_events(id).await.unwrap();
    let batches = events.iter().filter(|e| e.what.code() == "batch_started").count();
    assert_eq!(batches, 3, "{events:?}");
}

pub(super) async fn one_deployment_per_environment_under_a_race(a: Arc<dyn Database>, b: Arc<dyn Database>) {
    let (p, e, r1, _, h1, _) = fixture(a.as_ref()).await;
    for round in 0..ROUNDS {
        let new = deploy(&p, &e, &r1, &[&h1]);
        let answers = race(&a, &b, move |db, _| {
            let new = new.clone();
            async move { db.create_deployment(new, 10 + round as i64).await }
        })
        .await;
        let created: Vec<i64> = answers.iter().filter_map(|x| x.as_ref().ok().copied()).collect();
        assert_eq!(created.len(), 1, "round {round}: {answers:?}");
        assert!(answers.iter().filter_map(|x| x.as_ref().err()).all(|e| matches!(e, StoreError::Locked { .. })));
        a.control_deployment(created[0], RolloutControl::Cancel, 50).await.unwrap();
        drive(b.as_ref(), created[0], 51).await;
    }
}

pub(super) async fn a_queued_build_is_claimed_by_exactly_one_caller(a: Arc<dyn Database>, b: Arc<dyn Database>) {
    let projects: Vec<Project> = {
        let mut v = Vec::new();
        for i in 0..ROUNDS {
            v.push(a.create_project(&project(&format!("p{i}")), 1).await.unwrap());
        }
        v
    };
    for p in &projects {
        a.create_build(&build_of(p), 2).await.unwrap();
        b.create_build(&build_of(p), 2).await.unwrap();
    }
    // Ten queued builds over five projects: at most one running per project.
    let answers = race(&a, &b, |db, _| async move { db.claim_build("s", 3, 1_000).await.unwrap() }).await;
    let mut claimed: Vec<i64> = answers.iter().flatten().map(|b| b.id).collect();
    let mut per_project: Vec<i64> = answers.iter().flatten().map(|b| b.project_id).collect();
    assert_eq!(claimed.len(), ROUNDS.min(CALLERS), "{answers:?}");
    claimed.sort();
    claimed.dedup();
    assert_eq!(claimed.len(), ROUNDS.min(CALLERS), "one build claimed twice: {answers:?}");
    per_project.sort();
    per_project.dedup();
    assert_eq!(per_project.len(), claimed.len(), "two builds of one project running: {answers:?}");
}

pub(super) async fn build_numbers_are_handed_out_once(a: Arc<dyn Database>, b: Arc<dyn Database>) {
    let p = a.create_project(&project("app"), 1).await.unwrap();
    let new = build_of(&p);
    for _ in 0..ROUNDS {
        let answers = race(&a, &b, |db, _| {
            let new = new.clone();
            async move { db.create_build(&new, 2).await.unwrap().number }
        })
        .await;
        let mut numbers = answers.clone();
        numbers.sort();
        numbers.dedup();
        assert_eq!(numbers.len(), CALLERS, "a build number handed out twice: {answers:?}");
    }
    let all = b.builds(&p, 1000).await.unwrap();
    let mut numbers: Vec<i64> = all.iter().map(|b| b.number).collect();
    numbers.sort();
    assert_eq!(numbers, (1..=(CALLERS * ROUNDS) as i64).collect::<Vec<_>>());
}

pub(super) async fn the_audit_chain_never_forks(a: Arc<dyn Database>, b: Arc<dyn Database>) {
    let key = Arc::new(AuditKey::from_bytes([5; 32]));
    for round in 0..ROUNDS {
        let key = key.clone();
        race(&a, &b, move |db, i| {
            let key = key.clone();
            async move {
                let entry = audit_entry(round as i64, &format!("user{i}"), "project=app", "{}");
                db.append_audit(&entry, &key).await.unwrap()
            }
        })
        .await;
    }
    let chain = b.audit_chain(0, 1000).await.unwrap();
    assert_eq!(chain.len(), CALLERS * ROUNDS);
    let mut v = ChainVerifier::new(&key, 1);
    for e in &chain {
        v.push(&e.record, &e.scheme, &e.prev_hash, &e.hash).unwrap();
    }
    v.finish().unwrap();
    let seqs: Vec<i64> = chain.iter().map(|e| e.record.seq).collect();
    assert_eq!(seqs, (1..=(CALLERS * ROUNDS) as i64).collect::<Vec<_>>());
}

pub(super) async fn deployment_log_lines_are_numbered_once(a: Arc<dyn Database>, b: Arc<dyn Database>) {
    let (p, e, r1, _, h1, h2) = fixture(a.as_ref()).await;
    let id = a.create_deployment(deploy(&p, &e, &r1, &[&h1, &h2]), 10).await.unwrap();
    drive(a.as_ref(), id, 11).await;
    let hosts = [h1.id, h2.id];
    for round in 0..ROUNDS {
        race(&a, &b, move |db, i| async move {
            let line = log_line(20, "stdout", &format!("round {round} caller {i}"));
            db.append_deployment_log(hosts[i % 2], "web", r1.id, &[line], 20).await.unwrap()
        })
        .await;
    }
    let lines = b.deployment_log(id, None, 0, 10_000).await.unwrap();
    assert_eq!(lines.len(), CALLERS * ROUNDS);
    let seqs: Vec<i64> = lines.iter().map(|l| l.seq).collect();
    assert_eq!(seqs, (1..=(CALLERS * ROUNDS) as i64).collect::<Vec<_>>());
}

pub(super) async fn a_request_moves_from_a_state_once(a: Arc<dyn Database>, b: Arc<dyn Database>) {
    let (p, e, r1, _, _, _) = fixture(a.as_ref()).await;
    for _ in 0..ROUNDS {
        let new = request_of(&p, &e, &r1);
        let q = a.create_request(&new, 10).await.unwrap();
        let answers = race(&a, &b, move |db, i| async move {
            let change = RequestChange {
                from: RequestState::Testing,
                to: RequestState::Withdrawn,
                action: RequestAction::Withdraw,
                actor: format!("user{i}"),
                note: None,
                release: None,
                deployment_id: None,
            };
            db.change_request(q.id, &change, 20).await
        })
        .await;
        let won = answers.iter().filter(|x| x.is_ok()).count();
        assert_eq!(won, 1, "{answers:?}");
        let events = b.request_events(q.id).await.unwrap();
        let withdrawn = events.iter().filter(|e| e.action == RequestAction::Withdraw.as_str()).count();
        assert_eq!(withdrawn, 1, "{events:?}");
    }
}

/// Each due notification is claimed by exactly one caller; an expired claim
/// is taken again, a recorded attempt ends it.
pub(super) async fn a_due_notification_is_claimed_by_exactly_one_caller(a: Arc<dyn Database>, b: Arc<dyn Database>) {
    let p = a.create_project(&project("web"), 1).await.unwrap();
    let rule = NewNotificationRule {
        events: vec!["deploy.finished".into()],
        kind: Channel::Webhook,
        webhook_url: "http://hook".into(),
        recipients: Vec::new(),
        secret: None,
        created_by: "admin".into(),
    };
    let r = a.add_notification_rule(&p, &rule, 1).await.unwrap();
    let item = NewNotification {
        rule_id: r.id,
        kind: r.kind,
        webhook_url: r.webhook_url.clone(),
        payload: "{}".into(),
        recipients: Vec::new(),
        skipped: Vec::new(),
    };
    for round in 0..ROUNDS {
        let now = 1000 * (round as i64 + 1);
        let ids = a.enqueue_notifications(p.id, "deploy.finished", std::slice::from_ref(&item), now).await.unwrap();
        let answers = race(&a, &b, move |db, i| async move {
            db.claim_due_notifications(&format!("server{i}"), now, 100, 5).await.unwrap()
        })
        .await;
        let claimed: Vec<i64> = answers.iter().flatten().map(|n| n.id).collect();
        assert_eq!(claimed, ids, "claimed by {} callers: {answers:?}", claimed.len());
        // Claimed: due for nobody until the claim expires ...
        assert!(b.claim_due_notifications("late", now + 99, 100, 5).await.unwrap().is_empty());
        // ... then taken again by exactly one (at least once, never twice at once).
        let again = race(&a, &b, move |db, i| async move {
            db.claim_due_notifications(&format!("retry{i}"), now + 100, 100, 5).await.unwrap()
        })
        .await;
        assert_eq!(again.iter().flatten().count(), 1, "{again:?}");
        let attempt = NotificationAttempt { at: now + 101, status_code: Some(200), error: None };
        a.record_notification_attempt(ids[0], &attempt, NotificationOutcome::Delivered).await.unwrap();
        assert!(b.claim_due_notifications("after", now + 10_000, 100, 5).await.unwrap().is_empty(), "delivered");
    }
}

/// A named lease has one holder at a time: many callers at once, one wins;
/// the holder renews; another takes it only once it expired; a release lets
/// another take it at once and never releases another holder's lease.
pub(super) async fn a_lease_has_one_holder(a: Arc<dyn Database>, b: Arc<dyn Database>) {
    for round in 0..ROUNDS {
        let name = format!("sweep{round}");
        let n = name.clone();
        let answers = race(&a, &b, move |db, i| {
            let n = n.clone();
            async move { (i, db.claim_lease(&n, &format!("server{i}"), 10, 100).await.unwrap()) }
        })
        .await;
        let winners: Vec<usize> = answers.iter().filter(|(_, won)| *won).map(|(i, _)| *i).collect();
        assert_eq!(winners.len(), 1, "{answers:?}");
        let holder = format!("server{}", winners[0]);
        assert!(b.claim_lease(&name, &holder, 50, 100).await.unwrap(), "the holder renews");
        assert!(!a.claim_lease(&name, "other", 149, 100).await.unwrap(), "renewed until 150");
        a.release_lease(&name, "other").await.unwrap();
        assert!(!b.claim_lease(&name, "other", 149, 100).await.unwrap(), "another's release does nothing");
        assert!(a.claim_lease(&name, "other", 150, 100).await.unwrap(), "expired: taken over");
        assert!(!b.claim_lease(&name, &holder, 160, 100).await.unwrap(), "the old holder lost it");
        b.release_lease(&name, "other").await.unwrap();
        assert!(a.claim_lease(&name, &holder, 161, 100).await.unwrap(), "released: free at once");
    }
}

/// Builds claimed with a lease: one winner per build; renewed leases keep a
/// build running under concurrent sweeps; an expired one is failed by
/// exactly one sweep.
pub(super) async fn a_build_lease_is_renewed_or_swept_once(a: Arc<dyn Database>, b: Arc<dyn Database>) {
    for round in 0..ROUNDS {
        let p = a.create_project(&project(&format!("p{round}")), 1).await.unwrap();
        let req = build_of(&p);
        let queued = a.create_build(&req, 2).await.unwrap();
        let answers =
            race(&a, &b, |db, i| async move { db.claim_build(&format!("server{i}"), 10, 100).await.unwrap() }).await;
        let claimed: Vec<i64> = answers.iter().flatten().map(|b| b.id).collect();
        assert_eq!(claimed, [queued.id], "{answers:?}");
        let holder_of = |i: usize| format!("server{i}");
        let winner = answers.iter().position(Option::is_some).unwrap();
        assert_eq!(b.renew_build_leases(&holder_of(winner), 100, 100).await.unwrap(), 1);
        assert_eq!(b.renew_build_leases("someone-else", 100, 100).await.unwrap(), 0);
        // Renewed until 200: no sweep fails it before.
        let early = race(&a, &b, |db, _| async move { db.fail_expired_builds("stopped", 199).await.unwrap() }).await;
        assert!(early.iter().all(Vec::is_empty), "{early:?}");
        assert_eq!(a.build(queued.id).await.unwrap().status, BuildStatus::Running);
        // Expired: exactly one sweep fails it.
        let swept =
            race(&a, &b, |db, _| async move { db.fail_expired_builds("its server stopped", 200).await.unwrap() }).await;
        let failed: Vec<i64> = swept.into_iter().flatten().collect();
        assert_eq!(failed, [queued.id]);
        let ended = a.build(queued.id).await.unwrap();
        assert_eq!((ended.status, ended.error.as_deref()), (BuildStatus::Failed, Some("its server stopped")));
        assert_eq!(a.renew_build_leases(&holder_of(winner), 300, 100).await.unwrap(), 0, "not revived");
    }
}

/// Wake-ups published from both handles at once get distinct, increasing
/// numbers, and each reader sees all of them once, in order.
pub(super) async fn wake_ups_reach_every_handle_in_order(a: Arc<dyn Database>, b: Arc<dyn Database>) {
    let start = a.latest_wake().await.unwrap();
    for round in 0..ROUNDS {
        let answers = race(&a, &b, move |db, i| async move {
            let topic = format!("host:{}", round * CALLERS + i);
            (db.publish_wake(&topic, 1000).await.unwrap(), topic)
        })
        .await;
        let mut seqs: Vec<i64> = answers.iter().map(|(s, _)| *s).collect();
        seqs.sort();
        seqs.dedup();
        assert_eq!(seqs.len(), CALLERS, "a number handed out twice: {answers:?}");
    }
    for db in [&a, &b] {
        let seen = db.wakes_after(start, 10_000).await.unwrap();
        assert_eq!(seen.len(), ROUNDS * CALLERS);
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "in order: {seen:?}");
        let mut topics: Vec<&str> = seen.iter().map(|(_, t)| t.as_str()).collect();
        topics.sort();
        topics.dedup();
        assert_eq!(topics.len(), ROUNDS * CALLERS);
        let last = seen.last().unwrap().0;
        assert_eq!(db.latest_wake().await.unwrap(), last);
        assert!(db.wakes_after(last, 10).await.unwrap().is_empty());
        let page = db.wakes_after(start, 3).await.unwrap();
        assert_eq!(page, seen[..3]);
    }
    // Old wake-ups are pruned as new ones arrive; the newest stays.
    let seq = a.publish_wake("host:late", 1000 + 60 * 60 * 1000).await.unwrap();
    assert_eq!(b.wakes_after(start, 10_000).await.unwrap(), [(seq, "host:late".to_string())]);
}

/// Runs each race against a backend: `$open` gives a fresh database's
/// directory and two handles on it.
macro_rules! two_handles {
    ($open:path; $($story:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $story() {
                let (_dir, a, b) = $open().await;
                super::$story(a, b).await;
            }
        )+
    };
}

/// Two `SqliteDatabase` handles on one file: two pools, as two server
/// processes would have.
async fn sqlite_pair() -> (tempfile::TempDir, Arc<dyn Database>, Arc<dyn Database>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferry.db");
    let a = SqliteDatabase::open(&path).await.unwrap();
    let b = SqliteDatabase::open(&path).await.unwrap();
    (dir, Arc::new(a), Arc::new(b))
}

mod sqlite_backend {
    two_handles!(
        super::sqlite_pair;
        each_rollout_step_is_taken_by_exactly_one_caller,
        one_deployment_per_environment_under_a_race,
        a_queued_build_is_claimed_by_exactly_one_caller,
        build_numbers_are_handed_out_once,
        the_audit_chain_never_forks,
        deployment_log_lines_are_numbered_once,
        a_request_moves_from_a_state_once,
        a_due_notification_is_claimed_by_exactly_one_caller,
        a_lease_has_one_holder,
        a_build_lease_is_renewed_or_swept_once,
        wake_ups_reach_every_handle_in_order,
    );
}
