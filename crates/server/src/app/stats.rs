//! Deployment statistics (R29): the store's rows, `ferry_domain::stats`'s
//! arithmetic.

use ferry_domain::rfc3339_from_millis;
use ferry_domain::stats::{Period, by_environment};
use ferry_proto::api::ProjectStats;

use crate::AppState;
use crate::error::{AppError, AppResult};

/// The period when the request names none.
const DEFAULT_PERIOD_MS: i64 = 30 * 86_400_000;

/// A project's deployment statistics per environment (or of one), from
/// `since_ms` (30 days ago by default) until now.
pub(crate) async fn project(
    state: &AppState,
    project: &str,
    env: Option<&str>,
    since_ms: Option<i64>,
) -> AppResult<ProjectStats> {
    let until = crate::now_ms();
    let since = since_ms.unwrap_or(until - DEFAULT_PERIOD_MS);
    if since > until {
        return Err(AppError::BadRequest(format!(
            "since ({}) is in the future; statistics cover a period that has begun",
            rfc3339_from_millis(since)
        )));
    }
    let project = state.db.project(project).await?;
    let (envs, rows) = match env {
        Some(name) => {
            let env = state.db.environment(&project, name).await?;
            let rows = state.db.deployment_facts(&project, Some(&env), since).await?;
            (vec![env.name], rows)
        }
        None => {
            let envs = state.db.environments(&project).await?.into_iter().map(|e| e.name).collect();
            (envs, state.db.deployment_facts(&project, None, since).await?)
        }
    };
    // A period's end is exclusive: one past now, so that a deployment
    // created in this very millisecond counts.
    let environments = by_environment(&envs, &rows, Period { since, until: until + 1 });
    Ok(ProjectStats {
        project: project.name,
        since: rfc3339_from_millis(since),
        until: rfc3339_from_millis(until),
        since_ms: since,
        until_ms: until,
        environments,
    })
}
