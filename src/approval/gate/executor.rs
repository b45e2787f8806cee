//! What the gate runs an approved call with: the upstream registry, behind a trait.

use alexandria_domain::CallOutcome;
use async_trait::async_trait;
use serde_json::Value;

use crate::approval::{CallOrigin, CallRelay};

/// Runs an approved tool call upstream. Implemented by the upstream registry.
#[async_trait]
pub trait ToolExecutor: Send + Sync {
    /// Whether a call of `tool` would reach its upstream now. An approved call is claimed
    /// only then: a claim is final, and a call that fails before it is sent would turn a
    /// short outage into a cached error for good.
    async fn is_reachable(&self, tool: &str) -> bool;

    /// The upstream's answer: a `CallToolResult` (an `isError` result is still a
    /// result) or a JSON-RPC error, both cached as the request's outcome. `origin` is
    /// whose call it is (what the upstream asks a client during it is recorded under
    /// it); with a `relay` (a client that reads a stream), the upstream's progress and
    /// log messages and its requests go to that client.
    async fn execute(&self, tool: &str, arguments: &Value, origin: CallOrigin, relay: Option<CallRelay>)
        -> CallOutcome;
}
