//! JSON-RPC 2.0 framing and the MCP lifecycle methods.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Map, Value};

use super::dispatch::{Caller, McpService};

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
/// The runbook's contract: a rejected or expired request.
pub const ACCESS_DENIED: i64 = -32003;
/// An approved call whose execution started but whose result was never recorded.
pub const OUTCOME_UNKNOWN: i64 = -32004;
/// 2026-07-28: `MCP-Protocol-Version` header and `_meta` disagree.
pub const HEADER_MISMATCH: i64 = -32020;
/// 2026-07-28: unsupported protocol version.
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

/// Versions negotiated through `initialize`, oldest first.
pub const HANDSHAKE_VERSIONS: [&str; 3] = ["2025-03-26", "2025-06-18", "2025-11-25"];
/// Versions negotiated per request (`server/discover`).
pub const MODERN_VERSIONS: [&str; 1] = ["2026-07-28"];
const PROTOCOL_VERSION_META: &str = "io.modelcontextprotocol/protocolVersion";

pub const SERVER_NAME: &str = "alexandria";

/// What the HTTP layer sends back.
pub enum McpReply {
    /// A notification or a response from the client: 202, no body.
    Accepted,
    /// A JSON-RPC response; `session` is set on a successful `initialize`.
    Json { status: StatusCode, body: Value, session: Option<String> },
    /// A 200 whose JSON-RPC response is not known yet: a gated call waiting in-band for
    /// a decision. The HTTP layer answers at once and sends the body when this resolves,
    /// so a parked call holds only this future, not the request's handler stack.
    Deferred(DeferredResponse),
}

/// The JSON-RPC response of a call still in progress.
pub type DeferredResponse = std::pin::Pin<Box<dyn std::future::Future<Output = Value> + Send>>;

impl McpReply {
    pub(super) fn ok(body: Value) -> Self {
        McpReply::Json { status: StatusCode::OK, body, session: None }
    }
}

pub fn error_body(id: Value, code: i64, message: impl Into<String>, data: Option<Value>) -> Value {
    let mut error = json!({"code": code, "message": message.into()});
    if let Some(data) = data {
        error["data"] = data;
    }
    json!({"jsonrpc": "2.0", "id": id, "error": error})
}

fn error_reply(status: StatusCode, id: Value, code: i64, message: impl Into<String>, data: Option<Value>) -> McpReply {
    McpReply::Json { status, body: error_body(id, code, message, data), session: None }
}

/// The protocol era of one request: 2026-07-28 requests carry their version in a
/// header (and `_meta`) and expect `resultType` on every result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    Handshake,
    Modern,
}

/// One parsed JSON-RPC request.
pub struct Request {
    pub id: Value,
    pub method: String,
    pub params: Map<String, Value>,
    pub era: Era,
}

impl Request {
    pub fn result(&self, mut result: Value) -> Value {
        if self.era == Era::Modern {
            if let Some(object) = result.as_object_mut() {
                object.entry("resultType").or_insert(json!("complete"));
            }
        }
        json!({"jsonrpc": "2.0", "id": self.id, "result": result})
    }

    pub fn error(&self, code: i64, message: impl Into<String>, data: Option<Value>) -> Value {
        error_body(self.id.clone(), code, message, data)
    }
}

fn era_of(headers: &HeaderMap, params: &Map<String, Value>, id: &Value) -> Result<Era, McpReply> {
    let header = headers.get("mcp-protocol-version").and_then(|v| v.to_str().ok()).map(str::trim);
    let meta = params.get("_meta").and_then(|m| m.get(PROTOCOL_VERSION_META)).and_then(Value::as_str);
    let supported: Vec<&str> = HANDSHAKE_VERSIONS.iter().chain(MODERN_VERSIONS.iter()).copied().collect();
    if let (Some(header), Some(meta)) = (header, meta) {
        if header != meta {
            return Err(error_reply(
                StatusCode::BAD_REQUEST,
                id.clone(),
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
        Some(version) => Err(error_reply(
            StatusCode::BAD_REQUEST,
            id.clone(),
            UNSUPPORTED_PROTOCOL_VERSION,
            format!("unsupported MCP protocol version {version:?}"),
            Some(json!({"supported": supported, "requested": version})),
        )),
    }
}

/// Parses one HTTP body and answers it.
pub async fn handle_message(service: &McpService, caller: &Caller, headers: HeaderMap, body: Bytes) -> McpReply {
    let message: Value = match serde_json::from_slice(&body) {
        Ok(message) => message,
        Err(error) => {
            return error_reply(
                StatusCode::BAD_REQUEST,
                Value::Null,
                PARSE_ERROR,
                format!("parse error: {error}"),
                None,
            )
        }
    };
    let Value::Object(mut message) = message else {
        let what = if message.is_array() {
            "batches are not supported (removed in MCP 2025-06-18): send one JSON-RPC message per POST"
        } else {
            "a JSON-RPC message must be an object"
        };
        return error_reply(StatusCode::BAD_REQUEST, Value::Null, INVALID_REQUEST, what, None);
    };
    let id = message.get("id").cloned();
    if let Some(id) = &id {
        if !(id.is_string() || id.is_number()) {
            return error_reply(
                StatusCode::BAD_REQUEST,
                Value::Null,
                INVALID_REQUEST,
                "id must be a string or a number",
                None,
            );
        }
    }
    if message.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return error_reply(
            StatusCode::BAD_REQUEST,
            id.unwrap_or(Value::Null),
            INVALID_REQUEST,
            "jsonrpc must be \"2.0\"",
            None,
        );
    }
    let method = match message.remove("method") {
        Some(Value::String(method)) => method,
        Some(_) => {
            return error_reply(
                StatusCode::BAD_REQUEST,
                id.unwrap_or(Value::Null),
                INVALID_REQUEST,
                "method must be a string",
                None,
            )
        }
        // A response to a server request (we send none) or garbage with an id.
        None if id.is_some() && (message.contains_key("result") || message.contains_key("error")) => {
            return McpReply::Accepted
        }
        None => {
            return error_reply(
                StatusCode::BAD_REQUEST,
                id.unwrap_or(Value::Null),
                INVALID_REQUEST,
                "method is missing",
                None,
            )
        }
    };
    let params = match message.remove("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(params)) => params,
        Some(_) => {
            return error_reply(
                StatusCode::OK,
                id.unwrap_or(Value::Null),
                INVALID_PARAMS,
                "params must be an object",
                None,
            )
        }
    };
    let Some(id) = id else {
        // Notifications (`notifications/initialized`, `notifications/cancelled`, ...)
        // need no answer.
        return McpReply::Accepted;
    };
    drop((body, message));
    let era = match era_of(&headers, &params, &id) {
        Ok(era) => era,
        Err(reply) => return reply,
    };
    let request = Request { id, method, params, era };
    if request.method == "tools/call" {
        return service.call_tool(caller, headers, request).await;
    }
    match request.method.as_str() {
        "initialize" => initialize(&request),
        "server/discover" => McpReply::ok(request.result(discover_result())),
        "ping" => McpReply::ok(request.result(json!({}))),
        "tools/list" => McpReply::ok(service.list_tools(caller, &request).await),
        other => McpReply::ok(request.error(
            METHOD_NOT_FOUND,
            format!("method {other:?} is not supported by this gateway"),
            None,
        )),
    }
}

fn server_info() -> Value {
    json!({"name": SERVER_NAME, "version": env!("CARGO_PKG_VERSION")})
}

fn capabilities() -> Value {
    json!({"tools": {"listChanged": false}})
}

const INSTRUCTIONS: &str = "Alexandria gateway. Some tools need a person's approval: such a call may answer \
    with a pending result (pending: true, request_id, retry_after_ms). Retry the same call with the same \
    X-Idempotency-Key after retry_after_ms to get the real result, or a -32003 'denied: <reason>' error.";

fn initialize(request: &Request) -> McpReply {
    let requested = request.params.get("protocolVersion").and_then(Value::as_str);
    let Some(requested) = requested else {
        return McpReply::ok(request.error(INVALID_PARAMS, "initialize needs params.protocolVersion", None));
    };
    // Answer with the client's version when we speak it, else our newest.
    let version = if HANDSHAKE_VERSIONS.contains(&requested) {
        requested
    } else {
        HANDSHAKE_VERSIONS[HANDSHAKE_VERSIONS.len() - 1]
    };
    let body = request.result(json!({
        "protocolVersion": version,
        "capabilities": capabilities(),
        "serverInfo": server_info(),
        "instructions": INSTRUCTIONS,
    }));
    McpReply::Json { status: StatusCode::OK, body, session: Some(uuid::Uuid::new_v4().to_string()) }
}

fn discover_result() -> Value {
    json!({
        "supportedVersions": MODERN_VERSIONS,
        "capabilities": capabilities(),
        "instructions": INSTRUCTIONS,
        "ttlMs": 0,
        "cacheScope": "private",
        "_meta": {"io.modelcontextprotocol/serverInfo": server_info()},
    })
}
