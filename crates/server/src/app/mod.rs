//! The application layer: one module per use case, called by the HTTP API
//! (`api/`) and the web pages (`ui/`) alike, so both do exactly the same
//! thing. A use case takes the caller and plain arguments (never an HTTP
//! extractor), applies the rules, and returns rows or
//! [`AppError`](crate::error::AppError); mapping that to HTTP is
//! `crate::http_error`'s.

pub(crate) mod account;
pub(crate) mod agent_upgrade;
pub(crate) mod audit;
pub(crate) mod build;
pub(crate) mod deploy;
pub(crate) mod environment;
pub(crate) mod host;
pub(crate) mod load_balancer;
pub(crate) mod lock;
pub(crate) mod notification;
pub(crate) mod project;
pub(crate) mod release;
pub(crate) mod request;
pub(crate) mod stats;
pub(crate) mod status;
pub(crate) mod vars;
