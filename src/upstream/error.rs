//! Everything that can go wrong registering or calling an upstream server, typed so the
//! MCP endpoint and the admin routes can answer each case precisely.

use std::time::Duration;

use serde_json::Value;

use super::config::InvalidConfig;
use super::ConnectionStatus;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The configuration breaks a rule (HTTP 422).
    #[error("{0}")]
    InvalidConfig(#[from] InvalidConfig),

    #[error("an MCP server named {name:?} is already registered")]
    AlreadyRegistered { name: String },

    #[error("no MCP server named {name:?} is registered")]
    ServerNotFound { name: String },

    /// No registered server offers this tool. Nothing was sent upstream.
    #[error("no upstream MCP server offers a tool named {tool:?}")]
    ToolNotFound { tool: String },

    /// Registration refused: the new server offers a tool name an existing one already
    /// offers downstream.
    #[error(
        "tool {tool:?} is offered by both {existing_server:?} and {new_server:?}; register {new_server:?} \
         with a tool_prefix (for example \"{new_server}_\") to tell them apart"
    )]
    DuplicateTool { tool: String, existing_server: String, new_server: String },

    /// Registration refused: the server could not be reached, or failed the MCP handshake
    /// or `tools/list`.
    #[error("cannot connect to MCP server {server:?}: {message}")]
    Connect { server: String, message: String },

    /// The tool's server is registered but has no live session right now. Nothing was
    /// sent upstream.
    #[error("MCP server {server:?} is not connected ({status}){}", last_error.as_deref().map(|e| format!(": {e}")).unwrap_or_default())]
    Unavailable { server: String, status: ConnectionStatus, last_error: Option<String> },

    /// The upstream answered with a JSON-RPC error (as opposed to an `isError` result,
    /// which is a result).
    #[error("MCP server {server:?} answered with error {code}: {message}")]
    Rpc { server: String, code: i32, message: String, data: Option<Value> },

    /// The session failed while the call was in flight: the upstream may or may not have
    /// run the tool.
    #[error("the connection to MCP server {server:?} failed during the call: {message}")]
    Transport { server: String, message: String },

    /// No answer within the per-call timeout: the upstream may or may not have run the
    /// tool. The gateway has sent a cancellation.
    #[error("MCP server {server:?} did not answer tool {tool:?} within {} s", after.as_secs_f64())]
    Timeout { server: String, tool: String, after: Duration },

    /// The upstream answered with something this gateway does not handle yet (an MRTR
    /// `input_required` round or a task).
    #[error("MCP server {server:?} answered tool {tool:?} with {what}, which the gateway does not support")]
    Unsupported { server: String, tool: String, what: &'static str },

    #[error("the gateway is shutting down")]
    ShuttingDown,

    #[error("database error")]
    Database(#[from] sqlx::Error),
}
