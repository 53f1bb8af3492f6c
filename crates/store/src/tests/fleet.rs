//! Stories of the conformance suite: the fleet: hosts, join tokens, desired and actual state, service health.

use super::*;

pub(super) async fn a_host_keeps_its_enrolled_tags_until_an_administrator_changes_them(db: &dyn Database) {
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

pub(super) async fn limited_join_tokens_resolve_until_revoked(db: &dyn Database) {
    let web = Tags::parse("role=web").unwrap();
    let t = db.create_join_token("jh", &web, "admin", 3).await.unwrap();
    assert_eq!(db.join_token("jh").await.unwrap().map(|j| j.tags), Some(web));
    assert_eq!(db.join_token("other").await.unwrap(), None);
    db.revoke_join_token(t.id, 4).await.unwrap();
    assert_eq!(db.join_token("jh").await.unwrap(), None, "a revoked token enrols nobody");
    assert_eq!(db.join_tokens().await.unwrap()[0].revoked_at, Some(4));
    assert!(matches!(db.revoke_join_token(99, 5).await, Err(StoreError::NotFound(_))));
}

pub(super) async fn a_new_host_adopts_the_environment_release(db: &dyn Database) {
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

pub(super) async fn a_removed_host_keeps_its_history_and_frees_its_name(db: &dyn Database) {
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

pub(super) async fn a_host_moves_to_the_environment_that_now_selects_it(db: &dyn Database) {
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

/// What ran on each host is recorded from its idle reports, in order and
/// once per change; an install or failure never counts, nor another
/// project's release; a deployment's targets each go to their own release.
pub(super) async fn hosts_remember_what_ran_and_targets_go_to_their_own_release(db: &dyn Database) {
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
pub(super) async fn service_health_turns_are_answered_once_and_only_for_desired_projects(db: &dyn Database) {
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
