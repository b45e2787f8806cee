//! Alexandria: an MCP gateway that puts a human approval gate in front of chosen tool
//! calls. This crate is the binary's library, in layers (ARCHITECTURE.md has the map):
//!
//! - services, which know nothing of HTTP: `approval` (the permission-request store, the
//!   gate, queries), `mcp` (the MCP endpoint's logic), `upstream` (the servers we call),
//!   `admin` (agents, users), `audit_trail`, `auth`, `notify`, `event_export`, plus
//!   the plumbing they share (`db`, `metrics`, `names`, `validation`);
//! - `http`, the only module that knows axum: routes, extractors, the one `ApiError`;
//! - `cli` and `startup`, which compose the rest into the `alexandria` command.

pub mod admin;
pub mod approval;
pub mod audit;
pub mod audit_trail;
pub mod auth;
pub mod cli;
pub mod db;
pub mod event_export;
pub mod event_skip;
pub mod http;
pub mod mcp;
pub mod metrics;
pub mod names;
pub mod notify;
pub mod startup;
pub mod upstream;
pub mod validation;
