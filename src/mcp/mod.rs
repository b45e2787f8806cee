//! The downstream MCP endpoint's logic: JSON-RPC over Streamable HTTP, with no HTTP in it.
//! The HTTP layer parses a posted body with [`jsonrpc::parse`], passes the typed message
//! with the [`Caller`] and [`RequestContext`] to [`McpService::handle`], and turns the
//! [`McpReply`] into a response.
//!
//! Modules, each depending only on those listed before it: `exchange` (the values in and
//! out), `jsonrpc` (framing, typed messages, the protocol era), `lifecycle` (versions,
//! `initialize`, `server/discover`), `tools` (policy, routing, the approval gate),
//! `tasks` (MCP Tasks: a gated call as a task whose id is its request's id), `streams`
//! (progress and task status notifications on an SSE reply), `listen` (the `GET` stream
//! of upstream announcements, resource subscriptions), `surface` (prompts, resources,
//! completions and logging: the caller's policy, then the upstreams), `service`
//! (dispatch).
//!
//! Sessions are stateless: `Mcp-Session-Id` is issued on `initialize` but nothing is
//! kept per session, so any replica answers any request and the runbook's bare `curl`
//! calls need no handshake. What lives with a client's connection is the exception, in
//! this process's memory: a resource subscription (keyed by agent and `Mcp-Session-Id`)
//! feeding that client's `GET` stream (`listen`), and a request relayed to a client
//! during its call, awaiting the answer it POSTs (`approval::ClientAnswers`).

mod exchange;
pub mod jsonrpc;
pub mod lifecycle;
mod listen;
mod service;
mod streams;
mod surface;
mod tasks;
mod tools;

pub use exchange::{Caller, DeferredResponse, McpReply, RequestContext, StreamedResponse};
pub use service::McpService;
pub use surface::{glob_matches, uri_fits_template, RpcError, Surface};
pub use tools::{ToolDirectory, ToolOffer, APPROVAL_META_KEY, IDEMPOTENCY_KEY_HEADER};
