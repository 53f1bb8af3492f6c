//! Listing release requests (R24) as a user may see them: the API's lists
//! and the web pages' inbox. Acting on a request is `crate::request`'s.

use std::collections::HashMap;

use ferry_domain::RequestState;
use ferry_domain::access::{Action, allowed};
use ferry_store::{RequestFilter, RequestRow};

use crate::error::AppResult;
use crate::{AppState, request};

/// Which requests to list, for [`listed`].
pub(crate) struct Listing {
    pub states: Vec<RequestState>,
    /// Only this requester's.
    pub requester: Option<String>,
    /// Only those waiting for the caller (see `ferry_domain::request::waits_for`).
    pub waiting: bool,
    pub limit: u32,
}

/// Requests of one project (by name) or of all that `user` may read, newest first,
/// each with the environment it is tested on: the API's lists and the web
/// interface's.
pub(crate) async fn listed(
    state: &AppState,
    user: &ferry_store::User,
    project: Option<&str>,
    q: &Listing,
) -> AppResult<Vec<(RequestRow, Option<String>)>> {
    let limit = q.limit;
    let project_id = match project {
        Some(name) => Some(state.db.project(name).await?.id),
        None => None,
    };
    let filter = RequestFilter {
        project_id,
        states: q.states.clone(),
        requester: q.requester.clone(),
        // Rows the caller may not see are dropped after reading.
        limit: if project_id.is_some() && !q.waiting { limit } else { 1000 },
    };
    let mut out = Vec::new();
    // Each project's role and environments, read once for all its requests.
    let mut projects: HashMap<String, (Option<ferry_domain::Role>, Vec<ferry_store::Environment>)> = HashMap::new();
    for row in state.db.requests(&filter).await? {
        if out.len() >= limit as usize {
            break;
        }
        if !projects.contains_key(&row.project) {
            let project = state.db.project(&row.project).await?;
            let membership = state.db.membership(project.id, user.id).await?;
            let envs = state.db.environments(&project).await?;
            projects.insert(row.project.clone(), (membership, envs));
        }
        let Some((membership, envs)) = projects.get(&row.project) else { continue };
        if allowed(&user.subject(), *membership, Action::ReadProject, false).is_err() {
            continue;
        }
        let Some(env) = envs.iter().find(|e| e.name == row.env) else { continue };
        if q.waiting && !request::waits_for(&row, env, user, *membership) {
            continue;
        }
        let staging = if row.kind == ferry_domain::RequestKind::Release { env.staging.clone() } else { None };
        out.push((row, staging));
    }
    Ok(out)
}
