//! Stories of the conformance suite: deployments: creation, rollouts step by step, operators' controls, the environment lock, offline targets, logs and facts.

use super::*;

pub(super) async fn a_deployment_follows_its_hosts(db: &dyn Database) {
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

pub(super) async fn one_failed_host_fails_the_deployment(db: &dyn Database) {
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

pub(super) async fn a_host_busy_with_or_failing_on_its_current_release_is_not_done(db: &dyn Database) {
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

pub(super) async fn a_rollout_goes_batch_by_batch(db: &dyn Database) {
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

pub(super) async fn a_failure_stops_the_rollout_and_puts_updated_hosts_back(db: &dyn Database) {
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

pub(super) async fn operators_pause_promote_and_cancel(db: &dyn Database) {
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

pub(super) async fn an_emergency_takes_over_from_a_running_rollout(db: &dyn Database) {
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

pub(super) async fn the_environment_lock_refuses_a_second_deployment(db: &dyn Database) {
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

pub(super) async fn offline_targets_fail_after_the_timeout(db: &dyn Database) {
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

pub(super) async fn a_dead_target_fails_after_missed_heartbeats_unless_waited_for(db: &dyn Database) {
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

pub(super) async fn skipped_targets_get_the_release_only_when_the_deployment_succeeds(db: &dyn Database) {
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

pub(super) async fn deployment_logs_go_to_the_deployment_taking_the_release(db: &dyn Database) {
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

pub(super) async fn a_deployment_log_keeps_the_first_lines_of_each_host(db: &dyn Database) {
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

pub(super) async fn running_deployments_hold_the_locks(db: &dyn Database) {
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

pub(super) async fn deployment_facts_cover_a_project_since_a_time(db: &dyn Database) {
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
