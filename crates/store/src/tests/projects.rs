//! Stories of the conformance suite: projects, environments (order, freezes, variables, webhook secrets), releases and requests.

use super::*;

pub(super) async fn names_are_unique(db: &dyn Database) {
    let (p, ..) = fixture(db).await;
    assert!(matches!(db.create_project(&project("web"), 9).await, Err(StoreError::Conflict(_))));
    assert!(matches!(db.create_environment(&p, &env("prod", "a=b"), 9).await, Err(StoreError::Conflict(_))));
    assert!(matches!(db.enroll_host("h1", &Tags::default(), "other", 9).await, Err(StoreError::Conflict(_))));
    assert!(matches!(db.project("nope").await, Err(StoreError::NotFound(_))));
    assert_eq!(db.releases(&p).await.unwrap()[0].version, "v2", "newest first");
}

pub(super) async fn environments_come_in_order_with_the_hosts_a_release_succeeded_on(db: &dyn Database) {
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

pub(super) async fn deleted_projects_and_environments_keep_their_history(db: &dyn Database) {
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

pub(super) async fn variables_are_set_per_slot_replaced_and_unset(db: &dyn Database) {
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

pub(super) async fn a_host_is_given_only_variables_that_can_reach_it(db: &dyn Database) {
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

pub(super) async fn webhook_secrets_can_be_replaced(db: &dyn Database) {
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

pub(super) async fn a_freeze_refuses_deployments_until_it_ends_or_is_lifted(db: &dyn Database) {
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

pub(super) async fn a_release_marked_bad_is_refused_unless_forced(db: &dyn Database) {
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

pub(super) async fn requests_change_only_from_the_state_they_were_decided_on(db: &dyn Database) {
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
