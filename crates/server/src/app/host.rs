//! The fleet's hosts (R2, R3): re-tagging and removing them, and the join
//! tokens new hosts enrol with.

use ferry_domain::{Tags, rfc3339_from_millis};
use ferry_proto::api::{CreateJoinToken, HostInfo, JoinTokenInfo, SetHostTags};
use ferry_store::{Host, JoinToken, User};

use crate::auth;
use crate::error::{AppError, AppResult};
use crate::{AppState, fleet, lb};

/// A host as the API and the pages show it.
pub(crate) fn host_info(h: Host) -> HostInfo {
    HostInfo {
        name: h.name,
        tags: h.tags,
        online: h.online,
        last_seen: h.last_seen_at.map(rfc3339_from_millis),
        agent_version: h.agent_version,
        enrolled_at: rfc3339_from_millis(h.enrolled_at),
        address: h.address,
        announced_tags: h.announced_tags,
        agent_binary: h.agent_binary,
        agent_digest: h.agent_digest,
    }
}

fn join_token_info(t: JoinToken, token: Option<String>) -> JoinTokenInfo {
    JoinTokenInfo {
        id: t.id,
        tags: t.tags,
        created_by: t.created_by,
        created_at: rfc3339_from_millis(t.created_at),
        revoked_at: t.revoked_at.map(rfc3339_from_millis),
        token,
    }
}

/// An administrator re-tags a host. Tags decide which projects' releases
/// and secrets a host receives, so a host never sets its own: its agent's
/// `--tags` count only at enrolment.
pub(crate) async fn set_tags(state: &AppState, name: &str, req: SetHostTags) -> AppResult<HostInfo> {
    let tags = Tags::parse(&req.tags).map_err(|e| AppError::BadRequest(format!("tags: {e}")))?;
    let host = state.db.set_host_tags(name, &tags).await?;
    tracing::info!(host = %host.name, tags = %host.tags, "host re-tagged");
    // Environments it now belongs to give it their release; balancers in
    // front of them learn of it; its agent hears at once.
    fleet::adopt(state, host.id, &host.tags).await?;
    lb::backend_connected(state, &host.tags).await?;
    state.hub.wake([host.id]);
    Ok(host_info(host))
}

/// An administrator removes a host (wiped, replaced, gone). Its row is
/// retired, not deleted, so the deployments and logs that name it stay
/// readable; its agent's credential is refused from now on and its open
/// connection closed.
pub(crate) async fn remove(state: &AppState, caller: &User, name: &str) -> AppResult<()> {
    let id = state.db.retire_host(name, crate::now_ms()).await?;
    state.hub.disconnect(id);
    tracing::info!(host = %name, by = %caller.name, "host removed");
    Ok(())
}

/// Every enrolled host.
pub(crate) async fn list(state: &AppState) -> AppResult<Vec<HostInfo>> {
    Ok(rows(state).await?.into_iter().map(host_info).collect())
}

/// Every enrolled host, as stored.
pub(crate) async fn rows(state: &AppState) -> AppResult<Vec<Host>> {
    Ok(state.db.hosts().await?)
}

/// A join token whose hosts may only have (some of) these tags; its value
/// is in the answer, once.
pub(crate) async fn create_join_token(
    state: &AppState,
    caller: &User,
    req: CreateJoinToken,
) -> AppResult<JoinTokenInfo> {
    let tags = Tags::parse(&req.tags).map_err(|e| AppError::BadRequest(format!("--tags: {e}")))?;
    if tags.0.is_empty() {
        return Err(AppError::BadRequest("--tags: a limited join token needs at least one key=value".into()));
    }
    let token = auth::new_token(auth::JOIN_TOKEN_PREFIX);
    let row = state.db.create_join_token(&auth::token_hash(&token), &tags, &caller.name, crate::now_ms()).await?;
    Ok(join_token_info(row, Some(token)))
}

/// Every join token, without its value.
pub(crate) async fn join_tokens(state: &AppState) -> AppResult<Vec<JoinTokenInfo>> {
    Ok(state.db.join_tokens().await?.into_iter().map(|t| join_token_info(t, None)).collect())
}

/// Revokes a join token.
pub(crate) async fn revoke_join_token(state: &AppState, id: i64) -> AppResult<()> {
    state.db.revoke_join_token(id, crate::now_ms()).await?;
    Ok(())
}
