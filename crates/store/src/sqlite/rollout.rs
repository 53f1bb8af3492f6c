//! Deployments as durable rollouts: creating one with its plan, taking one
//! orchestrator step at a time, and recording operators' requests.
//!
//! Status texts (events, holds, reasons, host errors) are
//! `ferry_domain::status::Note`s, stored with `Note::to_stored` and read with
//! `Note::from_stored`.
//!
//! Every decision is `ferry_domain::orchestrate`'s: each function here is one
//! transaction (`BEGIN IMMEDIATE`) that reads the rows the decision needs,
//! calls it, and writes the rows it returns. Another backend does the same
//! and nothing more:
//! - `create`: read the environment's running deployment, check the guards
//!   (see `guards`), read the running deployment's host rows, call
//!   `plan_create`, write the takeover (if any), insert the deployment (its
//!   unique index on running deployments refuses a second one: `Locked`),
//!   record the overrides, insert the host rows and events.
//! - `advance`: read the running deployment, all its host rows and the
//!   `host_desired` rows of its project on those hosts, call `plan_step`,
//!   write every returned host row and desired change, the deployment row,
//!   the environment's release and the events.
//! - `peek`: the same reads as `advance`, then `preview`; writes nothing.
//! - `set_hold`: the server's own hold; written and told in the history
//!   only when it differs from the one recorded.
//! - `control`: read the deployment's status and current batch, call
//!   `plan_control`, set the flag it names and append its event.

use std::collections::HashMap;

use ferry_domain::orchestrate::{
    self, ControlWrite, CreateWrites, DeploymentWrite, DesiredChange, Event, HostRow, HostWrite, NewDeploymentFacts,
    NewTarget, Outcome, RunningDeployment,
};
use ferry_domain::rollout::{RolloutView, Step};
use ferry_domain::status::Note;
use ferry_domain::{DeploymentStatus, HostDeployState};
use sqlx::{Row, SqliteConnection, SqlitePool};

use super::{parse, policy_from, policy_json};
use crate::model::*;
use crate::{Result, StoreError};

pub(super) async fn create(pool: &SqlitePool, new: NewDeployment, now: i64) -> Result<i64> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let running: Option<i64> =
        sqlx::query_scalar("SELECT id FROM deployments WHERE project_id = ? AND env_id = ? AND status = 'running'")
            .bind(new.project_id)
            .bind(new.env_id)
            .fetch_optional(&mut *tx)
            .await?;
    // Freezes, bad marks and the lock first: a refused deployment takes
    // over nothing.
    let overrides = super::guards::check_guards(&mut tx, &new, running, now).await?;
    let running_rows = match running {
        Some(old) => host_rows(&mut tx, old).await?,
        None => Vec::new(),
    };
    let targets: Vec<NewTarget> =
        new.targets.iter().map(|t| NewTarget { host: t.host_id, skipped: t.skipped }).collect();
    let facts = NewDeploymentFacts {
        created_by: &new.created_by,
        targets: &targets,
        batch_count: new.batch_count,
        policy: &new.policy,
        notes: &new.notes,
        emergency: new.emergency,
    };
    let CreateWrites { takeover, hosts, events } =
        orchestrate::plan_create(&facts, running.map(|id| (id, running_rows.as_slice())), now);
    if let Some(t) = takeover {
        for host in &t.hosts {
            write_host(&mut tx, t.deployment, host).await?;
        }
        write_deployment(&mut tx, t.deployment, &t.end, now).await?;
        event(&mut tx, t.deployment, &t.event).await?;
    }
    let inserted = sqlx::query_scalar::<_, i64>(
        "INSERT INTO deployments (project_id, env_id, release_id, kind, status, created_by, offline_timeout_ms, \
         created_at, policy, batch_count, emergency, whole_env, request_id, offline_policy) \
         VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(new.project_id)
    .bind(new.env_id)
    .bind(new.release_id)
    .bind(new.kind.as_str())
    .bind(&new.created_by)
    .bind(new.offline_timeout_ms)
    .bind(now)
    .bind(policy_json(&new.policy)?)
    .bind(i64::from(new.batch_count))
    .bind(new.emergency)
    .bind(new.whole_env)
    .bind(new.request_id)
    .bind(new.offline_policy.as_str())
    .fetch_one(&mut *tx)
    .await;
    let id = match inserted {
        Ok(id) => id,
        // R19: the unique index on running deployments is the lock, should
        // a running deployment appear unseen.
        Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
            return Err(StoreError::Locked { running: running.unwrap_or(0) });
        }
        Err(e) => return Err(e.into()),
    };
    super::guards::record_guards(&mut tx, id, overrides).await?;
    for (target, row) in new.targets.iter().zip(&hosts) {
        sqlx::query(
            "INSERT INTO deployment_hosts (deployment_id, host_id, release_id, from_release_id, release_name, \
             state, batch, finished_at, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(target.host_id)
        .bind(target.release_id)
        .bind(target.from_release_id)
        .bind(&target.release_name)
        .bind(row.state.as_str())
        .bind(i64::from(target.batch))
        .bind(row.finished_at)
        .bind(row.error.as_ref().map(Note::to_stored))
        .execute(&mut *tx)
        .await?;
    }
    for e in &events {
        event(&mut tx, id, e).await?;
    }
    tx.commit().await?;
    Ok(id)
}

/// Appends one transition to the deployment's history.
async fn event(conn: &mut SqliteConnection, id: i64, e: &Event) -> Result<()> {
    sqlx::query(
        "INSERT INTO deployment_events (deployment_id, seq, at, what) VALUES \
         (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM deployment_events WHERE deployment_id = ?), ?, ?)",
    )
    .bind(id)
    .bind(id)
    .bind(e.at)
    .bind(e.what.to_stored())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Every host row of a deployment.
async fn host_rows(conn: &mut SqliteConnection, id: i64) -> Result<Vec<HostRow>> {
    sqlx::query(
        "SELECT host_id, batch, state, release_id, previous_release_id, started_at, finished_at, error \
         FROM deployment_hosts WHERE deployment_id = ? ORDER BY host_id",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| {
        Ok(HostRow {
            host: r.try_get(0)?,
            batch: u32::try_from(r.try_get::<i64, _>(1)?).unwrap_or(0),
            state: parse::<HostDeployState>(&r.try_get::<String, _>(2)?)?,
            release_id: r.try_get(3)?,
            previous_release_id: r.try_get(4)?,
            started_at: r.try_get(5)?,
            finished_at: r.try_get(6)?,
            error: r.try_get::<Option<String>, _>(7)?.as_deref().map(Note::from_stored),
        })
    })
    .collect()
}

/// What [`advance`] reads of a running deployment.
struct Loaded {
    view: RolloutView,
    running: RunningDeployment,
    rows: Vec<HostRow>,
    project_id: i64,
    env_id: i64,
}

async fn load(conn: &mut SqliteConnection, id: i64, now: i64) -> Result<Option<Loaded>> {
    let Some(d) = sqlx::query(
        "SELECT project_id, env_id, release_id, policy, batch_count, current_batch, promoted_through, paused, \
         cancel_requested, emergency, whole_env, hold FROM deployments WHERE id = ? AND status = 'running'",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let rows = host_rows(conn, id).await?;
    let flag = |name: &str| -> Result<bool> { Ok(d.try_get::<i64, _>(name)? != 0) };
    let view = RolloutView {
        policy: policy_from(d.try_get("policy")?)?,
        hosts: rows.iter().map(HostRow::rollout_host).collect(),
        batch_count: u32::try_from(d.try_get::<i64, _>("batch_count")?).unwrap_or(1),
        current_batch: d.try_get::<Option<i64>, _>("current_batch")?.and_then(|b| u32::try_from(b).ok()),
        promoted_through: u32::try_from(d.try_get::<i64, _>("promoted_through")?).unwrap_or(0),
        paused: flag("paused")?,
        cancel_requested: flag("cancel_requested")?,
        emergency: flag("emergency")?,
        now,
    };
    let running = RunningDeployment {
        release_id: d.try_get("release_id")?,
        whole_env: flag("whole_env")?,
        hold: d.try_get::<Option<String>, _>("hold")?.as_deref().map(Note::from_stored),
    };
    Ok(Some(Loaded { view, running, rows, project_id: d.try_get("project_id")?, env_id: d.try_get("env_id")? }))
}

pub(super) async fn advance(pool: &SqlitePool, id: i64, now: i64) -> Result<Advanced> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let Some(d) = load(&mut tx, id, now).await? else { return Ok(Advanced::NotRunning) };
    let desired: HashMap<i64, i64> = sqlx::query_as(
        "SELECT hd.host_id, hd.release_id FROM host_desired hd JOIN deployment_hosts dh \
         ON dh.host_id = hd.host_id AND dh.deployment_id = ? WHERE hd.project_id = ?",
    )
    .bind(id)
    .bind(d.project_id)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    let writes = orchestrate::plan_step(&d.view, &d.running, &d.rows, &desired);
    for host in &writes.hosts {
        write_host(&mut tx, id, host).await?;
        match host.desired {
            DesiredChange::Keep => {}
            DesiredChange::Set(release) => {
                set_desired(&mut tx, host.host, d.project_id, d.env_id, release, writes.at).await?;
            }
            DesiredChange::Remove => {
                sqlx::query("DELETE FROM host_desired WHERE host_id = ? AND project_id = ?")
                    .bind(host.host)
                    .bind(d.project_id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
    }
    write_deployment(&mut tx, id, &writes.deployment, writes.at).await?;
    if let Some(release) = writes.environment_release {
        sqlx::query("UPDATE environments SET desired_release_id = ? WHERE id = ?")
            .bind(release)
            .bind(d.env_id)
            .execute(&mut *tx)
            .await?;
    }
    for e in &writes.events {
        event(&mut tx, id, e).await?;
    }
    tx.commit().await?;
    Ok(match writes.outcome {
        Outcome::Waiting(hold) => Advanced::Waiting(hold),
        Outcome::Changed(hosts) => Advanced::Changed { hosts },
        Outcome::Finished(status, hosts) => Advanced::Finished { status, hosts },
    })
}

/// Rewrites one host row of a deployment as `plan_*` says it must be.
async fn write_host(conn: &mut SqliteConnection, id: i64, h: &HostWrite) -> Result<()> {
    sqlx::query(
        "UPDATE deployment_hosts SET state = ?, previous_release_id = ?, started_at = ?, finished_at = ?, \
         error = ? WHERE deployment_id = ? AND host_id = ?",
    )
    .bind(h.state.as_str())
    .bind(h.previous_release_id)
    .bind(h.started_at)
    .bind(h.finished_at)
    .bind(h.error.as_ref().map(Note::to_stored))
    .bind(id)
    .bind(h.host)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Writes what `plan_*` says of the deployment's row.
async fn write_deployment(conn: &mut SqliteConnection, id: i64, w: &DeploymentWrite, at: i64) -> Result<()> {
    let query = match w {
        DeploymentWrite::Unchanged => return Ok(()),
        DeploymentWrite::Hold(text) => {
            sqlx::query("UPDATE deployments SET hold = ? WHERE id = ?").bind(text.to_stored())
        }
        DeploymentWrite::BatchStarted(batch) => {
            sqlx::query("UPDATE deployments SET current_batch = ?, hold = NULL WHERE id = ?").bind(i64::from(*batch))
        }
        DeploymentWrite::Ended { status, reason } => {
            sqlx::query("UPDATE deployments SET status = ?, finished_at = ?, reason = ?, hold = NULL WHERE id = ?")
                .bind(status.as_str())
                .bind(at)
                .bind(reason.as_ref().map(Note::to_stored))
        }
    };
    query.bind(id).execute(&mut *conn).await?;
    Ok(())
}

/// What [`advance`] would do now, without doing it, and the hosts of the
/// batch it would start: lets the server get ready first (take those hosts
/// out of the load balancer).
pub(super) async fn peek(pool: &SqlitePool, id: i64, now: i64) -> Result<Option<(Step, Vec<i64>)>> {
    let mut conn = pool.acquire().await?;
    let Some(d) = load(&mut conn, id, now).await? else { return Ok(None) };
    Ok(Some(orchestrate::preview(&d.view, &d.rows)))
}

/// Records what a running deployment waits for, when the server (not
/// `next_step`) holds it, e.g. for the load balancer.
pub(super) async fn set_hold(pool: &SqlitePool, id: i64, hold: &Note, now: i64) -> Result<()> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let stored = hold.to_stored();
    let changed = sqlx::query("UPDATE deployments SET hold = ? WHERE id = ? AND status = 'running' AND hold IS NOT ?")
        .bind(&stored)
        .bind(id)
        .bind(&stored)
        .execute(&mut *tx)
        .await?;
    if changed.rows_affected() > 0 {
        event(&mut tx, id, &Event { at: now, what: hold.clone() }).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn set_desired(
    conn: &mut SqliteConnection,
    host: i64,
    project: i64,
    env: i64,
    release: i64,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO host_desired (host_id, project_id, env_id, release_id, updated_at) VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT (host_id, project_id) DO UPDATE SET env_id = excluded.env_id, \
         release_id = excluded.release_id, updated_at = excluded.updated_at",
    )
    .bind(host)
    .bind(project)
    .bind(env)
    .bind(release)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn control(pool: &SqlitePool, id: i64, control: RolloutControl, now: i64) -> Result<()> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let row = sqlx::query("SELECT status, current_batch FROM deployments WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("deployment {id}")))?;
    let status: DeploymentStatus = parse(&row.try_get::<String, _>(0)?)?;
    let current_batch = row.try_get::<Option<i64>, _>(1)?.and_then(|b| u32::try_from(b).ok());
    let (write, e) = orchestrate::plan_control(id, status, current_batch, control, now)
        .map_err(|refused| StoreError::Refused(refused.to_string()))?;
    let query = match write {
        ControlWrite::Paused(paused) => sqlx::query("UPDATE deployments SET paused = ? WHERE id = ?").bind(paused),
        ControlWrite::CancelRequested => sqlx::query("UPDATE deployments SET cancel_requested = 1 WHERE id = ?"),
        ControlWrite::PromotedThrough(batch) => {
            sqlx::query("UPDATE deployments SET promoted_through = ? WHERE id = ?").bind(i64::from(batch))
        }
    };
    query.bind(id).execute(&mut *tx).await?;
    event(&mut tx, id, &e).await?;
    tx.commit().await?;
    Ok(())
}
