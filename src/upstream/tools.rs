//! The upstream registry as the MCP endpoint and the gate see it: a tool directory and
//! an executor that records upstream call metrics, and (through `relay_record`) what
//! the upstream asks a client during a call.

use std::time::Instant;

use alexandria_domain::CallOutcome;
use async_trait::async_trait;
use serde_json::Value;

use super::relay::CallScope;
use crate::approval::gate::ToolExecutor;
use crate::approval::{CallOrigin, CallRelay, RelayRecorder};
use crate::mcp::jsonrpc::INTERNAL_ERROR;
use crate::mcp::{ToolDirectory, ToolOffer};
use crate::metrics::Metrics;
use crate::upstream::{UpstreamError, UpstreamRegistry};

#[derive(Clone)]
pub struct UpstreamTools {
    registry: UpstreamRegistry,
    metrics: Metrics,
    recorder: RelayRecorder,
}

impl UpstreamTools {
    pub fn new(registry: UpstreamRegistry, metrics: Metrics, recorder: RelayRecorder) -> Self {
        Self { registry, metrics, recorder }
    }
}

impl ToolDirectory for UpstreamTools {
    fn tool(&self, name: &str) -> Option<Value> {
        let catalog = self.registry.tools();
        let entry = catalog.get(name)?;
        serde_json::to_value(&entry.tool).ok()
    }

    fn offers(&self, name: &str) -> Option<ToolOffer> {
        let catalog = self.registry.tools();
        let entry = catalog.get(name)?;
        Some(ToolOffer { declares_output_schema: entry.tool.output_schema.is_some() })
    }
}

#[async_trait]
impl ToolExecutor for UpstreamTools {
    async fn is_reachable(&self, tool: &str) -> bool {
        self.registry.tool_is_reachable(tool).await
    }

    async fn execute(
        &self,
        tool: &str,
        arguments: &Value,
        origin: CallOrigin,
        relay: Option<CallRelay>,
    ) -> CallOutcome {
        let scope = CallScope { relay, record: Some((origin, self.recorder.clone())) };
        self.run(tool, arguments, scope).await
    }
}

impl UpstreamTools {
    async fn run(&self, tool: &str, arguments: &Value, scope: CallScope) -> CallOutcome {
        // One snapshot of the catalog for the metric's label and the call (no copies).
        let catalog = self.registry.tools();
        let entry = catalog.get(tool);
        let server = entry.map_or("unknown", |entry| entry.server.as_str());
        let arguments = arguments.as_object().cloned().unwrap_or_default();
        let started = Instant::now();
        let answer = match entry {
            Some(entry) => self.registry.call_catalog_tool(tool, entry, arguments, scope).await,
            None => Err(UpstreamError::ToolNotFound { tool: tool.to_owned() }),
        };
        self.metrics.upstream_call(server, tool, started.elapsed().as_secs_f64(), answer.is_err());
        match answer {
            Ok(result) => CallOutcome::Result(result),
            // The upstream's own JSON-RPC error goes back as it said it.
            Err(UpstreamError::Rpc { code, message, data, .. }) => {
                CallOutcome::Error { code: code.into(), message, data }
            }
            Err(error) => {
                // What went wrong inside the transport (library type names, addresses) is
                // for the log; the agent learns which server failed and how, in words.
                tracing::warn!(%server, tool, %error, "upstream call failed");
                let message = match &error {
                    UpstreamError::Transport { server, .. } => {
                        format!("the connection to MCP server {server:?} failed during the call")
                    }
                    UpstreamError::Unavailable { server, status, .. } => {
                        format!("MCP server {server:?} is not connected ({status})")
                    }
                    other => other.to_string(),
                };
                CallOutcome::Error {
                    code: INTERNAL_ERROR,
                    message: format!("upstream call failed: {message}"),
                    data: None,
                }
            }
        }
    }
}
