//! What `tools/list` and `tools/call` do for one caller: the caller's policy, routing to
//! upstreams, and the approval gate.

use std::sync::Arc;

use alexandria_domain::{CallOutcome, RequestStatus};
use axum::http::HeaderMap;
use serde_json::{json, Map, Value};

use super::protocol::{Era, McpReply, Request, ACCESS_DENIED, INTERNAL_ERROR, INVALID_PARAMS, OUTCOME_UNKNOWN};
use crate::gate::{Gate, GateResponse, GatedCall, ToolExecutor};

/// Who is calling, with the policy that applies: an agent's token policy, or a user
/// acting through an agent's path with that agent's stored policy.
#[derive(Debug, Clone)]
pub struct Caller {
    pub agent: String,
    pub effective_tools: Vec<String>,
    pub approval_required_tools: Vec<String>,
    /// `agent:<name>` or `user:<name>`, recorded in event metadata.
    pub actor: String,
}

impl Caller {
    fn needs_approval(&self, tool: &str) -> bool {
        self.approval_required_tools.iter().any(|t| t == tool)
    }
}

/// The merged catalog of upstream tools.
pub trait ToolDirectory: Send + Sync {
    /// The MCP definition (`name`, `description`, `inputSchema`, `annotations`, ...) of
    /// `name` as downstream callers see it, if a connected upstream offers it.
    fn tool(&self, name: &str) -> Option<Value>;
}

pub const IDEMPOTENCY_KEY_HEADER: &str = "x-idempotency-key";
const MAX_IDEMPOTENCY_KEY_LEN: usize = 200;
/// Where the pending envelope's details live in `_meta`.
pub const APPROVAL_META_KEY: &str = "alexandria/approval";

#[derive(Clone)]
pub struct McpService {
    directory: Arc<dyn ToolDirectory>,
    executor: Arc<dyn ToolExecutor>,
    gate: Gate,
}

impl McpService {
    pub fn new(directory: Arc<dyn ToolDirectory>, executor: Arc<dyn ToolExecutor>, gate: Gate) -> Self {
        Self { directory, executor, gate }
    }

    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    pub async fn list_tools(&self, caller: &Caller, request: &Request) -> Value {
        let tools: Vec<Value> = caller
            .effective_tools
            .iter()
            .filter_map(|name| {
                let mut tool = self.directory.tool(name)?;
                let meta = tool.as_object_mut()?.entry("_meta").or_insert_with(|| json!({}));
                if let Some(meta) = meta.as_object_mut() {
                    meta.insert("alexandria/approval_required".to_owned(), json!(caller.needs_approval(name)));
                }
                Some(tool)
            })
            .collect();
        let mut result = json!({"tools": tools});
        if request.era == Era::Modern {
            result["ttlMs"] = json!(0);
            result["cacheScope"] = json!("private");
        }
        request.result(result)
    }

    /// Takes the request and headers by value: a gated call may wait a long time, and
    /// holds neither while it does.
    ///
    /// A gated call answers with a deferred reply: the gate runs in its own task (a
    /// client that hangs up must not cancel an upstream call mid-way, nor the recording
    /// of its outcome), and the reply holds just that task's handle while it waits.
    pub async fn call_tool(&self, caller: &Caller, headers: HeaderMap, request: Request) -> McpReply {
        let Request { id, method, mut params, era } = request;
        let request = Request { id, method, params: Map::new(), era };
        let name = match params.remove("name") {
            Some(Value::String(name)) => name,
            _ => return McpReply::ok(request.error(INVALID_PARAMS, "tools/call needs params.name (a string)", None)),
        };
        let name = name.as_str();
        let arguments = match params.remove("arguments") {
            None | Some(Value::Null) => json!({}),
            Some(arguments @ Value::Object(_)) => arguments,
            Some(_) => return McpReply::ok(request.error(INVALID_PARAMS, "params.arguments must be an object", None)),
        };
        drop(params);
        if !caller.effective_tools.iter().any(|t| t == name) {
            return McpReply::ok(request.error(
                INVALID_PARAMS,
                format!("tool {name:?} is not available to agent {:?}", caller.agent),
                None,
            ));
        }
        let offered = self.directory.tool(name).is_some();
        let not_offered = || {
            McpReply::ok(request.error(
                INVALID_PARAMS,
                format!("no connected upstream server offers tool {name:?}"),
                None,
            ))
        };
        let idempotency_key = match idempotency_key(&headers) {
            Ok(key) => key,
            Err(message) => return McpReply::ok(request.error(INVALID_PARAMS, message, None)),
        };
        let trace_id = trace_id(&headers);
        drop(headers);

        // Both branches run in their own task: a client that hangs up must not cancel
        // an upstream call mid-way, nor the recording of its outcome.
        if !caller.needs_approval(name) {
            if !offered {
                return not_offered();
            }
            let executor = Arc::clone(&self.executor);
            let tool = name.to_owned();
            let task = tokio::spawn(async move { executor.execute(&tool, &arguments).await });
            return McpReply::ok(match task.await {
                Ok(outcome) => outcome_response(&request, outcome),
                Err(error) => {
                    request.error(INTERNAL_ERROR, format!("the call failed inside the gateway: {error}"), None)
                }
            });
        }
        let call = GatedCall {
            agent: caller.agent.clone(),
            tool: name.to_owned(),
            arguments,
            idempotency_key,
            actor: caller.actor.clone(),
            trace_id,
        };
        // A request that already has its answer (a cached outcome, a decision against it,
        // or a claim whose outcome is unknown) gives it without the upstream; only one
        // that may still need to run upstream is refused while no upstream offers the tool.
        if !offered {
            // Boxed and bound with `let`: in `Box::pin(f).await` the unboxed `f` would
            // stay in this state machine as a temporary of the statement.
            let existing = Box::pin(self.gate.existing_status(&call));
            let answered = matches!(
                existing.await,
                Some(
                    RequestStatus::Executing
                        | RequestStatus::Executed
                        | RequestStatus::Rejected
                        | RequestStatus::Expired
                )
            );
            if !answered {
                return not_offered();
            }
        }
        let gate = self.gate.clone();
        let key_for_meta = call.idempotency_key.clone();
        let task = tokio::spawn(async move { gate.call(call).await });
        McpReply::Deferred(Box::pin(async move {
            let response = match task.await {
                Ok(response) => response,
                Err(error) => GateResponse::Unavailable(error.to_string()),
            };
            gate_response(&request, response, key_for_meta)
        }))
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, String> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY_HEADER) else { return Ok(None) };
    let invalid = || format!("X-Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters");
    let key = value.to_str().map_err(|_| invalid())?.trim();
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(invalid());
    }
    Ok(Some(key.to_owned()))
}

/// The caller's trace id (W3C `traceparent` or `X-Request-Id`), else a new one.
fn trace_id(headers: &HeaderMap) -> String {
    if let Some(trace) = headers.get("traceparent").and_then(|v| v.to_str().ok()).and_then(|v| v.split('-').nth(1)) {
        return trace.to_owned();
    }
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

fn outcome_response(request: &Request, outcome: CallOutcome) -> Value {
    match outcome {
        CallOutcome::Result(result) => request.result(result),
        CallOutcome::Error { code, message, data } => request.error(code, message, data),
    }
}

fn gate_response(request: &Request, response: GateResponse, idempotency_key: Option<String>) -> Value {
    match response {
        GateResponse::Completed(outcome) => outcome_response(request, outcome),
        GateResponse::Pending { request_id, status, expires_at, retry_after } => {
            let retry_after_ms = retry_after.as_millis() as u64;
            let how = match &idempotency_key {
                Some(_) => "the same X-Idempotency-Key header",
                None => "the same tool and arguments (or set an X-Idempotency-Key header)",
            };
            let text = format!(
                "This call needs a person's approval and is {status}. Permission request {request_id} is \
                 waiting for review. Retry the same call in {retry_after_ms} ms with {how}; you will get \
                 the tool's result once it is approved, or a 'denied' error if it is rejected."
            );
            request.result(json!({
                "pending": true,
                "request_id": request_id,
                "retry_after_ms": retry_after_ms,
                "content": [{"type": "text", "text": text}],
                "isError": false,
                "_meta": {APPROVAL_META_KEY: {
                    "pending": true,
                    "request_id": request_id,
                    "retry_after_ms": retry_after_ms,
                    "status": status,
                    "expires_at": expires_at,
                    "idempotency_key": idempotency_key,
                }},
            }))
        }
        GateResponse::Denied { request_id, reason } => {
            request.error(ACCESS_DENIED, format!("denied: {reason}"), Some(json!({"request_id": request_id})))
        }
        GateResponse::OutcomeUnknown { request_id } => request.error(
            OUTCOME_UNKNOWN,
            format!(
                "outcome unknown: permission request {request_id} was approved and its execution started, \
                 but no result was recorded (the gateway stopped mid-call). It will not be executed again; \
                 check the upstream's state before retrying with a new idempotency key"
            ),
            Some(json!({"request_id": request_id})),
        ),
        GateResponse::KeyConflict(message) => request.error(INVALID_PARAMS, message, None),
        GateResponse::Unavailable(message) => {
            tracing::error!(%message, "approval gate unavailable");
            request.error(INTERNAL_ERROR, "the approval gate is temporarily unavailable; retry shortly", None)
        }
    }
}
