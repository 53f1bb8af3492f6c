//! Stories of the conformance suite: accounts: users, API tokens, web sessions, sign-in locks and members.

use super::*;

pub(super) async fn sign_in_locks_hold_per_address_until_enabled(db: &dyn Database) {
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

pub(super) async fn tokens_resolve_to_their_owner(db: &dyn Database) {
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

pub(super) async fn users_have_passwords_tokens_and_can_be_disabled(db: &dyn Database) {
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

pub(super) async fn web_sessions_end_when_they_expire_or_are_ended(db: &dyn Database) {
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

pub(super) async fn members_have_one_role_per_project(db: &dyn Database) {
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
