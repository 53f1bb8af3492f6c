//! Deployments as durable rollouts: creating one with its plan, taking one
//! orchestrator step at a time, and recording operators' requests. Each
//! function is one transaction; the decision itself is
//! `ferry_domain::rollout::next_step`, so this module only reads state and
//! writes what that decision says.

use ferry_domain::rollout::{Hold, RolloutHost, RolloutView, Step, next_step};
use ferry_domain::{DeploymentStatus, HostDeployState};
use sqlx::{Row, SqliteConnection, SqlitePool};

use super::{parse, policy_from, policy_json};
use crate::model::*;
use crate::{Result, StoreError};

/// Why a skipped target has no part in the deployment.
const SKIPPED: &str = "offline at the start: skipped; it gets this release when it returns if the deployment succeeds";

pub(super) async fn create(pool: &SqlitePool, new: NewDeployment, now: i64) -> Result<i64> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    // Freezes and bad marks first: a refused deployment takes over nothing.
    let overrides = super::guards::check_guards(&mut tx, &new, now).await?;
    let running: Option<i64> =
        sqlx::query_scalar("SELECT id FROM deployments WHERE project_id = ? AND env_id = ? AND status = 'running'")
            .bind(new.project_id)
            .bind(new.env_id)
            .fetch_optional(&mut *tx)
            .await?;
    if let (Some(old), true) = (running, new.emergency) {
        // An emergency takes over: the running rollout stops where it is.
        // Its hosts are the emergency's targets too, so none is left behind.
        sqlx::query(
            "UPDATE deployment_hosts SET state = 'canceled', finished_at = ?, \
             error = 'not started: an emergency rollback took over' WHERE deployment_id = ? AND state = 'queued'",
        )
        .bind(now)
        .bind(old)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE deployments SET status = 'canceled', finished_at = ?, hold = NULL, reason = ? WHERE id = ?",
        )
        .bind(now)
        .bind(ferry_domain::EMERGENCY_TOOK_OVER)
        .bind(old)
        .execute(&mut *tx)
        .await?;
        event(&mut tx, old, now, "canceled: an emergency rollback took over").await?;
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
        // R19: the unique index on running deployments is the lock.
        Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
            return Err(StoreError::Locked { running: running.unwrap_or(0) });
        }
        Err(e) => return Err(e.into()),
    };
    super::guards::record_guards(&mut tx, id, overrides).await?;
    for target in &new.targets {
        let (state, finished, error) = match target.skipped {
            true => ("skipped", Some(now), Some(SKIPPED)),
            false => ("queued", None, None),
        };
        sqlx::query(
            "INSERT INTO deployment_hosts (deployment_id, host_id, release_id, from_release_id, release_name, \
             state, batch, finished_at, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(target.host_id)
        .bind(target.release_id)
        .bind(target.from_release_id)
        .bind(&target.release_name)
        .bind(state)
        .bind(i64::from(target.batch))
        .bind(finished)
        .bind(error)
        .execute(&mut *tx)
        .await?;
    }
    let skipped = new.targets.iter().filter(|t| t.skipped).count();
    let what = format!(
        "created by {}: {} host(s) in {} batch(es), {}",
        new.created_by,
        new.targets.len() - skipped,
        new.batch_count,
        new.policy.describe()
    );
    event(&mut tx, id, now, &what).await?;
    if skipped > 0 {
        event(&mut tx, id, now, &format!("{skipped} host(s) offline at the start skipped")).await?;
    }
    for note in &new.notes {
        event(&mut tx, id, now, note).await?;
    }
    tx.commit().await?;
    Ok(id)
}

/// Appends one transition to the deployment's history.
async fn event(conn: &mut SqliteConnection, id: i64, now: i64, what: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO deployment_events (deployment_id, seq, at, what) VALUES \
         (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM deployment_events WHERE deployment_id = ?), ?, ?)",
    )
    .bind(id)
    .bind(id)
    .bind(now)
    .bind(what)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// What [`advance`] reads of a deployment besides its view.
struct Running {
    project_id: i64,
    env_id: i64,
    release_id: i64,
    whole_env: bool,
    hold: Option<String>,
}

async fn load(conn: &mut SqliteConnection, id: i64, now: i64) -> Result<Option<(RolloutView, Running)>> {
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
    let hosts = sqlx::query("SELECT batch, state, finished_at FROM deployment_hosts WHERE deployment_id = ?")
        .bind(id)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| {
            Ok(RolloutHost {
                batch: u32::try_from(r.try_get::<i64, _>(0)?).unwrap_or(0),
                state: parse::<HostDeployState>(&r.try_get::<String, _>(1)?)?,
                finished_at: r.try_get(2)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let flag = |name: &str| -> Result<bool> { Ok(d.try_get::<i64, _>(name)? != 0) };
    let view = RolloutView {
        policy: policy_from(d.try_get("policy")?)?,
        hosts,
        batch_count: u32::try_from(d.try_get::<i64, _>("batch_count")?).unwrap_or(1),
        current_batch: d.try_get::<Option<i64>, _>("current_batch")?.and_then(|b| u32::try_from(b).ok()),
        promoted_through: u32::try_from(d.try_get::<i64, _>("promoted_through")?).unwrap_or(0),
        paused: flag("paused")?,
        cancel_requested: flag("cancel_requested")?,
        emergency: flag("emergency")?,
        now,
    };
    let running = Running {
        project_id: d.try_get("project_id")?,
        env_id: d.try_get("env_id")?,
        release_id: d.try_get("release_id")?,
        whole_env: flag("whole_env")?,
        hold: d.try_get("hold")?,
    };
    Ok(Some((view, running)))
}

/// How a hold reads in `ferry deployment show`.
fn hold_text(hold: &Hold, view: &RolloutView) -> String {
    let next = view.current_batch.map_or(1, |b| b + 2);
    match hold {
        Hold::BatchRunning => {
            format!("batch {} of {} at work", view.current_batch.map_or(1, |b| b + 1), view.batch_count)
        }
        Hold::Paused => "paused (ferry deployment resume)".into(),
        Hold::Promotion { until: Some(t) } => {
            format!("waiting for promote before batch {next}, or until {}", ferry_domain::rfc3339_from_millis(*t))
        }
        Hold::Promotion { until: None } => format!("waiting for promote before batch {next}"),
        Hold::Until(t) => format!("pausing before batch {next} until {}", ferry_domain::rfc3339_from_millis(*t)),
    }
}

pub(super) async fn advance(pool: &SqlitePool, id: i64, now: i64) -> Result<Advanced> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let Some((view, d)) = load(&mut tx, id, now).await? else { return Ok(Advanced::NotRunning) };
    let step = next_step(&view);
    let done = match step {
        Step::Wait(hold) => {
            let text = hold_text(&hold, &view);
            if d.hold.as_deref() != Some(text.as_str()) {
                sqlx::query("UPDATE deployments SET hold = ? WHERE id = ?")
                    .bind(&text)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                if !matches!(hold, Hold::BatchRunning) {
                    event(&mut tx, id, now, &text).await?;
                }
            }
            Advanced::Waiting(hold)
        }
        Step::StartBatch(batch) => {
            // Each target goes to its own release (a rollback's differ per host).
            let targets: Vec<(i64, i64)> = sqlx::query_as(
                "SELECT host_id, COALESCE(release_id, ?) FROM deployment_hosts WHERE deployment_id = ? AND batch = ? \
                 AND state = 'queued'",
            )
            .bind(d.release_id)
            .bind(id)
            .bind(i64::from(batch))
            .fetch_all(&mut *tx)
            .await?;
            let hosts: Vec<i64> = targets.iter().map(|(host, _)| *host).collect();
            // The caller read its clock before this transaction got the
            // write lock; a report applied in between may carry a later time.
            // A batch starts after the one before it ended: never record it
            // earlier.
            let last_end: Option<i64> = sqlx::query_scalar(
                "SELECT MAX(finished_at) FROM deployment_hosts WHERE deployment_id = ? AND batch < ?",
            )
            .bind(id)
            .bind(i64::from(batch))
            .fetch_one(&mut *tx)
            .await?;
            let now = last_end.map_or(now, |end| end.max(now));
            for (host, release) in &targets {
                // Where a rollback would put it: what it was meant to run until now.
                sqlx::query(
                    "UPDATE deployment_hosts SET state = 'pending', started_at = ?, previous_release_id = \
                     (SELECT release_id FROM host_desired WHERE host_id = ? AND project_id = ?) \
                     WHERE deployment_id = ? AND host_id = ?",
                )
                .bind(now)
                .bind(host)
                .bind(d.project_id)
                .bind(id)
                .bind(host)
                .execute(&mut *tx)
                .await?;
                set_desired(&mut tx, *host, d.project_id, d.env_id, *release, now).await?;
            }
            sqlx::query("UPDATE deployments SET current_batch = ?, hold = NULL WHERE id = ?")
                .bind(i64::from(batch))
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let what = format!("batch {} of {} started: {} host(s)", batch + 1, view.batch_count, hosts.len());
            event(&mut tx, id, now, &what).await?;
            Advanced::Changed { hosts }
        }
        Step::RollBack { reason } => {
            let rows = sqlx::query(
                "SELECT host_id, previous_release_id FROM deployment_hosts WHERE deployment_id = ? \
                 AND state IN ('pending', 'running', 'succeeded', 'failed')",
            )
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
            let mut hosts = Vec::new();
            for r in rows {
                let host: i64 = r.try_get(0)?;
                match r.try_get::<Option<i64>, _>(1)? {
                    Some(previous) => {
                        set_desired(&mut tx, host, d.project_id, d.env_id, previous, now).await?;
                        // A failed host keeps saying it failed; the others say
                        // they were put back.
                        sqlx::query(
                            "UPDATE deployment_hosts SET state = CASE WHEN state = 'failed' THEN 'failed' \
                             ELSE 'rolled_back' END, finished_at = COALESCE(finished_at, ?), \
                             error = COALESCE(error || char(10), '') || 'put back on its previous release' \
                             WHERE deployment_id = ? AND host_id = ?",
                        )
                        .bind(now)
                        .bind(id)
                        .bind(host)
                        .execute(&mut *tx)
                        .await?;
                    }
                    None => {
                        // Nothing ran here before: stop asking for the new
                        // release, and say so rather than pretend.
                        sqlx::query("DELETE FROM host_desired WHERE host_id = ? AND project_id = ?")
                            .bind(host)
                            .bind(d.project_id)
                            .execute(&mut *tx)
                            .await?;
                        sqlx::query(
                            "UPDATE deployment_hosts SET state = CASE WHEN state IN ('pending', 'running') \
                             THEN 'canceled' ELSE state END, finished_at = COALESCE(finished_at, ?), \
                             error = COALESCE(error || char(10), '') || 'no earlier release to put back; left as is' \
                             WHERE deployment_id = ? AND host_id = ?",
                        )
                        .bind(now)
                        .bind(id)
                        .bind(host)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                hosts.push(host);
            }
            // Rolled back only if something was: a first deploy that fails
            // has nothing earlier to go back to.
            let put_back: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM deployment_hosts WHERE deployment_id = ? AND previous_release_id IS NOT NULL \
                 AND state IN ('rolled_back', 'failed')",
            )
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            let status = if put_back > 0 { DeploymentStatus::RolledBack } else { DeploymentStatus::Failed };
            finish(&mut tx, id, now, status, Some(&reason), &d).await?;
            Advanced::Finished { status, hosts }
        }
        Step::Finish { status, reason } => {
            let hosts = finish(&mut tx, id, now, status, reason.as_deref(), &d).await?;
            Advanced::Finished { status, hosts }
        }
    };
    tx.commit().await?;
    Ok(done)
}

/// What [`advance`] would do now, without doing it, and the hosts of the
/// batch it would start: lets the server get ready first (take those hosts
/// out of the load balancer).
pub(super) async fn peek(pool: &SqlitePool, id: i64, now: i64) -> Result<Option<(Step, Vec<i64>)>> {
    let mut conn = pool.acquire().await?;
    let Some((view, _)) = load(&mut conn, id, now).await? else { return Ok(None) };
    let step = next_step(&view);
    let hosts = match step {
        Step::StartBatch(batch) => {
            sqlx::query_scalar(
                "SELECT host_id FROM deployment_hosts WHERE deployment_id = ? AND batch = ? AND state = 'queued'",
            )
            .bind(id)
            .bind(i64::from(batch))
            .fetch_all(&mut *conn)
            .await?
        }
        _ => Vec::new(),
    };
    Ok(Some((step, hosts)))
}

/// Records what a running deployment waits for, when the server (not
/// `next_step`) holds it, e.g. for the load balancer.
pub(super) async fn set_hold(pool: &SqlitePool, id: i64, hold: &str, now: i64) -> Result<()> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let changed = sqlx::query("UPDATE deployments SET hold = ? WHERE id = ? AND status = 'running' AND hold IS NOT ?")
        .bind(hold)
        .bind(id)
        .bind(hold)
        .execute(&mut *tx)
        .await?;
    if changed.rows_affected() > 0 {
        event(&mut tx, id, now, hold).await?;
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

/// Ends a deployment: hosts never started are recorded as canceled with the
/// reason, a successful whole-environment deployment makes its release
/// the environment's, for hosts that join later, and a successful one makes
/// it desired on the hosts it skipped (offline at the start), which converge
/// when they return. Returns those hosts.
async fn finish(
    conn: &mut SqliteConnection,
    id: i64,
    now: i64,
    status: DeploymentStatus,
    reason: Option<&str>,
    d: &Running,
) -> Result<Vec<i64>> {
    let not_started = format!("not started: {}", reason.unwrap_or("the deployment ended"));
    sqlx::query(
        "UPDATE deployment_hosts SET state = 'canceled', finished_at = ?, error = ? \
         WHERE deployment_id = ? AND state = 'queued'",
    )
    .bind(now)
    .bind(&not_started)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE deployments SET status = ?, finished_at = ?, reason = ?, hold = NULL WHERE id = ?")
        .bind(status.as_str())
        .bind(now)
        .bind(reason)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    // Failed without a rollback: the hosts stay on the release (the failures
    // were tolerated, or the policy leaves them), so later hosts join them.
    if d.whole_env && matches!(status, DeploymentStatus::Succeeded | DeploymentStatus::Failed) {
        sqlx::query("UPDATE environments SET desired_release_id = ? WHERE id = ?")
            .bind(d.release_id)
            .bind(d.env_id)
            .execute(&mut *conn)
            .await?;
    }
    let mut skipped = Vec::new();
    if status == DeploymentStatus::Succeeded {
        // Each skipped host gets its own target (a rollback's differ).
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT host_id, COALESCE(release_id, ?) FROM deployment_hosts \
             WHERE deployment_id = ? AND state = 'skipped'",
        )
        .bind(d.release_id)
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
        for (host, release) in rows {
            set_desired(conn, host, d.project_id, d.env_id, release, now).await?;
            skipped.push(host);
        }
    }
    let what = match reason {
        Some(r) => format!("{status}: {r}"),
        None => status.to_string(),
    };
    event(conn, id, now, &what).await?;
    Ok(skipped)
}

pub(super) async fn control(pool: &SqlitePool, id: i64, control: RolloutControl, now: i64) -> Result<()> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let row = sqlx::query("SELECT status, current_batch FROM deployments WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("deployment {id}")))?;
    let status: String = row.try_get(0)?;
    if status != "running" {
        return Err(StoreError::Refused(format!("deployment {id} has already ended ({status})")));
    }
    let (sql, what) = match control {
        RolloutControl::Pause => ("UPDATE deployments SET paused = 1 WHERE id = ?", "paused by an operator"),
        RolloutControl::Resume => ("UPDATE deployments SET paused = 0 WHERE id = ?", "resumed by an operator"),
        RolloutControl::Cancel => {
            ("UPDATE deployments SET cancel_requested = 1 WHERE id = ?", "cancel asked by an operator")
        }
        RolloutControl::Promote => (
            "UPDATE deployments SET promoted_through = COALESCE(current_batch, -1) + 1 WHERE id = ?",
            "promoted by an operator",
        ),
    };
    sqlx::query(sql).bind(id).execute(&mut *tx).await?;
    event(&mut tx, id, now, what).await?;
    tx.commit().await?;
    Ok(())
}
