//! Ferry's integration tests: each starts the real `ferry` binary (server,
//! agents as separate processes, CLI) in its own temporary directory on
//! OS-given ports, and drives it as an operator would.
//!
//! This is the only integration-test binary; add modules here, not files
//! under `tests/`.

// A test that meets an unexpected error should stop right there, loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

mod access;
mod agent_upgrade;
mod audit;
mod builds;
mod config;
mod deploy;
mod deploy_log;
mod dev;
mod dry_run;
mod exit_codes;
mod fallback;
mod faults;
mod first_contact;
mod fleet_changes;
mod forges;
mod healing;
mod health;
mod hooks;
mod layout;
mod load_balancer;
mod metrics;
mod notify;
mod offline;
mod openapi;
mod packaging;
mod promotion;
mod recovery;
mod replicas;
mod requests;
mod rollback;
mod rollout;
mod service;
mod service_watch;
mod stats;
mod tidy;
mod tls;
mod trust;
mod uploads;
mod vars;
mod web;
mod web_actions;
mod web_live;
