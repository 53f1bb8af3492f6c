//! The conformance suite every backend must pass. Each story takes a fresh,
//! empty database; the SQLite runner gives it one in a temporary directory.
//!
//! Long file: the whole conformance suite in one place, so a new backend runs
//! every story by adding one runner.

use ferry_domain::report::{ActiveRelease, Activity, LogLine as AgentLogLine, ProjectReport, TransferStats};
use ferry_domain::{
    BadMark, BuildStatus, DeploymentKind, DeploymentStatus, Digest, Freeze, HostDeployState, OfflinePolicy,
    RequestAction, RequestKind, RequestState, Secret, Tags,
};

use crate::sqlite::SqliteDatabase;
use crate::*;

mod coverage;
mod racing;

use coverage::*;
use ferry_domain::notify::Channel;
use ferry_domain::rollout::{Hold, RolloutPolicy};
use ferry_domain::status::Note;

async fn sqlite() -> (tempfile::TempDir, SqliteDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let db = SqliteDatabase::open(&dir.path().join("ferry.db")).await.unwrap();
    (dir, db)
}

fn project(name: &str) -> NewProject {
    NewProject { name: name.into(), keep_releases: 5, source: None, host_scope: None }
}

fn env(name: &str, selector: &str) -> NewEnvironment {
    NewEnvironment {
        name: name.into(),
        selector: selector.into(),
        auto_deploy_branch: None,
        rollout: Default::default(),
        production: false,
        requires_approval: false,
        staging_env_id: None,
        offline_policy: Default::default(),
    }
}

/// A one-file release of a project, as the fixtures make them.
fn new_release(project_id: i64, version: &str) -> NewRelease {
    NewRelease {
        project_id,
        version: version.into(),
        branch: "main".into(),
        committer: "dev".into(),
        manifest_digest: Digest([7; 32]),
        file_count: 1,
        total_size: 3,
        created_by: "admin".into(),
        origin: None,
    }
}

/// A project `web` with env `prod` (role=web), releases v1 and v2, hosts h1, h2.
async fn fixture(db: &dyn Database) -> (Project, Environment, Release, Release, Host, Host) {
    let p = db.create_project(&project("web"), 1).await.unwrap();
    let e = db.create_environment(&p, &env("prod", "role=web"), 1).await.unwrap();
    let mk = |v: &str| new_release(p.id, v);
    let r1 = db.create_release(mk("v1"), 2).await.unwrap();
    let r2 = db.create_release(mk("v2"), 3).await.unwrap();
    let tags = Tags::parse("role=web").unwrap();
    let h1 = db.enroll_host("h1", &tags, "hash1", 4).await.unwrap();
    let h2 = db.enroll_host("h2", &tags, "hash2", 4).await.unwrap();
    (p, e, r1, r2, h1, h2)
}

fn deploy(p: &Project, e: &Environment, r: &Release, hosts: &[&Host]) -> NewDeployment {
    NewDeployment {
        project_id: p.id,
        env_id: e.id,
        release_id: r.id,
        kind: DeploymentKind::Deploy,
        created_by: "admin".into(),
        targets: hosts
            .iter()
            .map(|h| DeploymentTarget {
                host_id: h.id,
                release_id: r.id,
                release_name: format!("n-{}", r.version),
                from_release_id: None,
                batch: 0,
                skipped: false,
            })
            .collect(),
        whole_env: true,
        offline_timeout_ms: 1_000,
        offline_policy: OfflinePolicy::Wait,
        forced: false,
        ignore_freeze: false,
        policy: RolloutPolicy::default(),
        batch_count: 1,
        emergency: false,
        request_id: None,
        notes: Vec::new(),
    }
}

/// Runs orchestrator steps until the deployment waits or ends.
async fn drive(db: &dyn Database, id: i64, now: i64) -> Advanced {
    loop {
        match db.advance_deployment(id, now).await.unwrap() {
            Advanced::Changed { .. } => continue,
            other => return other,
        }
    }
}

/// Creates a deployment and lets the orchestrator start it, as the server does.
async fn start(db: &dyn Database, new: NewDeployment, now: i64) -> Result<i64> {
    let id = db.create_deployment(new, now).await?;
    drive(db, id, now).await;
    Ok(id)
}

/// Applies a report, then lets the orchestrator act on it, as the server does.
async fn apply(db: &dyn Database, host: i64, report: &ProjectReport, now: i64) -> Result<Vec<i64>> {
    let changed = db.apply_report(host, report, now).await?;
    for id in &changed {
        drive(db, *id, now).await;
    }
    Ok(changed)
}

fn report(r: Option<&Release>, activity: Activity) -> ProjectReport {
    ProjectReport {
        project: "web".into(),
        current: r.map(|r| ActiveRelease {
            release_id: r.id,
            release_name: format!("n-{}", r.version),
            version: r.version.clone(),
        }),
        activity,
        transfer: r.map(|r| TransferStats {
            release_id: r.id,
            bytes_downloaded: 10,
            bytes_reused: 20,
            files_downloaded: 1,
        }),
        note: None,
        desired_since: 0,
        service: None,
    }
}

async fn names_are_unique(db: &dyn Database) {
    let (p, ..) = fixture(db).await;
    assert!(matches!(db.create_project(&project("web"), 9).await, Err(StoreError::Conflict(_))));
    assert!(matches!(db.create_environment(&p, &env("prod", "a=b"), 9).await, Err(StoreError::Conflict(_))));
    assert!(matches!(db.enroll_host("h1", &Tags::default(), "other", 9).await, Err(StoreError::Conflict(_))));
    assert!(matches!(db.project("nope").await, Err(StoreError::NotFound(_))));
    assert_eq!(db.releases(&p).await.unwrap()[0].version, "v2", "newest first");
}

async fn a_host_keeps_its_enrolled_tags_until_an_administrator_changes_them(db: &dyn Database) {
    let (p, .., h1, _) = fixture(db).await;
    db.host_connected(h1.id, &h1.tags, "0.1.0", 10).await.unwrap();
    let h = db.host("h1").await.unwrap();
    assert_eq!(
        (h.tags.clone(), h.announced_tags.clone(), h.agent_version.as_deref()),
        (h1.tags.clone(), None, Some("0.1.0"))
    );
    let asked = Tags::parse("role=prod").unwrap();
    db.host_connected(h1.id, &asked, "0.1.1", 11).await.unwrap();
    let h = db.host("h1").await.unwrap();
    assert_eq!(h.tags, h1.tags, "an agent's tags never replace the enrolled ones");
    assert_eq!(
        (h.announced_tags, h.agent_version.as_deref(), h.last_seen_at),
        (Some(asked.clone()), Some("0.1.1"), Some(11))
    );
    let h = db.set_host_tags("h1", &asked).await.unwrap();
    assert_eq!((h.tags, h.announced_tags), (asked, None), "agreeing again clears the mismatch");
    assert!(matches!(db.set_host_tags("nope", &h1.tags).await, Err(StoreError::NotFound(_))));
    db.set_project_host_scope(&p, Some("team=shop")).await.unwrap();
    assert_eq!(db.project(&p.name).await.unwrap().host_scope.as_deref(), Some("team=shop"));
    db.set_project_host_scope(&p, None).await.unwrap();
    assert_eq!(db.project(&p.name).await.unwrap().host_scope, None);
}

async fn sign_in_locks_hold_per_address_until_enabled(db: &dyn Database) {
    let ann = db.create_user(&new_user("ann", false), 1).await.unwrap();
    let lock = |failures: u32, now: i64| (failures >= 3).then_some(now + 100);
    for _ in 0..2 {
        assert_eq!(db.record_failed_sign_in(ann.id, "10.0.0.1", 5, lock).await.unwrap(), None);
    }
    assert_eq!(db.record_failed_sign_in(ann.id, "10.0.0.1", 5, lock).await.unwrap(), Some(105));
    assert_eq!(db.sign_in_lock(ann.id, "10.0.0.1", 50).await.unwrap(), Some(105));
    assert_eq!(db.sign_in_lock(ann.id, "10.0.0.1", 105).await.unwrap(), None, "it ends by itself");
    assert_eq!(db.sign_in_lock(ann.id, "10.0.0.2", 50).await.unwrap(), None, "other addresses are not locked");
    // Success from one address clears that address only.
    db.record_failed_sign_in(ann.id, "10.0.0.2", 5, lock).await.unwrap();
    db.clear_failed_sign_ins(ann.id, "10.0.0.2").await.unwrap();
    assert_eq!(db.sign_in_lock(ann.id, "10.0.0.1", 50).await.unwrap(), Some(105));
    // Enabling the user lifts every lock.
    db.set_user_disabled(ann.id, false).await.unwrap();
    assert_eq!(db.sign_in_lock(ann.id, "10.0.0.1", 50).await.unwrap(), None);
}

async fn limited_join_tokens_resolve_until_revoked(db: &dyn Database) {
    let web = Tags::parse("role=web").unwrap();
    let t = db.create_join_token("jh", &web, "admin", 3).await.unwrap();
    assert_eq!(db.join_token("jh").await.unwrap().map(|j| j.tags), Some(web));
    assert_eq!(db.join_token("other").await.unwrap(), None);
    db.revoke_join_token(t.id, 4).await.unwrap();
    assert_eq!(db.join_token("jh").await.unwrap(), None, "a revoked token enrols nobody");
    assert_eq!(db.join_tokens().await.unwrap()[0].revoked_at, Some(4));
    assert!(matches!(db.revoke_join_token(99, 5).await, Err(StoreError::NotFound(_))));
}

async fn tokens_resolve_to_their_owner(db: &dyn Database) {
    db.add_api_token("admin", true, "first", "th", 1).await.unwrap();
    let user = db.user_for_token("th").await.unwrap().unwrap();
    assert!(user.is_admin);
    assert_eq!(db.user_for_token("nope").await.unwrap(), None);
    let (.., h1, _) = fixture(db).await;
    assert_eq!(db.host_by_token("hash1").await.unwrap().unwrap().id, h1.id);
    assert_eq!(db.host_by_token("th").await.unwrap(), None, "a user token is not an agent token");
    assert_eq!(db.init_setting("k", "a").await.unwrap(), "a");
    assert_eq!(db.init_setting("k", "b").await.unwrap(), "a", "first value stays");
}

async fn a_deployment_follows_its_hosts(db: &dyn Database) {
    let (p, e, r1, _, h1, h2) = fixture(db).await;
    let id = start(db, deploy(&p, &e, &r1, &[&h1, &h2]), 10).await.unwrap();
    assert_eq!(db.desired_for_host(h1.id).await.unwrap()[0].release.id, r1.id);
    assert_eq!(db.environment(&p, "prod").await.unwrap().desired_release_id, None, "only once it succeeded");

    apply(db, h1.id, &report(None, Activity::Installing { release_id: r1.id }), 11).await.unwrap();
    assert_eq!(db.deployment_hosts(id).await.unwrap()[0].state, HostDeployState::Running);
    apply(db, h1.id, &report(Some(&r1), Activity::Idle), 12).await.unwrap();
    assert_eq!(db.deployment(id).await.unwrap().status, DeploymentStatus::Running, "h2 is still pending");
    apply(db, h2.id, &report(Some(&r1), Activity::Idle), 13).await.unwrap();
    let d = db.deployment(id).await.unwrap();
    assert_eq!((d.status, d.finished_at), (DeploymentStatus::Succeeded, Some(13)));
    assert_eq!(db.environment(&p, "prod").await.unwrap().desired_release_id, Some(r1.id));
    let hosts = db.deployment_hosts(id).await.unwrap();
    assert_eq!((hosts[0].bytes_downloaded, hosts[0].bytes_reused), (10, 20));
    assert_eq!(hosts[0].started_at, Some(10), "when its batch started");

    // A late report changes nothing any more.
    apply(db, h1.id, &report(None, Activity::Failed { release_id: r1.id, error: "x".into() }), 14).await.unwrap();
    assert_eq!(db.deployment(id).await.unwrap().status, DeploymentStatus::Succeeded);
}

async fn environments_come_in_order_with_the_hosts_a_release_succeeded_on(db: &dyn Database) {
    let (p, prod, r1, r2, h1, h2) = fixture(db).await;
    let staging = db.create_environment(&p, &env("staging", "role=stage"), 1).await.unwrap();
    assert_eq!((prod.after.as_deref(), prod.self_test), (None, false));
    db.set_environment_order(&prod, Some(staging.id), true).await.unwrap();
    let prod = db.environment(&p, "prod").await.unwrap();
    assert_eq!((prod.after.as_deref(), prod.self_test), (Some("staging"), true));
    assert_eq!(
        db.environments(&p).await.unwrap().iter().find(|e| e.name == "prod").unwrap().after.as_deref(),
        Some("staging")
    );

    // h1 succeeds with r1, h2 fails: only h1 counts, and only for r1.
    let _id = start(db, deploy(&p, &prod, &r1, &[&h1, &h2]), 10).await.unwrap();
    apply(db, h1.id, &report(Some(&r1), Activity::Idle), 11).await.unwrap();
    apply(db, h2.id, &report(None, Activity::Failed { release_id: r1.id, error: "x".into() }), 12).await.unwrap();
    assert_eq!(db.release_succeeded_hosts(&prod, r1.id).await.unwrap(), vec![h1.id]);
    assert!(db.release_succeeded_hosts(&prod, r2.id).await.unwrap().is_empty());
    assert!(db.release_succeeded_hosts(&staging, r1.id).await.unwrap().is_empty(), "another environment's");

    db.set_environment_order(&prod, None, false).await.unwrap();
    let prod = db.environment(&p, "prod").await.unwrap();
    assert_eq!((prod.after.as_deref(), prod.self_test), (None, false));

    // A release request may skip the order; others do not.
    let new = NewRequest {
        project_id: p.id,
        env_id: prod.id,
        kind: RequestKind::Release,
        state: RequestState::AwaitingApproval,
        release_id: r2.id,
        build_number: None,
        reason: "hotfix".into(),
        requester: "dev".into(),
    };
    let skipping = db.create_request(&new, 20).await.unwrap();
    let other = db.create_request(&new, 21).await.unwrap();
    db.set_request_skip_promotion(skipping.id).await.unwrap();
    assert!(db.request_skips_promotion(skipping.id).await.unwrap());
    assert!(!db.request_skips_promotion(other.id).await.unwrap());
    assert!(matches!(db.set_request_skip_promotion(999).await, Err(StoreError::NotFound(_))));
    assert!(matches!(db.request_skips_promotion(999).await, Err(StoreError::NotFound(_))));
}

async fn one_failed_host_fails_the_deployment(db: &dyn Database) {
    let (p, e, r1, _, h1, h2) = fixture(db).await;
    let id = start(db, deploy(&p, &e, &r1, &[&h1, &h2]), 10).await.unwrap();
    apply(db, h1.id, &report(None, Activity::Failed { release_id: r1.id, error: "disk full".into() }), 11)
        .await
        .unwrap();
    // The first failure stops the rollout; neither host ran anything before,
    // so nothing is put back and h2 is told to stop.
    let d = db.deployment(id).await.unwrap();
    assert_eq!(d.status, DeploymentStatus::Failed);
    assert!(d.reason.as_ref().map(Note::to_string).unwrap_or_default().contains("1 of 2 host(s) failed"), "{d:?}");
    let hosts = db.deployment_hosts(id).await.unwrap();
    assert_eq!((hosts[0].state, hosts[1].state), (HostDeployState::Failed, HostDeployState::Canceled));
    assert!(hosts[0].error.as_ref().map(Note::to_string).unwrap_or_default().starts_with("disk full"));
    assert!(db.desired_for_host(h2.id).await.unwrap().is_empty());
    assert_eq!(db.environment_history(&e).await.unwrap().len(), 1);
}

async fn a_host_busy_with_or_failing_on_its_current_release_is_not_done(db: &dyn Database) {
    let (p, e, r1, _, h1, _) = fixture(db).await;
    let id = start(db, deploy(&p, &e, &r1, &[&h1]), 10).await.unwrap();
    // A report about an earlier assignment (made before the agent saw this
    // deployment) does not count, however good it looks.
    let stale = ProjectReport { desired_since: 9, ..report(Some(&r1), Activity::Idle) };
    apply(db, h1.id, &stale, 11).await.unwrap();
    assert_eq!(db.deployment_hosts(id).await.unwrap()[0].state, HostDeployState::Pending);
    // `current` already names r1 while the host still proves it (service, health).
    apply(db, h1.id, &report(Some(&r1), Activity::Installing { release_id: r1.id }), 11).await.unwrap();
    assert_eq!(db.deployment_hosts(id).await.unwrap()[0].state, HostDeployState::Running);
    let failed = Activity::Failed { release_id: r1.id, error: "health check failed".into() };
    apply(db, h1.id, &report(Some(&r1), failed), 12).await.unwrap();
    assert_eq!(db.deployment_hosts(id).await.unwrap()[0].state, HostDeployState::Failed);
    assert_eq!(db.deployment(id).await.unwrap().status, DeploymentStatus::Failed);
}

/// Four hosts h1..h4 (role=web) in env `prod`, all meant to run `r1` and
/// reporting it; returns them in order.
async fn fleet_on(db: &dyn Database, p: &Project, e: &Environment, r1: &Release, h1: Host, h2: Host) -> Vec<Host> {
    let tags = Tags::parse("role=web").unwrap();
    let h3 = db.enroll_host("h3", &tags, "hash3", 4).await.unwrap();
    let h4 = db.enroll_host("h4", &tags, "hash4", 4).await.unwrap();
    let all = vec![h1, h2, h3, h4];
    let refs: Vec<&Host> = all.iter().collect();
    start(db, deploy(p, e, r1, &refs), 5).await.unwrap();
    for h in &all {
        apply(db, h.id, &report(Some(r1), Activity::Idle), 6).await.unwrap();
    }
    all
}

fn rolling(p: &Project, e: &Environment, r: &Release, hosts: &[Host], per_batch: usize) -> NewDeployment {
    let mut new = deploy(p, e, r, &hosts.iter().collect::<Vec<_>>());
    for (i, t) in new.targets.iter_mut().enumerate() {
        t.batch = (i / per_batch) as u32;
    }
    new.batch_count = hosts.len().div_ceil(per_batch) as u32;
    new.policy.strategy =
        ferry_domain::rollout::Strategy::Rolling { batch: ferry_domain::rollout::BatchSize::Count(per_batch as u32) };
    new
}

fn states(hosts: &[DeploymentHostRow]) -> Vec<(&str, HostDeployState)> {
    hosts.iter().map(|h| (h.host.as_str(), h.state)).collect()
}

async fn a_rollout_goes_batch_by_batch(db: &dyn Database) {
    use HostDeployState::*;
    let (p, e, r1, r2, h1, h2) = fixture(db).await;
    let hosts = fleet_on(db, &p, &e, &r1, h1, h2).await;
    let id = start(db, rolling(&p, &e, &r2, &hosts, 2), 10).await.unwrap();
    let rows = db.deployment_hosts(id).await.unwrap();
    assert_eq!(states(&rows), [("h1", Pending), ("h2", Pending), ("h3", Queued), ("h4", Queued)]);
    assert_eq!(db.desired_for_host(hosts[2].id).await.unwrap()[0].release.id, r1.id, "batch 2 untouched");
    assert!(matches!(drive(db, id, 11).await, Advanced::Waiting(Hold::BatchRunning)));
    assert!(db.deployment(id).await.unwrap().hold.unwrap().to_string().contains("batch 1 of 2"));

    let done = |h: &Host| (h.id, ProjectReport { desired_since: 10, ..report(Some(&r2), Activity::Idle) });
    let (h, r) = done(&hosts[0]);
    apply(db, h, &r, 12).await.unwrap();
    assert_eq!(db.deployment_hosts(id).await.unwrap()[2].state, Queued, "waits for all of batch 1");
    let (h, r) = done(&hosts[1]);
    apply(db, h, &r, 13).await.unwrap();
    let rows = db.deployment_hosts(id).await.unwrap();
    assert_eq!(states(&rows)[2..], [("h3", Pending), ("h4", Pending)]);
    assert_eq!(rows[2].started_at, Some(13), "the next batch starts when the last one ends");
    assert_eq!(db.desired_for_host(hosts[2].id).await.unwrap()[0].release.id, r2.id);
    for h in &hosts[2..] {
        let r = ProjectReport { desired_since: 13, ..report(Some(&r2), Activity::Idle) };
        apply(db, h.id, &r, 14).await.unwrap();
    }
    let d = db.deployment(id).await.unwrap();
    assert_eq!((d.status, d.current_batch), (DeploymentStatus::Succeeded, Some(1)));
    let events: Vec<String> = db.deployment_events(id).await.unwrap().into_iter().map(|e| e.what.to_string()).collect();
    assert!(events[0].starts_with("created by admin: 4 host(s) in 2 batch(es), rolling"), "{events:?}");
    assert_eq!(events[1..], ["batch 1 of 2 started: 2 host(s)", "batch 2 of 2 started: 2 host(s)", "succeeded"]);
}

async fn a_failure_stops_the_rollout_and_puts_updated_hosts_back(db: &dyn Database) {
    use HostDeployState::*;
    let (p, e, r1, r2, h1, h2) = fixture(db).await;
    let hosts = fleet_on(db, &p, &e, &r1, h1, h2).await;
    let id = start(db, rolling(&p, &e, &r2, &hosts, 2), 10).await.unwrap();
    let ok = ProjectReport { desired_since: 10, ..report(Some(&r2), Activity::Idle) };
    apply(db, hosts[0].id, &ok, 11).await.unwrap();
    let failed = ProjectReport {
        desired_since: 10,
        ..report(Some(&r1), Activity::Failed { release_id: r2.id, error: "health check failed".into() })
    };
    apply(db, hosts[1].id, &failed, 12).await.unwrap();
    let d = db.deployment(id).await.unwrap();
    assert_eq!(d.status, DeploymentStatus::RolledBack);
    assert!(d.reason.as_ref().map(Note::to_string).unwrap_or_default().contains("1 of 4 host(s) failed"), "{d:?}");
    let rows = db.deployment_hosts(id).await.unwrap();
    assert_eq!(states(&rows), [("h1", RolledBack), ("h2", Failed), ("h3", Canceled), ("h4", Canceled)]);
    assert_eq!(
        rows[1].error.as_ref().map(Note::to_string).as_deref(),
        Some("health check failed\nput back on its previous release")
    );
    assert!(
        rows[2]
            .error
            .as_ref()
            .map(Note::to_string)
            .unwrap_or_default()
            .starts_with("not started: 1 of 4 host(s) failed")
    );
    for h in &hosts {
        assert_eq!(db.desired_for_host(h.id).await.unwrap()[0].release.id, r1.id, "{} is meant to run v1", h.name);
    }
    assert_eq!(db.environment(&p, "prod").await.unwrap().desired_release_id, Some(r1.id));
}

async fn operators_pause_promote_and_cancel(db: &dyn Database) {
    use HostDeployState::*;
    let (p, e, r1, r2, h1, h2) = fixture(db).await;
    let hosts = fleet_on(db, &p, &e, &r1, h1, h2).await;
    let mut new = rolling(&p, &e, &r2, &hosts, 1);
    new.policy.approve_each_batch = true;
    let id = start(db, new, 10).await.unwrap();
    let ok = |at: i64| ProjectReport { desired_since: at, ..report(Some(&r2), Activity::Idle) };
    apply(db, hosts[0].id, &ok(10), 11).await.unwrap();
    assert!(matches!(drive(db, id, 12).await, Advanced::Waiting(Hold::Promotion { .. })));
    assert!(db.deployment(id).await.unwrap().hold.unwrap().to_string().contains("promote"));
    db.control_deployment(id, RolloutControl::Pause, 13).await.unwrap();
    db.control_deployment(id, RolloutControl::Promote, 13).await.unwrap();
    assert!(matches!(drive(db, id, 14).await, Advanced::Waiting(Hold::Paused)), "paused wins over promoted");
    db.control_deployment(id, RolloutControl::Resume, 15).await.unwrap();
    drive(db, id, 15).await;
    assert_eq!(db.deployment_hosts(id).await.unwrap()[1].state, Pending);
    apply(db, hosts[1].id, &ok(15), 16).await.unwrap();
    // Promoted through batch 2 only: batch 3 waits again; cancel ends it there.
    assert_eq!(db.deployment_hosts(id).await.unwrap()[2].state, Queued);
    db.control_deployment(id, RolloutControl::Cancel, 17).await.unwrap();
    drive(db, id, 17).await;
    let d = db.deployment(id).await.unwrap();
    assert_eq!(d.status, DeploymentStatus::Canceled);
    let rows = db.deployment_hosts(id).await.unwrap();
    assert_eq!(states(&rows), [("h1", Succeeded), ("h2", Succeeded), ("h3", Canceled), ("h4", Canceled)]);
    assert!(matches!(db.control_deployment(id, RolloutControl::Resume, 18).await, Err(StoreError::Refused(_))));
    assert!(matches!(db.control_deployment(999, RolloutControl::Pause, 18).await, Err(StoreError::NotFound(_))));
}

async fn an_emergency_takes_over_from_a_running_rollout(db: &dyn Database) {
    use HostDeployState::*;
    let (p, e, r1, r2, h1, h2) = fixture(db).await;
    let hosts = fleet_on(db, &p, &e, &r1, h1, h2).await;
    let slow = start(db, rolling(&p, &e, &r2, &hosts, 1), 10).await.unwrap();
    let mut back = deploy(&p, &e, &r1, &hosts.iter().collect::<Vec<_>>());
    back.kind = DeploymentKind::Rollback;
    assert!(matches!(start(db, back.clone(), 11).await, Err(StoreError::Locked { .. })));
    back.emergency = true;
    let id = start(db, back, 12).await.unwrap();
    let old = db.deployment(slow).await.unwrap();
    assert_eq!(old.status, DeploymentStatus::Canceled);
    assert_eq!(old.reason, Some(Note::EmergencyTookOver));
    assert_eq!(db.deployment_hosts(slow).await.unwrap()[3].state, Canceled);
    let rows = db.deployment_hosts(id).await.unwrap();
    assert!(rows.iter().all(|h| h.state == Pending), "every host at once: {:?}", states(&rows));
    assert!(db.deployment(id).await.unwrap().emergency);
}

async fn the_environment_lock_refuses_a_second_deployment(db: &dyn Database) {
    let (p, e, r1, r2, h1, _) = fixture(db).await;
    let first = start(db, deploy(&p, &e, &r1, &[&h1]), 10).await.unwrap();
    match start(db, deploy(&p, &e, &r2, &[&h1]), 11).await {
        Err(StoreError::Locked { running }) => assert_eq!(running, first),
        other => panic!("expected Locked, got {other:?}"),
    }
    assert_eq!(db.desired_for_host(h1.id).await.unwrap()[0].release.id, r1.id, "the refused deploy changed nothing");
    apply(db, h1.id, &report(Some(&r1), Activity::Idle), 12).await.unwrap();
    start(db, deploy(&p, &e, &r2, &[&h1]), 13).await.unwrap();
}

async fn offline_targets_fail_after_the_timeout(db: &dyn Database) {
    let (p, e, r1, _, h1, h2) = fixture(db).await;
    db.host_connected(h1.id, &h1.tags, "0.1.0", 10).await.unwrap();
    let id = start(db, deploy(&p, &e, &r1, &[&h1, &h2]), 10).await.unwrap();
    assert!(db.fail_offline_targets(500, 100).await.unwrap().is_empty(), "within the timeout");
    assert_eq!(db.fail_offline_targets(1_200, 100).await.unwrap(), vec![id]);
    let hosts = db.deployment_hosts(id).await.unwrap();
    assert_eq!(hosts[0].state, HostDeployState::Pending, "h1 is online");
    assert_eq!(hosts[1].state, HostDeployState::Failed);
    assert!(hosts[1].error.as_ref().map(Note::to_string).unwrap_or_default().contains("offline"));
    assert_eq!(db.mark_silent_hosts_offline(11).await.unwrap(), vec![h1.id]);
}

async fn a_new_host_adopts_the_environment_release(db: &dyn Database) {
    let (p, e, r1, _, h1, h2) = fixture(db).await;
    assert!(!db.adopt_host(h2.id, &e, 5).await.unwrap(), "nothing desired yet");
    start(db, deploy(&p, &e, &r1, &[&h1]), 10).await.unwrap();
    apply(db, h1.id, &report(Some(&r1), Activity::Idle), 10).await.unwrap();
    let e = db.environment(&p, "prod").await.unwrap();
    assert!(db.adopt_host(h2.id, &e, 11).await.unwrap());
    assert!(!db.adopt_host(h2.id, &e, 12).await.unwrap(), "only once");
    assert_eq!(db.desired_for_host(h2.id).await.unwrap()[0].release.version, "v1");
    let states = db.project_host_states(&p).await.unwrap();
    assert_eq!(states.len(), 2);
}

async fn builds_queue_one_per_project_in_order(db: &dyn Database) {
    let a = db.create_project(&project("a"), 1).await.unwrap();
    let b = db.create_project(&project("b"), 1).await.unwrap();
    let req = |p: &Project, r: &str| NewBuild {
        project_id: p.id,
        git_ref: r.into(),
        pushed_commit: None,
        trigger: "manual".into(),
        requested_by: "dev".into(),
        retry_of: None,
    };
    let a1 = db.create_build(&req(&a, "main"), 1).await.unwrap();
    assert_eq!(a1.pushed_commit, None, "a build asked for by ref resolves the ref when it runs");
    let a2 = db.create_build(&req(&a, "dev"), 2).await.unwrap();
    let b1 = db.create_build(&req(&b, "main"), 3).await.unwrap();
    assert_eq!((a1.number, a2.number, b1.number), (1, 2, 1), "numbers count per project");

    // a1 runs; a2 must wait for it, b1 may run beside it.
    assert_eq!(db.claim_next_build(10).await.unwrap().unwrap().id, a1.id);
    assert_eq!(db.claim_next_build(11).await.unwrap().unwrap().id, b1.id);
    assert_eq!(db.claim_next_build(12).await.unwrap(), None, "a2 waits while a1 runs");
    let ok = BuildOutcome { status: BuildStatus::Succeeded, error: None, version: Some("1".into()), release_id: None };
    assert!(db.finish_build(a1.id, &ok, 13).await.unwrap());
    assert!(!db.finish_build(a1.id, &ok, 14).await.unwrap(), "an ended build stays ended");
    assert_eq!(db.claim_next_build(15).await.unwrap().unwrap().id, a2.id);
    assert_eq!(db.latest_succeeded_build(&a).await.unwrap().unwrap().id, a1.id);

    // Cancelling: a running build is asked to stop, a queued one stops at once.
    assert!(db.cancel_build(a2.id, 16).await.unwrap().cancel_requested);
    let a3 = db.create_build(&req(&a, "main"), 17).await.unwrap();
    assert_eq!(db.cancel_build(a3.id, 18).await.unwrap().status, BuildStatus::Canceled);

    assert_eq!(db.fail_running_builds("server restarted", 19).await.unwrap(), 2);
    let a2 = db.build(a2.id).await.unwrap();
    assert_eq!((a2.status, a2.error.as_deref()), (BuildStatus::Failed, Some("server restarted")));
    let listed: Vec<i64> = db.builds(&a, 10).await.unwrap().iter().map(|b| b.number).collect();
    assert_eq!(listed, [3, 2, 1]);
}

async fn build_logs_and_deliveries(db: &dyn Database) {
    let p = db.create_project(&project("a"), 1).await.unwrap();
    let build = db
        .create_build(
            &NewBuild {
                project_id: p.id,
                git_ref: "main".into(),
                pushed_commit: Some("0123abcd".into()),
                trigger: "t".into(),
                requested_by: "d".into(),
                retry_of: None,
            },
            1,
        )
        .await
        .unwrap();
    assert_eq!(
        db.build(build.id).await.unwrap().pushed_commit.as_deref(),
        Some("0123abcd"),
        "the pushed commit is kept"
    );
    db.append_build_log(build.id, &[(1, "stdout".into(), "one".into()), (2, "stderr".into(), "two".into())])
        .await
        .unwrap();
    db.append_build_log(build.id, &[(3, "stdout".into(), "three".into())]).await.unwrap();
    let all = db.build_log(build.id, 0, 100).await.unwrap();
    assert_eq!(all.iter().map(|l| l.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(all[1].stream, "stderr");
    assert_eq!(db.build_log(build.id, 2, 100).await.unwrap()[0].line, "three");

    assert!(db.record_delivery(p.id, "github", "d-1", 1).await.unwrap());
    assert!(!db.record_delivery(p.id, "github", "d-1", 2).await.unwrap(), "a redelivery is recognised");
    assert!(db.record_delivery(p.id, "gitlab", "d-1", 3).await.unwrap());
}

async fn a_dead_target_fails_after_missed_heartbeats_unless_waited_for(db: &dyn Database) {
    let (p, e, r1, _, h1, h2) = fixture(db).await;
    db.host_connected(h1.id, &h1.tags, "0.1.0", 10).await.unwrap();
    db.host_connected(h2.id, &h2.tags, "0.1.0", 10).await.unwrap();
    let mut new = deploy(&p, &e, &r1, &[&h1, &h2]);
    new.offline_policy = OfflinePolicy::Skip;
    new.offline_timeout_ms = 60_000;
    let id = start(db, new, 10).await.unwrap();
    // h2's agent dies: its connection drops; last seen at 10.
    db.host_disconnected(h2.id).await.unwrap();
    assert!(db.fail_offline_targets(10 + 300, 100).await.unwrap().is_empty(), "3 heartbeats not yet missed");
    assert_eq!(db.fail_offline_targets(10 + 301, 100).await.unwrap(), vec![id]);
    let hosts = db.deployment_hosts(id).await.unwrap();
    assert_eq!((hosts[0].state, hosts[1].state), (HostDeployState::Pending, HostDeployState::Failed));
    assert!(
        hosts[1].error.as_ref().map(Note::to_string).unwrap_or_default().contains("heartbeats missed"),
        "{:?}",
        hosts[1].error
    );
}

async fn skipped_targets_get_the_release_only_when_the_deployment_succeeds(db: &dyn Database) {
    let (p, e, r1, r2, h1, h2) = fixture(db).await;
    for (release, outcome, h2_gets) in [(&r1, Activity::Idle, Some(r1.id)), (&r2, Activity::Idle, Some(r2.id))] {
        let mut new = deploy(&p, &e, release, &[&h1, &h2]);
        new.targets[1].skipped = true;
        new.offline_policy = OfflinePolicy::Skip;
        let id = start(db, new, 10).await.unwrap();
        let hosts = db.deployment_hosts(id).await.unwrap();
        assert_eq!((hosts[0].state, hosts[1].state), (HostDeployState::Pending, HostDeployState::Skipped));
        assert!(db.desired_for_host(h2.id).await.unwrap().iter().all(|d| d.release.id != release.id));
        apply(db, h1.id, &report(Some(release), outcome), 11).await.unwrap();
        assert_eq!(db.deployment(id).await.unwrap().status, DeploymentStatus::Succeeded);
        assert_eq!(db.desired_for_host(h2.id).await.unwrap()[0].release.id, h2_gets.unwrap());
    }
    // A failed (rolled back) deployment leaves the skipped host where it was.
    let mut new = deploy(&p, &e, &r1, &[&h1, &h2]);
    new.targets[1].skipped = true;
    let id = start(db, new, 20).await.unwrap();
    let failed = Activity::Failed { release_id: r1.id, error: "boom".into() };
    apply(db, h1.id, &report(Some(&r2), failed), 21).await.unwrap();
    assert_ne!(db.deployment(id).await.unwrap().status, DeploymentStatus::Succeeded);
    assert_eq!(db.desired_for_host(h2.id).await.unwrap()[0].release.id, r2.id, "not given the failed release");
}

async fn a_removed_host_keeps_its_history_and_frees_its_name(db: &dyn Database) {
    let (p, e, r1, _, h1, h2) = fixture(db).await;
    let id = start(db, deploy(&p, &e, &r1, &[&h1]), 10).await.unwrap();
    match db.retire_host("h1", 11).await {
        Err(StoreError::Refused(m)) => assert!(m.contains(&format!("running deployment {id}")), "{m}"),
        other => panic!("expected Refused, got {other:?}"),
    }
    apply(db, h1.id, &report(Some(&r1), Activity::Idle), 12).await.unwrap();
    let slot = VarSlot { project_id: p.id, env_id: None, host: Some("h1".into()) };
    db.set_var(&var(slot, "KEPT", "yes", false), 12).await.unwrap();
    assert_eq!(db.retire_host("h1", 13).await.unwrap(), h1.id);
    assert!(matches!(db.retire_host("h1", 13).await, Err(StoreError::NotFound(_))));
    assert!(db.host_by_token("hash1").await.unwrap().is_none(), "its credential is refused");
    assert!(db.hosts().await.unwrap().iter().all(|h| h.id != h1.id));
    assert!(db.desired_for_host(h1.id).await.unwrap().is_empty());
    let rows = db.deployment_hosts(id).await.unwrap();
    assert_eq!(rows[0].host, format!("h1~{}", h1.id), "history still names it");
    // The name enrols again, and its variables reach the new host.
    let again = db.enroll_host("h1", &h1.tags, "hash1b", 14).await.unwrap();
    assert_ne!(again.id, h1.id);
    let start2 = start(db, deploy(&p, &e, &r1, &[&again, &h2]), 15).await.unwrap();
    assert!(start2 > id);
    let vars = db.vars_for_host(again.id).await.unwrap();
    assert!(vars.iter().any(|v| v.key == "KEPT"), "{:?}", var_rows(&vars));
}

async fn a_host_moves_to_the_environment_that_now_selects_it(db: &dyn Database) {
    let (p, e, r1, r2, h1, _) = fixture(db).await;
    let mut staging = db.create_environment(&p, &env("staging", "role=stage"), 5).await.unwrap();
    start(db, deploy(&p, &e, &r1, &[&h1]), 10).await.unwrap();
    apply(db, h1.id, &report(Some(&r1), Activity::Idle), 11).await.unwrap();
    assert!(!db.move_host_to_env(h1.id, &staging, 12).await.unwrap(), "staging has no release yet");
    staging.desired_release_id = Some(r2.id);
    assert!(db.move_host_to_env(h1.id, &staging, 12).await.unwrap());
    let d = &db.desired_for_host(h1.id).await.unwrap()[0];
    assert_eq!((d.env.as_str(), d.release.id), ("staging", r2.id));
    assert!(!db.move_host_to_env(h1.id, &staging, 13).await.unwrap(), "already there");
    db.set_environment_selector(&staging, "role=web,dc=x").await.unwrap();
    db.set_environment_offline_policy(&staging, OfflinePolicy::Fail).await.unwrap();
    let s = db.environment(&p, "staging").await.unwrap();
    assert_eq!((s.selector.as_str(), s.offline_policy), ("role=web,dc=x", OfflinePolicy::Fail));
    assert_eq!(e.offline_policy, OfflinePolicy::Skip, "the default");
}

async fn deleted_projects_and_environments_keep_their_history(db: &dyn Database) {
    let (p, e, r1, _, h1, _) = fixture(db).await;
    let staging = db.create_environment(&p, &env("staging", "role=stage"), 5).await.unwrap();
    let id = start(db, deploy(&p, &staging, &r1, &[&h1]), 10).await.unwrap();
    match db.delete_environment(&staging, 11).await {
        Err(StoreError::Refused(m)) => assert!(m.contains(&format!("running deployment ({id})")), "{m}"),
        other => panic!("expected Refused, got {other:?}"),
    }
    apply(db, h1.id, &report(Some(&r1), Activity::Idle), 12).await.unwrap();
    db.delete_environment(&staging, 13).await.unwrap();
    assert!(matches!(db.environment(&p, "staging").await, Err(StoreError::NotFound(_))));
    assert_eq!(db.environments(&p).await.unwrap().len(), 1);
    assert!(db.desired_for_host(h1.id).await.unwrap().is_empty(), "no longer given its release");
    assert_eq!(db.deployment(id).await.unwrap().env, "staging", "its deployments stay readable");
    assert!(matches!(db.create_environment(&p, &env("staging", "role=x"), 14).await, Err(StoreError::Conflict(_))));

    db.update_project(&p, 3, None).await.unwrap();
    assert_eq!(db.project("web").await.unwrap().keep_releases, 3);
    db.delete_project(&p, 15).await.unwrap();
    assert!(matches!(db.project("web").await, Err(StoreError::NotFound(_))));
    assert!(db.projects().await.unwrap().is_empty());
    assert!(db.all_environments().await.unwrap().is_empty(), "its environments went with it");
    let gone = db.project_including_deleted("web").await.unwrap();
    assert_eq!(gone.deleted_at, Some(15));
    assert_eq!(db.deployments(&gone, 10).await.unwrap().len(), 1);
    assert!(db.environment_history(&e).await.unwrap().is_empty());
    assert!(matches!(db.delete_project(&gone, 16).await, Err(StoreError::NotFound(_))));
}

fn var(slot: VarSlot, key: &str, value: &str, secret: bool) -> NewVar {
    NewVar { slot, key: key.into(), value: value.into(), secret, updated_by: "admin".into() }
}

/// `(env, host, key, value)` of each row, in the order the store gives them.
fn var_rows(rows: &[VarRow]) -> Vec<(Option<&str>, Option<&str>, &str, &str)> {
    rows.iter().map(|r| (r.env.as_deref(), r.host.as_deref(), r.key.as_str(), r.value.as_str())).collect()
}

async fn variables_are_set_per_slot_replaced_and_unset(db: &dyn Database) {
    let (p, e, _, _, h1, _) = fixture(db).await;
    let whole = VarSlot { project_id: p.id, env_id: None, host: None };
    let env = VarSlot { env_id: Some(e.id), ..whole.clone() };
    let host = VarSlot { host: Some(h1.name.clone()), ..whole.clone() };
    let both = VarSlot { env_id: Some(e.id), host: Some(h1.name.clone()), ..whole.clone() };
    for (slot, value) in [(both, "4"), (host, "3"), (env.clone(), "2"), (whole.clone(), "1")] {
        assert!(!db.set_var(&var(slot, "DB_HOST", value, false), 10).await.unwrap(), "a new variable");
    }
    db.set_var(&var(whole.clone(), "A_FIRST", "a", false), 10).await.unwrap();
    assert_eq!(
        var_rows(&db.vars(&p).await.unwrap()),
        [
            (None, None, "A_FIRST", "a"),
            (None, None, "DB_HOST", "1"),
            (Some("prod"), None, "DB_HOST", "2"),
            (None, Some("h1"), "DB_HOST", "3"),
            (Some("prod"), Some("h1"), "DB_HOST", "4"),
        ],
        "by name, then least to most specific"
    );

    // Same name and slot: replaced in place, secret flag and all.
    assert!(db.set_var(&var(env.clone(), "DB_HOST", "sealed", true), 11).await.unwrap());
    let rows = db.vars(&p).await.unwrap();
    let replaced = rows.iter().find(|r| r.env.is_some() && r.host.is_none()).unwrap();
    assert_eq!((replaced.value.as_str(), replaced.secret, replaced.updated_at), ("sealed", true, 11));
    assert_eq!(rows.len(), 5, "no second row for the same slot");
    assert!(!format!("{replaced:?}").contains("sealed"), "Debug never shows a value");

    assert!(db.unset_var(&env, "DB_HOST").await.unwrap());
    assert!(!db.unset_var(&env, "DB_HOST").await.unwrap(), "already gone");
    assert!(!db.unset_var(&whole, "NOPE").await.unwrap());
    assert_eq!(db.vars(&p).await.unwrap().len(), 4, "the other slots are untouched");

    // Another project's variables are its own.
    let other = db.create_project(&project("other"), 12).await.unwrap();
    assert!(db.vars(&other).await.unwrap().is_empty());
}

async fn a_host_is_given_only_variables_that_can_reach_it(db: &dyn Database) {
    let (p, e, r1, _, h1, h2) = fixture(db).await;
    let staging = db.create_environment(&p, &env("staging", "role=stage"), 5).await.unwrap();
    let slot = |env_id, host: Option<&Host>| VarSlot { project_id: p.id, env_id, host: host.map(|h| h.name.clone()) };
    db.set_var(&var(slot(None, None), "ALL", "p", false), 6).await.unwrap();
    db.set_var(&var(slot(Some(e.id), None), "ENV", "prod", false), 6).await.unwrap();
    db.set_var(&var(slot(Some(staging.id), None), "ENV", "staging", false), 6).await.unwrap();
    db.set_var(&var(slot(None, Some(&h1)), "KEY", "h1 secret", true), 6).await.unwrap();
    db.set_var(&var(slot(None, Some(&h2)), "KEY", "h2 secret", true), 6).await.unwrap();
    db.set_var(&var(slot(Some(staging.id), Some(&h1)), "ONLY", "h1 in staging", false), 6).await.unwrap();
    assert!(db.vars_for_host(h1.id).await.unwrap().is_empty(), "nothing desired on h1 yet");

    start(db, deploy(&p, &e, &r1, &[&h1, &h2]), 10).await.unwrap();
    let h1_vars = db.vars_for_host(h1.id).await.unwrap();
    assert_eq!(
        var_rows(&h1_vars),
        [(None, None, "ALL", "p"), (Some("prod"), None, "ENV", "prod"), (None, Some("h1"), "KEY", "h1 secret")]
    );
    assert!(h1_vars.iter().all(|v| v.project == "web"));
    assert!(h1_vars[2].secret);
    let h2_vars = db.vars_for_host(h2.id).await.unwrap();
    assert!(h2_vars.iter().all(|v| v.value != "h1 secret"), "h1's secret never goes to h2");
}

async fn webhook_secrets_can_be_replaced(db: &dyn Database) {
    let source = ProjectSource {
        repo_url: "file:///repo".into(),
        webhook_secret: Some(ferry_domain::Secret::new("plain")),
        branches: vec!["main".into()],
        push_tags: false,
    };
    let p = db
        .create_project(&NewProject { name: "git".into(), keep_releases: 5, source: Some(source), host_scope: None }, 1)
        .await;
    let p = p.unwrap();
    db.set_webhook_secret(&p, Some("sealed")).await.unwrap();
    let secret = db.project("git").await.unwrap().source.unwrap().webhook_secret.unwrap();
    assert_eq!(secret.expose(), "sealed");
    db.set_webhook_secret(&p, None).await.unwrap();
    assert_eq!(db.project("git").await.unwrap().source.unwrap().webhook_secret, None);
}

fn log_line(at_ms: i64, stream: &str, text: &str) -> AgentLogLine {
    AgentLogLine { at_ms, stream: stream.into(), text: text.into() }
}

async fn deployment_logs_go_to_the_deployment_taking_the_release(db: &dyn Database) {
    let (p, e, r1, r2, h1, h2) = fixture(db).await;
    assert_eq!(db.append_deployment_log(h1.id, "web", r1.id, &[log_line(1, "ferry", "x")], 5).await.unwrap(), None);
    let id = start(db, deploy(&p, &e, &r1, &[&h1, &h2]), 10).await.unwrap();
    apply(db, h1.id, &report(None, Activity::Installing { release_id: r1.id }), 11).await.unwrap();
    let first = [log_line(12, "ferry", "downloading 1 file"), log_line(0, "stdout", "migrating")];
    assert_eq!(db.append_deployment_log(h1.id, "web", r1.id, &first, 13).await.unwrap(), Some(id));
    // h2 has not reported yet: its row is pending, and lines count already.
    let h2_lines = [log_line(14, "stderr", "warning: cold cache")];
    assert_eq!(db.append_deployment_log(h2.id, "web", r1.id, &h2_lines, 14).await.unwrap(), Some(id));
    db.append_deployment_log(h1.id, "web", r1.id, &[log_line(15, "ferry", "activated")], 15).await.unwrap();
    // Lines about another release or project belong to no deployment.
    assert_eq!(db.append_deployment_log(h1.id, "web", r2.id, &[log_line(16, "ferry", "x")], 16).await.unwrap(), None);
    assert_eq!(db.append_deployment_log(h1.id, "nope", r1.id, &[log_line(16, "ferry", "x")], 16).await.unwrap(), None);

    let all = db.deployment_log(id, None, 0, 100).await.unwrap();
    let seen: Vec<(i64, &str, &str, &str)> =
        all.iter().map(|l| (l.seq, l.host.as_str(), l.stream.as_str(), l.line.as_str())).collect();
    assert_eq!(
        seen,
        [
            (1, "h1", "ferry", "downloading 1 file"),
            (2, "h1", "stdout", "migrating"),
            (3, "h2", "stderr", "warning: cold cache"),
            (4, "h1", "ferry", "activated")
        ]
    );
    assert_eq!((all[0].at, all[1].at), (12, 13), "a line without a time gets the time it arrived");
    let h1_only: Vec<i64> = db.deployment_log(id, Some("h1"), 0, 100).await.unwrap().iter().map(|l| l.seq).collect();
    assert_eq!(h1_only, [1, 2, 4]);
    let page: Vec<i64> = db.deployment_log(id, None, 1, 2).await.unwrap().iter().map(|l| l.seq).collect();
    assert_eq!(page, [2, 3], "after and limit page through the log");
    assert!(db.deployment_log(id, Some("nope"), 0, 100).await.unwrap().is_empty());

    // Once a host's part has ended, its log is closed: a retry's output
    // after a failure does not change the deployment's story.
    apply(db, h1.id, &report(Some(&r1), Activity::Idle), 17).await.unwrap();
    assert_eq!(db.append_deployment_log(h1.id, "web", r1.id, &[log_line(18, "ferry", "x")], 18).await.unwrap(), None);
    assert_eq!(
        db.append_deployment_log(h2.id, "web", r1.id, &[log_line(18, "stdout", "y")], 18).await.unwrap(),
        Some(id)
    );
    apply(db, h2.id, &report(Some(&r1), Activity::Idle), 19).await.unwrap();
    assert_eq!(db.append_deployment_log(h2.id, "web", r1.id, &[log_line(20, "stdout", "z")], 20).await.unwrap(), None);
    assert_eq!(db.deployment_log(id, None, 0, 100).await.unwrap().len(), 5);

    // The next deployment has a log of its own.
    let next = start(db, deploy(&p, &e, &r2, &[&h1]), 21).await.unwrap();
    assert_eq!(
        db.append_deployment_log(h1.id, "web", r2.id, &[log_line(22, "ferry", "v2")], 22).await.unwrap(),
        Some(next)
    );
    assert_eq!(db.deployment_log(next, None, 0, 100).await.unwrap()[0].seq, 1);
}

async fn a_deployment_log_keeps_the_first_lines_of_each_host(db: &dyn Database) {
    use ferry_domain::log::{MAX_FERRY_LINES, MAX_OUTPUT_LINES};
    let (p, e, r1, _, h1, h2) = fixture(db).await;
    let id = start(db, deploy(&p, &e, &r1, &[&h1, &h2]), 10).await.unwrap();
    let output: Vec<AgentLogLine> =
        (1..=MAX_OUTPUT_LINES + 10).map(|i| log_line(11, "stdout", &i.to_string())).collect();
    for batch in output.chunks(1000) {
        db.append_deployment_log(h1.id, "web", r1.id, batch, 11).await.unwrap();
    }
    let more = [log_line(12, "stderr", "more"), log_line(12, "ferry", "activated"), log_line(12, "stdout", "more")];
    db.append_deployment_log(h1.id, "web", r1.id, &more, 12).await.unwrap();
    db.append_deployment_log(h2.id, "web", r1.id, &[log_line(13, "stdout", "h2 is not h1")], 13).await.unwrap();

    let h1_log = db.deployment_log(id, Some("h1"), 0, 10_000).await.unwrap();
    let kept = u64::try_from(h1_log.len()).unwrap();
    assert_eq!(kept, MAX_OUTPUT_LINES + 2, "the output, one marker, Ferry's line after it");
    let last_output = usize::try_from(MAX_OUTPUT_LINES).unwrap() - 1;
    assert_eq!(h1_log[last_output].line, MAX_OUTPUT_LINES.to_string());
    let marker = &h1_log[last_output + 1];
    assert_eq!(
        (marker.stream.as_str(), marker.line.as_str()),
        ("ferry", ferry_domain::log::dropped_marker(12).as_str())
    );
    assert_eq!(h1_log[last_output + 2].line, "activated", "Ferry's own lines have their own room");
    assert_eq!(db.deployment_log(id, Some("h2"), 0, 10).await.unwrap()[0].line, "h2 is not h1");

    // Ferry's own lines are bounded as well.
    let chatty: Vec<AgentLogLine> = (0..MAX_FERRY_LINES + 5).map(|_| log_line(14, "ferry", "step")).collect();
    db.append_deployment_log(h2.id, "web", r1.id, &chatty, 14).await.unwrap();
    let h2_log = db.deployment_log(id, Some("h2"), 0, 10_000).await.unwrap();
    assert_eq!(u64::try_from(h2_log.len()).unwrap(), 1 + MAX_FERRY_LINES + 1);
    assert!(h2_log.last().unwrap().line.starts_with("... 5 lines dropped"));
}

fn freeze(owner: &str, reason: &str, since: i64, until: i64) -> Freeze {
    Freeze { owner: owner.into(), reason: reason.into(), since, until }
}

async fn a_freeze_refuses_deployments_until_it_ends_or_is_lifted(db: &dyn Database) {
    let (p, e, r1, r2, h1, _) = fixture(db).await;
    let taken = db.freeze_environment(&e, &freeze("alice", "release night", 100, 1_100), 100).await.unwrap();
    assert_eq!((taken.project.as_str(), taken.env.as_str(), taken.freeze.owner.as_str()), ("web", "prod", "alice"));
    assert_eq!(db.environment_freeze(&e, 100).await.unwrap(), Some(taken.clone()));

    // Refused inside the deployment's transaction, with who and why; nothing is recorded.
    match db.create_deployment(deploy(&p, &e, &r1, &[&h1]), 200).await {
        Err(StoreError::Frozen { project, env, freeze }) => {
            assert_eq!((project.as_str(), env.as_str()), ("web", "prod"));
            assert_eq!(
                (freeze.owner.as_str(), freeze.reason.as_str(), freeze.until),
                ("alice", "release night", 1_100)
            );
        }
        other => panic!("expected Frozen, got {other:?}"),
    }
    assert!(db.deployments(&p, 10).await.unwrap().is_empty());
    assert!(db.desired_for_host(h1.id).await.unwrap().is_empty());
    assert_eq!(db.environment(&p, "prod").await.unwrap().desired_release_id, None);

    // A second freeze while one is in force is refused, naming the first.
    match db.freeze_environment(&e, &freeze("bob", "mine", 300, 5_000), 300).await {
        Err(StoreError::Frozen { freeze, .. }) => assert_eq!(freeze.owner, "alice"),
        other => panic!("expected Frozen, got {other:?}"),
    }

    // Another environment is not frozen.
    let staging = db.create_environment(&p, &env("staging", "role=stage"), 300).await.unwrap();
    assert_eq!(db.environment_freeze(&staging, 300).await.unwrap(), None);
    start(db, deploy(&p, &staging, &r1, &[]), 300).await.unwrap();

    // An emergency goes through, and the row says so.
    let through = start(db, NewDeployment { ignore_freeze: true, ..deploy(&p, &e, &r1, &[]) }, 400);
    let through = db.deployment(through.await.unwrap()).await.unwrap();
    assert!(through.freeze_ignored && !through.forced, "{through:?}");

    // At its end it stops applying by itself.
    assert_eq!(db.environment_freeze(&e, 1_099).await.unwrap().map(|f| f.freeze.owner), Some("alice".into()));
    assert_eq!(db.environment_freeze(&e, 1_100).await.unwrap(), None);
    assert!(db.freezes(None, 1_100).await.unwrap().is_empty());
    let id = start(db, deploy(&p, &e, &r2, &[]), 1_100).await.unwrap();
    assert!(!db.deployment(id).await.unwrap().freeze_ignored, "nothing was in force to ignore");

    // An expired freeze makes room for a new one; lifting it works once.
    db.freeze_environment(&e, &freeze("bob", "incident 42", 1_200, 9_000), 1_200).await.unwrap();
    let other = db.create_project(&project("other"), 1_200).await.unwrap();
    let other_env = db.create_environment(&other, &env("prod", "role=other"), 1_200).await.unwrap();
    db.freeze_environment(&other_env, &freeze("carol", "audit", 1_200, 9_000), 1_200).await.unwrap();
    let all: Vec<(String, String)> =
        db.freezes(None, 1_300).await.unwrap().into_iter().map(|f| (f.project, f.freeze.owner)).collect();
    assert_eq!(all, [("other".to_string(), "carol".to_string()), ("web".into(), "bob".into())]);
    let web_only = db.freezes(Some(&p), 1_300).await.unwrap();
    assert_eq!(web_only.len(), 1);
    assert_eq!(web_only[0].freeze.reason, "incident 42");

    let lifted = db.unfreeze_environment(&e, 1_300).await.unwrap().unwrap();
    assert_eq!(lifted.freeze.owner, "bob");
    assert_eq!(db.unfreeze_environment(&e, 1_301).await.unwrap(), None, "already lifted");
    assert_eq!(db.environment_freeze(&e, 1_301).await.unwrap(), None);
    // Lifting an expired freeze finds nothing in force.
    assert_eq!(db.unfreeze_environment(&other_env, 9_000).await.unwrap(), None);
    assert!(db.freezes(None, 1_302).await.unwrap().is_empty(), "the expired row went with it");
}

async fn a_release_marked_bad_is_refused_unless_forced(db: &dyn Database) {
    let (p, e, r1, r2, h1, _) = fixture(db).await;
    let mark = BadMark { by: "alice".into(), reason: "memory leak".into(), at: 50 };
    let marked = db.set_release_mark(r2.id, Some(&mark)).await.unwrap();
    assert_eq!(marked.bad.as_ref(), Some(&mark));
    assert_eq!(db.release(&p, "v2").await.unwrap().bad, Some(mark.clone()));
    assert_eq!(db.releases(&p).await.unwrap()[0].bad, Some(mark.clone()), "lists show the mark");
    assert_eq!(db.release(&p, "v1").await.unwrap().bad, None);

    match db.create_deployment(deploy(&p, &e, &r2, &[&h1]), 60).await {
        Err(StoreError::MarkedBad { project, version, mark: m }) => {
            assert_eq!((project.as_str(), version.as_str(), m), ("web", "v2", mark.clone()));
        }
        other => panic!("expected MarkedBad, got {other:?}"),
    }
    assert!(db.deployments(&p, 10).await.unwrap().is_empty(), "nothing recorded");
    assert!(db.desired_for_host(h1.id).await.unwrap().is_empty());

    // Forced, it goes ahead and the row says so; the desired state carries the mark.
    let id = start(db, NewDeployment { forced: true, ..deploy(&p, &e, &r2, &[&h1]) }, 70).await.unwrap();
    let d = db.deployment(id).await.unwrap();
    assert!(d.forced && !d.freeze_ignored, "{d:?}");
    assert!(db.deployments(&p, 10).await.unwrap()[0].forced, "lists show it too");
    assert_eq!(db.desired_for_host(h1.id).await.unwrap()[0].release.bad, Some(mark.clone()));
    apply(db, h1.id, &report(Some(&r2), Activity::Idle), 71).await.unwrap();

    // --force on a release that is not marked overrides nothing: not recorded.
    let id = start(db, NewDeployment { forced: true, ..deploy(&p, &e, &r1, &[]) }, 80).await.unwrap();
    assert!(!db.deployment(id).await.unwrap().forced);

    // Marking again replaces the mark; clearing it makes the release deployable.
    let again = BadMark { by: "bob".into(), reason: "data loss".into(), at: 90 };
    assert_eq!(db.set_release_mark(r2.id, Some(&again)).await.unwrap().bad, Some(again));
    assert_eq!(db.set_release_mark(r2.id, None).await.unwrap().bad, None);
    start(db, deploy(&p, &e, &r2, &[]), 100).await.unwrap();
    assert!(matches!(db.set_release_mark(9_999, None).await, Err(StoreError::NotFound(_))));
}

async fn running_deployments_hold_the_locks(db: &dyn Database) {
    let (p, e, r1, _, h1, _) = fixture(db).await;
    let other = db.create_project(&project("other"), 5).await.unwrap();
    let other_env = db.create_environment(&other, &env("prod", "role=other"), 5).await.unwrap();
    let other_release = db.create_release(new_release(other.id, "1"), 5).await.unwrap();
    let tags = Tags::parse("role=other").unwrap();
    let h3 = db.enroll_host("h3", &tags, "hash3", 5).await.unwrap();
    assert!(db.lock_holders(None).await.unwrap().is_empty());
    let a = start(db, deploy(&p, &e, &r1, &[&h1]), 10).await.unwrap();
    let b = start(db, deploy(&other, &other_env, &other_release, &[&h3]), 11).await.unwrap();
    let ids = |rows: Vec<DeploymentRow>| rows.into_iter().map(|d| d.id).collect::<Vec<_>>();
    assert_eq!(ids(db.lock_holders(None).await.unwrap()), [a, b]);
    assert_eq!(ids(db.lock_holders(Some(&p)).await.unwrap()), [a]);
    apply(db, h1.id, &report(Some(&r1), Activity::Idle), 12).await.unwrap();
    assert_eq!(ids(db.lock_holders(None).await.unwrap()), [b], "a finished deployment holds nothing");
}

fn nginx_lb(selector: &str) -> NewLoadBalancer {
    NewLoadBalancer {
        driver: "nginx".into(),
        selector: selector.into(),
        backend: "${FERRY_HOST_ADDRESS}:${PORT}".into(),
        options: [("upstream", "web"), ("file", "/etc/nginx/conf.d/web.conf")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        updated_by: "admin".into(),
    }
}

async fn a_load_balancer_is_set_replaced_and_unset(db: &dyn Database) {
    let (p, e, ..) = fixture(db).await;
    assert_eq!(db.load_balancer(&e).await.unwrap(), None);
    assert!(db.load_balancers().await.unwrap().is_empty());
    let g1 = db.set_load_balancer(&e, &nginx_lb("role=lb"), 10).await.unwrap();
    let lb = db.load_balancer(&e).await.unwrap().unwrap();
    assert_eq!((lb.project.as_str(), lb.env.as_str(), lb.env_selector.as_str()), ("web", "prod", "role=web"));
    assert_eq!((lb.driver.as_str(), lb.selector.as_str(), lb.generation), ("nginx", "role=lb", g1));
    assert_eq!(lb.options.get("upstream").map(String::as_str), Some("web"));
    assert_eq!((lb.updated_by.as_str(), lb.updated_at), ("admin", 10));
    assert!(lb.drained.is_empty());

    // Replacing it is a change: the generation goes up.
    let mut other = nginx_lb("role=lb,dc=bj");
    other.backend = "${FERRY_HOST}:80".into();
    let g2 = db.set_load_balancer(&e, &other, 11).await.unwrap();
    assert!(g2 > g1);
    let all = db.load_balancers().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(
        (all[0].selector.as_str(), all[0].backend.as_str(), all[0].generation),
        ("role=lb,dc=bj", "${FERRY_HOST}:80", g2)
    );

    // Another environment has its own.
    let staging = db.create_environment(&p, &env("staging", "role=stage"), 12).await.unwrap();
    assert_eq!(db.load_balancer(&staging).await.unwrap(), None);

    assert!(db.unset_load_balancer(&e).await.unwrap());
    assert!(!db.unset_load_balancer(&e).await.unwrap(), "already gone");
    assert_eq!(db.load_balancer(&e).await.unwrap(), None);
    // A generation never comes back, so a late report never counts for a new one.
    let g3 = db.set_load_balancer(&e, &nginx_lb("role=lb"), 13).await.unwrap();
    assert!(g3 > g2 + 1, "{g3} after {g2} and an unset");
}

async fn drained_hosts_move_the_generation(db: &dyn Database) {
    let (_, e, _, _, h1, h2) = fixture(db).await;
    assert_eq!(db.set_drained(&e, &[h1.id], true, 5).await.unwrap(), None, "no load balancer: nothing to drain");
    let g0 = db.set_load_balancer(&e, &nginx_lb("role=lb"), 10).await.unwrap();
    assert!(db.load_balancer(&e).await.unwrap().unwrap().drained.is_empty(), "nothing recorded before");

    let g1 = db.set_drained(&e, &[h2.id, h1.id], true, 11).await.unwrap().unwrap();
    assert_eq!(g1, g0 + 1, "one change, one generation");
    assert_eq!(db.load_balancer(&e).await.unwrap().unwrap().drained, vec![h1.id, h2.id]);
    // Draining again changes nothing: the generation in force is the answer.
    assert_eq!(db.set_drained(&e, &[h1.id], true, 12).await.unwrap(), Some(g1));
    let g2 = db.set_drained(&e, &[h1.id], false, 13).await.unwrap().unwrap();
    assert_eq!(g2, g1 + 1);
    let lb = db.load_balancer(&e).await.unwrap().unwrap();
    assert_eq!((lb.drained, lb.generation), (vec![h2.id], g2));
    assert_eq!(db.set_drained(&e, &[h1.id], false, 14).await.unwrap(), Some(g2));
    assert_eq!(db.set_drained(&e, &[], true, 14).await.unwrap(), Some(g2));

    // Replacing the configuration keeps the drained hosts; removing it forgets them.
    db.set_load_balancer(&e, &nginx_lb("role=lb2"), 15).await.unwrap();
    assert_eq!(db.load_balancer(&e).await.unwrap().unwrap().drained, vec![h2.id]);
    db.unset_load_balancer(&e).await.unwrap();
    db.set_load_balancer(&e, &nginx_lb("role=lb"), 16).await.unwrap();
    assert!(db.load_balancer(&e).await.unwrap().unwrap().drained.is_empty());
}

async fn load_balancer_hosts_report_what_they_applied(db: &dyn Database) {
    let (_, e, _, _, h1, h2) = fixture(db).await;
    let lb = db.enroll_host("lb-1", &Tags::parse("role=lb").unwrap(), "hash-lb", 4).await.unwrap();
    assert_eq!(lb.address, None, "no address before the agent connects");
    db.set_host_address(lb.id, "10.0.0.9").await.unwrap();
    assert_eq!(db.host("lb-1").await.unwrap().address.as_deref(), Some("10.0.0.9"));

    let g = db.set_load_balancer(&e, &nginx_lb("role=lb"), 10).await.unwrap();
    assert!(db.lb_applied(e.id).await.unwrap().is_empty());
    db.record_lb_applied(lb.id, "web", "prod", g, None, 20).await.unwrap();
    db.record_lb_applied(h1.id, "web", "prod", g, Some("reload failed"), 21).await.unwrap();
    // Reports about environments that do not exist are dropped.
    db.record_lb_applied(h2.id, "web", "nope", g, None, 22).await.unwrap();
    db.record_lb_applied(h2.id, "nope", "prod", g, None, 22).await.unwrap();
    let rows = db.lb_applied(e.id).await.unwrap();
    let mut want = vec![
        LbAppliedRow { host_id: lb.id, generation: g, error: None, applied_at: 20 },
        LbAppliedRow { host_id: h1.id, generation: g, error: Some("reload failed".into()), applied_at: 21 },
    ];
    want.sort_by_key(|r| r.host_id);
    assert_eq!(rows, want);
    // The latest report replaces the earlier one, error and all.
    db.record_lb_applied(h1.id, "web", "prod", g + 1, None, 30).await.unwrap();
    let h1_row = db.lb_applied(e.id).await.unwrap().into_iter().find(|r| r.host_id == h1.id).unwrap();
    assert_eq!(h1_row, LbAppliedRow { host_id: h1.id, generation: g + 1, error: None, applied_at: 30 });
    // Removing the load balancer forgets the reports.
    db.unset_load_balancer(&e).await.unwrap();
    assert!(db.lb_applied(e.id).await.unwrap().is_empty());
}

fn audit_entry(at: i64, actor: &str, object: &str, summary: &str) -> NewAuditEntry {
    NewAuditEntry {
        at,
        actor: actor.into(),
        source: "127.0.0.1".into(),
        action: "POST /api/v1/projects/{project}/vars".into(),
        object: object.into(),
        outcome: "200".into(),
        summary: summary.into(),
    }
}

async fn the_audit_trail_is_a_hash_chain(db: &dyn Database) {
    use ferry_domain::audit::{AuditKey, ChainVerifier, GENESIS_HASH, Scheme};
    let key = AuditKey::from_bytes([3; 32]);
    assert_eq!(db.audit_head().await.unwrap(), None);
    assert_eq!(db.audit_first_with_scheme(Scheme::Keyed.as_str()).await.unwrap(), None);
    let a = db.append_audit(&audit_entry(10, "admin", "project=app env=prod", "{}"), &key).await.unwrap();
    let b = db.append_audit(&audit_entry(20, "dev", "project=app_2", "{\"key\":\"X\"}"), &key).await.unwrap();
    let c = db.append_audit(&audit_entry(30, "admin", "project=web id=7", ""), &key).await.unwrap();
    assert_eq!((a.record.seq, b.record.seq, c.record.seq), (1, 2, 3));
    assert_eq!(a.prev_hash, GENESIS_HASH);
    assert_eq!(b.prev_hash, a.hash);
    assert_eq!(c.hash, key.entry_hash(&c.prev_hash, &c.record));
    assert_eq!(c.scheme, Scheme::Keyed.as_str());
    assert_eq!(db.audit_head().await.unwrap().as_ref(), Some(&c));
    assert_eq!(db.audit_first_with_scheme(Scheme::Keyed.as_str()).await.unwrap(), Some(1));
    assert_eq!(db.audit_first_with_scheme(Scheme::Unkeyed.as_str()).await.unwrap(), None);

    // The chain as stored verifies, page by page, and is read as written.
    let mut v = ChainVerifier::new(&key, 1);
    let mut after = 0;
    let mut read = Vec::new();
    loop {
        let page = db.audit_chain(after, 2).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.record.seq;
        for e in &page {
            v.push(&e.record, &e.scheme, &e.prev_hash, &e.hash).unwrap();
        }
        read.extend(page);
    }
    v.finish().unwrap();
    assert_eq!(v.count(), 3);
    assert_eq!(read, vec![a, b, c]);

    // Filters: newest first; a project matches whole names only (`_` is not
    // a wildcard), an actor exactly, a time from it on.
    let seqs = |rows: Vec<AuditEntry>| rows.iter().map(|e| e.record.seq).collect::<Vec<_>>();
    let all = AuditFilter { limit: 100, ..Default::default() };
    assert_eq!(seqs(db.audit_log(&all).await.unwrap()), vec![3, 2, 1]);
    let app = AuditFilter { project: Some("app".into()), ..all.clone() };
    assert_eq!(seqs(db.audit_log(&app).await.unwrap()), vec![1]);
    let app_ = AuditFilter { project: Some("app_2".into()), ..all.clone() };
    assert_eq!(seqs(db.audit_log(&app_).await.unwrap()), vec![2]);
    let wild = AuditFilter { project: Some("app%".into()), ..all.clone() };
    assert!(db.audit_log(&wild).await.unwrap().is_empty());
    let admin = AuditFilter { actor: Some("admin".into()), ..all.clone() };
    assert_eq!(seqs(db.audit_log(&admin).await.unwrap()), vec![3, 1]);
    let since = AuditFilter { since: Some(20), limit: 1, ..all.clone() };
    assert_eq!(seqs(db.audit_log(&since).await.unwrap()), vec![3]);
}

async fn deployment_facts_cover_a_project_since_a_time(db: &dyn Database) {
    let (p, e, r1, _, h1, h2) = fixture(db).await;
    let built = db
        .create_release(
            NewRelease {
                version: "v3".into(),
                origin: Some(ReleaseOrigin { build_id: 1, commit_sha: "abc".into(), committed_at: Some(5) }),
                ..release_like(&r1)
            },
            6,
        )
        .await
        .unwrap();
    let staging = db.create_environment(&p, &env("staging", "role=web"), 1).await.unwrap();
    let ok = start(db, deploy(&p, &e, &r1, &[&h1]), 10).await.unwrap();
    apply(db, h1.id, &report(Some(&r1), Activity::Idle), 12).await.unwrap();
    let bad = start(db, deploy(&p, &e, &built, &[&h1]), 20).await.unwrap();
    apply(db, h1.id, &report(Some(&r1), Activity::Failed { release_id: built.id, error: "x".into() }), 21)
        .await
        .unwrap();
    let mut back = deploy(&p, &e, &r1, &[&h1]);
    back.kind = DeploymentKind::Rollback;
    back.emergency = true;
    let rollback = start(db, back, 30).await.unwrap();
    let other_env = start(db, deploy(&p, &staging, &r1, &[&h2]), 40).await.unwrap();
    // Another project's deployments are not this one's.
    let api = db.create_project(&project("api"), 1).await.unwrap();
    let api_env = db.create_environment(&api, &env("prod", "role=web"), 1).await.unwrap();
    let api_release = db
        .create_release(NewRelease { project_id: api.id, version: "a1".into(), ..release_like(&r1) }, 2)
        .await
        .unwrap();
    start(db, deploy(&api, &api_env, &api_release, &[&h2]), 41).await.unwrap();

    let all = db.deployment_facts(&p, None, 0).await.unwrap();
    let ids: Vec<i64> = all.iter().map(|f| f.id).collect();
    assert_eq!(ids, [ok, bad, rollback, other_env], "oldest first, this project only");
    assert_eq!(
        all[0],
        ferry_domain::stats::DeploymentFacts {
            id: ok,
            env: "prod".into(),
            kind: DeploymentKind::Deploy,
            status: DeploymentStatus::Succeeded,
            created_at: 10,
            finished_at: Some(12),
            emergency: false,
            committed_at: None,
        }
    );
    assert!(matches!(all[1].status, DeploymentStatus::Failed | DeploymentStatus::RolledBack), "{:?}", all[1]);
    assert_eq!((all[1].committed_at, all[1].finished_at), (Some(5), Some(21)));
    assert_eq!((all[2].kind, all[2].emergency, all[2].env.as_str()), (DeploymentKind::Rollback, true, "prod"));
    assert_eq!((all[3].status, all[3].finished_at, all[3].env.as_str()), (DeploymentStatus::Running, None, "staging"));

    let prod = db.deployment_facts(&p, Some(&e), 0).await.unwrap();
    assert_eq!(prod.iter().map(|f| f.id).collect::<Vec<_>>(), [ok, bad, rollback]);
    let recent = db.deployment_facts(&p, None, 20).await.unwrap();
    assert_eq!(recent.iter().map(|f| f.id).collect::<Vec<_>>(), [bad, rollback, other_env], "since is inclusive");
    assert!(db.deployment_facts(&p, Some(&staging), 41).await.unwrap().is_empty());
}

async fn notifications_are_queued_per_rule_retried_and_logged(db: &dyn Database) {
    let (p, ..) = fixture(db).await;
    let rule = |events: &[&str], url: &str, secret: Option<&str>| NewNotificationRule {
        events: events.iter().map(|e| e.to_string()).collect(),
        kind: Channel::Webhook,
        webhook_url: url.into(),
        recipients: Vec::new(),
        secret: secret.map(Secret::new),
        created_by: "admin".into(),
    };
    let first = rule(&["deploy.finished", "deploy.failed"], "http://a", Some("sealed"));
    let a = db.add_notification_rule(&p, &first, 1).await.unwrap();
    let b = db.add_notification_rule(&p, &rule(&["build.finished"], "http://b", None), 2).await.unwrap();
    assert_eq!((a.project.as_str(), a.secret.as_ref().map(Secret::expose)), ("web", Some("sealed")));
    let mail = NewNotificationRule {
        kind: Channel::Email,
        webhook_url: String::new(),
        recipients: vec!["members".into(), "ops@example.com".into()],
        ..rule(&["deploy.finished"], "", None)
    };
    let c = db.add_notification_rule(&p, &mail, 3).await.unwrap();
    assert_eq!((c.kind, c.recipients.clone()), (Channel::Email, mail.recipients.clone()));
    assert_eq!(db.notification_rules(&p).await.unwrap(), [a.clone(), b.clone(), c.clone()]);

    let item = |rule: &NotificationRule, payload: &str| NewNotification {
        rule_id: rule.id,
        kind: rule.kind,
        webhook_url: rule.webhook_url.clone(),
        payload: payload.into(),
        recipients: Vec::new(),
        skipped: Vec::new(),
    };
    let ids = db.enqueue_notifications(p.id, "deploy.failed", &[item(&a, "{\"n\":1}")], 10).await.unwrap();
    assert_eq!(ids.len(), 1);
    assert!(db.enqueue_notifications(p.id, "nobody.cares", &[], 10).await.unwrap().is_empty());
    assert!(db.due_notifications(9, 10).await.unwrap().is_empty(), "not due before it was made");
    let due = db.due_notifications(10, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].event.as_str(), due[0].payload.as_str(), due[0].attempts), ("deploy.failed", "{\"n\":1}", 0));
    assert_eq!((due[0].webhook_url.as_str(), due[0].secret.as_ref().map(Secret::expose)), ("http://a", Some("sealed")));

    // A failed attempt schedules the next; a good one ends it.
    let refused = NotificationAttempt { at: 11, status_code: Some(500), error: Some("500".into()) };
    db.record_notification_attempt(ids[0], &refused, NotificationOutcome::RetryAt(20)).await.unwrap();
    assert!(db.due_notifications(19, 10).await.unwrap().is_empty());
    assert_eq!(db.due_notifications(20, 10).await.unwrap()[0].attempts, 1);
    let ok = NotificationAttempt { at: 21, status_code: Some(200), error: None };
    db.record_notification_attempt(ids[0], &ok, NotificationOutcome::Delivered).await.unwrap();
    assert!(db.due_notifications(100, 10).await.unwrap().is_empty());
    let again = db.record_notification_attempt(ids[0], &ok, NotificationOutcome::Delivered).await;
    assert!(matches!(again, Err(StoreError::Refused(_))), "a delivered notification is done: {again:?}");

    // Removing a rule gives up on what it still had to send; the log keeps all.
    let pending = db.enqueue_notifications(p.id, "build.finished", &[item(&b, "{}")], 30).await.unwrap();
    assert!(db.remove_notification_rule(&p, b.id).await.unwrap());
    assert!(!db.remove_notification_rule(&p, b.id).await.unwrap());
    assert!(db.due_notifications(100, 10).await.unwrap().is_empty());
    // A rule removed before its notification is queued gets none.
    assert!(db.enqueue_notifications(p.id, "build.finished", &[item(&b, "{}")], 31).await.unwrap().is_empty());

    // An e-mail keeps whom it was addressed to, and who was skipped.
    let addressed = NewNotification {
        recipients: vec!["ann@example.com".into(), "ops@example.com".into()],
        skipped: vec!["bob (no e-mail address)".into()],
        ..item(&c, "{\"subject\":\"s\",\"body\":\"b\"}")
    };
    let mailed = db.enqueue_notifications(p.id, "deploy.finished", std::slice::from_ref(&addressed), 40).await.unwrap();
    let due = db.due_notifications(40, 10).await.unwrap();
    assert_eq!((due[0].id, due[0].kind, &due[0].recipients), (mailed[0], Channel::Email, &addressed.recipients));

    let log = db.notification_log(&p, 10).await.unwrap();
    assert_eq!(log.iter().map(|n| n.id).collect::<Vec<_>>(), [mailed[0], pending[0], ids[0]], "newest first");
    assert_eq!(
        (log[0].kind, &log[0].recipients, &log[0].skipped),
        (Channel::Email, &addressed.recipients, &addressed.skipped)
    );
    assert_eq!((log[1].status.as_str(), log[1].attempts.len(), log[1].kind), ("failed", 0, Channel::Webhook));
    assert_eq!(log[2].status, "delivered");
    assert_eq!(log[2].attempts, [refused, ok]);
}

/// A new release with the fields of `r` (for `..` updates).
fn release_like(r: &Release) -> NewRelease {
    NewRelease {
        project_id: r.project_id,
        version: r.version.clone(),
        branch: r.branch.clone(),
        committer: r.committer.clone(),
        manifest_digest: r.manifest_digest,
        file_count: r.file_count,
        total_size: r.total_size,
        created_by: r.created_by.clone(),
        origin: None,
    }
}

fn new_user(name: &str, production: bool) -> NewUser {
    NewUser {
        name: name.into(),
        is_admin: false,
        production,
        password_hash: Some(format!("hash-of-{name}")),
        email: Some(format!("{name}@example.com")),
    }
}

async fn users_have_passwords_tokens_and_can_be_disabled(db: &dyn Database) {
    db.add_api_token("admin", true, "initial", "admin-th", 1).await.unwrap();
    let ann = db.create_user(&new_user("ann", true), 2).await.unwrap();
    assert!(ann.production && !ann.is_admin && !ann.disabled && ann.has_password);
    assert!(matches!(db.create_user(&new_user("ann", false), 3).await, Err(StoreError::Conflict(_))));
    assert_eq!(db.password_hash(ann.id).await.unwrap().as_deref(), Some("hash-of-ann"));
    let admin = db.user("admin").await.unwrap();
    assert!(admin.is_admin && !admin.has_password, "the built-in administrator signs in with its token");
    assert_eq!(db.password_hash(admin.id).await.unwrap(), None);
    let names: Vec<String> = db.users().await.unwrap().into_iter().map(|u| u.name).collect();
    assert_eq!(names, ["admin", "ann"]);

    let t1 = db.create_api_token(ann.id, "laptop", "ann-1", 4).await.unwrap();
    let t2 = db.create_api_token(ann.id, "ci", "ann-2", 5).await.unwrap();
    assert_eq!((t1.user.as_str(), t1.name.as_str(), t1.created_at), ("ann", "laptop", 4));
    assert_eq!(db.api_tokens(ann.id).await.unwrap(), vec![t1.clone(), t2.clone()]);
    assert_eq!(db.user_for_token("ann-2").await.unwrap().unwrap().name, "ann");
    // Nobody revokes another user's token by its id.
    assert!(!db.revoke_api_token(admin.id, t1.id).await.unwrap());
    assert!(db.revoke_api_token(ann.id, t1.id).await.unwrap());
    assert!(!db.revoke_api_token(ann.id, t1.id).await.unwrap());
    assert_eq!(db.user_for_token("ann-1").await.unwrap(), None);

    db.set_user_disabled(ann.id, true).await.unwrap();
    assert!(db.user_for_token("ann-2").await.unwrap().unwrap().disabled, "the token reports its user disabled");
    db.set_user_disabled(ann.id, false).await.unwrap();
    assert!(!db.user("ann").await.unwrap().disabled);
    assert!(matches!(db.user("nobody").await, Err(StoreError::NotFound(_))));

    assert_eq!(ann.email.as_deref(), Some("ann@example.com"));
    assert_eq!(admin.email, None);
    db.set_user_email(ann.id, Some("ann@corp.example")).await.unwrap();
    assert_eq!(db.user("ann").await.unwrap().email.as_deref(), Some("ann@corp.example"));
    db.set_user_email(ann.id, None).await.unwrap();
    assert_eq!(db.user("ann").await.unwrap().email, None);
}

async fn web_sessions_end_when_they_expire_or_are_ended(db: &dyn Database) {
    let ann = db.create_user(&new_user("ann", false), 1).await.unwrap();
    db.create_web_session(ann.id, "s1", 10, 100).await.unwrap();
    db.create_web_session(ann.id, "s2", 10, 50).await.unwrap();
    assert_eq!(db.user_for_web_session("s1", 99).await.unwrap().unwrap().name, "ann");
    assert_eq!(db.user_for_web_session("s1", 100).await.unwrap(), None, "a session ends at its expiry");
    assert_eq!(db.user_for_web_session("nope", 10).await.unwrap(), None);
    assert!(db.end_web_session("s1").await.unwrap());
    assert!(!db.end_web_session("s1").await.unwrap());
    assert_eq!(db.user_for_web_session("s1", 20).await.unwrap(), None, "signed out");
    // Starting a session removes the ones that have ended.
    db.create_web_session(ann.id, "s3", 60, 200).await.unwrap();
    assert!(!db.end_web_session("s2").await.unwrap());
    db.set_user_disabled(ann.id, true).await.unwrap();
    assert!(db.user_for_web_session("s3", 61).await.unwrap().unwrap().disabled);
}

async fn members_have_one_role_per_project(db: &dyn Database) {
    use ferry_domain::Role;
    let (p, e, ..) = fixture(db).await;
    let other = db.create_project(&project("api"), 1).await.unwrap();
    let ann = db.create_user(&new_user("ann", false), 2).await.unwrap();
    let bob = db.create_user(&new_user("bob", false), 2).await.unwrap();
    assert_eq!(db.membership(p.id, ann.id).await.unwrap(), None);
    assert_eq!(db.best_membership(ann.id).await.unwrap(), None);
    db.set_member(&p, &ann, Role::Viewer, 3).await.unwrap();
    db.set_member(&p, &bob, Role::Developer, 3).await.unwrap();
    db.set_member(&other, &ann, Role::Owner, 3).await.unwrap();
    assert_eq!(db.membership(p.id, ann.id).await.unwrap(), Some(Role::Viewer));
    assert_eq!(db.best_membership(ann.id).await.unwrap(), Some(Role::Owner));
    // A second role replaces the first.
    db.set_member(&p, &ann, Role::Developer, 4).await.unwrap();
    let members: Vec<(String, Role)> = db.members(&p).await.unwrap().into_iter().map(|m| (m.user, m.role)).collect();
    assert_eq!(members, [("ann".to_string(), Role::Developer), ("bob".to_string(), Role::Developer)]);
    assert!(db.remove_member(&p, &bob).await.unwrap());
    assert!(!db.remove_member(&p, &bob).await.unwrap());
    assert_eq!(db.membership(p.id, bob.id).await.unwrap(), None);

    // Production environments.
    assert!(!e.production);
    db.set_environment_production(&e, true).await.unwrap();
    assert!(db.environment(&p, "prod").await.unwrap().production);
    let staging = NewEnvironment { production: true, ..env("staging", "role=stage") };
    assert!(db.create_environment(&p, &staging, 5).await.unwrap().production);
}

async fn requests_change_only_from_the_state_they_were_decided_on(db: &dyn Database) {
    let (p, prod, r1, r2, h1, _) = fixture(db).await;
    let staging = db.create_environment(&p, &env("staging", "role=stage"), 1).await.unwrap();
    let guarded =
        NewEnvironment { requires_approval: true, staging_env_id: Some(staging.id), ..env("live", "role=live") };
    let live = db.create_environment(&p, &guarded, 1).await.unwrap();
    assert!(live.requires_approval);
    assert_eq!(live.staging.as_deref(), Some("staging"));
    db.set_environment_protection(&prod, true, Some(staging.id)).await.unwrap();
    let prod = db.environment(&p, "prod").await.unwrap();
    assert!(prod.requires_approval && prod.staging.as_deref() == Some("staging"));

    let new = NewRequest {
        project_id: p.id,
        env_id: prod.id,
        kind: RequestKind::Release,
        state: RequestState::Testing,
        release_id: r1.id,
        build_number: Some(1),
        reason: "new checkout".into(),
        requester: "dev".into(),
    };
    let q = db.create_request(&new, 10).await.unwrap();
    assert_eq!((q.state, q.version.as_str(), q.requester.as_str()), (RequestState::Testing, "v1", "dev"));

    // A resubmission replaces the version; a stale change is refused.
    let resubmit = RequestChange {
        from: RequestState::Testing,
        to: RequestState::Testing,
        action: RequestAction::Resubmit,
        actor: "dev".into(),
        note: None,
        release: Some((r2.id, None)),
        deployment_id: None,
    };
    let q = db.change_request(q.id, &resubmit, 20).await.unwrap();
    assert_eq!((q.version.as_str(), q.build_number), ("v2", None));
    let pass = RequestChange {
        to: RequestState::AwaitingApproval,
        action: RequestAction::Pass,
        actor: "qa".into(),
        release: None,
        ..resubmit.clone()
    };
    db.change_request(q.id, &pass, 30).await.unwrap();
    let again = db.change_request(q.id, &pass, 31).await.unwrap_err();
    assert!(matches!(&again, StoreError::Refused(m) if m.contains("awaiting_approval now")), "{again}");
    assert!(matches!(db.change_request(999, &pass, 31).await, Err(StoreError::NotFound(_))));

    // Its deployments are linked to it.
    let linked =
        start(db, NewDeployment { request_id: Some(q.id), ..deploy(&p, &prod, &r2, &[&h1]) }, 40).await.unwrap();
    let note = RequestNote { actor: "ferry", what: "staging", note: Some("updated"), deployment_id: Some(linked) };
    db.note_request(q.id, &note, 41).await.unwrap();
    assert_eq!(db.request_deployments(q.id).await.unwrap().iter().map(|d| d.id).collect::<Vec<_>>(), [linked]);
    assert_eq!(db.deployment(linked).await.unwrap().request_id, Some(q.id));

    let history = db.request_events(q.id).await.unwrap();
    let steps: Vec<(&str, Option<RequestState>, RequestState, Option<&str>)> =
        history.iter().map(|e| (e.action.as_str(), e.from, e.to, e.version.as_deref())).collect();
    assert_eq!(
        steps,
        [
            ("create", None, RequestState::Testing, Some("v1")),
            ("resubmit", Some(RequestState::Testing), RequestState::Testing, Some("v2")),
            ("pass", Some(RequestState::Testing), RequestState::AwaitingApproval, Some("v2")),
            ("staging", Some(RequestState::AwaitingApproval), RequestState::AwaitingApproval, Some("v2")),
        ]
    );
    assert_eq!(history.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(history[3].deployment_id, Some(linked));

    // Lists filter by project, state and requester, newest first.
    let other = db.create_request(&NewRequest { requester: "ops".into(), ..new.clone() }, 50).await.unwrap();
    let all = |filter: RequestFilter| async move {
        db.requests(&RequestFilter { limit: 10, ..filter }).await.unwrap().iter().map(|r| r.id).collect::<Vec<_>>()
    };
    assert_eq!(all(RequestFilter::default()).await, [other.id, q.id]);
    assert_eq!(all(RequestFilter { states: vec![RequestState::AwaitingApproval], ..Default::default() }).await, [q.id]);
    assert_eq!(all(RequestFilter { requester: Some("ops".into()), ..Default::default() }).await, [other.id]);
    assert_eq!(all(RequestFilter { project_id: Some(p.id + 1), ..Default::default() }).await, Vec::<i64>::new());
}

/// What ran on each host is recorded from its idle reports, in order and
/// once per change; an install or failure never counts, nor another
/// project's release; a deployment's targets each go to their own release.
async fn hosts_remember_what_ran_and_targets_go_to_their_own_release(db: &dyn Database) {
    let (p, e, r1, r2, h1, h2) = fixture(db).await;
    start(db, deploy(&p, &e, &r1, &[&h1, &h2]), 5).await.unwrap();
    for h in [&h1, &h2] {
        apply(db, h.id, &report(Some(&r1), Activity::Idle), 6).await.unwrap();
        apply(db, h.id, &report(Some(&r1), Activity::Idle), 7).await.unwrap();
    }
    // h1 gets r2; h2 is only installing it, then fails on it.
    start(db, deploy(&p, &e, &r2, &[&h1, &h2]), 10).await.unwrap();
    apply(db, h1.id, &report(Some(&r2), Activity::Idle), 11).await.unwrap();
    apply(db, h2.id, &report(Some(&r1), Activity::Installing { release_id: r2.id }), 11).await.unwrap();
    let failed = Activity::Failed { release_id: r2.id, error: "hook failed".into() };
    apply(db, h2.id, &report(Some(&r2), failed), 12).await.unwrap();
    // A release of another project, claimed by a host, is not recorded.
    let other = db.create_project(&project("other"), 13).await.unwrap();
    let foreign = db.create_release(new_release(other.id, "x1"), 13).await.unwrap();
    apply(db, h1.id, &report(Some(&foreign), Activity::Idle), 14).await.unwrap();

    let rows = db.hosts_past(&p).await.unwrap();
    let of = |h: &Host| rows.iter().find(|r| r.host_id == h.id).unwrap().clone();
    // The failure put h1 back: meant to run r1 again, though r2 ran there.
    assert_eq!((of(&h1).desired_release_id, of(&h1).ran), (Some(r1.id), vec![r2.id, r1.id]));
    assert_eq!((of(&h2).desired_release_id, of(&h2).ran), (Some(r1.id), vec![r1.id]), "a failure never ran");

    // A rollback whose hosts go to different releases: each is made desired
    // its own, and each host's report counts against its own.
    let mut back = deploy(&p, &e, &r1, &[&h1, &h2]);
    back.kind = DeploymentKind::Rollback;
    back.targets[1].release_id = r2.id;
    back.targets[1].release_name = "n-v2".into();
    back.targets[0].from_release_id = Some(r2.id);
    back.notes = vec![Note::AlreadyRuns { host: "h3".into(), version: "v1".into() }];
    let id = start(db, back, 20).await.unwrap();
    let desired = |h: i64| async move { db.desired_for_host(h).await.unwrap()[0].release.id };
    assert_eq!((desired(h1.id).await, desired(h2.id).await), (r1.id, r2.id));
    let rows = db.deployment_hosts(id).await.unwrap();
    let shown: Vec<_> = rows.iter().map(|h| (h.host.as_str(), h.version.as_str(), h.from_version.as_deref())).collect();
    assert_eq!(shown, [("h1", "v1", Some("v2")), ("h2", "v2", None)]);
    assert!(
        db.deployment_events(id).await.unwrap().iter().any(|e| e.what.to_string() == "left as is: h3 already runs v1")
    );
    let back_to = |r: &Release| ProjectReport { desired_since: 20, ..report(Some(r), Activity::Idle) };
    apply(db, h1.id, &back_to(&r1), 21).await.unwrap();
    apply(db, h2.id, &back_to(&r2), 21).await.unwrap();
    assert_eq!(db.deployment(id).await.unwrap().status, DeploymentStatus::Succeeded);
    let rows = db.hosts_past(&p).await.unwrap();
    assert_eq!(rows.iter().find(|r| r.host_id == h1.id).unwrap().ran, vec![r1.id, r2.id, r1.id]);
}

/// A host speaks only for projects desired on it, and each turn of a
/// service's health is answered once (R21).
async fn service_health_turns_are_answered_once_and_only_for_desired_projects(db: &dyn Database) {
    let (p, e, r1, _, h1, h2) = fixture(db).await;
    let failing = ServiceState { failing: true, reason: "crash loop".into(), stderr: vec!["boom".into()], since: 0 };
    let fine = ServiceState::default();
    // Nothing desired on h1 yet: nothing is recorded.
    assert_eq!(db.record_service_state(h1.id, "web", &failing, 5).await.unwrap(), None);
    start(db, deploy(&p, &e, &r1, &[&h1]), 10).await.unwrap();
    apply(db, h1.id, &report(Some(&r1), Activity::Idle), 11).await.unwrap();
    apply(db, h2.id, &report(Some(&r1), Activity::Idle), 11).await.unwrap();
    // h2 runs nothing of it by the server's word: its claims are ignored.
    assert_eq!(db.record_service_state(h2.id, "web", &failing, 12).await.unwrap(), None);
    assert_eq!(db.record_service_state(h1.id, "nope", &failing, 12).await.unwrap(), None);

    assert_eq!(db.record_service_state(h1.id, "web", &fine, 12).await.unwrap(), None);
    assert_eq!(db.record_service_state(h1.id, "web", &failing, 13).await.unwrap(), Some(ServiceChange::Failing));
    assert_eq!(db.record_service_state(h1.id, "web", &failing, 14).await.unwrap(), None, "once per turn");
    let rows = db.project_host_states(&p).await.unwrap();
    let row = rows.iter().find(|r| r.host_id == h1.id).unwrap();
    assert_eq!(row.service, Some(ServiceState { since: 13, ..failing.clone() }));
    assert!(rows.iter().find(|r| r.host_id == h2.id).is_none_or(|r| r.service.is_none()));
    assert_eq!(db.record_service_state(h1.id, "web", &fine, 15).await.unwrap(), Some(ServiceChange::Recovered));
    assert_eq!(db.record_service_state(h1.id, "web", &fine, 16).await.unwrap(), None);
}

/// Agent binaries and an upgrade of an environment's agents: one upgrade
/// runs per environment, hosts move only from the states they are asked to
/// move from and only while the upgrade runs, and ending it skips the
/// queued hosts.
async fn agent_upgrades_go_batch_by_batch_and_stop_for_good(db: &dyn Database) {
    use ferry_domain::agent_upgrade::HostUpgradeState::*;
    let (_p, e, _r1, _r2, h1, h2) = fixture(db).await;
    let new = |version: &str, sha: &str| NewAgentBinary {
        version: version.into(),
        sha256: sha.into(),
        size: 10,
        signature: "ab".into(),
        uploaded_by: "admin".into(),
        uploaded_at: 5,
    };
    let a2 = db.add_agent_binary(&new("a2", "aa")).await.unwrap();
    assert!(matches!(db.add_agent_binary(&new("a2", "bb")).await, Err(StoreError::Conflict(_))));
    assert_eq!(db.agent_binary("a2").await.unwrap(), a2);
    assert!(matches!(db.agent_binary("a9").await, Err(StoreError::NotFound(_))));
    assert_eq!(db.agent_binaries().await.unwrap(), vec![a2.clone()]);

    db.set_host_binary(h1.id, Some("a1"), Some("11")).await.unwrap();
    let h = db.host("h1").await.unwrap();
    assert_eq!((h.agent_binary.as_deref(), h.agent_digest.as_deref()), (Some("a1"), Some("11")));

    let id = db.create_agent_upgrade(e.id, a2.id, &[vec![h1.id], vec![h2.id]], "admin", 10).await.unwrap();
    // One upgrade per environment at a time.
    assert!(matches!(
        db.create_agent_upgrade(e.id, a2.id, &[vec![h1.id]], "admin", 11).await,
        Err(StoreError::Refused(_))
    ));
    let u = db.latest_agent_upgrade(e.id).await.unwrap().unwrap();
    assert_eq!((u.id, u.status.as_str(), u.binary.version.as_str()), (id, "running", "a2"));
    assert_eq!(u.hosts.iter().map(|h| (h.batch, h.state)).collect::<Vec<_>>(), vec![(1, Queued), (2, Queued)]);
    assert_eq!(u.hosts[0].running_version.as_deref(), Some("a1"));

    assert_eq!(db.start_agent_upgrade_batch(id, 1, 12).await.unwrap(), vec![h1.id]);
    assert_eq!(db.start_agent_upgrade_batch(id, 1, 12).await.unwrap(), Vec::<i64>::new());
    assert_eq!(db.stale_agent_upgrade_hosts(12).await.unwrap(), Vec::<(i64, i64)>::new());
    assert_eq!(db.stale_agent_upgrade_hosts(13).await.unwrap(), vec![(id, h1.id)]);
    assert_eq!(db.running_agent_upgrades_of_host(h1.id).await.unwrap().len(), 1);
    // A queued host is not upgrading: it cannot be reported failed.
    assert!(!db.set_agent_upgrade_host(id, h2.id, &[Upgrading], Failed, Some("x"), 13).await.unwrap());
    assert!(db.set_agent_upgrade_host(id, h1.id, &[Upgrading], Failed, Some("no connect"), 13).await.unwrap());
    assert!(db.finish_agent_upgrade(id, false, Some("host 'h1': no connect"), 14).await.unwrap());
    assert!(!db.finish_agent_upgrade(id, true, None, 15).await.unwrap());
    let u = db.agent_upgrade(id).await.unwrap().unwrap();
    assert_eq!(
        (u.status.as_str(), u.error.as_deref(), u.finished_at),
        ("failed", Some("host 'h1': no connect"), Some(14))
    );
    assert_eq!(u.hosts.iter().map(|h| h.state).collect::<Vec<_>>(), vec![Failed, Skipped]);
    assert_eq!(u.hosts[0].error.as_deref(), Some("no connect"));
    // An ended upgrade no longer moves, and a new one may start.
    assert!(!db.set_agent_upgrade_host(id, h1.id, &[Failed], Done, None, 16).await.unwrap());
    assert!(db.running_agent_upgrades_of_host(h1.id).await.unwrap().is_empty());
    assert!(db.stale_agent_upgrade_hosts(i64::MAX).await.unwrap().is_empty());
    assert!(db.create_agent_upgrade(e.id, a2.id, &[vec![h1.id]], "admin", 17).await.is_ok());
}

macro_rules! conformance {
    ($($story:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $story() {
                let (_dir, db) = sqlite().await;
                super::tests::$story(&db).await;
            }
        )+
    };
}

mod sqlite_backend {
    conformance!(
        names_are_unique,
        agent_upgrades_go_batch_by_batch_and_stop_for_good,
        limited_join_tokens_resolve_until_revoked,
        sign_in_locks_hold_per_address_until_enabled,
        a_host_keeps_its_enrolled_tags_until_an_administrator_changes_them,
        tokens_resolve_to_their_owner,
        a_deployment_follows_its_hosts,
        one_failed_host_fails_the_deployment,
        a_host_busy_with_or_failing_on_its_current_release_is_not_done,
        a_rollout_goes_batch_by_batch,
        a_failure_stops_the_rollout_and_puts_updated_hosts_back,
        operators_pause_promote_and_cancel,
        an_emergency_takes_over_from_a_running_rollout,
        the_environment_lock_refuses_a_second_deployment,
        offline_targets_fail_after_the_timeout,
        a_dead_target_fails_after_missed_heartbeats_unless_waited_for,
        skipped_targets_get_the_release_only_when_the_deployment_succeeds,
        a_removed_host_keeps_its_history_and_frees_its_name,
        a_host_moves_to_the_environment_that_now_selects_it,
        deleted_projects_and_environments_keep_their_history,
        a_new_host_adopts_the_environment_release,
        builds_queue_one_per_project_in_order,
        build_logs_and_deliveries,
        variables_are_set_per_slot_replaced_and_unset,
        a_host_is_given_only_variables_that_can_reach_it,
        webhook_secrets_can_be_replaced,
        deployment_logs_go_to_the_deployment_taking_the_release,
        a_deployment_log_keeps_the_first_lines_of_each_host,
        a_freeze_refuses_deployments_until_it_ends_or_is_lifted,
        a_release_marked_bad_is_refused_unless_forced,
        running_deployments_hold_the_locks,
        a_load_balancer_is_set_replaced_and_unset,
        drained_hosts_move_the_generation,
        load_balancer_hosts_report_what_they_applied,
        the_audit_trail_is_a_hash_chain,
        deployment_facts_cover_a_project_since_a_time,
        notifications_are_queued_per_rule_retried_and_logged,
        users_have_passwords_tokens_and_can_be_disabled,
        members_have_one_role_per_project,
        requests_change_only_from_the_state_they_were_decided_on,
        web_sessions_end_when_they_expire_or_are_ended,
        environments_come_in_order_with_the_hosts_a_release_succeeded_on,
        hosts_remember_what_ran_and_targets_go_to_their_own_release,
        service_health_turns_are_answered_once_and_only_for_desired_projects,
        settings_keep_the_first_value_given_and_the_database_answers,
        builds_are_found_by_number_and_keep_their_commit,
        a_project_holds_only_the_blobs_recorded_for_it,
        a_running_rollout_is_listed_peeked_held_and_drained,
        hosts_are_seen_and_rights_and_rollouts_change,
        a_request_reads_back_as_it_was_made,
    );
    use super::sqlite;
}

#[tokio::test]
async fn local_artifact_store_verifies_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalArtifactStore::open(dir.path()).unwrap();
    let d = ferry_artifact::digest_of(b"content");
    store.put(d, b"content").await.unwrap();
    assert!(store.contains(&d).await.unwrap());
    assert_eq!(store.get(&d).await.unwrap(), b"content");
    let wrong = ferry_artifact::digest_of(b"other");
    assert!(store.put(wrong, b"content").await.is_err());
    assert!(!store.contains(&wrong).await.unwrap());
    assert!(matches!(store.open(&wrong).await, Err(StoreError::NotFound(_))));
}

/// Rows written before status codes hold plain English: they read back as
/// that text, so an old deployment shows as it always did. (SQLite only: it
/// writes the old rows with SQL.)
#[tokio::test]
async fn status_texts_from_before_codes_read_back_as_they_are() {
    let (dir, db) = sqlite().await;
    let (p, e, r1, _, h1, _) = fixture(&db).await;
    let mut new = deploy(&p, &e, &r1, &[&h1]);
    new.batch_count = 2;
    let id = db.create_deployment(new, 10).await.unwrap();
    let raw = sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.path().join("ferry.db").display())).await.unwrap();
    for sql in [
        "UPDATE deployments SET hold = 'batch 1 of 2 at work', reason = 'canceled by an operator' WHERE id = ?",
        "UPDATE deployment_hosts SET error = 'not started: canceled by an operator' WHERE deployment_id = ?",
        "UPDATE deployment_events SET what = 'created by alice: 1 host(s) in 1 batch(es), all at once' \
         WHERE deployment_id = ?",
    ] {
        sqlx::query(sql).bind(id).execute(&raw).await.unwrap();
    }
    raw.close().await;
    let d = db.deployment(id).await.unwrap();
    assert_eq!(d.hold, Some(Note::text("batch 1 of 2 at work")));
    assert_eq!(d.reason, Some(Note::text("canceled by an operator")));
    let hosts = db.deployment_hosts(id).await.unwrap();
    assert_eq!(hosts[0].error, Some(Note::text("not started: canceled by an operator")));
    let events = db.deployment_events(id).await.unwrap();
    assert_eq!(events[0].what.to_string(), "created by alice: 1 host(s) in 1 batch(es), all at once");
    // New rows are codes.
    db.control_deployment(id, RolloutControl::Pause, 11).await.unwrap();
    assert_eq!(db.deployment_events(id).await.unwrap().last().map(|e| e.what.clone()), Some(Note::PausedByOperator));
}
