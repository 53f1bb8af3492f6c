//! The permission table against every role: each route of [`routes`] is
//! called by a user of each kind, and whatever the route's rule refuses must
//! be refused (403) before the handler does anything, and whatever it allows
//! must not be.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use ferry_domain::access::{Action, Role, Subject, allowed};
use ferry_domain::{DeploymentKind, Digest, RequestKind, RequestState};
use ferry_store::prelude::*;
use ferry_store::sqlite::SqliteDatabase;
use ferry_store::{
    Database, LocalArtifactStore, NewBuild, NewDeployment, NewEnvironment, NewProject, NewRelease, NewRequest, NewUser,
};
use tower::ServiceExt;

use super::{Route, router, routes};
use crate::access::Rule;
use crate::auth::{USER_TOKEN_PREFIX, new_token, token_hash};
use crate::{AppState, ServerConfig, build, hub, secrets};

/// A user of the test, with their rights and token.
pub(crate) struct Person {
    pub name: &'static str,
    pub subject: Subject,
    /// Role in project `p`.
    pub role: Option<Role>,
    pub token: String,
}

/// Project `p` with a production environment `prod` (a deployment running
/// there) and `stage`, a build, and a user of every kind; shared with the
/// web interface's route-table test.
pub(crate) struct Fixture {
    _dir: tempfile::TempDir,
    pub state: AppState,
    pub people: Vec<Person>,
    pub deployment: i64,
    pub build: i64,
    pub request: i64,
}

pub(crate) async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(SqliteDatabase::open(&dir.path().join("ferry.db")).await.unwrap());
    let p = db
        .create_project(&NewProject { name: "p".into(), keep_releases: 5, source: None, host_scope: None }, 1)
        .await
        .unwrap();
    let env = |name: &str, selector: &str, production| NewEnvironment {
        name: name.into(),
        selector: selector.into(),
        auto_deploy_branch: None,
        rollout: Default::default(),
        production,
        requires_approval: false,
        staging_env_id: None,
        offline_policy: Default::default(),
    };
    let prod = db.create_environment(&p, &env("prod", "env=prod", true), 1).await.unwrap();
    db.create_environment(&p, &env("stage", "env=stage", false), 1).await.unwrap();
    let release = db
        .create_release(
            NewRelease {
                project_id: p.id,
                version: "v1".into(),
                branch: "main".into(),
                committer: "dev".into(),
                manifest_digest: Digest([7; 32]),
                file_count: 1,
                total_size: 1,
                created_by: "admin".into(),
                origin: None,
            },
            2,
        )
        .await
        .unwrap();
    let deployment = db
        .create_deployment(
            NewDeployment {
                project_id: p.id,
                env_id: prod.id,
                release_id: release.id,
                kind: DeploymentKind::Deploy,
                created_by: "admin".into(),
                targets: vec![],
                whole_env: true,
                offline_timeout_ms: 1_000,
                offline_policy: Default::default(),
                forced: false,
                ignore_freeze: false,
                policy: Default::default(),
                batch_count: 1,
                emergency: false,
                request_id: None,
                notes: Vec::new(),
            },
            3,
        )
        .await
        .unwrap();
    let build = db
        .create_build(
            &NewBuild {
                project_id: p.id,
                git_ref: "main".into(),
                pushed_commit: None,
                trigger: "manual".into(),
                requested_by: "admin".into(),
                retry_of: None,
            },
            4,
        )
        .await
        .unwrap()
        .id;
    let request = db
        .create_request(
            &NewRequest {
                project_id: p.id,
                env_id: prod.id,
                kind: RequestKind::Release,
                state: RequestState::AwaitingApproval,
                release_id: release.id,
                build_number: None,
                reason: "fix".into(),
                requester: "admin".into(),
            },
            4,
        )
        .await
        .unwrap()
        .id;
    // Every kind of user there is: the administrator, owners, developers
    // with and without the production right, a viewer, and a user of no
    // project.
    let kinds: [(&str, bool, bool, Option<Role>); 7] = [
        ("admin", true, false, None),
        ("owner-prod", false, true, Some(Role::Owner)),
        ("owner", false, false, Some(Role::Owner)),
        ("dev-prod", false, true, Some(Role::Developer)),
        ("dev", false, false, Some(Role::Developer)),
        ("viewer", false, true, Some(Role::Viewer)),
        ("outsider", false, true, None),
    ];
    let mut people = Vec::new();
    for (name, is_admin, production, role) in kinds {
        let user = db
            .create_user(&NewUser { name: name.into(), is_admin, production, password_hash: None, email: None }, 5)
            .await
            .unwrap();
        if let Some(role) = role {
            db.set_member(&p, &user, role, 5).await.unwrap();
        }
        let token = new_token(USER_TOKEN_PREFIX);
        db.create_api_token(user.id, "t", &token_hash(&token), 5).await.unwrap();
        people.push(Person { name, subject: user.subject(), role, token });
    }
    let state = state_over(db, dir.path()).await;
    Fixture { _dir: dir, state, people, deployment, build, request }
}

/// A server's state over `db`, with its files (artifacts, secret key) in
/// `dir`: what the router needs, without a listener or background tasks.
pub(crate) async fn state_over(db: Arc<dyn Database>, dir: &std::path::Path) -> AppState {
    let secrets = secrets::SecretKey::load_or_create(db.as_ref(), dir).await.unwrap();
    let audit = crate::audit_chain::AuditChain::open(db.as_ref(), dir).await.unwrap();
    AppState {
        db,
        artifacts: Arc::new(LocalArtifactStore::open(dir.join("artifacts")).unwrap()),
        hub: hub::Hub::default(),
        builds: build::BuildQueue::default(),
        config: Arc::new(ServerConfig::new(dir.to_path_buf(), "127.0.0.1:0".parse().unwrap())),
        secrets: Arc::new(secrets),
        audit: Arc::new(audit),
        mailer: None,
        sign_in_limit: Arc::default(),
        upgrade_key: Arc::new(crate::agent_upgrade::SigningKey::load_or_create(dir).unwrap()),
        metrics: Arc::default(),
        public_url: "http://127.0.0.1:0".into(),
        on_deployment_ended: crate::deployment_ended,
    }
}

/// The route's path with its parameters filled in: project `p`, its
/// production environment, the deployment in it, the build; names nobody has
/// (so an allowed call changes nothing that matters to the next).
pub(crate) fn concrete(path: &str, f: &Fixture) -> String {
    // The API's paths and the web interface's name objects the same way.
    let id = match path.strip_prefix("/api/v1").unwrap_or(path) {
        p if p.starts_with("/builds/") => f.build,
        p if p.starts_with("/requests/") => f.request,
        _ => f.deployment,
    };
    path.replace("{project}", "p")
        .replace("{env}", "prod")
        .replace("{id}", &id.to_string())
        .replace("{version}", "v1")
        .replace("{key}", "KEY")
        .replace("{action}", "pause")
        .replace("{name}", "nobody")
        .replace("{user}", "nobody")
        .replace("{token_id}", "999999")
        .replace("{forge}", "github")
}

/// What `authorize` knows of the request: the project role, and whether the
/// environment it names is production.
fn expected(route: &Route, person: &Person, action: Action) -> bool {
    let scoped = route.path.contains("{project}") || route.path.contains("{id}");
    // Unscoped uploads count the user's best role anywhere (here: in `p`).
    let membership = if scoped || action == Action::Build { person.role } else { None };
    let production = route.path.contains("{env}")
        || route.path.starts_with("/api/v1/deployments/{id}")
        || route.path.starts_with("/api/v1/requests/{id}");
    allowed(&person.subject, membership, action, production).is_ok()
}

async fn call(f: &Fixture, method: &Method, path: &str, token: &str) -> StatusCode {
    let mut req =
        Request::builder().method(method.clone()).uri(path).header("authorization", format!("Bearer {token}"));
    let body = if *method == Method::POST {
        req = req.header("content-type", "application/json");
        Body::from("{}")
    } else {
        Body::empty()
    };
    let resp = router(f.state.clone()).oneshot(req.body(body).unwrap()).await.unwrap();
    resp.status()
}

#[test]
fn every_route_has_one_rule_and_only_the_right_ones_are_open() {
    let mut seen = BTreeSet::new();
    for r in routes() {
        assert!(seen.insert((r.method.to_string(), r.path)), "{} {} is declared twice", r.method, r.path);
        assert!(axum::routing::MethodFilter::try_from(r.method.clone()).is_ok(), "{} {}", r.method, r.path);
        let agent = r.path.starts_with("/api/v1/agent/");
        let public = matches!(
            r.path,
            "/healthz"
                | "/readyz"
                | "/metrics"
                | "/api/v1/login"
                | "/api/v1/hooks/{forge}/{project}"
                | "/api/v1/openapi.json"
        );
        match r.rule {
            Rule::Agent => assert!(agent, "{} {} is marked for agents", r.method, r.path),
            Rule::Public => assert!(public, "{} {} is open to anyone", r.method, r.path),
            Rule::User(_) => assert!(!agent && !public, "{} {} must not need a user", r.method, r.path),
        }
    }
}

#[tokio::test]
async fn every_route_refuses_whom_its_rule_refuses() {
    let f = fixture().await;
    let mut checked = 0;
    for route in routes() {
        let path = concrete(route.path, &f);
        for person in &f.people {
            let status = call(&f, &route.method, &path, &person.token).await;
            let what = format!("{} {} as {}: {status}", route.method, route.path, person.name);
            match route.rule {
                Rule::Public => {}
                // A user token never acts as an agent.
                Rule::Agent => assert!(!status.is_success(), "{what}"),
                Rule::User(action) => {
                    if expected(&route, person, action) {
                        assert!(
                            status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
                            "{what}: the rule allows it"
                        );
                    } else {
                        assert_eq!(status, StatusCode::FORBIDDEN, "{what}: the rule refuses it");
                    }
                    checked += 1;
                }
            }
        }
        // Without a token, only public and agent routes answer anything but 401.
        if let Rule::User(_) = route.rule {
            let req = Request::builder().method(route.method.clone()).uri(&path).body(Body::empty()).unwrap();
            let status = router(f.state.clone()).oneshot(req).await.unwrap().status();
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{} {} without a token", route.method, route.path);
        }
    }
    assert!(checked > 300, "only {checked} calls checked");
}

#[tokio::test]
async fn a_disabled_user_is_refused_at_once() {
    let f = fixture().await;
    let dev = f.people.iter().find(|p| p.name == "dev").unwrap();
    assert_eq!(call(&f, &Method::GET, "/api/v1/projects/p", &dev.token).await, StatusCode::OK);
    let user = f.state.db.user("dev").await.unwrap();
    f.state.db.set_user_disabled(user.id, true).await.unwrap();
    assert_eq!(call(&f, &Method::GET, "/api/v1/projects/p", &dev.token).await, StatusCode::UNAUTHORIZED);
}
