//! What the gate runs an approved call with: the upstream registry, behind a trait.

use alexandria_domain::CallOutcome;
use async_trait::async_trait;
use serde_json::Value;

use crate::approval::CallRelay;

/// Runs an approved tool call upstream. Implemented by the upstream registry.
#[async_trait]
pub trait ToolExecutor: Send + Sync {
    /// Whether a call of `tool` would reach its upstream now. An approved call is claimed
    /// only then: a claim is final, and a call that fails before it is sent would turn a
    /// short outage into a cached error for good.
    async fn is_reachable(&self, tool: &str) -> bool;

    /// The upstream's answer: a `CallToolResult` (an `isError` result is still a
    /// result) or a JSON-RPC error, both cached as the request's outcome.
    async fn execute(&self, tool: &str, arguments: &Value) -> CallOutcome;

    /// [`execute`](Self::execute), passing the upstream's progress and log messages
    /// during the call to `relay` (a pass-through call whose client reads a stream).
    async fn execute_relayed(&self, tool: &str, arguments: &Value, relay: CallRelay) -> CallOutcome {
        let _ = relay;
        self.execute(tool, arguments).await
    }
}
