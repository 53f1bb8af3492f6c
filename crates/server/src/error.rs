//! The one error type of the HTTP API, mapped to a status code here and
//! nowhere else.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferry_proto::api::ErrorBody;
use ferry_store::StoreError;

/// An API failure. The message is shown to the user as is.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    /// The environment needs an approved release request: a 403 like a
    /// missing right, with its own code so that clients tell them apart.
    #[error("{0}")]
    ApprovalRequired(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The environment's deployment lock is held (R19).
    #[error("{0}")]
    Locked(String),
    /// The environment is frozen: the message names who froze it, why and
    /// until when.
    #[error("{0}")]
    Frozen(String),
    /// The release is marked bad: the message names who marked it and why.
    #[error("{0}")]
    MarkedBad(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status this error is answered with, by the API and the web
    /// interface alike.
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::ApprovalRequired(_) => (StatusCode::FORBIDDEN, "approval_required"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Locked(_) => (StatusCode::LOCKED, "locked"),
            ApiError::Frozen(_) => (StatusCode::CONFLICT, "frozen"),
            ApiError::MarkedBad(_) => (StatusCode::CONFLICT, "marked_bad"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            StoreError::Conflict(what) => ApiError::Conflict(format!("{what} already exists")),
            StoreError::Refused(why) => ApiError::Conflict(why),
            StoreError::Locked { running } => ApiError::Locked(format!(
                "deployment {running} of this project and environment is still running: wait for it \
                 (ferry deployment show {running} --follow), cancel it (ferry deployment cancel {running}), \
                 or roll back at once with ferry rollback --emergency"
            )),
            e @ StoreError::Frozen { .. } => ApiError::Frozen(e.to_string()),
            e @ StoreError::MarkedBad { .. } => ApiError::MarkedBad(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<ferry_domain::GuardError> for ApiError {
    fn from(e: ferry_domain::GuardError) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

impl From<ferry_domain::NameError> for ApiError {
    fn from(e: ferry_domain::NameError) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

impl From<ferry_domain::VarError> for ApiError {
    fn from(e: ferry_domain::VarError) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        if status.is_server_error() {
            tracing::error!("{self}");
        }
        (status, Json(ErrorBody { code: code.to_string(), error: self.to_string() })).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
