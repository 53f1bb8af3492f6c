//! What the server's unit tests share: a server's state over a temporary
//! database, and a project with a user of every kind (the API's and the web
//! pages' route-table tests both use it).

use std::sync::Arc;

use ferry_domain::access::{Role, Subject};
use ferry_domain::{DeploymentKind, Digest, RequestKind, RequestState};
use ferry_store::prelude::*;
use ferry_store::sqlite::SqliteDatabase;
use ferry_store::{
    Database, LocalArtifactStore, NewBuild, NewDeployment, NewEnvironment, NewProject, NewRelease, NewRequest, NewUser,
};

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
