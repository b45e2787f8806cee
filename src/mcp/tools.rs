//! `tools/list` and `tools/call` for one caller: the caller's policy, routing to
//! upstreams, and the approval gate.

use std::sync::Arc;
use std::time::Duration;

use alexandria_domain::{CallOutcome, RequestStatus};
use serde_json::{json, Value};

use super::exchange::{Caller, DeferredResponse, McpReply, RequestContext};
use super::jsonrpc::{
    CallToolParams, Era, RequestMeta, Responder, ACCESS_DENIED, INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND,
    OUTCOME_UNKNOWN,
};
use super::streams;
use super::tasks::Tasks;
use crate::approval::{CallOrigin, CallRelay, ClientAnswers, Gate, GateResponse, GatedCall, ToolExecutor};

/// The merged catalog of upstream tools.
pub trait ToolDirectory: Send + Sync {
    /// The MCP definition (`name`, `description`, `inputSchema`, `annotations`, ...) of
    /// `name` as downstream callers see it, if a connected upstream offers it.
    fn tool(&self, name: &str) -> Option<Value>;

    /// Whether a connected upstream offers `name`, and if so whether its definition
    /// declares an `outputSchema`: what a call needs, without building the definition.
    fn offers(&self, name: &str) -> Option<ToolOffer> {
        self.tool(name).map(|definition| ToolOffer { declares_output_schema: declares_output_schema(&definition) })
    }
}

/// What a call needs to know of a tool an upstream offers.
#[derive(Debug, Clone, Copy)]
pub struct ToolOffer {
    /// Clients validate the `structuredContent` of its results against the schema.
    pub declares_output_schema: bool,
}

/// The header that names a call's idempotency key.
pub const IDEMPOTENCY_KEY_HEADER: &str = "x-idempotency-key";
const MAX_IDEMPOTENCY_KEY_LEN: usize = 200;
/// Where the pending envelope's details live in `_meta`.
pub const APPROVAL_META_KEY: &str = "alexandria/approval";

#[derive(Clone)]
pub(super) struct Tools {
    pub(super) directory: Arc<dyn ToolDirectory>,
    pub(super) executor: Arc<dyn ToolExecutor>,
    pub(super) gate: Gate,
    pub(super) tasks: Tasks,
    /// Requests relayed to clients during their calls, waiting for the answers they POST.
    pub(super) answers: Arc<ClientAnswers>,
}

impl Tools {
    pub(super) fn list(&self, caller: &Caller, responder: &Responder) -> Value {
        let tools: Vec<Value> = caller
            .effective_tools
            .iter()
            .filter_map(|name| {
                let mut tool = self.directory.tool(name)?;
                let meta = tool.as_object_mut()?.entry("_meta").or_insert_with(|| json!({}));
                if let Some(meta) = meta.as_object_mut() {
                    meta.insert("alexandria/approval_required".to_owned(), json!(caller.needs_approval(name)));
                }
                // A call that needs approval may run as an MCP task; any other may not
                // (no `execution.taskSupport` means "forbidden").
                if caller.needs_approval(name) {
                    tool["execution"] = json!({"taskSupport": "optional"});
                }
                Some(tool)
            })
            .collect();
        let mut result = json!({"tools": tools});
        if responder.era == Era::Modern {
            result["ttlMs"] = json!(0);
            result["cacheScope"] = json!("private");
        }
        responder.result(result)
    }

    /// A gated call answers with a deferred reply: the gate runs in its own task (a
    /// client that hangs up must not cancel an upstream call mid-way, nor the recording
    /// of its outcome), and the reply holds just that task's handle and the responder
    /// while it waits.
    pub(super) async fn call(
        &self,
        caller: &Caller,
        params: CallToolParams,
        meta: RequestMeta,
        context: RequestContext,
        request: Responder,
    ) -> McpReply {
        let CallToolParams { name, arguments, as_task } = params;
        if !caller.may_call(&name) {
            return McpReply::response(request.error(
                INVALID_PARAMS,
                format!("tool {name:?} is not available to agent {:?}", caller.agent),
                None,
            ));
        }
        // Only two bools outlive this statement: a parked call holds no tool definition.
        let (offered, declares_output_schema) = match self.directory.offers(&name) {
            Some(offer) => (true, offer.declares_output_schema),
            None => (false, false),
        };
        let not_offered = || {
            McpReply::response(request.error(
                INVALID_PARAMS,
                format!("no connected upstream server offers tool {name:?}"),
                None,
            ))
        };
        let idempotency_key = match check_idempotency_key(context.idempotency_key) {
            Ok(key) => key,
            Err(message) => return McpReply::response(request.error(INVALID_PARAMS, message, None)),
        };
        let arguments = Value::Object(arguments);

        // 2025-11-25 tasks: only a tool that needs approval declares task support.
        if as_task && !caller.needs_approval(&name) {
            return McpReply::response(request.error(
                METHOD_NOT_FOUND,
                format!("tool {name:?} does not run as a task: only tools that need approval do"),
                None,
            ));
        }
        // Both branches run in their own task: a client that hangs up must not cancel
        // an upstream call mid-way, nor the recording of its outcome.
        if !caller.needs_approval(&name) {
            if !offered {
                return not_offered();
            }
            let executor = Arc::clone(&self.executor);
            // What the upstream asks the client during the call is recorded under this.
            let origin = CallOrigin::pass_through(&caller.agent, &name, context.trace_id.as_deref());
            if context.accepts_event_stream {
                // The upstream's progress and log messages during the call reach this
                // client on an SSE reply (see `streams::relayed`).
                let (sender, messages) = tokio::sync::mpsc::unbounded_channel();
                let progress_token = meta.progress_token.and_then(|token| serde_json::to_value(token).ok());
                let relay = CallRelay {
                    progress_token,
                    messages: sender,
                    agent: caller.agent.clone(),
                    answers: Arc::clone(&self.answers),
                };
                let failed = request.error(INTERNAL_ERROR, "the call failed inside the gateway", None);
                let responder = request.clone();
                let call = tokio::spawn(async move {
                    outcome_response(&responder, executor.execute(&name, &arguments, origin, Some(relay)).await)
                });
                return streams::relayed(call, messages, failed).await;
            }
            let task = tokio::spawn(async move { executor.execute(&name, &arguments, origin, None).await });
            return McpReply::response(match task.await {
                Ok(outcome) => outcome_response(&request, outcome),
                Err(error) => {
                    request.error(INTERNAL_ERROR, format!("the call failed inside the gateway: {error}"), None)
                }
            });
        }
        let call = GatedCall {
            agent: caller.agent.clone(),
            tool: name.clone(),
            arguments,
            idempotency_key,
            actor: caller.actor.clone(),
            trace_id: context.trace_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
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
                        | RequestStatus::Withdrawn
                )
            );
            if !answered {
                return not_offered();
            }
        }
        // How an undecided call answers: the pending envelope, or a task for a client
        // that asked for one (2025-11-25: at once) or declared the tasks extension
        // (2026-07-28: after the usual in-band wait).
        let as_task = match request.era {
            Era::Handshake => as_task,
            Era::Modern => meta.declares_tasks_extension,
        };
        let wait = if as_task && request.era == Era::Handshake { Duration::ZERO } else { self.gate.settings().wait };
        let gate = self.gate.clone();
        let tasks = self.tasks.clone();
        let key_for_meta = call.idempotency_key.clone();
        // A client reading this call's progress stream also gets what the upstream says
        // if the call is approved and run within the wait (its log messages and requests;
        // the upstream's progress would run against the wait's, so it is not passed on).
        let streaming = meta.progress_token.is_some() && context.accepts_event_stream && !wait.is_zero();
        let (relay, relayed) = if streaming {
            let (messages, relayed) = tokio::sync::mpsc::unbounded_channel();
            let answers = Arc::clone(&self.answers);
            (Some(CallRelay { progress_token: None, messages, agent: caller.agent.clone(), answers }), Some(relayed))
        } else {
            (None, None)
        };
        let task = tokio::spawn(async move { gate.call_waiting_relayed(call, wait, relay).await });
        let answer: DeferredResponse = Box::pin(async move {
            let response = match task.await {
                Ok(response) => response,
                Err(error) => GateResponse::Unavailable(error.to_string()),
            };
            match response {
                GateResponse::Pending { request_id, .. } if as_task => tasks.created(request_id, &request).await,
                response => gate_response(&request, response, key_for_meta, declares_output_schema),
            }
        });
        match meta.progress_token {
            Some(token) if context.accepts_event_stream && !wait.is_zero() => {
                McpReply::Streamed(streams::with_progress(token, answer, streams::progress_interval(wait), relayed))
            }
            _ => McpReply::Deferred(answer),
        }
    }
}

/// `X-Idempotency-Key` as sent: 1 to 200 visible ASCII characters, or absent.
fn check_idempotency_key(raw: Option<String>) -> Result<Option<String>, String> {
    let Some(raw) = raw else { return Ok(None) };
    let key = raw.trim();
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(format!("X-Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"));
    }
    Ok(Some(key.to_owned()))
}

/// Whether a tool definition declares an `outputSchema`: clients then validate the
/// `structuredContent` of every result of it that is not an error.
fn declares_output_schema(definition: &Value) -> bool {
    definition.get("outputSchema").is_some_and(|schema| !schema.is_null())
}

fn outcome_response(request: &Responder, outcome: CallOutcome) -> Value {
    match outcome {
        CallOutcome::Result(result) => request.result(result),
        CallOutcome::Error { code, message, data } => request.error(code, message, data),
    }
}

/// The answer to a gated call. Everything the gateway says on its own is a JSON-RPC error
/// except the pending envelope, a `CallToolResult` that must be valid for the tool: for a
/// tool that declares an `outputSchema` it is an error result (`isError: true`), which the
/// Python and TypeScript SDKs do not validate against the schema, and never carries
/// `structuredContent` (the TypeScript SDK validates it even on an error result).
pub(super) fn gate_response(
    request: &Responder,
    response: GateResponse,
    idempotency_key: Option<String>,
    declares_output_schema: bool,
) -> Value {
    match response {
        GateResponse::Completed(outcome) => outcome_response(request, outcome),
        GateResponse::Pending { request_id, status, expires_at, retry_after } => {
            let retry_after_ms = retry_after.as_millis() as u64;
            let how = match &idempotency_key {
                Some(_) => "the same X-Idempotency-Key header",
                None => "the same tool and arguments (or set an X-Idempotency-Key header)",
            };
            let text = match status {
                RequestStatus::Pending => format!(
                    "This call needs a person's approval and is pending. Permission request {request_id} is \
                     waiting for review. Retry the same call in {retry_after_ms} ms with {how}; you will get \
                     the tool's result once it is approved, or a 'denied' error if it is rejected."
                ),
                // Approved but not run yet (its upstream is unreachable), or running.
                _ => format!(
                    "This call was approved and is {status}: permission request {request_id} has not finished \
                     yet. Retry the same call in {retry_after_ms} ms with {how} to get the tool's result."
                ),
            };
            request.result(json!({
                "pending": true,
                "request_id": request_id,
                "retry_after_ms": retry_after_ms,
                "content": [{"type": "text", "text": text}],
                "isError": declares_output_schema,
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::mcp::jsonrpc::RequestId;

    fn pending_answer(declares_output_schema: bool) -> Value {
        let request = Responder { id: RequestId::String("call-1".to_owned()), era: Era::Handshake };
        let pending = GateResponse::Pending {
            request_id: uuid::Uuid::nil(),
            status: RequestStatus::Pending,
            expires_at: chrono::DateTime::UNIX_EPOCH,
            retry_after: Duration::from_millis(2000),
        };
        gate_response(&request, pending, Some("key-1".to_owned()), declares_output_schema)
    }

    #[test]
    fn the_pending_answer_of_a_tool_with_an_output_schema_differs_only_in_is_error() {
        let untyped = pending_answer(false);
        let mut typed = pending_answer(true);
        assert_eq!(untyped["result"]["isError"], false);
        assert_eq!(typed["result"]["isError"], true);
        assert!(typed["result"].get("structuredContent").is_none(), "{typed}");
        assert_eq!(typed["result"]["pending"], true);
        assert_eq!(typed["result"]["retry_after_ms"], 2000);
        typed["result"]["isError"] = json!(false);
        assert_eq!(typed, untyped);
    }

    #[test]
    fn a_null_output_schema_is_no_output_schema() {
        assert!(declares_output_schema(&json!({"name": "add", "outputSchema": {"type": "object"}})));
        assert!(!declares_output_schema(&json!({"name": "echo", "outputSchema": null})));
        assert!(!declares_output_schema(&json!({"name": "echo"})));
    }
}
