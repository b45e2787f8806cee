//! The downstream MCP endpoint: JSON-RPC over Streamable HTTP (JSON responses only).
//!
//! `protocol` parses and answers messages; `dispatch` decides what a `tools/*` request
//! does for a given caller (routing, policy, the approval gate). Sessions are stateless:
//! `Mcp-Session-Id` is issued on `initialize` but nothing is kept per session, so any
//! replica answers any request and the runbook's bare `curl` calls need no handshake.

pub mod dispatch;
pub mod protocol;

pub use dispatch::{Caller, McpService, ToolDirectory};
pub use protocol::{handle_message, McpReply};
