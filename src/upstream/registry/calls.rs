//! Routing a `tools/call` to the server that offers the tool, and whether it would be
//! sent now.

use rmcp::model::{CallToolRequestParams, CallToolResponse};
use rmcp::ServiceError;
use serde_json::{Map, Value};

use super::super::catalog::CatalogTool;
use super::super::connection;
use super::super::error::UpstreamError;
use super::super::relay::CallScope;
use super::super::server::{ConnectionStatus, InFlight};
use super::UpstreamRegistry;

/// How long the ping before a claim may take.
const REACHABILITY_PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

impl UpstreamRegistry {
    /// Calls a tool by its downstream name. An `isError` result is a result. Arguments go
    /// upstream as given. A server that is still connecting is waited for, within the
    /// same per-call timeout.
    pub async fn call_tool(&self, tool_name: &str, arguments: Map<String, Value>) -> Result<Value, UpstreamError> {
        self.call_tool_relayed(tool_name, arguments, CallScope::default()).await
    }

    /// [`call_tool`](Self::call_tool), registered as `scope` while in flight: the
    /// server's progress and log messages go to its relay, and what the server asks a
    /// client is relayed and recorded (see `relay.rs`).
    pub async fn call_tool_relayed(
        &self,
        tool_name: &str,
        arguments: Map<String, Value>,
        scope: CallScope,
    ) -> Result<Value, UpstreamError> {
        let catalog = self.tools();
        let Some(entry) = catalog.get(tool_name) else {
            return Err(UpstreamError::ToolNotFound { tool: tool_name.to_owned() });
        };
        self.call_catalog_tool(tool_name, entry, arguments, scope).await
    }

    /// Calls `entry`, the catalog's tool under `tool_name` (the caller holds the catalog
    /// snapshot: nothing of it is copied on the way).
    pub(crate) async fn call_catalog_tool(
        &self,
        tool_name: &str,
        entry: &CatalogTool,
        arguments: Map<String, Value>,
        scope: CallScope,
    ) -> Result<Value, UpstreamError> {
        let server =
            self.server(&entry.server).map_err(|_| UpstreamError::ToolNotFound { tool: tool_name.to_owned() })?;
        let timeout = self.inner.settings.call_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let timed_out =
            || UpstreamError::Timeout { server: entry.server.clone(), tool: tool_name.to_owned(), after: timeout };

        let mut state = server.state.subscribe();
        let peer =
            match tokio::time::timeout_at(deadline, state.wait_for(|live| live.status != ConnectionStatus::Connecting))
                .await
            {
                Ok(Ok(live)) => live.peer.clone(),
                Ok(Err(_)) => None, // removed meanwhile
                Err(_) => None,
            };
        let Some(peer) = peer else {
            let live = server.state.borrow();
            return Err(UpstreamError::Unavailable {
                server: entry.server.clone(),
                status: live.status,
                last_error: live.last_error.clone(),
            });
        };

        let params = CallToolRequestParams::new(entry.upstream_name.clone()).with_arguments(arguments);
        let _in_flight = InFlight::enter(&server);
        // The request future sends `notifications/cancelled` upstream when dropped, which
        // is what the timeout does. A timeout says nothing about the session (the tool may
        // just be slow), so it does not trigger a liveness check.
        let answer = if scope.is_empty() {
            tokio::time::timeout_at(deadline, peer.call_tool_once(params)).await.ok()
        } else {
            super::relayed::call(&peer, &server.relays, params, scope, deadline).await
        };
        let Some(answer) = answer else { return Err(timed_out()) };
        match answer {
            Ok(CallToolResponse::Complete(result)) => {
                serde_json::to_value(result).map_err(|e| UpstreamError::Transport {
                    server: entry.server.clone(),
                    message: format!("cannot encode the result: {e}"),
                })
            }
            Ok(CallToolResponse::InputRequired(_)) => Err(UpstreamError::Unsupported {
                server: entry.server.clone(),
                tool: tool_name.to_owned(),
                what: "a request for more input (input_required)",
            }),
            Ok(_) => Err(UpstreamError::Unsupported {
                server: entry.server.clone(),
                tool: tool_name.to_owned(),
                what: "a task",
            }),
            Err(ServiceError::McpError(error)) => Err(UpstreamError::Rpc {
                server: entry.server.clone(),
                code: error.code.0,
                message: error.message.into_owned(),
                data: error.data,
            }),
            Err(ServiceError::Timeout { .. }) => Err(timed_out()),
            Err(error) => {
                // The session may be dead (an HTTP server gone, a broken pipe): check now
                // rather than at the next health tick.
                server.suspect.notify_one();
                Err(UpstreamError::Transport { server: entry.server.clone(), message: connection::error_chain(&error) })
            }
        }
    }

    /// Whether a call of `tool` would reach its server now: the session is live and
    /// answers a ping. Asked before an approved call is claimed (a claim is final), so an
    /// outage, even one the supervisor has not noticed yet, does not use up the approval.
    /// A failed ping tells the supervisor to check the session (and reconnect).
    pub async fn tool_is_reachable(&self, tool_name: &str) -> bool {
        let Some(entry) = self.tools().get(tool_name).cloned() else { return false };
        let Ok(server) = self.server(&entry.server) else { return false };
        let Some(peer) = server.state.borrow().peer.clone() else { return false };
        match connection::ping(&peer, REACHABILITY_PING_TIMEOUT).await {
            Ok(()) => true,
            Err(message) => {
                tracing::warn!(server = %entry.server, %message, "the server does not answer; the approved call waits");
                server.suspect.notify_one();
                false
            }
        }
    }
}
