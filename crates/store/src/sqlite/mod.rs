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

mod agent_upgrade;
mod deploy_log;
mod fleet;
mod guards;
mod history;
mod notify;
mod promotion;
mod report;
mod request;
mod rollout;
mod service;

use crate::model::*;
use crate::{Database, Result, StoreError};

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

#[async_trait]
impl Database for SqliteDatabase {
    async fn get_setting(&self, key: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT value FROM settings WHERE key = ?").bind(key).fetch_optional(&self.pool).await?)
    }

    async fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn init_setting(&self, key: &str, value: &str) -> Result<String> {
        sqlx::query("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        self.get_setting(key).await?.ok_or_else(|| StoreError::NotFound(format!("setting {key}")))
    }

    async fn add_api_token(
        &self,
        user: &str,
        is_admin: bool,
        token_name: &str,
        token_hash: &str,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("INSERT INTO users (name, is_admin, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING")
            .bind(user)
            .bind(is_admin)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO api_tokens (user_id, name, token_hash, created_at) \
             SELECT id, ?, ?, ? FROM users WHERE name = ?",
        )
        .bind(token_name)
        .bind(token_hash)
        .bind(now)
        .bind(user)
        .execute(&mut *tx)
        .await
        .map_err(conflict("token"))?;
        tx.commit().await?;
        Ok(())
    }

    async fn user_for_token(&self, token_hash: &str) -> Result<Option<User>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLS} FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?"
        )))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| user_row(&r)).transpose()
    }

    async fn create_user(&self, new: &NewUser, now: i64) -> Result<User> {
        sqlx::query(
            "INSERT INTO users (name, is_admin, production, password_hash, email, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&new.name)
        .bind(new.is_admin)
        .bind(new.production)
        .bind(new.password_hash.as_deref())
        .bind(new.email.as_deref())
        .bind(now)
            .execute(&self.pool)
            .await
            .map_err(conflict(format!("user '{}'", new.name)))?;
        self.user(&new.name).await
    }

    async fn user(&self, name: &str) -> Result<User> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {USER_COLS} FROM users u WHERE u.name = ?")))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| user_row(&r)).transpose()?.ok_or_else(|| StoreError::NotFound(format!("user '{name}'")))
    }

    async fn users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {USER_COLS} FROM users u ORDER BY u.name")))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(user_row).collect()
    }

    async fn password_hash(&self, user_id: i64) -> Result<Option<String>> {
        let hash: Option<Option<String>> = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = ?")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(hash.flatten())
    }

    async fn set_user_disabled(&self, user_id: i64, disabled: bool) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("UPDATE users SET disabled = ? WHERE id = ?")
            .bind(disabled)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("user {user_id}")));
        }
        if !disabled {
            sqlx::query("DELETE FROM sign_in_failures WHERE user_id = ?").bind(user_id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn sign_in_lock(&self, user_id: i64, address: &str, now: i64) -> Result<Option<i64>> {
        let until: Option<i64> =
            sqlx::query_scalar("SELECT locked_until FROM sign_in_failures WHERE user_id = ? AND address = ?")
                .bind(user_id)
                .bind(address)
                .fetch_optional(&self.pool)
                .await?
                .flatten();
        Ok(until.filter(|t| *t > now))
    }

    async fn record_failed_sign_in(
        &self,
        user_id: i64,
        address: &str,
        now: i64,
        lock: fn(u32, i64) -> Option<i64>,
    ) -> Result<Option<i64>> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let failures: i64 = sqlx::query_scalar(
            "INSERT INTO sign_in_failures (user_id, address, failures) VALUES (?1, ?2, 1) \
             ON CONFLICT (user_id, address) DO UPDATE SET failures = failures + 1 RETURNING failures",
        )
        .bind(user_id)
        .bind(address)
        .fetch_one(&mut *tx)
        .await?;
        let until = lock(u32::try_from(failures).unwrap_or(u32::MAX), now);
        if until.is_some() {
            // Locked: the count starts again, so the next lock needs as
            // many failures as the first.
            sqlx::query(
                "UPDATE sign_in_failures SET locked_until = ?1, failures = 0 WHERE user_id = ?2 AND address = ?3",
            )
            .bind(until)
            .bind(user_id)
            .bind(address)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(until)
    }

    async fn clear_failed_sign_ins(&self, user_id: i64, address: &str) -> Result<()> {
        sqlx::query("DELETE FROM sign_in_failures WHERE user_id = ? AND address = ?")
            .bind(user_id)
            .bind(address)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_user_rights(&self, user_id: i64, is_admin: bool, production: bool) -> Result<()> {
        let done = sqlx::query("UPDATE users SET is_admin = ?, production = ? WHERE id = ?")
            .bind(is_admin)
            .bind(production)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("user {user_id}")));
        }
        Ok(())
    }

    async fn set_user_email(&self, user_id: i64, email: Option<&str>) -> Result<()> {
        let done = sqlx::query("UPDATE users SET email = ? WHERE id = ?")
            .bind(email)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("user {user_id}")));
        }
        Ok(())
    }

    async fn create_api_token(&self, user_id: i64, name: &str, token_hash: &str, now: i64) -> Result<ApiToken> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO api_tokens (user_id, name, token_hash, created_at) VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(user_id)
        .bind(name)
        .bind(token_hash)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(conflict("token"))?;
        let row = sqlx::query(
            "SELECT t.id, u.name, t.name, t.created_at FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.id = ?",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        token_row(&row)
    }

    async fn api_tokens(&self, user_id: i64) -> Result<Vec<ApiToken>> {
        let rows = sqlx::query(
            "SELECT t.id, u.name, t.name, t.created_at FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.user_id = ? ORDER BY t.id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_row).collect()
    }

    async fn revoke_api_token(&self, user_id: i64, token_id: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM api_tokens WHERE id = ? AND user_id = ?")
            .bind(token_id)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_web_session(&self, user_id: i64, token_hash: &str, now: i64, expires_at: i64) -> Result<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // Ended sessions go when a new one starts: the table stays as small
        // as the number of people signed in.
        sqlx::query("DELETE FROM web_sessions WHERE expires_at <= ?").bind(now).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO web_sessions (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)")
            .bind(token_hash)
            .bind(user_id)
            .bind(now)
            .bind(expires_at)
            .execute(&mut *tx)
            .await
            .map_err(conflict("web session"))?;
        tx.commit().await?;
        Ok(())
    }

    async fn user_for_web_session(&self, token_hash: &str, now: i64) -> Result<Option<User>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLS} FROM web_sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = ? AND s.expires_at > ?"
        )))
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| user_row(&r)).transpose()
    }

    async fn end_web_session(&self, token_hash: &str) -> Result<bool> {
        let done =
            sqlx::query("DELETE FROM web_sessions WHERE token_hash = ?").bind(token_hash).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }

    async fn set_member(&self, project: &Project, user: &User, role: ferry_domain::Role, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO project_members (project_id, user_id, role, created_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (project_id, user_id) DO UPDATE SET role = excluded.role",
        )
        .bind(project.id)
        .bind(user.id)
        .bind(role.as_str())
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn remove_member(&self, project: &Project, user: &User) -> Result<bool> {
        let done = sqlx::query("DELETE FROM project_members WHERE project_id = ? AND user_id = ?")
            .bind(project.id)
            .bind(user.id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn members(&self, project: &Project) -> Result<Vec<Member>> {
        let rows = sqlx::query(
            "SELECT u.name, m.role, m.created_at FROM project_members m JOIN users u ON u.id = m.user_id \
             WHERE m.project_id = ? ORDER BY u.name",
        )
        .bind(project.id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Member {
                    project: project.name.clone(),
                    user: r.try_get(0)?,
                    role: parse(&r.try_get::<String, _>(1)?)?,
                    created_at: r.try_get(2)?,
                })
            })
            .collect()
    }

    async fn membership(&self, project_id: i64, user_id: i64) -> Result<Option<ferry_domain::Role>> {
        let role: Option<String> =
            sqlx::query_scalar("SELECT role FROM project_members WHERE project_id = ? AND user_id = ?")
                .bind(project_id)
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
        role.as_deref().map(parse).transpose()
    }

    async fn best_membership(&self, user_id: i64) -> Result<Option<ferry_domain::Role>> {
        let roles: Vec<String> = sqlx::query_scalar("SELECT role FROM project_members WHERE user_id = ?")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(roles.iter().map(|r| parse(r)).collect::<Result<Vec<ferry_domain::Role>>>()?.into_iter().max())
    }

    async fn create_project(&self, new: &NewProject, now: i64) -> Result<Project> {
        let src = new.source.as_ref();
        let branches = serde_json::to_string(&src.map(|s| s.branches.clone()).unwrap_or_default())
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        sqlx::query(
            "INSERT INTO projects (name, keep_releases, created_at, repo_url, webhook_secret, branches, push_tags, \
             host_scope) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&new.name)
        .bind(i64::from(new.keep_releases))
        .bind(now)
        .bind(src.map(|s| s.repo_url.as_str()))
        .bind(src.and_then(|s| s.webhook_secret.as_ref()).map(|s| s.expose()))
        .bind(branches)
        .bind(src.is_some_and(|s| s.push_tags))
        .bind(&new.host_scope)
        .execute(&self.pool)
        .await
        .map_err(conflict(format!("project '{}'", new.name)))?;
        self.project(&new.name).await
    }

    async fn project(&self, name: &str) -> Result<Project> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PROJECT_COLS} FROM projects WHERE name = ? AND deleted_at IS NULL"
        )))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| project_row(&r)).transpose()?.ok_or_else(|| StoreError::NotFound(format!("project '{name}'")))
    }

    async fn projects(&self) -> Result<Vec<Project>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PROJECT_COLS} FROM projects WHERE deleted_at IS NULL ORDER BY name"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(project_row).collect()
    }

    async fn create_join_token(&self, token_hash: &str, tags: &Tags, by: &str, now: i64) -> Result<JoinToken> {
        let json = serde_json::to_string(tags).map_err(|e| StoreError::Backend(e.to_string()))?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO join_tokens (token_hash, tags, created_by, created_at) VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(token_hash)
        .bind(json)
        .bind(by)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(JoinToken { id, tags: tags.clone(), created_by: by.to_string(), created_at: now, revoked_at: None })
    }

    async fn join_token(&self, token_hash: &str) -> Result<Option<JoinToken>> {
        let row = sqlx::query(
            "SELECT id, tags, created_by, created_at, revoked_at FROM join_tokens \
             WHERE token_hash = ? AND revoked_at IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| join_token_row(&r)).transpose()
    }

    async fn join_tokens(&self) -> Result<Vec<JoinToken>> {
        let rows = sqlx::query("SELECT id, tags, created_by, created_at, revoked_at FROM join_tokens ORDER BY id DESC")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(join_token_row).collect()
    }

    async fn revoke_join_token(&self, id: i64, now: i64) -> Result<()> {
        let done = sqlx::query("UPDATE join_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("join token {id}")));
        }
        Ok(())
    }

    async fn set_host_tags(&self, name: &str, new: &Tags) -> Result<Host> {
        let json = serde_json::to_string(new).map_err(|e| StoreError::Backend(e.to_string()))?;
        let done = sqlx::query(
            "UPDATE hosts SET tags = ?1, announced_tags = CASE WHEN announced_tags = ?1 THEN NULL \
             ELSE announced_tags END WHERE name = ?2",
        )
        .bind(json)
        .bind(name)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("host '{name}'")));
        }
        self.host(name).await
    }

    async fn add_project_blobs(&self, project_id: i64, digests: &[ferry_domain::Digest]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for d in digests {
            sqlx::query("INSERT OR IGNORE INTO project_blobs (project_id, digest) VALUES (?, ?)")
                .bind(project_id)
                .bind(d.to_hex())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn project_blobs_missing(
        &self,
        project_id: i64,
        digests: &[ferry_domain::Digest],
    ) -> Result<Vec<ferry_domain::Digest>> {
        let mut held = std::collections::HashSet::new();
        // A release has thousands of blobs: asked in chunks, one query each.
        for chunk in digests.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(",");
            let sql = format!("SELECT digest FROM project_blobs WHERE project_id = ? AND digest IN ({marks})");
            let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql)).bind(project_id);
            for d in chunk {
                q = q.bind(d.to_hex());
            }
            held.extend(q.fetch_all(&self.pool).await?);
        }
        let mut seen = std::collections::HashSet::new();
        Ok(digests.iter().filter(|d| !held.contains(&d.to_hex()) && seen.insert(**d)).copied().collect())
    }

    async fn set_project_host_scope(&self, project: &Project, scope: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE projects SET host_scope = ? WHERE id = ?")
            .bind(scope)
            .bind(project.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_webhook_secret(&self, project: &Project, secret: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE projects SET webhook_secret = ? WHERE id = ?")
            .bind(secret)
            .bind(project.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn create_environment(&self, project: &Project, new: &NewEnvironment, now: i64) -> Result<Environment> {
        sqlx::query(
            "INSERT INTO environments (project_id, name, selector, auto_deploy_branch, created_at, rollout, \
             production, requires_approval, staging_env_id, offline_policy) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(project.id)
        .bind(&new.name)
        .bind(&new.selector)
        .bind(new.auto_deploy_branch.as_deref())
        .bind(now)
        .bind(policy_json(&new.rollout)?)
        .bind(new.production)
        .bind(new.requires_approval)
        .bind(new.staging_env_id)
        .bind(new.offline_policy.as_str())
        .execute(&self.pool)
        .await
        .map_err(conflict(format!("environment '{}' of project '{}'", new.name, project.name)))?;
        self.environment(project, &new.name).await
    }

    async fn environment(&self, project: &Project, name: &str) -> Result<Environment> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{ENV_SELECT} WHERE e.project_id = ? AND e.name = ? AND e.deleted_at IS NULL"
        )))
        .bind(project.id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| env_row(&r))
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("environment '{name}' of project '{}'", project.name)))
    }

    async fn environments(&self, project: &Project) -> Result<Vec<Environment>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{ENV_SELECT} WHERE e.project_id = ? AND e.deleted_at IS NULL ORDER BY e.id"
        )))
        .bind(project.id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(env_row).collect()
    }

    async fn set_environment_rollout(&self, env: &Environment, policy: &RolloutPolicy) -> Result<()> {
        sqlx::query("UPDATE environments SET rollout = ? WHERE id = ?")
            .bind(policy_json(policy)?)
            .bind(env.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_environment_production(&self, env: &Environment, production: bool) -> Result<()> {
        sqlx::query("UPDATE environments SET production = ? WHERE id = ?")
            .bind(production)
            .bind(env.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_environment_protection(
        &self,
        env: &Environment,
        requires_approval: bool,
        staging_env_id: Option<i64>,
    ) -> Result<()> {
        sqlx::query("UPDATE environments SET requires_approval = ?, staging_env_id = ? WHERE id = ?")
            .bind(requires_approval)
            .bind(staging_env_id)
            .bind(env.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn all_environments(&self) -> Result<Vec<Environment>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{ENV_SELECT} WHERE e.deleted_at IS NULL ORDER BY e.id")))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(env_row).collect()
    }

    async fn create_release(&self, new: NewRelease, now: i64) -> Result<Release> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO releases (project_id, version, branch, committer, manifest_digest, file_count, total_size, \
             created_by, created_at, build_id, commit_sha, committed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             RETURNING id",
        )
        .bind(new.project_id)
        .bind(&new.version)
        .bind(&new.branch)
        .bind(&new.committer)
        .bind(new.manifest_digest.to_hex())
        .bind(i64::try_from(new.file_count).unwrap_or(i64::MAX))
        .bind(i64::try_from(new.total_size).unwrap_or(i64::MAX))
        .bind(&new.created_by)
        .bind(now)
        .bind(new.origin.as_ref().map(|o| o.build_id))
        .bind(new.origin.as_ref().map(|o| o.commit_sha.as_str()))
        .bind(new.origin.as_ref().and_then(|o| o.committed_at))
        .fetch_one(&self.pool)
        .await
        .map_err(conflict(format!("version '{}'", new.version)))?;
        self.release_by_id(id).await
    }

    async fn release(&self, project: &Project, version: &str) -> Result<Release> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RELEASE_COLS} FROM releases WHERE project_id = ? AND version = ?"
        )))
        .bind(project.id)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| release_row(&r))
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("version '{version}' of project '{}'", project.name)))
    }

    async fn release_by_id(&self, id: i64) -> Result<Release> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {RELEASE_COLS} FROM releases WHERE id = ?")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| release_row(&r)).transpose()?.ok_or_else(|| StoreError::NotFound(format!("release {id}")))
    }

    async fn releases(&self, project: &Project) -> Result<Vec<Release>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RELEASE_COLS} FROM releases WHERE project_id = ? ORDER BY id DESC"
        )))
        .bind(project.id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(release_row).collect()
    }

    async fn set_release_mark(&self, release_id: i64, mark: Option<&BadMark>) -> Result<Release> {
        let done = sqlx::query("UPDATE releases SET bad_by = ?, bad_reason = ?, bad_at = ? WHERE id = ?")
            .bind(mark.map(|m| m.by.as_str()))
            .bind(mark.map(|m| m.reason.as_str()))
            .bind(mark.map(|m| m.at))
            .bind(release_id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("release {release_id}")));
        }
        self.release_by_id(release_id).await
    }

    async fn enroll_host(&self, name: &str, tags: &Tags, token_hash: &str, now: i64) -> Result<Host> {
        let tags_json = serde_json::to_string(tags).map_err(|e| StoreError::Backend(e.to_string()))?;
        sqlx::query("INSERT INTO hosts (name, tags, token_hash, enrolled_at) VALUES (?, ?, ?, ?)")
            .bind(name)
            .bind(tags_json)
            .bind(token_hash)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(conflict(format!("host '{name}'")))?;
        self.host(name).await
    }

    async fn host_by_token(&self, token_hash: &str) -> Result<Option<Host>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {HOST_COLS} FROM hosts WHERE token_hash = ? AND retired_at IS NULL"
        )))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| host_row(&r)).transpose()
    }

    async fn host(&self, name: &str) -> Result<Host> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {HOST_COLS} FROM hosts WHERE name = ? AND retired_at IS NULL"
        )))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| host_row(&r)).transpose()?.ok_or_else(|| StoreError::NotFound(format!("host '{name}'")))
    }

    async fn hosts(&self) -> Result<Vec<Host>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {HOST_COLS} FROM hosts WHERE retired_at IS NULL ORDER BY name"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(host_row).collect()
    }

    async fn host_connected(&self, host_id: i64, announced: &Tags, agent_version: &str, now: i64) -> Result<()> {
        let announced = serde_json::to_string(announced).map_err(|e| StoreError::Backend(e.to_string()))?;
        // The enrolled tags stay; what the agent asked for is kept only when
        // it differs from them.
        sqlx::query(
            "UPDATE hosts SET announced_tags = CASE WHEN ?1 = tags THEN NULL ELSE ?1 END, agent_version = ?2, \
             online = 1, last_seen_at = ?3 WHERE id = ?4",
        )
        .bind(announced)
        .bind(agent_version)
        .bind(now)
        .bind(host_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn host_seen(&self, host_id: i64, now: i64) -> Result<()> {
        sqlx::query("UPDATE hosts SET online = 1, last_seen_at = ? WHERE id = ?")
            .bind(now)
            .bind(host_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn host_disconnected(&self, host_id: i64) -> Result<()> {
        sqlx::query("UPDATE hosts SET online = 0 WHERE id = ?").bind(host_id).execute(&self.pool).await?;
        Ok(())
    }

    async fn mark_silent_hosts_offline(&self, seen_before: i64) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar("UPDATE hosts SET online = 0 WHERE online = 1 AND last_seen_at < ? RETURNING id")
            .bind(seen_before)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn desired_for_host(&self, host_id: i64) -> Result<Vec<DesiredRow>> {
        let rows = sqlx::query(
            "SELECT p.name AS project, p.keep_releases, e.name AS env, hd.updated_at AS desired_since, r.id, r.project_id, r.version, r.branch, \
             r.committer, r.manifest_digest, r.file_count, r.total_size, r.created_by, r.created_at, \
             r.build_id, r.commit_sha, r.committed_at, r.bad_by, r.bad_reason, r.bad_at FROM host_desired hd JOIN projects p ON p.id = hd.project_id \
             JOIN environments e ON e.id = hd.env_id JOIN releases r ON r.id = hd.release_id \
             WHERE hd.host_id = ? ORDER BY p.name",
        )
        .bind(host_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DesiredRow {
                    project: r.try_get("project")?,
                    keep_releases: r.try_get::<i64, _>("keep_releases")?.try_into().unwrap_or(5),
                    env: r.try_get("env")?,
                    release: release_row(r)?,
                    desired_since: r.try_get("desired_since")?,
                })
            })
            .collect()
    }

    async fn adopt_host(&self, host_id: i64, env: &Environment, now: i64) -> Result<bool> {
        let Some(release_id) = env.desired_release_id else {
            return Ok(false);
        };
        let done = sqlx::query(
            "INSERT INTO host_desired (host_id, project_id, env_id, release_id, updated_at) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (host_id, project_id) DO NOTHING",
        )
        .bind(host_id)
        .bind(env.project_id)
        .bind(env.id)
        .bind(release_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_deployment(&self, new: NewDeployment, now: i64) -> Result<i64> {
        rollout::create(&self.pool, new, now).await
    }

    async fn advance_deployment(&self, id: i64, now: i64) -> Result<Advanced> {
        rollout::advance(&self.pool, id, now).await
    }

    async fn control_deployment(&self, id: i64, control: RolloutControl, now: i64) -> Result<()> {
        rollout::control(&self.pool, id, control, now).await
    }

    async fn peek_deployment(&self, id: i64, now: i64) -> Result<Option<(Step, Vec<i64>)>> {
        rollout::peek(&self.pool, id, now).await
    }

    async fn hold_deployment(&self, id: i64, hold: &Note, now: i64) -> Result<()> {
        rollout::set_hold(&self.pool, id, hold, now).await
    }

    async fn rollout_drained(&self, id: i64) -> Result<Vec<i64>> {
        let json: String = sqlx::query_scalar("SELECT lb_drained FROM deployments WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("deployment {id}")))?;
        serde_json::from_str(&json).map_err(|e| StoreError::Backend(format!("deployment {id} lb_drained: {e}")))
    }

    async fn set_rollout_drained(&self, id: i64, hosts: &[i64]) -> Result<()> {
        let json = serde_json::to_string(hosts).map_err(|e| StoreError::Backend(e.to_string()))?;
        sqlx::query("UPDATE deployments SET lb_drained = ? WHERE id = ?")
            .bind(json)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn running_deployments(&self) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar("SELECT id FROM deployments WHERE status = 'running' ORDER BY id")
            .fetch_all(&self.pool)
            .await?)
    }

    async fn deployment_events(&self, id: i64) -> Result<Vec<DeploymentEvent>> {
        let rows = sqlx::query("SELECT at, what FROM deployment_events WHERE deployment_id = ? ORDER BY seq")
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok(DeploymentEvent { at: r.try_get(0)?, what: Note::from_stored(&r.try_get::<String, _>(1)?) }))
            .collect()
    }

    async fn deployment(&self, id: i64) -> Result<DeploymentRow> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{DEPLOYMENT_SELECT} WHERE d.id = ?")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| deployment_row(&r)).transpose()?.ok_or_else(|| StoreError::NotFound(format!("deployment {id}")))
    }

    async fn deployment_hosts(&self, id: i64) -> Result<Vec<DeploymentHostRow>> {
        let rows = sqlx::query(
            "SELECT h.name, dh.release_name, dh.state, dh.started_at, dh.finished_at, dh.error, dh.bytes_downloaded, \
             dh.bytes_reused, dh.batch, r.id, r.version, rf.version FROM deployment_hosts dh \
             JOIN hosts h ON h.id = dh.host_id JOIN deployments d ON d.id = dh.deployment_id \
             JOIN releases r ON r.id = COALESCE(dh.release_id, d.release_id) \
             LEFT JOIN releases rf ON rf.id = dh.from_release_id \
             WHERE dh.deployment_id = ? ORDER BY dh.batch, h.name",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DeploymentHostRow {
                    host: r.try_get(0)?,
                    release_name: r.try_get(1)?,
                    state: parse(&r.try_get::<String, _>(2)?)?,
                    started_at: r.try_get(3)?,
                    finished_at: r.try_get(4)?,
                    error: r.try_get::<Option<String>, _>(5)?.as_deref().map(Note::from_stored),
                    bytes_downloaded: r.try_get::<i64, _>(6)?.try_into().unwrap_or(0),
                    bytes_reused: r.try_get::<i64, _>(7)?.try_into().unwrap_or(0),
                    batch: r.try_get::<i64, _>(8)?.try_into().unwrap_or(0),
                    release_id: r.try_get(9)?,
                    version: r.try_get(10)?,
                    from_version: r.try_get(11)?,
                })
            })
            .collect()
    }

    async fn deployments(&self, project: &Project, limit: u32) -> Result<Vec<DeploymentRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{DEPLOYMENT_SELECT} WHERE d.project_id = ? ORDER BY d.id DESC LIMIT ?"
        )))
        .bind(project.id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(deployment_row).collect()
    }

    async fn lock_holders(&self, project: Option<&Project>) -> Result<Vec<DeploymentRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{DEPLOYMENT_SELECT} WHERE d.status = 'running' AND (?1 IS NULL OR d.project_id = ?1) ORDER BY d.id"
        )))
        .bind(project.map(|p| p.id))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(deployment_row).collect()
    }

    async fn deployment_facts(
        &self,
        project: &Project,
        env: Option<&Environment>,
        since: i64,
    ) -> Result<Vec<DeploymentFacts>> {
        let rows = sqlx::query(
            "SELECT d.id, e.name AS env, d.kind, d.status, d.created_at, d.finished_at, d.emergency, r.committed_at \
             FROM deployments d JOIN environments e ON e.id = d.env_id JOIN releases r ON r.id = d.release_id \
             WHERE d.project_id = ?1 AND (?2 IS NULL OR d.env_id = ?2) AND d.created_at >= ?3 ORDER BY d.id",
        )
        .bind(project.id)
        .bind(env.map(|e| e.id))
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DeploymentFacts {
                    id: r.try_get("id")?,
                    env: r.try_get("env")?,
                    kind: parse::<DeploymentKind>(&r.try_get::<String, _>("kind")?)?,
                    status: parse::<DeploymentStatus>(&r.try_get::<String, _>("status")?)?,
                    created_at: r.try_get("created_at")?,
                    finished_at: r.try_get("finished_at")?,
                    emergency: r.try_get::<i64, _>("emergency")? != 0,
                    committed_at: r.try_get("committed_at")?,
                })
            })
            .collect()
    }

    async fn environment_history(&self, env: &Environment) -> Result<Vec<DeploymentRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{DEPLOYMENT_SELECT} WHERE d.env_id = ? AND d.status != 'running' ORDER BY d.id DESC"
        )))
        .bind(env.id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(deployment_row).collect()
    }

    async fn hosts_past(&self, project: &Project) -> Result<Vec<HostPastRow>> {
        history::hosts_past(&self.pool, project.id).await
    }

    async fn apply_report(&self, host_id: i64, report: &ProjectReport, now: i64) -> Result<Vec<i64>> {
        report::apply(&self.pool, host_id, report, now).await
    }

    async fn fail_offline_targets(&self, now: i64, heartbeat_interval_ms: i64) -> Result<Vec<i64>> {
        fleet::fail_offline_targets(&self.pool, now, heartbeat_interval_ms).await
    }

    async fn set_environment_selector(&self, env: &Environment, selector: &str) -> Result<()> {
        fleet::set_selector(&self.pool, env, selector).await
    }

    async fn set_environment_offline_policy(
        &self,
        env: &Environment,
        policy: ferry_domain::OfflinePolicy,
    ) -> Result<()> {
        fleet::set_offline_policy(&self.pool, env, policy).await
    }

    async fn project_including_deleted(&self, name: &str) -> Result<Project> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PROJECT_COLS} FROM projects WHERE name = ? ORDER BY deleted_at IS NULL DESC LIMIT 1"
        )))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| project_row(&r)).transpose()?.ok_or_else(|| StoreError::NotFound(format!("project '{name}'")))
    }

    async fn update_project(
        &self,
        project: &Project,
        keep_releases: u32,
        source: Option<&ProjectSource>,
    ) -> Result<()> {
        fleet::update_project(&self.pool, project, keep_releases, source).await
    }

    async fn delete_project(&self, project: &Project, now: i64) -> Result<()> {
        fleet::delete_project(&self.pool, project, now).await
    }

    async fn delete_environment(&self, env: &Environment, now: i64) -> Result<()> {
        fleet::delete_environment(&self.pool, env, now).await
    }

    async fn retire_host(&self, name: &str, now: i64) -> Result<i64> {
        fleet::retire_host(&self.pool, name, now).await
    }

    async fn move_host_to_env(&self, host_id: i64, env: &Environment, now: i64) -> Result<bool> {
        fleet::move_host_to_env(&self.pool, host_id, env, now).await
    }

    async fn append_deployment_log(
        &self,
        host_id: i64,
        project: &str,
        release_id: i64,
        lines: &[AgentLogLine],
        now: i64,
    ) -> Result<Option<i64>> {
        deploy_log::append(&self.pool, host_id, project, release_id, lines, now).await
    }

    async fn deployment_log(
        &self,
        deployment_id: i64,
        host: Option<&str>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<DeploymentLogLine>> {
        deploy_log::read(&self.pool, deployment_id, host, after, limit).await
    }

    async fn create_request(&self, new: &NewRequest, now: i64) -> Result<RequestRow> {
        request::create(&self.pool, new, now).await
    }

    async fn request(&self, id: i64) -> Result<RequestRow> {
        request::one(&self.pool, id).await
    }

    async fn requests(&self, filter: &RequestFilter) -> Result<Vec<RequestRow>> {
        request::list(&self.pool, filter).await
    }

    async fn change_request(&self, id: i64, change: &RequestChange, now: i64) -> Result<RequestRow> {
        request::change(&self.pool, id, change, now).await
    }

    async fn note_request(&self, id: i64, note: &RequestNote<'_>, now: i64) -> Result<()> {
        request::note(&self.pool, id, note, now).await
    }

    async fn request_events(&self, id: i64) -> Result<Vec<RequestEvent>> {
        request::events(&self.pool, id).await
    }

    async fn request_deployments(&self, id: i64) -> Result<Vec<DeploymentRow>> {
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(format!("{DEPLOYMENT_SELECT} WHERE d.request_id = ? ORDER BY d.id DESC")))
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(deployment_row).collect()
    }

    async fn freeze_environment(&self, env: &Environment, freeze: &Freeze, now: i64) -> Result<FreezeRow> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // An expired freeze no longer counts: it makes room for the new one.
        sqlx::query("DELETE FROM freezes WHERE env_id = ? AND NOT (created_at <= ? AND expires_at > ?)")
            .bind(env.id)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let inserted =
            sqlx::query("INSERT INTO freezes (env_id, owner, reason, created_at, expires_at) VALUES (?, ?, ?, ?, ?)")
                .bind(env.id)
                .bind(&freeze.owner)
                .bind(&freeze.reason)
                .bind(freeze.since)
                .bind(freeze.until)
                .execute(&mut *tx)
                .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
                let held = sqlx::query(sqlx::AssertSqlSafe(format!("{FREEZE_SELECT} WHERE f.env_id = ?")))
                    .bind(env.id)
                    .fetch_one(&mut *tx)
                    .await?;
                let held = freeze_row(&held)?;
                return Err(StoreError::Frozen { project: held.project, env: held.env, freeze: held.freeze });
            }
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
        Ok(FreezeRow { project: env.project.clone(), env: env.name.clone(), freeze: freeze.clone() })
    }

    async fn unfreeze_environment(&self, env: &Environment, now: i64) -> Result<Option<FreezeRow>> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let held =
            sqlx::query(sqlx::AssertSqlSafe(format!("{FREEZE_SELECT} WHERE f.env_id = ? AND {FREEZE_IN_FORCE}")))
                .bind(env.id)
                .bind(now)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
        let held = held.map(|r| freeze_row(&r)).transpose()?;
        sqlx::query("DELETE FROM freezes WHERE env_id = ?").bind(env.id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(held)
    }

    async fn environment_freeze(&self, env: &Environment, now: i64) -> Result<Option<FreezeRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{FREEZE_SELECT} WHERE f.env_id = ? AND {FREEZE_IN_FORCE}")))
            .bind(env.id)
            .bind(now)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| freeze_row(&r)).transpose()
    }

    async fn freezes(&self, project: Option<&Project>, now: i64) -> Result<Vec<FreezeRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{FREEZE_SELECT} WHERE {FREEZE_IN_FORCE} AND (? IS NULL OR e.project_id = ?) ORDER BY p.name, e.name"
        )))
        .bind(now)
        .bind(now)
        .bind(project.map(|p| p.id))
        .bind(project.map(|p| p.id))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(freeze_row).collect()
    }

    async fn create_build(&self, new: &NewBuild, now: i64) -> Result<Build> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO builds (project_id, number, git_ref, status, trigger, requested_by, retry_of, created_at, \
             pushed_commit) \
             VALUES (?1, (SELECT COALESCE(MAX(number), 0) + 1 FROM builds WHERE project_id = ?1), ?2, 'queued', ?3, ?4, \
             ?5, ?6, ?7) RETURNING id",
        )
        .bind(new.project_id)
        .bind(&new.git_ref)
        .bind(&new.trigger)
        .bind(&new.requested_by)
        .bind(new.retry_of)
        .bind(now)
        .bind(&new.pushed_commit)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        self.build(id).await
    }

    async fn build(&self, id: i64) -> Result<Build> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{BUILD_SELECT} WHERE b.id = ?")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| build_row(&r)).transpose()?.ok_or_else(|| StoreError::NotFound(format!("build {id}")))
    }

    async fn build_by_number(&self, project: &Project, number: i64) -> Result<Build> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{BUILD_SELECT} WHERE b.project_id = ? AND b.number = ?")))
            .bind(project.id)
            .bind(number)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| build_row(&r))
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("build {number} of project '{}'", project.name)))
    }

    async fn builds(&self, project: &Project, limit: u32) -> Result<Vec<Build>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{BUILD_SELECT} WHERE b.project_id = ? ORDER BY b.number DESC LIMIT ?"
        )))
        .bind(project.id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(build_row).collect()
    }

    async fn latest_succeeded_build(&self, project: &Project) -> Result<Option<Build>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{BUILD_SELECT} WHERE b.project_id = ? AND b.status = 'succeeded' ORDER BY b.number DESC LIMIT 1"
        )))
        .bind(project.id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| build_row(&r)).transpose()
    }

    async fn queued_build_count(&self) -> Result<u64> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM builds WHERE status = 'queued'").fetch_one(&self.pool).await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query_scalar::<_, i64>("SELECT 1").fetch_one(&self.pool).await?;
        Ok(())
    }

    fn pool_use(&self) -> Option<PoolUse> {
        let (size, idle) = (self.pool.size(), u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX));
        Some(PoolUse { in_use: size.saturating_sub(idle), idle, max: self.pool.options().get_max_connections() })
    }

    async fn claim_next_build(&self, now: i64) -> Result<Option<Build>> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let id: Option<i64> = sqlx::query_scalar(
            "SELECT b.id FROM builds b WHERE b.status = 'queued' AND NOT EXISTS \
             (SELECT 1 FROM builds r WHERE r.project_id = b.project_id AND r.status = 'running') ORDER BY b.id LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else { return Ok(None) };
        sqlx::query("UPDATE builds SET status = 'running', started_at = ? WHERE id = ? AND status = 'queued'")
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.build(id).await.map(Some)
    }

    async fn set_build_commit(&self, id: i64, c: &BuildCommit) -> Result<()> {
        sqlx::query(
            "UPDATE builds SET commit_sha = ?, branch = ?, tag = ?, author = ?, message = ?, committed_at = ? WHERE id = ?",
        )
        .bind(&c.sha)
        .bind(c.branch.as_deref())
        .bind(c.tag.as_deref())
        .bind(&c.author)
        .bind(&c.message)
        .bind(c.committed_at)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn finish_build(&self, id: i64, outcome: &BuildOutcome, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE builds SET status = ?, error = ?, version = COALESCE(?, version), release_id = ?, finished_at = ? \
             WHERE id = ? AND status IN ('queued', 'running')",
        )
        .bind(outcome.status.as_str())
        .bind(outcome.error.as_deref())
        .bind(outcome.version.as_deref())
        .bind(outcome.release_id)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn cancel_build(&self, id: i64, now: i64) -> Result<Build> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "UPDATE builds SET status = 'canceled', finished_at = ?, error = 'canceled before it started' \
             WHERE id = ? AND status = 'queued'",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE builds SET cancel_requested = 1 WHERE id = ? AND status = 'running'")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.build(id).await
    }

    async fn fail_running_builds(&self, reason: &str, now: i64) -> Result<u64> {
        let done =
            sqlx::query("UPDATE builds SET status = 'failed', error = ?, finished_at = ? WHERE status = 'running'")
                .bind(reason)
                .bind(now)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected())
    }

    async fn append_build_log(&self, id: i64, lines: &[(i64, String, String)]) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM build_logs WHERE build_id = ?")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        for (at, stream, line) in lines {
            seq += 1;
            sqlx::query("INSERT INTO build_logs (build_id, seq, at, stream, line) VALUES (?, ?, ?, ?, ?)")
                .bind(id)
                .bind(seq)
                .bind(at)
                .bind(stream)
                .bind(line)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn build_log(&self, id: i64, after: i64, limit: u32) -> Result<Vec<LogLine>> {
        let rows = sqlx::query(
            "SELECT seq, at, stream, line FROM build_logs WHERE build_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(id)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok(LogLine { seq: r.try_get(0)?, at: r.try_get(1)?, stream: r.try_get(2)?, line: r.try_get(3)? }))
            .collect()
    }

    async fn record_delivery(&self, project_id: i64, forge: &str, delivery_id: &str, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO webhook_deliveries (project_id, forge, delivery_id, received_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT DO NOTHING",
        )
        .bind(project_id)
        .bind(forge)
        .bind(delivery_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn set_var(&self, new: &NewVar, now: i64) -> Result<bool> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // `IS` matches NULL to NULL: the slot "any environment" is one slot.
        let replaced = sqlx::query(
            "UPDATE vars SET value = ?, secret = ?, updated_by = ?, updated_at = ? \
             WHERE project_id = ? AND env_id IS ? AND host_name IS ? AND key = ?",
        )
        .bind(&new.value)
        .bind(new.secret)
        .bind(&new.updated_by)
        .bind(now)
        .bind(new.slot.project_id)
        .bind(new.slot.env_id)
        .bind(new.slot.host.as_deref())
        .bind(&new.key)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if !replaced {
            sqlx::query(
                "INSERT INTO vars (project_id, env_id, host_name, key, value, secret, updated_by, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(new.slot.project_id)
            .bind(new.slot.env_id)
            .bind(new.slot.host.as_deref())
            .bind(&new.key)
            .bind(&new.value)
            .bind(new.secret)
            .bind(&new.updated_by)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(conflict(format!("variable {}", new.key)))?;
        }
        tx.commit().await?;
        Ok(replaced)
    }

    async fn unset_var(&self, slot: &VarSlot, key: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM vars WHERE project_id = ? AND env_id IS ? AND host_name IS ? AND key = ?")
            .bind(slot.project_id)
            .bind(slot.env_id)
            .bind(slot.host.as_deref())
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn vars(&self, project: &Project) -> Result<Vec<VarRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{VAR_SELECT} WHERE v.project_id = ? {VAR_ORDER}")))
            .bind(project.id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(var_row).collect()
    }

    async fn set_host_address(&self, host_id: i64, address: &str) -> Result<()> {
        sqlx::query("UPDATE hosts SET address = ? WHERE id = ?")
            .bind(address)
            .bind(host_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_load_balancer(&self, env: &Environment, lb: &NewLoadBalancer, now: i64) -> Result<u64> {
        let options = serde_json::to_string(&lb.options).map_err(|e| StoreError::Backend(e.to_string()))?;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "INSERT INTO load_balancers (env_id, driver, selector, backend, options, updated_by, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (env_id) DO UPDATE SET driver = excluded.driver, \
             selector = excluded.selector, backend = excluded.backend, options = excluded.options, \
             updated_by = excluded.updated_by, updated_at = excluded.updated_at",
        )
        .bind(env.id)
        .bind(&lb.driver)
        .bind(&lb.selector)
        .bind(&lb.backend)
        .bind(options)
        .bind(&lb.updated_by)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let generation = bump_generation(&mut tx, env.id).await?;
        tx.commit().await?;
        Ok(generation)
    }

    async fn unset_load_balancer(&self, env: &Environment) -> Result<bool> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let removed = sqlx::query("DELETE FROM load_balancers WHERE env_id = ?")
            .bind(env.id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        if removed {
            sqlx::query("DELETE FROM lb_drained WHERE env_id = ?").bind(env.id).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM lb_applied WHERE env_id = ?").bind(env.id).execute(&mut *tx).await?;
            bump_generation(&mut tx, env.id).await?;
        }
        tx.commit().await?;
        Ok(removed)
    }

    async fn load_balancer(&self, env: &Environment) -> Result<Option<LoadBalancer>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{LB_SELECT} WHERE lb.env_id = ?")))
            .bind(env.id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| lb_row(&r)).transpose()
    }

    async fn load_balancers(&self) -> Result<Vec<LoadBalancer>> {
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(format!("{LB_SELECT} ORDER BY lb.env_id"))).fetch_all(&self.pool).await?;
        rows.iter().map(lb_row).collect()
    }

    async fn set_drained(&self, env: &Environment, host_ids: &[i64], drained: bool, now: i64) -> Result<Option<u64>> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT env_id FROM load_balancers WHERE env_id = ?")
            .bind(env.id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Ok(None);
        }
        let mut changed = 0;
        for host_id in host_ids {
            let done = if drained {
                sqlx::query(
                    "INSERT INTO lb_drained (env_id, host_id, drained_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                )
                .bind(env.id)
                .bind(host_id)
                .bind(now)
                .execute(&mut *tx)
                .await?
            } else {
                sqlx::query("DELETE FROM lb_drained WHERE env_id = ? AND host_id = ?")
                    .bind(env.id)
                    .bind(host_id)
                    .execute(&mut *tx)
                    .await?
            };
            changed += done.rows_affected();
        }
        let generation = if changed > 0 {
            bump_generation(&mut tx, env.id).await?
        } else {
            let current: Option<i64> = sqlx::query_scalar("SELECT generation FROM lb_generations WHERE env_id = ?")
                .bind(env.id)
                .fetch_optional(&mut *tx)
                .await?;
            current.unwrap_or(0).try_into().unwrap_or(0)
        };
        tx.commit().await?;
        Ok(Some(generation))
    }

    async fn record_lb_applied(
        &self,
        host_id: i64,
        project: &str,
        env: &str,
        generation: u64,
        error: Option<&str>,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO lb_applied (env_id, host_id, generation, error, applied_at) \
             SELECT e.id, ?, ?, ?, ? FROM environments e JOIN projects p ON p.id = e.project_id \
             WHERE p.name = ? AND e.name = ? \
             ON CONFLICT (env_id, host_id) DO UPDATE SET generation = excluded.generation, error = excluded.error, \
             applied_at = excluded.applied_at",
        )
        .bind(host_id)
        .bind(i64::try_from(generation).unwrap_or(i64::MAX))
        .bind(error)
        .bind(now)
        .bind(project)
        .bind(env)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn lb_applied(&self, env_id: i64) -> Result<Vec<LbAppliedRow>> {
        let rows = sqlx::query(
            "SELECT host_id, generation, error, applied_at FROM lb_applied WHERE env_id = ? ORDER BY host_id",
        )
        .bind(env_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LbAppliedRow {
                    host_id: r.try_get(0)?,
                    generation: r.try_get::<i64, _>(1)?.try_into().unwrap_or(0),
                    error: r.try_get(2)?,
                    applied_at: r.try_get(3)?,
                })
            })
            .collect()
    }

    async fn vars_for_host(&self, host_id: i64) -> Result<Vec<VarRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{VAR_SELECT} JOIN host_desired hd ON hd.project_id = v.project_id AND hd.host_id = ?1 \
             WHERE (v.env_id IS NULL OR v.env_id = hd.env_id) \
             AND (v.host_name IS NULL OR v.host_name = (SELECT name FROM hosts WHERE id = ?1 AND retired_at IS NULL)) \
             {VAR_ORDER}"
        )))
        .bind(host_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(var_row).collect()
    }

    async fn add_notification_rule(
        &self,
        project: &Project,
        new: &NewNotificationRule,
        now: i64,
    ) -> Result<NotificationRule> {
        notify::add_rule(&self.pool, project, new, now).await
    }

    async fn notification_rules(&self, project: &Project) -> Result<Vec<NotificationRule>> {
        notify::rules(&self.pool, project).await
    }

    async fn remove_notification_rule(&self, project: &Project, id: i64) -> Result<bool> {
        notify::remove_rule(&self.pool, project, id).await
    }

    async fn enqueue_notifications(
        &self,
        project_id: i64,
        event: &str,
        items: &[NewNotification],
        now: i64,
    ) -> Result<Vec<i64>> {
        notify::enqueue(&self.pool, project_id, event, items, now).await
    }

    async fn due_notifications(&self, now: i64, limit: u32) -> Result<Vec<DueNotification>> {
        notify::due(&self.pool, now, limit).await
    }

    async fn record_notification_attempt(
        &self,
        id: i64,
        attempt: &NotificationAttempt,
        outcome: NotificationOutcome,
    ) -> Result<()> {
        notify::record_attempt(&self.pool, id, attempt, outcome).await
    }

    async fn notification_log(&self, project: &Project, limit: u32) -> Result<Vec<NotificationLogRow>> {
        notify::log(&self.pool, project, limit).await
    }

    async fn set_environment_order(&self, env: &Environment, after_env_id: Option<i64>, self_test: bool) -> Result<()> {
        promotion::set_order(&self.pool, env, after_env_id, self_test).await
    }

    async fn release_succeeded_hosts(&self, env: &Environment, release_id: i64) -> Result<Vec<i64>> {
        promotion::succeeded_hosts(&self.pool, env, release_id).await
    }

    async fn set_request_skip_promotion(&self, request_id: i64) -> Result<()> {
        promotion::set_request_skip(&self.pool, request_id).await
    }

    async fn request_skips_promotion(&self, request_id: i64) -> Result<bool> {
        promotion::request_skips(&self.pool, request_id).await
    }

    async fn record_service_state(
        &self,
        host_id: i64,
        project: &str,
        state: &ServiceState,
        now: i64,
    ) -> Result<Option<ServiceChange>> {
        service::record(&self.pool, host_id, project, state, now).await
    }

    async fn project_host_states(&self, project: &Project) -> Result<Vec<HostStateRow>> {
        let rows = sqlx::query(
            "SELECT h.id, hd.env_id, rd.version, ha.version, ha.release_name, ha.activity, ha.error, \
             ha.service_failing, ha.service_reason, ha.service_stderr, ha.service_since FROM hosts h \
             LEFT JOIN host_desired hd ON hd.host_id = h.id AND hd.project_id = ?1 \
             LEFT JOIN releases rd ON rd.id = hd.release_id \
             LEFT JOIN host_actual ha ON ha.host_id = h.id AND ha.project_id = ?1 \
             WHERE h.retired_at IS NULL AND (hd.host_id IS NOT NULL OR ha.host_id IS NOT NULL) ORDER BY h.name",
        )
        .bind(project.id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HostStateRow {
                    host_id: r.try_get(0)?,
                    desired_env_id: r.try_get(1)?,
                    desired_version: r.try_get(2)?,
                    current_version: r.try_get(3)?,
                    current_release: r.try_get(4)?,
                    activity: r.try_get(5)?,
                    error: r.try_get(6)?,
                    service: match r.try_get::<Option<i64>, _>(7)? {
                        None => None,
                        Some(failing) => Some(ServiceState {
                            failing: failing != 0,
                            reason: r.try_get::<Option<String>, _>(8)?.unwrap_or_default(),
                            stderr: r
                                .try_get::<Option<String>, _>(9)?
                                .and_then(|j| serde_json::from_str(&j).ok())
                                .unwrap_or_default(),
                            since: r.try_get::<Option<i64>, _>(10)?.unwrap_or(0),
                        }),
                    },
                })
            })
            .collect()
    }

    async fn append_audit(&self, e: &NewAuditEntry, key: &AuditKey) -> Result<AuditEntry> {
        // BEGIN IMMEDIATE: two appends at once must not both chain to the
        // same last entry.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let last: Option<(i64, String)> = sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
        let (last_seq, prev_hash) = last.unwrap_or_else(|| (0, GENESIS_HASH.to_string()));
        let record = AuditRecord {
            seq: last_seq + 1,
            at: e.at,
            actor: e.actor.clone(),
            source: e.source.clone(),
            action: e.action.clone(),
            object: e.object.clone(),
            outcome: e.outcome.clone(),
            summary: e.summary.clone(),
        };
        let hash = key.entry_hash(&prev_hash, &record);
        let scheme = Scheme::Keyed.as_str();
        sqlx::query(
            "INSERT INTO audit_log (seq, at, actor, source, action, object, outcome, summary, prev_hash, hash, scheme) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(record.seq)
        .bind(record.at)
        .bind(&record.actor)
        .bind(&record.source)
        .bind(&record.action)
        .bind(&record.object)
        .bind(&record.outcome)
        .bind(&record.summary)
        .bind(&prev_hash)
        .bind(&hash)
        .bind(scheme)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(AuditEntry { record, scheme: scheme.to_string(), prev_hash, hash })
    }

    async fn audit_log(&self, f: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let mut sql = format!("{AUDIT_SELECT} WHERE 1 = 1");
        if f.project.is_some() {
            // The object is `key=value` pairs separated by spaces.
            sql.push_str(" AND (' ' || object || ' ') LIKE ? ESCAPE '\\'");
        }
        if f.actor.is_some() {
            sql.push_str(" AND actor = ?");
        }
        if f.since.is_some() {
            sql.push_str(" AND at >= ?");
        }
        sql.push_str(" ORDER BY seq DESC LIMIT ?");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(p) = &f.project {
            q = q.bind(format!("% project={} %", like_escape(p)));
        }
        if let Some(a) = &f.actor {
            q = q.bind(a.clone());
        }
        if let Some(t) = f.since {
            q = q.bind(t);
        }
        q.bind(i64::from(f.limit)).fetch_all(&self.pool).await?.iter().map(audit_row).collect()
    }

    async fn audit_chain(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>> {
        sqlx::query(sqlx::AssertSqlSafe(format!("{AUDIT_SELECT} WHERE seq > ? ORDER BY seq LIMIT ?")))
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(audit_row)
            .collect()
    }

    async fn audit_head(&self) -> Result<Option<AuditEntry>> {
        sqlx::query(sqlx::AssertSqlSafe(format!("{AUDIT_SELECT} ORDER BY seq DESC LIMIT 1")))
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(audit_row)
            .transpose()
    }

    async fn audit_first_with_scheme(&self, scheme: &str) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar("SELECT MIN(seq) FROM audit_log WHERE scheme = ?")
            .bind(scheme)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn add_agent_binary(&self, new: &NewAgentBinary) -> Result<AgentBinary> {
        agent_upgrade::add_binary(&self.pool, new).await
    }

    async fn agent_binary(&self, version: &str) -> Result<AgentBinary> {
        agent_upgrade::binary(&self.pool, version).await
    }

    async fn agent_binaries(&self) -> Result<Vec<AgentBinary>> {
        agent_upgrade::binaries(&self.pool).await
    }

    async fn set_host_binary(&self, host_id: i64, version: Option<&str>, digest: Option<&str>) -> Result<()> {
        agent_upgrade::set_host_binary(&self.pool, host_id, version, digest).await
    }

    async fn create_agent_upgrade(
        &self,
        env_id: i64,
        binary_id: i64,
        batches: &[Vec<i64>],
        by: &str,
        now: i64,
    ) -> Result<i64> {
        agent_upgrade::create(&self.pool, env_id, binary_id, batches, by, now).await
    }

    async fn latest_agent_upgrade(&self, env_id: i64) -> Result<Option<AgentUpgrade>> {
        agent_upgrade::latest_for_env(&self.pool, env_id).await
    }

    async fn agent_upgrade(&self, id: i64) -> Result<Option<AgentUpgrade>> {
        agent_upgrade::by_id(&self.pool, id).await
    }

    async fn running_agent_upgrades_of_host(&self, host_id: i64) -> Result<Vec<AgentUpgrade>> {
        agent_upgrade::for_host(&self.pool, host_id).await
    }

    async fn set_agent_upgrade_host(
        &self,
        upgrade_id: i64,
        host_id: i64,
        from: &[ferry_domain::agent_upgrade::HostUpgradeState],
        to: ferry_domain::agent_upgrade::HostUpgradeState,
        error: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        agent_upgrade::set_host_state(&self.pool, upgrade_id, host_id, from, to, error, now).await
    }

    async fn stale_agent_upgrade_hosts(&self, before: i64) -> Result<Vec<(i64, i64)>> {
        agent_upgrade::stale(&self.pool, before).await
    }

    async fn start_agent_upgrade_batch(&self, upgrade_id: i64, batch: u32, now: i64) -> Result<Vec<i64>> {
        agent_upgrade::start_batch(&self.pool, upgrade_id, batch, now).await
    }

    async fn finish_agent_upgrade(
        &self,
        upgrade_id: i64,
        succeeded: bool,
        error: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        agent_upgrade::finish(&self.pool, upgrade_id, succeeded, error, now).await
    }
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
