//! The command-line client: every `ferry` subcommand that talks to a server.
//!
//! It speaks only the HTTP API (`ferry_proto::api`), exactly as any other
//! client could, and formats answers for people (tables) or programs
//! (`--output json`). Argument parsing lives in the `ferry` binary.

pub mod accounts;
pub mod agent_upgrade;
pub mod audit;
pub mod client;
pub mod commands;
pub mod exit;
pub mod guards;
pub mod lb;
pub mod notify;
pub mod output;
pub mod requests;
pub mod stats;
pub mod upload;
pub mod vars;

pub use client::Client;
pub use output::Output;
