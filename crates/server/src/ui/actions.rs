//! The destructive actions of the web interface, each behind a confirm page
//! (R9, R11): the button is a link to a page (a GET, so it works without
//! JavaScript) that shows what will happen, host by host, and holds the
//! real form. Nothing changes before that form is sent, and a rollback whose
//! plan changed in between is shown again instead of being carried out.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use ferry_domain::rollback::HostRollback;
use ferry_store::{Environment, Project};
use ferry_web::views::{ConfirmPage, Nav, PlanRow};

use super::{PageError, Viewer, html};
use crate::auth::Caller;
use crate::error::AppError;
use crate::{AppState, app};

type PageResult = Result<Response, PageError>;

/// Where a rollback of an environment takes each of its hosts, in words.
#[derive(Debug, Clone, PartialEq)]
pub struct RollbackPlan {
    pub rows: Vec<PlanRow>,
}

impl RollbackPlan {
    /// The hosts that move, as `host=version` pairs: what the confirm form
    /// carries, so that the rollback done is the one shown.
    pub fn key(&self) -> String {
        self.rows.iter().filter(|r| r.moves).map(|r| format!("{}={}", r.host, r.to)).collect::<Vec<_>>().join(",")
    }

    /// Where the rollback goes, for its button: `v1` when every host that
    /// moves goes to one version, else `web-1 → v1, web-2 → v0`; `None` when
    /// no host moves.
    pub fn target(&self) -> Option<String> {
        let moving: Vec<&PlanRow> = self.rows.iter().filter(|r| r.moves).collect();
        let first = moving.first()?;
        if moving.iter().all(|r| r.to == first.to) {
            return Some(first.to.clone());
        }
        Some(moving.iter().map(|r| format!("{} → {}", r.host, r.to)).collect::<Vec<_>>().join(", "))
    }
}

/// What a rollback of `env` would do now, as `ferry rollback` (and the
/// POST below) would do it (`app::deploy::rollback_preview`), in words.
pub async fn rollback_plan(
    state: &AppState,
    project: &Project,
    env: &Environment,
    emergency: bool,
    t: &'static ferry_web::Text,
) -> Result<RollbackPlan, PageError> {
    let preview = app::deploy::rollback_preview(state, project, env, emergency).await?;
    let version = |id: &i64| preview.versions.get(id).cloned().unwrap_or_else(|| format!("release {id}"));
    let rows = preview
        .hosts
        .iter()
        .map(|(h, outcome)| {
            let (to, moves) = match outcome {
                HostRollback::To { release, .. } => (version(release), true),
                HostRollback::AlreadyThere(r) => (format!("{} {}", t.stays_already, version(r)), false),
                HostRollback::NothingEarlier => (t.stays_nothing.to_string(), false),
            };
            let now = preview.running.get(&h.id).cloned().unwrap_or_else(|| "-".into());
            PlanRow { host: h.name.clone(), now, to, moves }
        })
        .collect();
    Ok(RollbackPlan { rows })
}

#[derive(serde::Deserialize, Default)]
pub struct RollbackQuery {
    #[serde(default)]
    emergency: Option<String>,
}

/// The confirm page of a rollback: each host with what it runs and where it
/// goes, and the form that does it.
fn rollback_page(
    v: &Viewer,
    project: &str,
    env: &str,
    emergency: bool,
    plan: &RollbackPlan,
    notice: Option<&'static str>,
) -> ConfirmPage {
    let t = v.lang.text();
    let heading = if emergency { t.confirm_emergency } else { t.confirm_rollback };
    let mut hidden = vec![("plan".to_string(), plan.key())];
    if emergency {
        hidden.push(("emergency".into(), "on".into()));
    }
    ConfirmPage {
        chrome: v.chrome(format!("{project}/{env} · {heading}"), Nav::Projects),
        heading: format!("{heading}: {project}/{env}"),
        explain: if emergency { t.emergency_explain } else { t.rollback_explain }.to_string(),
        notice: notice.unwrap_or_default().to_string(),
        plan: plan.rows.clone(),
        action: format!("/projects/{project}/environments/{env}/rollback"),
        hidden,
        reason: emergency,
        confirm: match plan.target() {
            Some(to) if emergency => format!("{} {to}", t.emergency_rollback_to),
            Some(to) => format!("{} {to}", t.roll_back_to),
            None => String::new(),
        },
        danger: emergency,
        back: format!("/projects/{project}"),
    }
}

/// `GET /projects/{project}/environments/{env}/rollback[?emergency=on]`:
/// what the rollback would do, and the form that does it.
pub async fn rollback_confirm(
    State(state): State<AppState>,
    v: Viewer,
    Path((project, env)): Path<(String, String)>,
    Query(q): Query<RollbackQuery>,
) -> PageResult {
    let p = app::project::get(&state, &project).await?;
    let e = app::environment::get(&state, &p, &env).await?;
    let emergency = q.emergency.is_some();
    let plan = rollback_plan(&state, &p, &e, emergency, v.lang.text()).await?;
    html(&rollback_page(&v, &p.name, &e.name, emergency, &plan, None))
}

#[derive(serde::Deserialize)]
pub struct RollbackForm {
    /// An emergency rollback (R11): every host at once, no gates, past an
    /// approval requirement for someone with the production right.
    #[serde(default)]
    emergency: Option<String>,
    /// The plan the confirm page showed (`RollbackPlan::key`); when given,
    /// the rollback is done only if it still is the plan.
    #[serde(default)]
    plan: Option<String>,
    /// Why, for an emergency: recorded in the audit trail with the form.
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /projects/{project}/environments/{env}/rollback`: each host back
/// to the release it ran before (R9, R11), as `ferry rollback` asks the
/// API, if that still is what the confirm page showed.
pub async fn rollback(
    State(state): State<AppState>,
    v: Viewer,
    Caller(user): Caller,
    Path((project, env)): Path<(String, String)>,
    axum::Form(f): axum::Form<RollbackForm>,
) -> PageResult {
    let emergency = f.emergency.is_some();
    if emergency && f.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
        return Err(AppError::BadRequest(
            "an emergency rollback needs a reason: it is recorded in the audit trail".into(),
        )
        .into());
    }
    if let Some(shown) = &f.plan {
        let p = app::project::get(&state, &project).await?;
        let e = app::environment::get(&state, &p, &env).await?;
        let plan = rollback_plan(&state, &p, &e, emergency, v.lang.text()).await?;
        if plan.key() != *shown {
            let page = rollback_page(&v, &p.name, &e.name, emergency, &plan, Some(v.lang.text().plan_changed));
            let mut response = html(&page)?;
            *response.status_mut() = StatusCode::CONFLICT;
            return Ok(response);
        }
    }
    let req = ferry_proto::api::CreateDeployment {
        emergency,
        ..ferry_proto::api::CreateDeployment::of(env, None, ferry_domain::DeploymentKind::Rollback)
    };
    let d = crate::app::deploy::create(&state, &user, &project, req).await?;
    Ok(Redirect::to(&format!("/deployments/{}", d.id)).into_response())
}

/// `GET /projects/{project}/members/{user}/remove`: who loses which role,
/// and the form that removes them.
pub async fn remove_member_confirm(
    State(state): State<AppState>,
    v: Viewer,
    Path((project, user)): Path<(String, String)>,
) -> PageResult {
    let p = app::project::get(&state, &project).await?;
    let member = app::account::members(&state, &p.name)
        .await?
        .into_iter()
        .find(|m| m.user == user)
        .ok_or_else(|| AppError::NotFound(format!("'{user}' is no member of project '{}'", p.name)))?;
    let t = v.lang.text();
    html(&ConfirmPage {
        chrome: v.chrome(format!("{} · {}", p.name, t.confirm_remove_member), Nav::Projects),
        heading: format!("{}: {} ({}) · {}", t.confirm_remove_member, member.user, member.role, p.name),
        explain: t.remove_member_explain.to_string(),
        notice: String::new(),
        plan: Vec::new(),
        action: format!("/projects/{}/members/{}/remove", p.name, member.user),
        hidden: Vec::new(),
        reason: false,
        confirm: format!("{} {}", t.remove, member.user),
        danger: true,
        back: format!("/projects/{}", p.name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(host: &str, now: &str, to: &str, moves: bool) -> PlanRow {
        PlanRow { host: host.into(), now: now.into(), to: to.into(), moves }
    }

    #[test]
    fn a_rollback_button_names_one_version_or_each_host_s() {
        let one = RollbackPlan { rows: vec![row("web-1", "v2", "v1", true), row("web-2", "v1", "stays", false)] };
        assert_eq!(one.target().as_deref(), Some("v1"));
        assert_eq!(one.key(), "web-1=v1", "only the hosts that move");
        let two = RollbackPlan { rows: vec![row("web-1", "v3", "v2", true), row("web-2", "v2", "v1", true)] };
        assert_eq!(two.target().as_deref(), Some("web-1 → v2, web-2 → v1"));
        assert_eq!(two.key(), "web-1=v2,web-2=v1");
        let none = RollbackPlan { rows: vec![row("web-1", "v1", "stays", false)] };
        assert_eq!((none.target(), none.key()), (None, String::new()));
    }
}
