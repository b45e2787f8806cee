//! Alexandria: an MCP gateway that puts a human approval gate in front of chosen tool
//! calls. This crate is the binary's library: HTTP routes, the event-store adapter,
//! configuration, the managed PostgreSQL, background workers and the operator CLI.

pub mod audit;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod event_store;
pub mod gate;
pub mod managed_pg;
pub mod mcp;
pub mod metrics;
pub mod notify;
pub mod permissions;
pub mod routes;
pub mod shutdown;
pub mod startup;
pub mod telemetry;
