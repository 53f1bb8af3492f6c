//! The SQLite backend: one file, WAL mode, embedded in the server process.
//!
//! Multi-statement writes run in `BEGIN IMMEDIATE` transactions so that two
//! writers never deadlock upgrading a read lock; `busy_timeout` makes them
//! queue instead of failing. With WAL and `synchronous = NORMAL` a crash of
//! the process loses no committed transaction.
//!
//! Long file: the `Database` trait's one implementation, method by method;
//! areas already moved to the submodules beside it, and the rest follow as the
//! trait is split by area.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use ferry_domain::audit::{AuditKey, AuditRecord, GENESIS_HASH, Scheme};
use ferry_domain::report::{LogLine as AgentLogLine, ProjectReport};
use ferry_domain::rollout::{RolloutPolicy, Step};
use ferry_domain::stats::DeploymentFacts;
use ferry_domain::status::Note;
use ferry_domain::{BadMark, BuildStatus, DeploymentKind, DeploymentStatus, Digest, Freeze, Secret, Tags};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

mod accounts;
mod agent_upgrade;
mod audit;
mod builds;
mod coordination;
mod deploy_log;
mod deployments;
mod fleet;
mod guards;
mod health;
mod history;
mod load_balancers;
mod notify;
mod projects;
mod promotion;
mod releases;
mod report;
mod request;
mod rollout;
mod service;
mod settings;

use crate::contract::*;
use crate::model::*;
use crate::{Result, StoreError};

/// Schema migrations, applied in order, each exactly once.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_init.sql")),
    (2, include_str!("migrations/0002_builds.sql")),
    (3, include_str!("migrations/0003_vars.sql")),
    (4, include_str!("migrations/0004_deployment_logs.sql")),
    (5, include_str!("migrations/0005_rollouts.sql")),
    (6, include_str!("migrations/0006_load_balancers.sql")),
    (7, include_str!("migrations/0007_freeze_and_bad_releases.sql")),
    (8, include_str!("migrations/0008_rollout_lb.sql")),
    (9, include_str!("migrations/0009_accounts.sql")),
    (10, include_str!("migrations/0010_audit.sql")),
    (11, include_str!("migrations/0011_notifications.sql")),
    (12, include_str!("migrations/0012_release_requests.sql")),
    (13, include_str!("migrations/0013_notification_channels.sql")),
    (14, include_str!("migrations/0014_web_sessions.sql")),
    (15, include_str!("migrations/0015_audit_keyed.sql")),
    (16, include_str!("migrations/0016_fleet_trust.sql")),
    (17, include_str!("migrations/0017_rollback_per_host.sql")),
    (18, include_str!("migrations/0018_service_health.sql")),
    (19, include_str!("migrations/0019_fleet_changes.sql")),
    (20, include_str!("migrations/0020_environment_order.sql")),
    (21, include_str!("migrations/0021_pushed_commit.sql")),
    (22, include_str!("migrations/0022_agent_upgrades.sql")),
    (23, include_str!("migrations/0023_coordination.sql")),
];

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct SqliteDatabase {
    pool: SqlitePool,
}

impl SqliteDatabase {
    /// Opens (creating if needed) the database file and applies migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // Replaced and deleted rows are overwritten with zeros rather than
            // left in free pages: a value that was once stored in the clear
            // (a webhook secret before it was sealed) does not linger.
            .pragma("secure_delete", "on");
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await?;
        let db = SqliteDatabase { pool };
        db.migrate().await?;
        Ok(db)
    }

    async fn migrate(&self) -> Result<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER)")
            .execute(&mut *tx)
            .await?;
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations").fetch_all(&mut *tx).await?;
        for (version, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            sqlx::raw_sql(sqlx::AssertSqlSafe(*sql)).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (?, strftime('%s','now') * 1000)")
                .bind(version)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Maps a unique-constraint violation to `Conflict(what)`.
fn conflict(what: impl Into<String>) -> impl FnOnce(sqlx::Error) -> StoreError {
    let what = what.into();
    move |e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(what),
        _ => StoreError::from(e),
    }
}

fn parse<T: FromStr<Err = String>>(s: &str) -> Result<T> {
    s.parse().map_err(StoreError::Backend)
}

fn digest(s: &str) -> Result<Digest> {
    s.parse().map_err(|e: ferry_domain::digest::BadDigest| StoreError::Backend(e.to_string()))
}

fn tags(s: &str) -> Result<Tags> {
    serde_json::from_str(s).map_err(|e| StoreError::Backend(format!("bad tags in database: {e}")))
}

const USER_COLS: &str = "u.id, u.name, u.is_admin, u.production, u.disabled, u.password_hash IS NOT NULL, u.email";
fn user_row(r: &sqlx::sqlite::SqliteRow) -> Result<User> {
    Ok(User {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        is_admin: r.try_get::<i64, _>(2)? != 0,
        production: r.try_get::<i64, _>(3)? != 0,
        disabled: r.try_get::<i64, _>(4)? != 0,
        has_password: r.try_get::<i64, _>(5)? != 0,
        email: r.try_get(6)?,
    })
}

fn token_row(r: &sqlx::sqlite::SqliteRow) -> Result<ApiToken> {
    Ok(ApiToken { id: r.try_get(0)?, user: r.try_get(1)?, name: r.try_get(2)?, created_at: r.try_get(3)? })
}

const PROJECT_COLS: &str =
    "id, name, keep_releases, created_at, repo_url, webhook_secret, branches, push_tags, host_scope, deleted_at";
fn project_row(r: &sqlx::sqlite::SqliteRow) -> Result<Project> {
    let repo_url: Option<String> = r.try_get(4)?;
    let source = match repo_url {
        None => None,
        Some(repo_url) => Some(ProjectSource {
            repo_url,
            webhook_secret: r.try_get::<Option<String>, _>(5)?.map(Secret::new),
            branches: serde_json::from_str(&r.try_get::<String, _>(6)?)
                .map_err(|e| StoreError::Backend(format!("bad branch list in database: {e}")))?,
            push_tags: r.try_get::<i64, _>(7)? != 0,
        }),
    };
    Ok(Project {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        keep_releases: r.try_get::<i64, _>(2)?.try_into().unwrap_or(5),
        source,
        created_at: r.try_get(3)?,
        host_scope: r.try_get(8)?,
        deleted_at: r.try_get(9)?,
    })
}

fn env_row(r: &sqlx::sqlite::SqliteRow) -> Result<Environment> {
    Ok(Environment {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        project: r.try_get("project")?,
        name: r.try_get("name")?,
        selector: r.try_get("selector")?,
        desired_release_id: r.try_get("desired_release_id")?,
        auto_deploy_branch: r.try_get("auto_deploy_branch")?,
        created_at: r.try_get("created_at")?,
        rollout: policy_from(r.try_get("rollout")?)?,
        production: r.try_get::<i64, _>("production")? != 0,
        requires_approval: r.try_get::<i64, _>("requires_approval")? != 0,
        staging: r.try_get("staging")?,
        after: r.try_get("after")?,
        self_test: r.try_get::<i64, _>("self_test")? != 0,
        offline_policy: parse(&r.try_get::<String, _>("offline_policy")?)?,
    })
}
const ENV_SELECT: &str = "SELECT e.id, e.project_id, p.name AS project, e.name, e.selector, e.desired_release_id, \
     e.auto_deploy_branch, e.created_at, e.rollout, e.production, e.requires_approval, s.name AS staging, \
     a.name AS after, e.self_test, e.offline_policy \
     FROM environments e JOIN projects p ON p.id = e.project_id LEFT JOIN environments s ON s.id = e.staging_env_id \
     LEFT JOIN environments a ON a.id = e.after_env_id";

/// A stored rollout policy; none stored means the default (all at once).
fn policy_from(json: Option<String>) -> Result<RolloutPolicy> {
    match json {
        None => Ok(RolloutPolicy::default()),
        Some(j) => serde_json::from_str(&j).map_err(|e| StoreError::Backend(format!("stored rollout policy: {e}"))),
    }
}

fn policy_json(policy: &RolloutPolicy) -> Result<String> {
    serde_json::to_string(policy).map_err(|e| StoreError::Backend(e.to_string()))
}

fn release_row(r: &sqlx::sqlite::SqliteRow) -> Result<Release> {
    Ok(Release {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        version: r.try_get("version")?,
        branch: r.try_get("branch")?,
        committer: r.try_get("committer")?,
        manifest_digest: digest(&r.try_get::<String, _>("manifest_digest")?)?,
        file_count: r.try_get::<i64, _>("file_count")?.try_into().unwrap_or(0),
        total_size: r.try_get::<i64, _>("total_size")?.try_into().unwrap_or(0),
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        origin: match r.try_get::<Option<i64>, _>("build_id")? {
            None => None,
            Some(build_id) => Some(ReleaseOrigin {
                build_id,
                commit_sha: r.try_get::<Option<String>, _>("commit_sha")?.unwrap_or_default(),
                committed_at: r.try_get("committed_at")?,
            }),
        },
        bad: match r.try_get::<Option<String>, _>("bad_reason")? {
            None => None,
            Some(reason) => Some(BadMark {
                by: r.try_get::<Option<String>, _>("bad_by")?.unwrap_or_default(),
                reason,
                at: r.try_get::<Option<i64>, _>("bad_at")?.unwrap_or(0),
            }),
        },
    })
}
const RELEASE_COLS: &str = "id, project_id, version, branch, committer, manifest_digest, file_count, total_size, \
     created_by, created_at, build_id, commit_sha, committed_at, bad_by, bad_reason, bad_at";

fn host_row(r: &sqlx::sqlite::SqliteRow) -> Result<Host> {
    Ok(Host {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        tags: tags(&r.try_get::<String, _>("tags")?)?,
        agent_version: r.try_get("agent_version")?,
        online: r.try_get::<i64, _>("online")? != 0,
        last_seen_at: r.try_get("last_seen_at")?,
        enrolled_at: r.try_get("enrolled_at")?,
        address: r.try_get("address")?,
        announced_tags: r.try_get::<Option<String>, _>("announced_tags")?.map(|t| tags(&t)).transpose()?,
        agent_binary: r.try_get("agent_binary")?,
        agent_digest: r.try_get("agent_digest")?,
    })
}
const HOST_COLS: &str = "id, name, tags, agent_version, online, last_seen_at, enrolled_at, address, announced_tags, agent_binary, agent_digest";

fn join_token_row(r: &sqlx::sqlite::SqliteRow) -> Result<JoinToken> {
    Ok(JoinToken {
        id: r.try_get("id")?,
        tags: tags(&r.try_get::<String, _>("tags")?)?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

fn deployment_row(r: &sqlx::sqlite::SqliteRow) -> Result<DeploymentRow> {
    Ok(DeploymentRow {
        id: r.try_get("id")?,
        project: r.try_get("project")?,
        env: r.try_get("env")?,
        release_id: r.try_get("release_id")?,
        version: r.try_get("version")?,
        kind: parse::<DeploymentKind>(&r.try_get::<String, _>("kind")?)?,
        status: parse::<DeploymentStatus>(&r.try_get::<String, _>("status")?)?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        finished_at: r.try_get("finished_at")?,
        policy: policy_from(r.try_get("policy")?)?,
        batch_count: u32::try_from(r.try_get::<i64, _>("batch_count")?).unwrap_or(1),
        current_batch: r.try_get::<Option<i64>, _>("current_batch")?.and_then(|b| u32::try_from(b).ok()),
        paused: r.try_get::<i64, _>("paused")? != 0,
        cancel_requested: r.try_get::<i64, _>("cancel_requested")? != 0,
        emergency: r.try_get::<i64, _>("emergency")? != 0,
        hold: r.try_get::<Option<String>, _>("hold")?.as_deref().map(Note::from_stored),
        reason: r.try_get::<Option<String>, _>("reason")?.as_deref().map(Note::from_stored),
        forced: r.try_get::<i64, _>("forced")? != 0,
        freeze_ignored: r.try_get::<i64, _>("freeze_ignored")? != 0,
        request_id: r.try_get("request_id")?,
    })
}
const DEPLOYMENT_SELECT: &str = "SELECT d.id, p.name AS project, e.name AS env, d.release_id, r.version, d.kind, \
     d.status, d.created_by, d.created_at, d.finished_at, d.policy, d.batch_count, d.current_batch, d.paused, \
     d.cancel_requested, d.emergency, d.hold, d.reason, d.forced, d.freeze_ignored, d.request_id FROM deployments d \
     JOIN projects p ON p.id = d.project_id JOIN environments e ON e.id = d.env_id JOIN releases r ON r.id = d.release_id";

const BUILD_SELECT: &str = "SELECT b.id, b.project_id, p.name AS project, b.number, b.git_ref, b.pushed_commit, b.commit_sha, b.branch, \
     b.tag, b.author, b.message, b.committed_at, b.status, b.cancel_requested, b.version, b.release_id, b.error, \
     b.trigger, b.requested_by, b.retry_of, b.created_at, b.started_at, b.finished_at \
     FROM builds b JOIN projects p ON p.id = b.project_id";

fn build_row(r: &sqlx::sqlite::SqliteRow) -> Result<Build> {
    let commit = match r.try_get::<Option<String>, _>("commit_sha")? {
        None => None,
        Some(sha) => Some(BuildCommit {
            sha,
            branch: r.try_get("branch")?,
            tag: r.try_get("tag")?,
            author: r.try_get::<Option<String>, _>("author")?.unwrap_or_default(),
            message: r.try_get::<Option<String>, _>("message")?.unwrap_or_default(),
            committed_at: r.try_get("committed_at")?,
        }),
    };
    Ok(Build {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        project: r.try_get("project")?,
        number: r.try_get("number")?,
        git_ref: r.try_get("git_ref")?,
        pushed_commit: r.try_get("pushed_commit")?,
        commit,
        status: parse::<BuildStatus>(&r.try_get::<String, _>("status")?)?,
        cancel_requested: r.try_get::<i64, _>("cancel_requested")? != 0,
        version: r.try_get("version")?,
        release_id: r.try_get("release_id")?,
        error: r.try_get("error")?,
        trigger: r.try_get("trigger")?,
        requested_by: r.try_get("requested_by")?,
        retry_of: r.try_get("retry_of")?,
        created_at: r.try_get("created_at")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
    })
}

const VAR_SELECT: &str = "SELECT p.name AS project, e.name AS env, v.host_name AS host, v.key, v.value, v.secret, \
     v.updated_by, v.updated_at FROM vars v JOIN projects p ON p.id = v.project_id \
     LEFT JOIN environments e ON e.id = v.env_id";
/// By name, then from the least to the most specific scope (project, env, host, both).
const VAR_ORDER: &str =
    "ORDER BY p.name, v.key, (v.env_id IS NOT NULL) + 2 * (v.host_name IS NOT NULL), e.name, v.host_name";

fn var_row(r: &sqlx::sqlite::SqliteRow) -> Result<VarRow> {
    Ok(VarRow {
        project: r.try_get("project")?,
        env: r.try_get("env")?,
        host: r.try_get("host")?,
        key: r.try_get("key")?,
        value: r.try_get("value")?,
        secret: r.try_get::<i64, _>("secret")? != 0,
        updated_by: r.try_get("updated_by")?,
        updated_at: r.try_get("updated_at")?,
    })
}

const FREEZE_SELECT: &str = "SELECT p.name AS project, e.name AS env, f.owner, f.reason, f.created_at, f.expires_at \
     FROM freezes f JOIN environments e ON e.id = f.env_id JOIN projects p ON p.id = e.project_id";
/// `?` is `now`: only freezes in force.
const FREEZE_IN_FORCE: &str = "f.created_at <= ? AND f.expires_at > ?";

fn freeze_row(r: &sqlx::sqlite::SqliteRow) -> Result<FreezeRow> {
    Ok(FreezeRow {
        project: r.try_get("project")?,
        env: r.try_get("env")?,
        freeze: Freeze {
            owner: r.try_get("owner")?,
            reason: r.try_get("reason")?,
            since: r.try_get("created_at")?,
            until: r.try_get("expires_at")?,
        },
    })
}

const LB_SELECT: &str = "SELECT lb.env_id, p.name AS project, e.name AS env, e.selector AS env_selector, lb.driver, \
     lb.selector, lb.backend, lb.options, COALESCE(g.generation, 0) AS generation, \
     (SELECT json_group_array(host_id) FROM (SELECT host_id FROM lb_drained d WHERE d.env_id = lb.env_id \
     ORDER BY host_id)) AS drained, lb.updated_by, lb.updated_at FROM load_balancers lb \
     JOIN environments e ON e.id = lb.env_id JOIN projects p ON p.id = e.project_id \
     LEFT JOIN lb_generations g ON g.env_id = lb.env_id";

fn lb_row(r: &sqlx::sqlite::SqliteRow) -> Result<LoadBalancer> {
    let json = |col: &str, what: &str| -> Result<serde_json::Value> {
        serde_json::from_str(&r.try_get::<String, _>(col)?)
            .map_err(|e| StoreError::Backend(format!("bad {what} in database: {e}")))
    };
    let options = serde_json::from_value(json("options", "load-balancer options")?)
        .map_err(|e| StoreError::Backend(format!("bad load-balancer options in database: {e}")))?;
    let drained = serde_json::from_value(json("drained", "drained hosts")?)
        .map_err(|e| StoreError::Backend(format!("bad drained hosts in database: {e}")))?;
    Ok(LoadBalancer {
        env_id: r.try_get("env_id")?,
        project: r.try_get("project")?,
        env: r.try_get("env")?,
        env_selector: r.try_get("env_selector")?,
        driver: r.try_get("driver")?,
        selector: r.try_get("selector")?,
        backend: r.try_get("backend")?,
        options,
        generation: r.try_get::<i64, _>("generation")?.try_into().unwrap_or(0),
        drained,
        updated_by: r.try_get("updated_by")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// Moves an environment's load-balancer generation on by one; returns it.
async fn bump_generation(conn: &mut sqlx::SqliteConnection, env_id: i64) -> Result<u64> {
    let generation: i64 = sqlx::query_scalar(
        "INSERT INTO lb_generations (env_id, generation) VALUES (?, 1) \
         ON CONFLICT (env_id) DO UPDATE SET generation = generation + 1 RETURNING generation",
    )
    .bind(env_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(generation.try_into().unwrap_or(0))
}

const AUDIT_SELECT: &str =
    "SELECT seq, at, actor, source, action, object, outcome, summary, prev_hash, hash, scheme FROM audit_log";

fn audit_row(r: &sqlx::sqlite::SqliteRow) -> Result<AuditEntry> {
    Ok(AuditEntry {
        record: AuditRecord {
            seq: r.try_get(0)?,
            at: r.try_get(1)?,
            actor: r.try_get(2)?,
            source: r.try_get(3)?,
            action: r.try_get(4)?,
            object: r.try_get(5)?,
            outcome: r.try_get(6)?,
            summary: r.try_get(7)?,
        },
        prev_hash: r.try_get(8)?,
        hash: r.try_get(9)?,
        scheme: r.try_get(10)?,
    })
}

/// Escapes `LIKE` wildcards (with `ESCAPE '\\'`).
fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}
