//! Protocol versions and the lifecycle methods: which era a request belongs to,
//! `initialize` (handshake-era clients) and `server/discover` (2026-07-28).

use serde_json::{json, Value};

use super::jsonrpc::{
    error_body, Era, RequestId, Responder, HEADER_MISMATCH, TASKS_EXTENSION, UNSUPPORTED_PROTOCOL_VERSION,
};

/// Versions negotiated through `initialize`, oldest first.
pub const HANDSHAKE_VERSIONS: [&str; 3] = ["2025-03-26", "2025-06-18", "2025-11-25"];
/// Versions negotiated per request (`server/discover`).
pub const MODERN_VERSIONS: [&str; 1] = ["2026-07-28"];

pub const SERVER_NAME: &str = "alexandria";

/// The era of a request from its `MCP-Protocol-Version` header and its `_meta` version,
/// or the error body when they disagree or name a version this gateway does not speak.
pub fn era_of(header: Option<&str>, meta: Option<&str>, id: &RequestId) -> Result<Era, Value> {
    let header = header.map(str::trim);
    if let (Some(header), Some(meta)) = (header, meta) {
        if header != meta {
            return Err(error_body(
                Some(id),
                HEADER_MISMATCH,
                format!("MCP-Protocol-Version header {header:?} does not match _meta protocolVersion {meta:?}"),
                None,
            ));
        }
    }
    match header.or(meta) {
        None => Ok(Era::Handshake),
        Some(version) if MODERN_VERSIONS.contains(&version) => Ok(Era::Modern),
        Some(version) if HANDSHAKE_VERSIONS.contains(&version) => Ok(Era::Handshake),
        Some(version) => {
            let supported: Vec<&str> = HANDSHAKE_VERSIONS.iter().chain(MODERN_VERSIONS.iter()).copied().collect();
            Err(error_body(
                Some(id),
                UNSUPPORTED_PROTOCOL_VERSION,
                format!("unsupported MCP protocol version {version:?}"),
                Some(json!({"supported": supported, "requested": version})),
            ))
        }
    }
}

fn server_info() -> Value {
    json!({"name": SERVER_NAME, "version": env!("CARGO_PKG_VERSION")})
}

/// What the gateway offers, by era: tasks as 2025-11-25's experimental `tasks`
/// capability, or as 2026-07-28's tasks extension.
fn capabilities(era: Era) -> Value {
    match era {
        Era::Handshake => json!({
            "tools": {"listChanged": false},
            "prompts": {"listChanged": false},
            "resources": {"subscribe": true, "listChanged": false},
            "completions": {},
            "logging": {},
            "tasks": {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}},
        }),
        Era::Modern => json!({
            "tools": {"listChanged": false},
            "prompts": {"listChanged": false},
            "resources": {"subscribe": true, "listChanged": false},
            "completions": {},
            "logging": {},
            "extensions": {TASKS_EXTENSION: {}},
        }),
    }
}

const INSTRUCTIONS: &str = "Alexandria gateway. Some tools need a person's approval: such a call may answer \
    with a pending result (pending: true, request_id, retry_after_ms). Retry the same call with the same \
    X-Idempotency-Key after retry_after_ms to get the real result, or a -32003 'denied: <reason>' error. \
    Task-aware clients get such a call as an MCP task instead, whose id is the permission request's id.";

/// The `initialize` result: the client's version when we speak it, else our newest.
pub fn initialize(responder: &Responder, requested: &str) -> Value {
    let version = if HANDSHAKE_VERSIONS.contains(&requested) {
        requested
    } else {
        HANDSHAKE_VERSIONS[HANDSHAKE_VERSIONS.len() - 1]
    };
    responder.result(json!({
        "protocolVersion": version,
        "capabilities": capabilities(Era::Handshake),
        "serverInfo": server_info(),
        "instructions": INSTRUCTIONS,
    }))
}

/// The `server/discover` result.
pub fn discover(responder: &Responder) -> Value {
    responder.result(json!({
        "supportedVersions": MODERN_VERSIONS,
        "capabilities": capabilities(Era::Modern),
        "instructions": INSTRUCTIONS,
        "ttlMs": 0,
        "cacheScope": "private",
        "_meta": {"io.modelcontextprotocol/serverInfo": server_info()},
    }))
}
