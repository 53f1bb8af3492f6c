//! The HTTP API under `/api/v1`, plus `/healthz`, `/readyz` and `/metrics`. Handlers are thin: they
//! read the request, call a use case of `app`, and shape the answer.
//!
//! Every route is declared in [`routes`] with the permission it needs, and
//! the router is built from that one table: a route cannot exist without a
//! rule. `access::authorize` enforces the rule before the handler runs.

pub(crate) mod accounts;
pub(crate) mod agent_upgrades;
pub(crate) mod audit;
pub(crate) mod builds;
pub(crate) mod deployments;
pub(crate) mod hooks;
pub(crate) mod hosts;
pub(crate) mod lb;
pub(crate) mod locks;
pub(crate) mod notify;
pub mod openapi;
pub(crate) mod projects;
pub(crate) mod releases;
pub(crate) mod requests;
pub(crate) mod stats;
pub(crate) mod vars;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use ferry_domain::Action;

use crate::access::{Route, Rule, route};
use crate::{AppState, agent_channel, agent_upgrade};

/// `?limit=N` on list endpoints: 50 by default, 1000 at most.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    limit: Option<u32>,
}

impl ListQuery {
    pub fn limit(&self) -> u32 {
        self.limit.unwrap_or(50).min(1000)
    }
}

/// The permission table: every route of the API with the rule it is served
/// under. Routes that concern a project take it from `{project}`, or from the
/// deployment or build `{id}` names (see `access::authorize`).
pub(crate) fn routes() -> Vec<Route> {
    use Action::*;
    use Rule::{Agent, Public, User};
    let (g, p, d) = (Method::GET, Method::POST, Method::DELETE);
    vec![
        route(g.clone(), "/healthz", Public, crate::metrics::healthz),
        route(g.clone(), "/readyz", Public, crate::metrics::readyz),
        // Checks its own token (the metrics token or an administrator's).
        route(g.clone(), "/metrics", Public, crate::metrics::scrape),
        // Accounts: signing in checks the password itself.
        // The API's description: it reveals no data.
        route(g.clone(), "/api/v1/openapi.json", Public, openapi::serve),
        route(p.clone(), "/api/v1/login", Public, accounts::login),
        route(g.clone(), "/api/v1/whoami", User(ReadShared), accounts::whoami),
        route(p.clone(), "/api/v1/users", User(ManageUsers), accounts::create_user),
        route(g.clone(), "/api/v1/users", User(ManageUsers), accounts::list_users),
        route(p.clone(), "/api/v1/users/{name}/disable", User(ManageUsers), accounts::disable_user),
        route(p.clone(), "/api/v1/users/{name}/enable", User(ManageUsers), accounts::enable_user),
        route(p.clone(), "/api/v1/users/{name}", User(ManageUsers), accounts::update_user),
        route(p.clone(), "/api/v1/tokens", User(ManageOwnTokens), accounts::create_token),
        route(g.clone(), "/api/v1/tokens", User(ManageOwnTokens), accounts::list_tokens),
        route(d.clone(), "/api/v1/tokens/{token_id}", User(ManageOwnTokens), accounts::revoke_token),
        route(p.clone(), "/api/v1/projects/{project}/members", User(ManageProject), accounts::add_member),
        route(g.clone(), "/api/v1/projects/{project}/members", User(ReadProject), accounts::list_members),
        route(d.clone(), "/api/v1/projects/{project}/members/{user}", User(ManageProject), accounts::remove_member),
        // Projects and environments.
        route(p.clone(), "/api/v1/projects", User(CreateProject), projects::create),
        route(g.clone(), "/api/v1/projects", User(ReadShared), projects::list),
        route(g.clone(), "/api/v1/projects/{project}", User(ReadProject), projects::show),
        // The repository is the administrator's (the handler checks).
        route(p.clone(), "/api/v1/projects/{project}", User(ManageProject), projects::update),
        route(d.clone(), "/api/v1/projects/{project}", User(DeleteProject), projects::delete),
        route(
            d.clone(),
            "/api/v1/projects/{project}/environments/{env}",
            User(DeleteEnvironment),
            projects::delete_env,
        ),
        route(p.clone(), "/api/v1/projects/{project}/environments", User(ManageProject), projects::create_env),
        route(g.clone(), "/api/v1/projects/{project}/environments", User(ReadProject), projects::list_envs),
        // Which hosts belong, and what an offline one means; a production
        // environment's hosts also need the production right (the handler).
        route(p.clone(), "/api/v1/projects/{project}/environments/{env}", User(ManageProject), projects::update_env),
        route(
            p.clone(),
            "/api/v1/projects/{project}/environments/{env}/rollout",
            User(ManageProject),
            projects::set_env_rollout,
        ),
        route(
            p.clone(),
            "/api/v1/projects/{project}/environments/{env}/production",
            User(ChangeProduction),
            projects::set_env_production,
        ),
        // Lifting an approval requirement is lifting a guard, like production.
        route(
            p.clone(),
            "/api/v1/projects/{project}/environments/{env}/protection",
            User(ChangeProduction),
            projects::set_env_protection,
        ),
        // Load balancers run on hosts the administrator chose (a `command`
        // driver runs as root there): set up by the administrator; owners
        // drain and ready through them.
        route(p.clone(), "/api/v1/projects/{project}/environments/{env}/lb", User(ManageFleet), lb::set),
        route(g.clone(), "/api/v1/projects/{project}/environments/{env}/lb", User(ReadProject), lb::show),
        route(d.clone(), "/api/v1/projects/{project}/environments/{env}/lb", User(ManageFleet), lb::unset),
        route(p.clone(), "/api/v1/projects/{project}/environments/{env}/lb/drain", User(ManageProject), lb::drain),
        route(p.clone(), "/api/v1/projects/{project}/environments/{env}/lb/ready", User(ManageProject), lb::ready),
        route(g.clone(), "/api/v1/projects/{project}/environments/{env}/lb/applied", User(ReadProject), lb::applied),
        route(g.clone(), "/api/v1/projects/{project}/status", User(ReadProject), projects::status),
        route(g.clone(), "/api/v1/projects/{project}/stats", User(ReadProject), stats::show),
        // Notifications: their webhooks may carry secrets, so owners set them.
        route(p.clone(), "/api/v1/projects/{project}/notifications", User(ManageProject), notify::add),
        route(g.clone(), "/api/v1/projects/{project}/notifications", User(ReadProject), notify::list),
        route(g.clone(), "/api/v1/projects/{project}/notifications/log", User(ReadProject), notify::log),
        route(d.clone(), "/api/v1/projects/{project}/notifications/{id}", User(ManageProject), notify::remove),
        // Variables: secrets among them, so only owners write them.
        route(p.clone(), "/api/v1/projects/{project}/vars", User(ManageProject), vars::set),
        route(g.clone(), "/api/v1/projects/{project}/vars", User(ReadProject), vars::list),
        route(d.clone(), "/api/v1/projects/{project}/vars/{key}", User(ManageProject), vars::unset),
        // Releases and content.
        route(p.clone(), "/api/v1/projects/{project}/releases", User(Build), releases::create),
        route(g.clone(), "/api/v1/projects/{project}/releases", User(ReadProject), releases::list),
        route(g.clone(), "/api/v1/projects/{project}/releases/{version}/archive", User(ReadProject), releases::archive),
        route(p.clone(), "/api/v1/projects/{project}/releases/{version}/bad", User(Build), releases::mark_bad),
        route(d.clone(), "/api/v1/projects/{project}/releases/{version}/bad", User(Build), releases::mark_good),
        // Content is the project's: what exists is answered within it only.
        route(p.clone(), "/api/v1/projects/{project}/blobs/missing", User(Build), releases::missing_blobs),
        route(p.clone(), "/api/v1/projects/{project}/blobs", User(Build), releases::upload_blobs),
        // Freezes and locks.
        route(p.clone(), "/api/v1/projects/{project}/environments/{env}/freeze", User(ManageProject), locks::freeze),
        route(d.clone(), "/api/v1/projects/{project}/environments/{env}/freeze", User(ManageProject), locks::unfreeze),
        route(g.clone(), "/api/v1/locks", User(ReadShared), locks::list),
        // Deployments: the production right is checked once the environment
        // is known (`fleet::create_deployment`; by id, in `authorize`).
        route(p.clone(), "/api/v1/projects/{project}/deployments", User(Deploy), deployments::create),
        // A dry run: the rule of a deployment, since it answers what the
        // caller's deployment would do (and would be refused).
        route(p.clone(), "/api/v1/projects/{project}/deployments/plan", User(Deploy), deployments::plan),
        route(g.clone(), "/api/v1/projects/{project}/deployments", User(ReadProject), deployments::list),
        // A promotion is a deploy of what the environment before runs (R23).
        route(p.clone(), "/api/v1/projects/{project}/promote", User(Deploy), deployments::promote),
        route(g.clone(), "/api/v1/deployments/{id}", User(ReadProject), deployments::show),
        route(g.clone(), "/api/v1/deployments/{id}/log", User(ReadProject), deployments::log),
        route(p.clone(), "/api/v1/deployments/{id}/retry", User(Deploy), deployments::retry),
        route(p.clone(), "/api/v1/deployments/{id}/{action}", User(Deploy), deployments::control),
        // Release requests (R24): testers pass or send back, approvers
        // approve or reject, the requester resubmits, releases or withdraws
        // (that last rule is the request's own: `ferry_domain::request`).
        route(p.clone(), "/api/v1/projects/{project}/requests", User(Request), requests::create),
        route(g.clone(), "/api/v1/projects/{project}/requests", User(ReadProject), requests::list),
        route(g.clone(), "/api/v1/requests", User(ReadShared), requests::list_all),
        route(g.clone(), "/api/v1/requests/{id}", User(ReadProject), requests::show),
        route(p.clone(), "/api/v1/requests/{id}/pass", User(Test), requests::pass),
        route(p.clone(), "/api/v1/requests/{id}/send-back", User(Test), requests::send_back),
        route(p.clone(), "/api/v1/requests/{id}/approve", User(Approve), requests::approve),
        route(p.clone(), "/api/v1/requests/{id}/reject", User(Approve), requests::reject),
        route(p.clone(), "/api/v1/requests/{id}/resubmit", User(Request), requests::resubmit),
        route(p.clone(), "/api/v1/requests/{id}/release", User(Request), requests::release),
        route(p.clone(), "/api/v1/requests/{id}/withdraw", User(Request), requests::withdraw),
        // Builds.
        route(p.clone(), "/api/v1/projects/{project}/builds", User(Build), builds::create),
        route(g.clone(), "/api/v1/projects/{project}/builds", User(ReadProject), builds::list),
        route(g.clone(), "/api/v1/projects/{project}/builds/{number}", User(ReadProject), builds::show_number),
        route(g.clone(), "/api/v1/builds/{id}", User(ReadProject), builds::show),
        route(p.clone(), "/api/v1/builds/{id}/cancel", User(Build), builds::cancel),
        route(p.clone(), "/api/v1/builds/{id}/retry", User(Build), builds::retry),
        route(g.clone(), "/api/v1/builds/{id}/log", User(ReadProject), builds::log),
        // Forges authenticate with the project's webhook secret.
        route(p.clone(), "/api/v1/hooks/{forge}/{project}", Public, hooks::receive),
        route(g.clone(), "/api/v1/hosts", User(ReadShared), hosts::list),
        // A host's tags decide what it receives: the administrator's to change.
        route(p.clone(), "/api/v1/hosts/{name}/tags", User(ManageFleet), hosts::set_tags),
        route(d.clone(), "/api/v1/hosts/{name}", User(ManageFleet), hosts::remove),
        route(p.clone(), "/api/v1/join-tokens", User(ManageFleet), hosts::create_join_token),
        route(g.clone(), "/api/v1/join-tokens", User(ManageFleet), hosts::join_tokens),
        route(d.clone(), "/api/v1/join-tokens/{id}", User(ManageFleet), hosts::revoke_join_token),
        route(p.clone(), "/api/v1/projects/{project}/host-scope", User(ManageFleet), projects::set_host_scope),
        // The audit trail is the administrators' (R27).
        route(g.clone(), "/api/v1/audit", User(ManageUsers), audit::list),
        route(g.clone(), "/api/v1/audit/verify", User(ManageUsers), audit::verify),
        // A project's owners read its part of the trail, not other projects'.
        route(g.clone(), "/api/v1/projects/{project}/audit", User(ManageProject), audit::list_project),
        // Agents: the join token, then their own credential; never a user's.
        route(p.clone(), "/api/v1/agent/enroll", Agent, agent_channel::enroll),
        route(g.clone(), "/api/v1/agent/connect", Agent, agent_channel::connect),
        route(g.clone(), "/api/v1/agent/releases/{id}/manifest", Agent, agent_channel::manifest),
        route(p.clone(), "/api/v1/agent/blobs", Agent, agent_channel::blobs),
        // Agent binaries run as root on every host: the administrator's.
        // An agent fetches only the binary its host is upgrading to.
        route(g.clone(), "/api/v1/agent/binary", Agent, agent_upgrade::download),
        route(p.clone(), "/api/v1/agent-binaries", User(ManageFleet), agent_upgrades::upload),
        route(g.clone(), "/api/v1/agent-binaries", User(ReadShared), agent_upgrades::list),
        route(p, "/api/v1/projects/{project}/environments/{env}/agent-upgrade", User(ManageFleet), agent_upgrades::set),
        route(
            g,
            "/api/v1/projects/{project}/environments/{env}/agent-upgrade",
            User(ReadProject),
            agent_upgrades::status,
        ),
    ]
}

/// Answers axum's own refusals of a request (a body, query or path that does
/// not parse: plain text) with the API's one error body, keeping their
/// status, so every failure a client sees has the shape the description
/// promises. The agents' channel keeps its own answers.
async fn json_rejections(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::http::header::CONTENT_TYPE;
    use axum::response::IntoResponse;
    let agent = req.uri().path().starts_with("/api/v1/agent/");
    let resp = next.run(req).await;
    let plain =
        resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/plain"));
    if agent || !plain || !resp.status().is_client_error() {
        return resp;
    }
    let status = resp.status();
    // Rejection messages are one line; the cap only guards the read.
    let text = axum::body::to_bytes(resp.into_body(), 64 * 1024).await.unwrap_or_default();
    let code = match status.as_u16() {
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        409 => "conflict",
        _ => "bad_request",
    };
    let error = String::from_utf8_lossy(&text).trim().to_string();
    (status, axum::Json(ferry_proto::api::ErrorBody { code: code.to_string(), error })).into_response()
}

/// The API, built from [`routes`]: each handler is wrapped in the check of
/// its own rule.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for r in routes() {
        tracing::trace!(method = %r.method, path = r.path, rule = ?r.rule, "route");
        let guard = crate::access::Guard { state: state.clone(), rule: r.rule };
        let handler = r.handler.route_layer(axum::middleware::from_fn_with_state(guard, crate::access::authorize));
        // Routes of one path with different methods merge into one.
        router = router.route(r.path, handler);
    }
    router
        .layer(axum::middleware::from_fn(json_rejections))
        .layer(DefaultBodyLimit::max(crate::audit::JSON_BODY_LIMIT))
        // Every request passes here, after routing (so the route pattern is
        // known): the audit trail is recorded in this one place (R27).
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::audit::record))
        .with_state(state)
}

#[cfg(test)]
mod tests;
