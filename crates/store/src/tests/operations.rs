//! Stories of the conformance suite: the server's other areas: builds, load balancers, the audit trail, notifications and agent upgrades.

use super::*;

pub(super) async fn builds_queue_one_per_project_in_order(db: &dyn Database) {
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
    assert_eq!(db.claim_build("s", 10, 1_000).await.unwrap().unwrap().id, a1.id);
    assert_eq!(db.claim_build("s", 11, 1_000).await.unwrap().unwrap().id, b1.id);
    assert_eq!(db.claim_build("s", 12, 1_000).await.unwrap(), None, "a2 waits while a1 runs");
    let ok = BuildOutcome { status: BuildStatus::Succeeded, error: None, version: Some("1".into()), release_id: None };
    assert!(db.finish_build(a1.id, &ok, 13).await.unwrap());
    assert!(!db.finish_build(a1.id, &ok, 14).await.unwrap(), "an ended build stays ended");
    assert_eq!(db.claim_build("s", 15, 1_000).await.unwrap().unwrap().id, a2.id);
    assert_eq!(db.latest_succeeded_build(&a).await.unwrap().unwrap().id, a1.id);

    // Cancelling: a running build is asked to stop, a queued one stops at once.
    assert!(db.cancel_build(a2.id, 16).await.unwrap().cancel_requested);
    let a3 = db.create_build(&req(&a, "main"), 17).await.unwrap();
    assert_eq!(db.cancel_build(a3.id, 18).await.unwrap().status, BuildStatus::Canceled);

    assert_eq!(db.fail_expired_builds("server restarted", 2_000).await.unwrap().len(), 2, "leases ran out");
    let a2 = db.build(a2.id).await.unwrap();
    assert_eq!((a2.status, a2.error.as_deref()), (BuildStatus::Failed, Some("server restarted")));
    let listed: Vec<i64> = db.builds(&a, 10).await.unwrap().iter().map(|b| b.number).collect();
    assert_eq!(listed, [3, 2, 1]);
}

pub(super) async fn build_logs_and_deliveries(db: &dyn Database) {
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

pub(super) async fn a_load_balancer_is_set_replaced_and_unset(db: &dyn Database) {
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

pub(super) async fn drained_hosts_move_the_generation(db: &dyn Database) {
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

pub(super) async fn load_balancer_hosts_report_what_they_applied(db: &dyn Database) {
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

pub(super) async fn the_audit_trail_is_a_hash_chain(db: &dyn Database) {
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

pub(super) async fn notifications_are_queued_per_rule_retried_and_logged(db: &dyn Database) {
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
    assert!(db.claim_due_notifications("s", 9, 1, 10).await.unwrap().is_empty(), "not due before it was made");
    let due = db.claim_due_notifications("s", 10, 1, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].event.as_str(), due[0].payload.as_str(), due[0].attempts), ("deploy.failed", "{\"n\":1}", 0));
    assert_eq!((due[0].webhook_url.as_str(), due[0].secret.as_ref().map(Secret::expose)), ("http://a", Some("sealed")));

    // A failed attempt schedules the next; a good one ends it.
    let refused = NotificationAttempt { at: 11, status_code: Some(500), error: Some("500".into()) };
    db.record_notification_attempt(ids[0], &refused, NotificationOutcome::RetryAt(20)).await.unwrap();
    assert!(db.claim_due_notifications("s", 19, 1, 10).await.unwrap().is_empty());
    assert_eq!(db.claim_due_notifications("s", 20, 1, 10).await.unwrap()[0].attempts, 1);
    let ok = NotificationAttempt { at: 21, status_code: Some(200), error: None };
    db.record_notification_attempt(ids[0], &ok, NotificationOutcome::Delivered).await.unwrap();
    assert!(db.claim_due_notifications("s", 100, 1, 10).await.unwrap().is_empty());
    let again = db.record_notification_attempt(ids[0], &ok, NotificationOutcome::Delivered).await;
    assert!(matches!(again, Err(StoreError::Refused(_))), "a delivered notification is done: {again:?}");

    // Removing a rule gives up on what it still had to send; the log keeps all.
    let pending = db.enqueue_notifications(p.id, "build.finished", &[item(&b, "{}")], 30).await.unwrap();
    assert!(db.remove_notification_rule(&p, b.id).await.unwrap());
    assert!(!db.remove_notification_rule(&p, b.id).await.unwrap());
    assert!(db.claim_due_notifications("s", 100, 1, 10).await.unwrap().is_empty());
    // A rule removed before its notification is queued gets none.
    assert!(db.enqueue_notifications(p.id, "build.finished", &[item(&b, "{}")], 31).await.unwrap().is_empty());

    // An e-mail keeps whom it was addressed to, and who was skipped.
    let addressed = NewNotification {
        recipients: vec!["ann@example.com".into(), "ops@example.com".into()],
        skipped: vec!["bob (no e-mail address)".into()],
        ..item(&c, "{\"subject\":\"s\",\"body\":\"b\"}")
    };
    let mailed = db.enqueue_notifications(p.id, "deploy.finished", std::slice::from_ref(&addressed), 40).await.unwrap();
    let due = db.claim_due_notifications("s", 40, 1, 10).await.unwrap();
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

/// Agent binaries and an upgrade of an environment's agents: one upgrade
/// runs per environment, hosts move only from the states they are asked to
/// move from and only while the upgrade runs, and ending it skips the
/// queued hosts.
pub(super) async fn agent_upgrades_go_batch_by_batch_and_stop_for_good(db: &dyn Database) {
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
