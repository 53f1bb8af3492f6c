//! `POST /api/v1/hooks/{forge}/{project}`: push webhooks start builds (R5).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use ferry_domain::pattern::matches_any;
use ferry_proto::api::HookAnswer;

use super::builds::build_info;
use crate::AppState;
use crate::app::build::queue;
use crate::error::{AppError, AppResult};
use crate::secrets::webhook_context;
use crate::webhook::{Event, Forge, HookError, Ref, payload_key, verify_and_parse};

#[utoipa::path(
    post,
    path = "/api/v1/hooks/{forge}/{project}",
    tag = "hooks",
    params(("forge" = String, Path), ("project" = String, Path)),
    responses((status = 200, body = HookAnswer), (status = 202, description = "Accepted but ignored: the answer says why", body = HookAnswer)),
)]
pub async fn receive(
    State(state): State<AppState>,
    Path((forge, project)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<(StatusCode, Json<HookAnswer>)> {
    let forge = Forge::parse(&forge)
        .ok_or_else(|| AppError::NotFound(format!("unknown forge '{forge}'; use github, gitlab, gitea or gerrit")))?;
    // Same answer for an unknown project as for a bad signature: a webhook
    // endpoint must not tell strangers which projects exist.
    let refused = || AppError::Unauthorized("webhook refused: unknown project or wrong signature".into());
    let project = state.db.project(&project).await.map_err(|_| refused())?;
    let Some(source) = project.source.clone() else { return Err(refused()) };
    let Some(secret) = source.webhook_secret.as_ref() else {
        tracing::warn!(project = %project.name, "webhook refused: the project has no webhook secret (--webhook-secret)");
        return Err(refused());
    };
    let secret = state.secrets.open(secret.expose(), &webhook_context(&project.name)).map_err(|e| {
        AppError::Internal(format!("the webhook secret of project '{}' cannot be opened: {e}", project.name))
    })?;
    let event = verify_and_parse(forge, secret.expose(), &headers, &body).map_err(|e| match e {
        HookError::Unauthorized(m) => {
            tracing::warn!(project = %project.name, forge = forge.name(), "webhook refused: {m}");
            refused()
        }
        HookError::BadPayload(m) => AppError::BadRequest(m),
    })?;
    let ignored = |why: String| Ok((StatusCode::ACCEPTED, Json(HookAnswer { build: None, ignored: Some(why) })));
    let (reference, delivery, commit) = match event {
        Event::Other { what } => return ignored(format!("'{what}' events build nothing")),
        Event::Push { reference, delivery, commit } => (reference, delivery, commit),
    };
    if !state.db.record_delivery(project.id, forge.name(), &delivery, crate::now_ms()).await? {
        return ignored(format!("delivery {delivery} was already handled"));
    }
    // A replay (Gitea) resends the same payload under a new delivery id.
    let payload = payload_key(forge, &headers, &body);
    if !state.db.record_delivery(project.id, forge.name(), &payload, crate::now_ms()).await? {
        return ignored("this payload was already delivered (a replay)".to_string());
    }
    // A signed push replayed under a new delivery id is still the same push:
    // one build per ref and commit. Kept beside the delivery ids, under a
    // prefix no forge's ids use.
    if let (Some(commit), Ref::Branch(r) | Ref::Tag(r)) = (&commit, &reference) {
        let push = format!("push:{r}@{commit}");
        if !state.db.record_delivery(project.id, forge.name(), &push, crate::now_ms()).await? {
            return ignored(format!("{r} at {commit} was already built from a push"));
        }
    }
    let git_ref = match reference {
        Ref::Deleted(r) => return ignored(format!("{r} was deleted")),
        Ref::Branch(b) if !matches_any(&source.branches, &b) => {
            return ignored(format!(
                "branch '{b}' is not among the project's branches ({})",
                source.branches.join(", ")
            ));
        }
        Ref::Branch(b) => b,
        Ref::Tag(t) => format!("refs/tags/{t}"),
    };
    // The pushed commit, not whatever the branch holds when the build runs:
    // a late or queued delivery still builds what was pushed.
    let build =
        queue(&state, &project, &git_ref, commit.as_deref(), &format!("webhook:{}", forge.name()), forge.name(), None)
            .await?;
    tracing::info!(project = %project.name, forge = forge.name(), %git_ref, build = build.id, "push webhook queued a build");
    Ok((StatusCode::ACCEPTED, Json(HookAnswer { build: Some(build_info(build)), ignored: None })))
}
