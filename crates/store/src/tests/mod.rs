//! The conformance suite every backend must pass. Each story takes a fresh,
//! empty database; the SQLite runner gives it one in a temporary directory.
//!
//! The stories live in one file per area of the contract; this file keeps
//! the fixtures they share and the runner, so a new backend runs every story
//! by adding one runner.

use ferry_domain::report::{ActiveRelease, Activity, LogLine as AgentLogLine, ProjectReport, TransferStats};
use ferry_domain::{
    BadMark, BuildStatus, DeploymentKind, DeploymentStatus, Digest, Freeze, HostDeployState, OfflinePolicy,
    RequestAction, RequestKind, RequestState, Secret, Tags,
};

use crate::sqlite::SqliteDatabase;
use crate::*;

mod accounts;
mod coverage;
mod deployments;
mod fleet;
mod operations;
mod projects;
mod racing;
mod two_handles;

use accounts::*;
use coverage::*;
use deployments::*;
use ferry_domain::notify::Channel;
use ferry_domain::rollout::{Hold, RolloutPolicy};
use ferry_domain::status::Note;
use fleet::*;
use operations::*;
use projects::*;
use racing::*;

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

/// A build request of `p` on `main`.
fn build_of(p: &Project) -> NewBuild {
    NewBuild {
        project_id: p.id,
        git_ref: "main".into(),
        pushed_commit: None,
        trigger: "manual".into(),
        requested_by: "dev".into(),
        retry_of: None,
    }
}

/// A release request of `r` to `e`, waiting on its testers.
fn request_of(p: &Project, e: &Environment, r: &Release) -> NewRequest {
    NewRequest {
        project_id: p.id,
        env_id: e.id,
        kind: RequestKind::Release,
        state: RequestState::Testing,
        release_id: r.id,
        build_number: None,
        reason: "a fix".into(),
        requester: "dev".into(),
    }
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

fn var(slot: VarSlot, key: &str, value: &str, secret: bool) -> NewVar {
    NewVar { slot, key: key.into(), value: value.into(), secret, updated_by: "admin".into() }
}

/// `(env, host, key, value)` of each row, in the order the store gives them.
fn var_rows(rows: &[VarRow]) -> Vec<(Option<&str>, Option<&str>, &str, &str)> {
    rows.iter().map(|r| (r.env.as_deref(), r.host.as_deref(), r.key.as_str(), r.value.as_str())).collect()
}

fn log_line(at_ms: i64, stream: &str, text: &str) -> AgentLogLine {
    AgentLogLine { at_ms, stream: stream.into(), text: text.into() }
}

fn freeze(owner: &str, reason: &str, since: i64, until: i64) -> Freeze {
    Freeze { owner: owner.into(), reason: reason.into(), since, until }
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
        racing_builds_get_distinct_numbers_and_one_claimer_each,
        racing_log_appends_leave_no_gap_or_repeat,
        racing_audit_appends_keep_one_chain,
        racing_deployments_of_one_environment_lock_out_all_but_one,
        racing_callers_get_one_winner,
        racing_steps_take_each_rollout_step_once,
        racing_names_moves_and_sweeps_have_one_winner,
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
