//! The server's one error: what went wrong, in the application's terms.
//! Use cases (`app`), orchestration and handlers return it; `http_error`
//! maps it to an HTTP status and body, in one place, for the API and the
//! web pages alike. Nothing here knows of HTTP, and this module depends on
//! no other module of the server, so every module can use it.

use ferry_store::StoreError;

/// A failure of a use case. The message is shown to the user as is.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
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

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => AppError::NotFound(format!("{what} not found")),
            StoreError::Conflict(what) => AppError::Conflict(format!("{what} already exists")),
            StoreError::Refused(why) => AppError::Conflict(why),
            StoreError::Locked { running } => AppError::Locked(format!(
                "deployment {running} of this project and environment is still running: wait for it \
                 (ferry deployment show {running} --follow), cancel it (ferry deployment cancel {running}), \
                 or roll back at once with ferry rollback --emergency"
            )),
            e @ StoreError::Frozen { .. } => AppError::Frozen(e.to_string()),
            e @ StoreError::MarkedBad { .. } => AppError::MarkedBad(e.to_string()),
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl From<ferry_domain::GuardError> for AppError {
    fn from(e: ferry_domain::GuardError) -> Self {
        AppError::BadRequest(e.to_string())
    }
}

impl From<ferry_domain::NameError> for AppError {
    fn from(e: ferry_domain::NameError) -> Self {
        AppError::BadRequest(e.to_string())
    }
}

impl From<ferry_domain::VarError> for AppError {
    fn from(e: ferry_domain::VarError) -> Self {
        AppError::BadRequest(e.to_string())
    }
}

/// What a use case returns.
pub type AppResult<T> = Result<T, AppError>;
