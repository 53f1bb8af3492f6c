//! Release requests (R24). Each action has its own route, so the route table
//! states who may take it (testers, approvers, requesters); the request's
//! own rules (no self-approval, only the requester releases) are
//! `ferry_domain::request`'s, applied in `app::request`.

use axum::Json;
use axum::extract::{Path, Query, State};
use ferry_domain::{RequestAction, RequestState};
use ferry_proto::api::{CreateRequest, RequestActionBody, RequestInfo};
use ferry_store::RequestRow;

use crate::AppState;
use crate::app::request::{self, Listing, listed};
use crate::auth::Caller;
use crate::error::{AppError, AppResult};

#[derive(serde::Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RequestQuery {
    /// Only requests in one of these states (comma-separated).
    state: Option<String>,
    /// Only the caller's own requests.
    #[serde(default)]
    mine: bool,
    /// Only requests waiting for the caller: to test or to approve (not their
    /// own), or, as their requester, for a new version or to be released.
    #[serde(default)]
    waiting: bool,
    limit: Option<u32>,
}

impl RequestQuery {
    fn states(&self) -> AppResult<Vec<RequestState>> {
        let mut states: Vec<RequestState> = Vec::new();
        for s in self.state.iter().flat_map(|s| s.split(',')).map(str::trim).filter(|s| !s.is_empty()) {
            let names: Vec<&str> = RequestState::ALL.iter().map(|s| s.as_str()).collect();
            states.push(s.parse().map_err(|e| AppError::BadRequest(format!("{e}; states are {}", names.join(", "))))?);
        }
        if self.waiting && states.is_empty() {
            states = RequestState::ALL.into_iter().filter(|s| !ferry_domain::request::awaited(*s).is_empty()).collect();
        }
        Ok(states)
    }
}

/// `POST /api/v1/projects/{project}/requests`.
#[utoipa::path(
    post,
    path = "/api/v1/projects/{project}/requests",
    tag = "requests",
    params(("project" = String, Path)),
    request_body = CreateRequest,
    responses((status = 200, body = RequestInfo)),
)]
pub async fn create(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(project): Path<String>,
    Json(req): Json<CreateRequest>,
) -> AppResult<Json<RequestInfo>> {
    Ok(Json(request::create(&state, &user, &project, req).await?))
}

/// `GET /api/v1/projects/{project}/requests[?state=S,...][&mine=true][&waiting=true]`.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{project}/requests",
    tag = "requests",
    params(("project" = String, Path), RequestQuery),
    responses((status = 200, body = Vec<RequestInfo>)),
)]
pub async fn list(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(project): Path<String>,
    Query(q): Query<RequestQuery>,
) -> AppResult<Json<Vec<RequestInfo>>> {
    Ok(Json(summaries(listed(&state, &user, Some(&project), &q.filter(&user)?).await?)))
}

/// `GET /api/v1/requests[?...]`: the requests of every project the caller
/// may read; with `waiting=true`, the caller's inbox.
#[utoipa::path(
    get,
    path = "/api/v1/requests",
    tag = "requests",
    params(RequestQuery),
    responses((status = 200, body = Vec<RequestInfo>)),
)]
pub async fn list_all(
    State(state): State<AppState>,
    Caller(user): Caller,
    Query(q): Query<RequestQuery>,
) -> AppResult<Json<Vec<RequestInfo>>> {
    Ok(Json(summaries(listed(&state, &user, None, &q.filter(&user)?).await?)))
}

impl RequestQuery {
    fn filter(&self, user: &ferry_store::User) -> AppResult<Listing> {
        Ok(Listing {
            states: self.states()?,
            requester: self.mine.then(|| user.name.clone()),
            waiting: self.waiting,
            limit: self.limit.unwrap_or(50).clamp(1, 1000),
        })
    }
}

fn summaries(rows: Vec<(RequestRow, Option<String>)>) -> Vec<RequestInfo> {
    rows.into_iter().map(|(row, staging)| request::summary(row, staging)).collect()
}

/// `GET /api/v1/requests/{id}`: with its history and deployments.
#[utoipa::path(
    get,
    path = "/api/v1/requests/{id}",
    tag = "requests",
    params(("id" = i64, Path)),
    responses((status = 200, body = RequestInfo)),
)]
pub async fn show(State(state): State<AppState>, _caller: Caller, Path(id): Path<i64>) -> AppResult<Json<RequestInfo>> {
    Ok(Json(request::info(&state, id).await?))
}

async fn act(
    state: AppState,
    user: ferry_store::User,
    id: i64,
    action: RequestAction,
    body: Option<Json<RequestActionBody>>,
) -> AppResult<Json<RequestInfo>> {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    Ok(Json(request::act(&state, &user, id, action, body).await?))
}

/// One handler per action, so that the route table gives each its rule.
macro_rules! action_route {
    ($(#[$doc:meta] $name:ident => $action:ident at $path:literal),+ $(,)?) => {$(
        #[$doc]
        #[utoipa::path(
            post,
            path = $path,
            tag = "requests",
            params(("id" = i64, Path)),
            request_body(content = Option<RequestActionBody>, description = "An optional note"),
            responses((status = 200, body = RequestInfo)),
        )]
        pub async fn $name(
            State(state): State<AppState>,
            Caller(user): Caller,
            Path(id): Path<i64>,
            body: Option<Json<RequestActionBody>>,
        ) -> AppResult<Json<RequestInfo>> {
            act(state, user, id, RequestAction::$action, body).await
        }
    )+};
}

action_route! {
    /// `POST /api/v1/requests/{id}/pass` (testers).
    pass => Pass at "/api/v1/requests/{id}/pass",
    /// `POST /api/v1/requests/{id}/send-back` (testers).
    send_back => SendBack at "/api/v1/requests/{id}/send-back",
    /// `POST /api/v1/requests/{id}/approve` (approvers).
    approve => Approve at "/api/v1/requests/{id}/approve",
    /// `POST /api/v1/requests/{id}/reject` (approvers).
    reject => Reject at "/api/v1/requests/{id}/reject",
    /// `POST /api/v1/requests/{id}/resubmit` (the requester).
    resubmit => Resubmit at "/api/v1/requests/{id}/resubmit",
    /// `POST /api/v1/requests/{id}/release` (the requester).
    release => Release at "/api/v1/requests/{id}/release",
    /// `POST /api/v1/requests/{id}/withdraw` (the requester).
    withdraw => Withdraw at "/api/v1/requests/{id}/withdraw",
}
