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
    let req = |p: &Project| NewBuild {
        project_id: p.id,
        git_ref: "main".into(),
        pushed_commit: None,
        trigger: "manual".into(),
        requested_by: "dev".into(),
        retry_of: None,
    };
    for p in &projects {
        a.create_build(&req(p), 2).await.unwrap();
        b.create_build(&req(p), 2).await.unwrap();
    }
    // Ten queued builds over five projects: at most one running per project.
    let answers = race(&a, &b, |db, _| async move { db.claim_next_build(3).await.unwrap() }).await;
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
    for _ in 0..ROUNDS {
        let answers = race(&a, &b, move |db, _| async move {
            let new = NewBuild {
                project_id: p.id,
                git_ref: "main".into(),
                pushed_commit: None,
                trigger: "manual".into(),
                requested_by: "dev".into(),
                retry_of: None,
            };
            db.create_build(&new, 2).await.unwrap().number
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
        let new = NewRequest {
            project_id: p.id,
            env_id: e.id,
            kind: RequestKind::Release,
            state: RequestState::Testing,
            release_id: r1.id,
            build_number: None,
            reason: "a fix".into(),
            requester: "dev".into(),
        };
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
    );
}
