//! Release requests (R24) and their history. A state changes only from the
//! state the change was decided on: the update names both, so of two people
//! acting at once only the first succeeds. Each function is one statement or
//! one transaction.

use ferry_domain::RequestState;
use sqlx::{Row, SqliteConnection, SqlitePool};

use super::parse;
use super::*;
use crate::model::*;
use crate::{Result, StoreError};

const REQUEST_SELECT: &str = "SELECT q.id, p.name AS project, e.name AS env, q.kind, q.state, q.release_id, \
     r.version, q.build_number, q.reason, q.requester, q.created_at, q.updated_at FROM release_requests q \
     JOIN projects p ON p.id = q.project_id JOIN environments e ON e.id = q.env_id \
     JOIN releases r ON r.id = q.release_id";

fn request_row(r: &sqlx::sqlite::SqliteRow) -> Result<RequestRow> {
    Ok(RequestRow {
        id: r.try_get("id")?,
        project: r.try_get("project")?,
        env: r.try_get("env")?,
        kind: parse(&r.try_get::<String, _>("kind")?)?,
        state: parse(&r.try_get::<String, _>("state")?)?,
        release_id: r.try_get("release_id")?,
        version: r.try_get("version")?,
        build_number: r.try_get("build_number")?,
        reason: r.try_get("reason")?,
        requester: r.try_get("requester")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// One history entry, numbered after the last.
struct Entry<'a> {
    actor: &'a str,
    action: &'a str,
    from: Option<RequestState>,
    to: RequestState,
    note: Option<&'a str>,
    deployment_id: Option<i64>,
}

async fn append(conn: &mut SqliteConnection, id: i64, e: &Entry<'_>, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO release_request_events (request_id, seq, at, actor, action, from_state, to_state, version, \
         note, deployment_id) \
         SELECT ?1, COALESCE((SELECT MAX(seq) FROM release_request_events WHERE request_id = ?1), 0) + 1, ?2, ?3, \
         ?4, ?5, ?6, (SELECT r.version FROM release_requests q JOIN releases r ON r.id = q.release_id \
         WHERE q.id = ?1), ?7, ?8",
    )
    .bind(id)
    .bind(now)
    .bind(e.actor)
    .bind(e.action)
    .bind(e.from.map(RequestState::as_str))
    .bind(e.to.as_str())
    .bind(e.note)
    .bind(e.deployment_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn create(pool: &SqlitePool, new: &NewRequest, now: i64) -> Result<RequestRow> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO release_requests (project_id, env_id, kind, state, release_id, build_number, reason, \
         requester, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(new.project_id)
    .bind(new.env_id)
    .bind(new.kind.to_string())
    .bind(new.state.as_str())
    .bind(new.release_id)
    .bind(new.build_number)
    .bind(&new.reason)
    .bind(&new.requester)
    .bind(now)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    let entry = Entry {
        actor: &new.requester,
        action: ferry_domain::RequestAction::Create.as_str(),
        from: None,
        to: new.state,
        note: Some(&new.reason),
        deployment_id: None,
    };
    append(&mut tx, id, &entry, now).await?;
    tx.commit().await?;
    one(pool, id).await
}

pub(super) async fn one(pool: &SqlitePool, id: i64) -> Result<RequestRow> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{REQUEST_SELECT} WHERE q.id = ?")))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("request {id}")))?;
    request_row(&row)
}

pub(super) async fn list(pool: &SqlitePool, filter: &RequestFilter) -> Result<Vec<RequestRow>> {
    let states: Vec<&str> = filter.states.iter().map(|s| s.as_str()).collect();
    let states = serde_json::to_string(&states).map_err(|e| StoreError::Backend(e.to_string()))?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{REQUEST_SELECT} WHERE (?1 IS NULL OR q.project_id = ?1) \
         AND (?2 = '[]' OR q.state IN (SELECT value FROM json_each(?2))) \
         AND (?3 IS NULL OR q.requester = ?3) ORDER BY q.id DESC LIMIT ?4"
    )))
    .bind(filter.project_id)
    .bind(states)
    .bind(filter.requester.as_deref())
    .bind(i64::from(filter.limit))
    .fetch_all(pool)
    .await?;
    rows.iter().map(request_row).collect()
}

pub(super) async fn change(pool: &SqlitePool, id: i64, change: &RequestChange, now: i64) -> Result<RequestRow> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let (release_id, build_number) = match change.release {
        Some((release, build)) => (Some(release), build),
        None => (None, None),
    };
    let updated = sqlx::query(
        "UPDATE release_requests SET state = ?, updated_at = ?, release_id = COALESCE(?, release_id), \
         build_number = CASE WHEN ? IS NULL THEN build_number ELSE ? END WHERE id = ? AND state = ?",
    )
    .bind(change.to.as_str())
    .bind(now)
    .bind(release_id)
    .bind(release_id)
    .bind(build_number)
    .bind(id)
    .bind(change.from.as_str())
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        let now_in: Option<String> = sqlx::query_scalar("SELECT state FROM release_requests WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        return Err(match now_in {
            None => StoreError::NotFound(format!("request {id}")),
            Some(state) => StoreError::Refused(format!(
                "request {id} is {state} now, not {}: someone acted on it first; look again with `ferry request \
                 show {id}`",
                change.from
            )),
        });
    }
    let entry = Entry {
        actor: &change.actor,
        action: change.action.as_str(),
        from: Some(change.from),
        to: change.to,
        note: change.note.as_deref(),
        deployment_id: change.deployment_id,
    };
    append(&mut tx, id, &entry, now).await?;
    tx.commit().await?;
    one(pool, id).await
}

pub(super) async fn note(pool: &SqlitePool, id: i64, note: &RequestNote<'_>, now: i64) -> Result<()> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let state: String = sqlx::query_scalar("SELECT state FROM release_requests WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("request {id}")))?;
    let state: RequestState = parse(&state)?;
    let entry = Entry {
        actor: note.actor,
        action: note.what,
        from: Some(state),
        to: state,
        note: note.note,
        deployment_id: note.deployment_id,
    };
    append(&mut tx, id, &entry, now).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn events(pool: &SqlitePool, id: i64) -> Result<Vec<RequestEvent>> {
    let rows = sqlx::query(
        "SELECT seq, at, actor, action, from_state, to_state, version, note, deployment_id \
         FROM release_request_events WHERE request_id = ? ORDER BY seq",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(RequestEvent {
                seq: r.try_get("seq")?,
                at: r.try_get("at")?,
                actor: r.try_get("actor")?,
                action: r.try_get("action")?,
                from: r.try_get::<Option<String>, _>("from_state")?.map(|s| parse(&s)).transpose()?,
                to: parse(&r.try_get::<String, _>("to_state")?)?,
                version: r.try_get("version")?,
                note: r.try_get("note")?,
                deployment_id: r.try_get("deployment_id")?,
            })
        })
        .collect()
}

#[async_trait]
impl Requests for SqliteDatabase {
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

    async fn set_request_skip_promotion(&self, request_id: i64) -> Result<()> {
        promotion::set_request_skip(&self.pool, request_id).await
    }

    async fn request_skips_promotion(&self, request_id: i64) -> Result<bool> {
        promotion::request_skips(&self.pool, request_id).await
    }
}
