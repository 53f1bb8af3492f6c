//! The conformance suite every backend must pass. Each story takes a fresh,
//! empty database; the SQLite runner gives it one in a temporary directory.

use ferry_domain::{DeploymentKind, DeploymentStatus, Digest, HostDeployState, Tags};
use ferry_proto::agent::{ActiveRelease, Activity, ProjectReport, TransferStats};

use crate::sqlite::SqliteDatabase;
use crate::*;

async fn sqlite() -> (tempfile::TempDir, SqliteDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let db = SqliteDatabase::open(&dir.path().join("ferry.db")).await.unwrap();
    (dir, db)
}

/// A project `web` with env `prod` (role=web), releases v1 and v2, hosts h1, h2.
async fn fixture(db: &dyn Database) -> (Project, Environment, Release, Release, Host, Host) {
    let p = db.create_project("web", 5, 1).await.unwrap();
    let e = db.create_environment(&p, "prod", "role=web", 1).await.unwrap();
    let mk = |v: &str| NewRelease {
        project_id: p.id,
        version: v.into(),
        branch: "main".into(),
        committer: "dev".into(),
        manifest_digest: Digest([7; 32]),
        file_count: 1,
        total_size: 3,
        created_by: "admin".into(),
    };
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
                release_name: format!("n-{}", r.version),
            })
            .collect(),
        whole_env: true,
        offline_timeout_ms: 1_000,
    }
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
    }
}

async fn names_are_unique(db: &dyn Database) {
    let (p, ..) = fixture(db).await;
    assert!(matches!(
        db.create_project("web", 5, 9).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        db.create_environment(&p, "prod", "a=b", 9).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        db.enroll_host("h1", &Tags::default(), "other", 9).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(db.project("nope").await, Err(StoreError::NotFound(_))));
    assert_eq!(db.releases(&p).await.unwrap()[0].version, "v2", "newest first");
}

async fn tokens_resolve_to_their_owner(db: &dyn Database) {
    db.add_api_token("admin", true, "first", "th", 1).await.unwrap();
    let user = db.user_for_token("th").await.unwrap().unwrap();
    assert!(user.is_admin);
    assert_eq!(db.user_for_token("nope").await.unwrap(), None);
    let (.., h1, _) = fixture(db).await;
    assert_eq!(db.host_by_token("hash1").await.unwrap().unwrap().id, h1.id);
    assert_eq!(
        db.host_by_token("th").await.unwrap(),
        None,
        "a user token is not an agent token"
    );
    assert_eq!(db.init_setting("k", "a").await.unwrap(), "a");
    assert_eq!(db.init_setting("k", "b").await.unwrap(), "a", "first value stays");
}

async fn a_deployment_follows_its_hosts(db: &dyn Database) {
    let (p, e, r1, _, h1, h2) = fixture(db).await;
    let id = db
        .create_deployment(deploy(&p, &e, &r1, &[&h1, &h2]), 10)
        .await
        .unwrap();
    assert_eq!(db.desired_for_host(h1.id).await.unwrap()[0].release.id, r1.id);
    assert_eq!(
        db.environment(&p, "prod").await.unwrap().desired_release_id,
        Some(r1.id)
    );

    db.apply_report(h1.id, &report(None, Activity::Installing { release_id: r1.id }), 11)
        .await
        .unwrap();
    assert_eq!(
        db.deployment_hosts(id).await.unwrap()[0].state,
        HostDeployState::Running
    );
    db.apply_report(h1.id, &report(Some(&r1), Activity::Idle), 12)
        .await
        .unwrap();
    assert_eq!(
        db.deployment(id).await.unwrap().status,
        DeploymentStatus::Running,
        "h2 is still pending"
    );
    db.apply_report(h2.id, &report(Some(&r1), Activity::Idle), 13)
        .await
        .unwrap();
    let d = db.deployment(id).await.unwrap();
    assert_eq!((d.status, d.finished_at), (DeploymentStatus::Succeeded, Some(13)));
    let hosts = db.deployment_hosts(id).await.unwrap();
    assert_eq!((hosts[0].bytes_downloaded, hosts[0].bytes_reused), (10, 20));
    assert_eq!(hosts[0].started_at, Some(11));

    // A late report changes nothing any more.
    db.apply_report(
        h1.id,
        &report(
            None,
            Activity::Failed {
                release_id: r1.id,
                error: "x".into(),
            },
        ),
        14,
    )
    .await
    .unwrap();
    assert_eq!(db.deployment(id).await.unwrap().status, DeploymentStatus::Succeeded);
}

async fn one_failed_host_fails_the_deployment(db: &dyn Database) {
    let (p, e, r1, _, h1, h2) = fixture(db).await;
    let id = db
        .create_deployment(deploy(&p, &e, &r1, &[&h1, &h2]), 10)
        .await
        .unwrap();
    db.apply_report(
        h1.id,
        &report(
            None,
            Activity::Failed {
                release_id: r1.id,
                error: "disk full".into(),
            },
        ),
        11,
    )
    .await
    .unwrap();
    assert_eq!(
        db.deployment(id).await.unwrap().status,
        DeploymentStatus::Running,
        "waits for h2"
    );
    db.apply_report(h2.id, &report(Some(&r1), Activity::Idle), 12)
        .await
        .unwrap();
    assert_eq!(db.deployment(id).await.unwrap().status, DeploymentStatus::Failed);
    assert_eq!(
        db.deployment_hosts(id).await.unwrap()[0].error.as_deref(),
        Some("disk full")
    );
    assert_eq!(db.environment_history(&e).await.unwrap().len(), 1);
}

async fn the_environment_lock_refuses_a_second_deployment(db: &dyn Database) {
    let (p, e, r1, r2, h1, _) = fixture(db).await;
    let first = db.create_deployment(deploy(&p, &e, &r1, &[&h1]), 10).await.unwrap();
    match db.create_deployment(deploy(&p, &e, &r2, &[&h1]), 11).await {
        Err(StoreError::Locked { running }) => assert_eq!(running, first),
        other => panic!("expected Locked, got {other:?}"),
    }
    assert_eq!(
        db.desired_for_host(h1.id).await.unwrap()[0].release.id,
        r1.id,
        "the refused deploy changed nothing"
    );
    db.apply_report(h1.id, &report(Some(&r1), Activity::Idle), 12)
        .await
        .unwrap();
    db.create_deployment(deploy(&p, &e, &r2, &[&h1]), 13).await.unwrap();
}

async fn offline_targets_fail_after_the_timeout(db: &dyn Database) {
    let (p, e, r1, _, h1, h2) = fixture(db).await;
    db.host_connected(h1.id, &h1.tags, "0.1.0", 10).await.unwrap();
    let id = db
        .create_deployment(deploy(&p, &e, &r1, &[&h1, &h2]), 10)
        .await
        .unwrap();
    assert!(
        db.fail_offline_targets(500).await.unwrap().is_empty(),
        "within the timeout"
    );
    assert_eq!(db.fail_offline_targets(1_200).await.unwrap(), vec![id]);
    let hosts = db.deployment_hosts(id).await.unwrap();
    assert_eq!(hosts[0].state, HostDeployState::Pending, "h1 is online");
    assert_eq!(hosts[1].state, HostDeployState::Failed);
    assert!(hosts[1].error.as_deref().unwrap_or("").contains("offline"));
    assert_eq!(db.mark_silent_hosts_offline(11).await.unwrap(), vec![h1.id]);
}

async fn a_new_host_adopts_the_environment_release(db: &dyn Database) {
    let (p, e, r1, _, h1, h2) = fixture(db).await;
    assert!(!db.adopt_host(h2.id, &e, 5).await.unwrap(), "nothing desired yet");
    db.create_deployment(deploy(&p, &e, &r1, &[&h1]), 10).await.unwrap();
    let e = db.environment(&p, "prod").await.unwrap();
    assert!(db.adopt_host(h2.id, &e, 11).await.unwrap());
    assert!(!db.adopt_host(h2.id, &e, 12).await.unwrap(), "only once");
    assert_eq!(db.desired_for_host(h2.id).await.unwrap()[0].release.version, "v1");
    let states = db.project_host_states(&p).await.unwrap();
    assert_eq!(states.len(), 2);
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
        tokens_resolve_to_their_owner,
        a_deployment_follows_its_hosts,
        one_failed_host_fails_the_deployment,
        the_environment_lock_refuses_a_second_deployment,
        offline_targets_fail_after_the_timeout,
        a_new_host_adopts_the_environment_release,
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
