//! The OpenAPI 3 description of the HTTP API, served at
//! `GET /api/v1/openapi.json`.
//!
//! Each handler carries its own `#[utoipa::path]` (method, path, parameters,
//! bodies); this module lists them, adds what every operation shares (the
//! bearer token, the one error body of [`AppError`](crate::error::AppError))
//! and takes who may call what from the route table in [`super::routes`], so
//! the permission rules are written once. The unit test below holds the
//! description and the route table in step. It describes; it never reads the
//! database, so it needs no authentication.

use axum::Json;
use axum::http::Method;
use ferry_proto::api::ErrorBody;
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, PathItem, Ref, RefOr, ResponseBuilder};

use super::*;
use crate::access::Rule;

/// The name of the bearer-token security scheme.
const BEARER: &str = "bearer";
/// The name of the shared error response.
const ERROR: &str = "Error";

/// The description as utoipa derives it from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ferry",
        description = "The HTTP API of the Ferry release system. Authenticate with a user's API token \
                       (`ferry login`, `ferry token create`) as `Authorization: Bearer <token>`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        serve,
        accounts::login,
        accounts::whoami,
        accounts::create_user,
        accounts::list_users,
        accounts::disable_user,
        accounts::enable_user,
        accounts::update_user,
        accounts::create_token,
        accounts::list_tokens,
        accounts::revoke_token,
        accounts::add_member,
        accounts::list_members,
        accounts::remove_member,
        projects::create,
        projects::list,
        projects::show,
        projects::update,
        projects::delete,
        projects::delete_env,
        projects::create_env,
        projects::list_envs,
        projects::update_env,
        projects::set_env_rollout,
        projects::set_env_production,
        projects::set_env_protection,
        lb::set,
        lb::show,
        lb::unset,
        lb::drain,
        lb::ready,
        lb::applied,
        projects::status,
        stats::show,
        notify::add,
        notify::list,
        notify::log,
        notify::remove,
        vars::set,
        vars::list,
        vars::unset,
        releases::create,
        releases::list,
        releases::archive,
        releases::mark_bad,
        releases::mark_good,
        releases::missing_blobs,
        releases::upload_blobs,
        locks::freeze,
        locks::unfreeze,
        locks::list,
        deployments::create,
        deployments::plan,
        deployments::list,
        deployments::promote,
        deployments::show,
        deployments::log,
        deployments::retry,
        deployments::control,
        requests::create,
        requests::list,
        requests::list_all,
        requests::show,
        builds::create,
        builds::list,
        builds::show_number,
        builds::show,
        builds::cancel,
        builds::retry,
        builds::log,
        hooks::receive,
        hosts::list,
        hosts::set_tags,
        hosts::remove,
        hosts::create_join_token,
        hosts::join_tokens,
        hosts::revoke_join_token,
        projects::set_host_scope,
        audit::list,
        audit::verify,
        audit::list_project,
        agent_upgrades::upload,
        agent_upgrades::list,
        agent_upgrades::set,
        agent_upgrades::status,
        requests::pass,
        requests::send_back,
        requests::approve,
        requests::reject,
        requests::resubmit,
        requests::release,
        requests::withdraw,
    ),
    components(schemas(ErrorBody))
)]
struct Annotated;

/// The whole description: the annotated operations, each with its security
/// (from the route table) and the shared error response.
pub fn description() -> utoipa::openapi::OpenApi {
    let mut api = Annotated::openapi();
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(BEARER, SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    components.responses.insert(
        ERROR.to_string(),
        RefOr::T(
            ResponseBuilder::new()
                .description(
                    "The request failed: `code` is a stable name for the kind of failure (bad_request, \
                     unauthorized, forbidden, not_found, conflict, locked, frozen, marked_bad, internal), \
                     `error` says what went wrong for a person to read.",
                )
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
                )
                .build(),
        ),
    );
    for route in routes() {
        let Some(item) = api.paths.paths.get_mut(route.path) else { continue };
        let Some(op) = operation(item, &route.method) else { continue };
        // Handlers of different modules share names (`show`, `list`): the
        // module (the tag) makes the operation id unique, as OpenAPI asks.
        if let (Some(tag), Some(id)) = (op.tags.as_ref().and_then(|t| t.first()), op.operation_id.as_ref()) {
            op.operation_id = Some(format!("{tag}_{id}"));
        }
        // OpenAPI requires a description on every response.
        for response in op.responses.responses.values_mut() {
            if let RefOr::T(response) = response
                && response.description.is_empty()
            {
                response.description = "Success".to_string();
            }
        }
        op.responses
            .responses
            .insert("default".to_string(), RefOr::Ref(Ref::new(format!("#/components/responses/{ERROR}"))));
        op.security = Some(match route.rule {
            // An empty list: no authentication at all.
            Rule::Public | Rule::Agent => vec![],
            Rule::User(action) => {
                let needs = format!("Needs the `{action:?}` permission.");
                op.description = Some(match op.description.take() {
                    Some(d) if !d.is_empty() => format!("{d}\n\n{needs}"),
                    _ => needs,
                });
                vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]
            }
        });
    }
    api
}

/// The operation of `item` served under `method`, if it has one.
pub(crate) fn operation<'a>(
    item: &'a mut PathItem,
    method: &Method,
) -> Option<&'a mut utoipa::openapi::path::Operation> {
    match *method {
        Method::GET => item.get.as_mut(),
        Method::POST => item.post.as_mut(),
        Method::DELETE => item.delete.as_mut(),
        Method::PUT => item.put.as_mut(),
        Method::PATCH => item.patch.as_mut(),
        _ => None,
    }
}

/// `GET /api/v1/openapi.json`: this description.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "api",
    responses((status = 200, description = "The OpenAPI 3 description of this API", content_type = "application/json")),
)]
pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(description())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The methods `item` describes, as HTTP names.
    fn methods(item: &PathItem) -> Vec<&'static str> {
        [
            (&item.get, "GET"),
            (&item.post, "POST"),
            (&item.delete, "DELETE"),
            (&item.put, "PUT"),
            (&item.patch, "PATCH"),
            (&item.head, "HEAD"),
            (&item.options, "OPTIONS"),
            (&item.trace, "TRACE"),
        ]
        .into_iter()
        .filter(|(op, _)| op.is_some())
        .map(|(_, m)| m)
        .collect()
    }

    /// Whether a route of the table belongs in the description: the API under
    /// `/api/v1`, less the agents' channel (its own protocol, not a user's API).
    fn described(path: &str) -> bool {
        path.starts_with("/api/v1/") && !path.starts_with("/api/v1/agent/")
    }

    /// Every route of the table under `/api/v1` (less the agents') is
    /// described with its method, and the description has nothing the
    /// router does not serve.
    #[test]
    fn description_and_route_table_match() {
        let api = description();
        let mut described_ops = BTreeSet::new();
        for (path, item) in &api.paths.paths {
            for m in methods(item) {
                described_ops.insert((m.to_string(), path.clone()));
            }
        }
        let served: BTreeSet<(String, String)> = routes()
            .iter()
            .filter(|r| described(r.path))
            .map(|r| (r.method.as_str().to_string(), r.path.to_string()))
            .collect();
        let undescribed: Vec<_> = served.difference(&described_ops).collect();
        assert!(undescribed.is_empty(), "routes without a #[utoipa::path] in openapi.rs: {undescribed:?}");
        let unserved: Vec<_> = described_ops.difference(&served).collect();
        assert!(unserved.is_empty(), "described but not served by the router: {unserved:?}");
        assert!(served.len() > 80, "the route table shrank to {}", served.len());
    }

    /// Each operation names the parameters of its path and says how it is
    /// authenticated and how it fails.
    #[test]
    fn operations_have_path_parameters_security_and_errors() {
        let api = description();
        for (path, item) in &api.paths.paths {
            let names: BTreeSet<String> =
                path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')).map(str::to_string).collect();
            for op in [&item.get, &item.post, &item.delete].into_iter().flatten() {
                let params: BTreeSet<String> = op
                    .parameters
                    .iter()
                    .flatten()
                    .filter_map(|p| match p {
                        RefOr::T(p) if p.parameter_in == utoipa::openapi::path::ParameterIn::Path => {
                            Some(p.name.clone())
                        }
                        _ => None,
                    })
                    .collect();
                assert_eq!(params, names, "{path}: path parameters");
                assert!(op.security.is_some(), "{path}: security");
                assert!(op.responses.responses.contains_key("default"), "{path}: error response");
            }
        }
        let mut ids = BTreeSet::new();
        for item in api.paths.paths.values() {
            for op in [&item.get, &item.post, &item.delete].into_iter().flatten() {
                let id = op.operation_id.clone().unwrap_or_default();
                assert!(ids.insert(id.clone()), "operation id {id} twice");
            }
        }
        let login = api.paths.paths.get("/api/v1/login").and_then(|i| i.post.as_ref()).and_then(|o| o.security.clone());
        assert_eq!(login.map(|s| s.len()), Some(0), "signing in needs no token");
        let users = api.paths.paths.get("/api/v1/users").and_then(|i| i.get.as_ref()).and_then(|o| o.security.clone());
        assert_eq!(users.map(|s| s.len()), Some(1), "listing users needs a token");
    }
}
