//! The wire types shared by the Ferry server, agent and CLI.
//!
//! [`api`] holds the JSON bodies of the HTTP API (`/api/v1/...`) that the CLI
//! and, later, the web UI use. [`agent`] holds the messages of the one
//! long-lived WebSocket each agent keeps open to the server. Both sides of
//! every exchange compile against these types, so a field renamed here is a
//! compile error, not a silent mismatch.
//!
//! Architecture invariant: this crate has no I/O and no logic beyond
//! (de)serialisation.

pub mod agent;
pub mod api;

/// The version of this build of Ferry, reported by agents and `ferry --version`.
pub const FERRY_VERSION: &str = env!("CARGO_PKG_VERSION");
