//! How long the heaviest pages take to render server-side, on a fleet of 500
//! hosts and a project with 1,000 deployments (issue 7: under 100 ms).
//! Ignored: run by hand, figures in docs/PERFORMANCE.md:
//!
//! `cargo test -p ferry-server ui::bench -- --ignored --nocapture`

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use ferry_domain::{DeploymentKind, Digest, Tags};
use ferry_proto::agent::{ActiveRelease, Activity, ProjectReport};
use ferry_store::prelude::*;
use ferry_store::sqlite::SqliteDatabase;
use ferry_store::{
    Advanced, Database, DeploymentTarget, NewDeployment, NewEnvironment, NewProject, NewRelease, NewUser,
};
use tower::ServiceExt;

use crate::auth::{new_token, token_hash};

const HOSTS: usize = 500;
const DEPLOYMENTS: usize = 1_000;

async fn drive(db: &dyn Database, id: i64, now: i64) {
    while let Advanced::Changed { .. } = db.advance_deployment(id, now).await.unwrap() {}
}

fn deployment(p: i64, e: i64, r: i64, version: &str, hosts: &[i64]) -> NewDeployment {
    NewDeployment {
        project_id: p,
        env_id: e,
        release_id: r,
        kind: DeploymentKind::Deploy,
        created_by: "admin".into(),
        targets: hosts
            .iter()
            .map(|h| DeploymentTarget {
                host_id: *h,
                release_id: r,
                release_name: format!("app_{version}"),
                from_release_id: None,
                batch: 0,
                skipped: false,
            })
            .collect(),
        whole_env: false,
        offline_timeout_ms: 3_600_000,
        offline_policy: Default::default(),
        forced: false,
        ignore_freeze: false,
        policy: Default::default(),
        batch_count: 1,
        emergency: false,
        request_id: None,
        notes: Vec::new(),
    }
}

fn report(release: i64, version: &str) -> ProjectReport {
    ProjectReport {
        project: "app".into(),
        current: Some(ActiveRelease {
            release_id: release,
            release_name: format!("app_{version}"),
            version: version.into(),
        }),
        activity: Activity::Idle,
        transfer: None,
        note: None,
        desired_since: 0,
        service: None,
    }
}

#[tokio::test]
#[ignore = "a measurement, run by hand"]
async fn pages_render_fast_for_500_hosts_and_1000_deployments() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(SqliteDatabase::open(&dir.path().join("ferry.db")).await.unwrap());
    let p = db
        .create_project(&NewProject { name: "app".into(), keep_releases: 5, source: None, host_scope: None }, 1)
        .await
        .unwrap();
    let mut envs = Vec::new();
    for (name, tag) in [("prod", "env=prod"), ("stage", "env=stage")] {
        let new = NewEnvironment {
            name: name.into(),
            selector: tag.into(),
            auto_deploy_branch: None,
            rollout: Default::default(),
            production: name == "prod",
            requires_approval: false,
            staging_env_id: None,
            offline_policy: Default::default(),
        };
        envs.push(db.create_environment(&p, &new, 1).await.unwrap());
    }
    let mut releases = Vec::new();
    for v in ["v1", "v2", "v3"] {
        let new = NewRelease {
            project_id: p.id,
            version: v.into(),
            branch: "main".into(),
            committer: "dev".into(),
            manifest_digest: Digest([7; 32]),
            file_count: 1,
            total_size: 1,
            created_by: "admin".into(),
            origin: None,
        };
        releases.push(db.create_release(new, 2).await.unwrap());
    }
    let mut hosts = Vec::new();
    for i in 0..HOSTS {
        let env = if i % 5 == 0 { "stage" } else { "prod" };
        let tags = Tags::parse(&format!("env={env}")).unwrap();
        let h = db.enroll_host(&format!("host-{i:03}"), &tags, &format!("t{i}"), 3).await.unwrap();
        if i % 50 != 7 {
            db.host_connected(h.id, &tags, "0.1.0", 3).await.unwrap();
        }
        hosts.push((h.id, env));
    }
    // Every host on v1, then prod partly on v2 and stage on v3, some of
    // them not there yet (drift).
    let mut now = 10;
    for (env, targets) in
        envs.iter().map(|e| (e, hosts.iter().filter(|h| h.1 == e.name).map(|h| h.0).collect::<Vec<_>>()))
    {
        let id = db.create_deployment(deployment(p.id, env.id, releases[0].id, "v1", &targets), now).await.unwrap();
        drive(db.as_ref(), id, now).await;
        for h in &targets {
            db.apply_report(*h, &report(releases[0].id, "v1"), now).await.unwrap();
        }
        drive(db.as_ref(), id, now).await;
        now += 1;
        let (next, version) = if env.name == "prod" { (1, "v2") } else { (2, "v3") };
        let half: Vec<i64> = targets.iter().copied().step_by(2).collect();
        let id = db.create_deployment(deployment(p.id, env.id, releases[next].id, version, &half), now).await.unwrap();
        drive(db.as_ref(), id, now).await;
        for h in &half {
            db.apply_report(*h, &report(releases[next].id, version), now).await.unwrap();
        }
        drive(db.as_ref(), id, now).await;
        now += 1;
        // Some hosts went back by hand: drift.
        for h in half.iter().skip(1).take(10) {
            db.apply_report(*h, &report(releases[0].id, "v1"), now).await.unwrap();
        }
    }
    // The rest of the 1,000 deployments: one host each, each ending.
    let one = hosts.iter().find(|h| h.1 == "stage").unwrap().0;
    while db.deployments(&p, 1000).await.unwrap().len() < DEPLOYMENTS {
        let id = db.create_deployment(deployment(p.id, envs[1].id, releases[2].id, "v3", &[one]), now).await.unwrap();
        drive(db.as_ref(), id, now).await;
        db.apply_report(one, &report(releases[2].id, "v3"), now).await.unwrap();
        drive(db.as_ref(), id, now).await;
        now += 1;
    }

    let admin = db
        .create_user(
            &NewUser { name: "ann".into(), is_admin: true, production: true, password_hash: None, email: None },
            1,
        )
        .await
        .unwrap();
    let session = new_token("fy_s_");
    db.create_web_session(admin.id, &token_hash(&session), 1, i64::MAX).await.unwrap();
    let state = crate::testing::state_over(db, dir.path()).await;
    let app = super::router(state);
    println!("{HOSTS} hosts, {DEPLOYMENTS} deployments; 20 requests per page, through the router:");
    for page in ["/fleet", "/projects/app", "/hosts", "/"] {
        let mut times: Vec<Duration> = Vec::new();
        let mut bytes = 0;
        for _ in 0..20 {
            let req = Request::get(page)
                .header(header::COOKIE, format!("ferry_session={session}"))
                .body(Body::empty())
                .unwrap();
            let start = Instant::now();
            let resp = app.clone().oneshot(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "{page}");
            let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
            times.push(start.elapsed());
            bytes = body.len();
            if page == "/fleet" {
                let html = String::from_utf8_lossy(&body);
                assert!(
                    html.contains(" drift\"") && html.contains("class=\"offline\""),
                    "drift and offline are marked"
                );
                assert_eq!(html.matches("<tr").count(), HOSTS + 1, "one row per host");
            }
        }
        times.sort();
        println!(
            "{page:>14}: median {:>6.1} ms, slowest {:>6.1} ms, {:>5} kB of HTML",
            times[times.len() / 2].as_secs_f64() * 1e3,
            times[times.len() - 1].as_secs_f64() * 1e3,
            bytes / 1000
        );
    }
}
