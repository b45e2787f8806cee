//! Alexandria: an MCP gateway that puts a human approval gate in front of chosen tool
//! calls. This crate is the binary's library: HTTP routes, the event-store adapter,
//! configuration, the managed PostgreSQL, background workers and the operator CLI.

pub mod admin_audit;
pub mod agents;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod demo;
pub mod error;
pub mod event_store;
pub mod extract;
pub mod gate;
pub mod http_server;
pub mod managed_pg;
pub mod mcp;
pub mod metrics;
pub mod notify;
pub mod permissions;
pub mod routes;
pub mod shutdown;
pub mod startup;
pub mod telemetry;
pub mod upstream;
pub mod users;
pub mod validation;
