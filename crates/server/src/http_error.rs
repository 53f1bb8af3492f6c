//! The one mapping of the application's error ([`AppError`]) to HTTP: its
//! status and its JSON body (`{"code", "error"}`), here and nowhere else.
//! The API answers with it; the web pages take the status from it.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferry_proto::api::ErrorBody;

use crate::error::AppError;

impl AppError {
    /// The HTTP status this error is answered with, by the API and the web
    /// interface alike.
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            AppError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            AppError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            AppError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            AppError::ApprovalRequired(_) => (StatusCode::FORBIDDEN, "approval_required"),
            AppError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            AppError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            AppError::Locked(_) => (StatusCode::LOCKED, "locked"),
            AppError::Frozen(_) => (StatusCode::CONFLICT, "frozen"),
            AppError::MarkedBad(_) => (StatusCode::CONFLICT, "marked_bad"),
            AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        if status.is_server_error() {
            tracing::error!("{self}");
        }
        (status, Json(ErrorBody { code: code.to_string(), error: self.to_string() })).into_response()
    }
}
