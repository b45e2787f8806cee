//! MCP Tasks: a gated call is a task, and its task id is its permission request's id.
//!
//! A task is therefore exactly as durable as the event log: any replica answers for it,
//! and it survives a restart of every replica. Nothing about tasks is stored apart from
//! the request; a task's status is derived from the request's state and the answer a
//! retry of the call would get ([`Gate::settled_answer`]), so a task and a retried call
//! can never disagree.
//!
//! Two protocols, by the request's era:
//! - MCP 2025-11-25 experimental tasks: the client asks with `params.task`; the answer is
//!   at once a `CreateTaskResult {task}` (`ttl`, `pollInterval`); `tasks/result` blocks
//!   for the outcome; `tasks/list`; `tasks/cancel` answers the cancelled task.
//! - The 2026-07-28 tasks extension (SEP-2663): the client declares the extension per
//!   request and the server decides: a gated call waits in-band as usual and becomes a
//!   task (`resultType: "task"`, `ttlMs`, `pollIntervalMs`) only if still undecided;
//!   `tasks/get` inlines the `result` or `error`; `tasks/cancel` and `tasks/update` ack.
//!
//! `tasks/cancel` withdraws a request still pending (the domain's `Withdrawn`); once a
//! person has decided, it can no longer be withdrawn.

use std::time::Duration;

use alexandria_domain::{CallOutcome, PermissionRequest, PermissionRequestError, RequestStatus};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};
use sqlx::PgPool;
use uuid::Uuid;

use super::exchange::{Caller, McpReply, RequestContext};
use super::jsonrpc::{Era, Responder, TaskMethod, INTERNAL_ERROR, INVALID_PARAMS};
use super::tools::gate_response;
use crate::approval::queries::{self, ListFilter, QueryError};
use crate::approval::{CommandError, Gate, GateResponse};

/// `_meta` key that ties a `tasks/result` answer to its task.
const RELATED_TASK_META_KEY: &str = "io.modelcontextprotocol/related-task";
/// `_meta` key of the text a host may hand the model while the task runs.
const IMMEDIATE_RESPONSE_META_KEY: &str = "io.modelcontextprotocol/model-immediate-response";
const TASKS_PAGE: i64 = 50;
/// The longest a `tasks/result` blocks; a client asks again after it.
const MAX_RESULT_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

/// Which tasks protocol a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TaskProtocol {
    /// MCP 2025-11-25 experimental tasks.
    Experimental,
    /// The 2026-07-28 tasks extension (SEP-2663).
    Extension,
}

impl TaskProtocol {
    pub(super) fn of(era: Era) -> Self {
        match era {
            Era::Handshake => TaskProtocol::Experimental,
            Era::Modern => TaskProtocol::Extension,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TaskStatus {
    Working,
    Completed,
    Failed,
    Cancelled,
}

impl TaskStatus {
    fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Working => "working",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }
}

/// A task as its client sees it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct TaskView {
    pub(super) id: Uuid,
    pub(super) status: TaskStatus,
    pub(super) message: String,
    created_at: DateTime<Utc>,
    last_updated_at: DateTime<Utc>,
    ttl_ms: i64,
    poll_interval_ms: u64,
    /// The call's answer once settled: what `tasks/result` returns, what the extension's
    /// `tasks/get` inlines.
    answer: Option<GateResponse>,
}

impl TaskView {
    /// The task of request `id` in `state`, whose settled answer (if any) is `answer`.
    pub(super) fn new(
        id: Uuid,
        state: &PermissionRequest,
        answer: Option<GateResponse>,
        poll_interval: Duration,
        protocol: TaskProtocol,
    ) -> Option<Self> {
        let details = state.details()?;
        let status = state.status()?;
        let approved_by = state.review().map_or("a person", |review| review.by.as_str());
        let (task_status, message) = match &answer {
            None => (
                TaskStatus::Working,
                match status {
                    RequestStatus::Approved => format!("approved by {approved_by}; the tool runs now"),
                    RequestStatus::Executing => format!("approved by {approved_by}; the tool is running"),
                    _ => format!("waiting for a person's approval (permission request {id})"),
                },
            ),
            Some(GateResponse::Completed(CallOutcome::Result(result))) => {
                let is_error = result.get("isError").and_then(Value::as_bool).unwrap_or(false);
                // 2025-11-25 counts a tool's error result as a failed task; the extension
                // as a completed one (`failed` is for JSON-RPC errors only).
                if is_error && protocol == TaskProtocol::Experimental {
                    (TaskStatus::Failed, "the tool ran and reported an error (isError)".to_owned())
                } else {
                    (TaskStatus::Completed, "the tool ran; its result is ready".to_owned())
                }
            }
            Some(GateResponse::Completed(CallOutcome::Error { message, .. })) => {
                (TaskStatus::Failed, format!("the tool call failed: {message}"))
            }
            Some(GateResponse::Denied { reason, .. }) if status == RequestStatus::Withdrawn => {
                (TaskStatus::Cancelled, reason.clone())
            }
            Some(GateResponse::Denied { reason, .. }) => (TaskStatus::Failed, format!("denied: {reason}")),
            Some(_) => (TaskStatus::Failed, "outcome unknown: the call started but its result was lost".to_owned()),
        };
        Some(TaskView {
            id,
            status: task_status,
            message,
            created_at: details.created_at,
            last_updated_at: state.last_changed_at().unwrap_or(details.created_at),
            ttl_ms: (details.expires_at - details.created_at).num_milliseconds().max(0),
            poll_interval_ms: poll_interval.as_millis() as u64,
            answer,
        })
    }

    /// The task object of `protocol` (the extension's carries the answer inline).
    pub(super) fn to_json(&self, protocol: TaskProtocol, responder: &Responder) -> Value {
        let mut task = Map::new();
        task.insert("taskId".into(), json!(self.id.to_string()));
        task.insert("status".into(), json!(self.status.as_str()));
        task.insert("statusMessage".into(), json!(self.message));
        task.insert("createdAt".into(), json!(self.created_at.to_rfc3339_opts(SecondsFormat::Millis, true)));
        task.insert("lastUpdatedAt".into(), json!(self.last_updated_at.to_rfc3339_opts(SecondsFormat::Millis, true)));
        match protocol {
            TaskProtocol::Experimental => {
                task.insert("ttl".into(), json!(self.ttl_ms));
                task.insert("pollInterval".into(), json!(self.poll_interval_ms));
            }
            TaskProtocol::Extension => {
                task.insert("ttlMs".into(), json!(self.ttl_ms));
                task.insert("pollIntervalMs".into(), json!(self.poll_interval_ms));
                if let Some(answer) = &self.answer {
                    let mut body = gate_response(responder, answer.clone(), None, false);
                    match self.status {
                        TaskStatus::Completed => {
                            task.insert("result".into(), body["result"].take());
                        }
                        TaskStatus::Failed => {
                            task.insert("error".into(), body["error"].take());
                        }
                        TaskStatus::Working | TaskStatus::Cancelled => {}
                    }
                }
            }
        }
        Value::Object(task)
    }
}

/// The tasks methods for one caller. Cheap to clone.
#[derive(Clone)]
pub(super) struct Tasks {
    pub(super) gate: Gate,
    pub(super) pool: PgPool,
}

impl Tasks {
    /// The task of a request, for `caller` only: another agent's request is as unknown
    /// as one that does not exist.
    async fn owned(
        &self,
        caller: &Caller,
        task_id: &str,
        responder: &Responder,
    ) -> Result<(Uuid, PermissionRequest), Value> {
        let unknown = || responder.error(INVALID_PARAMS, format!("unknown task {task_id:?}"), None);
        let id = Uuid::parse_str(task_id).map_err(|_| unknown())?;
        match self.gate.load(id).await {
            Ok(Some(state)) if state.details().is_some_and(|details| details.agent == caller.agent) => Ok((id, state)),
            Ok(_) => Err(unknown()),
            Err(error) => Err(unavailable(responder, &error.to_string())),
        }
    }

    /// The task of `id` as it stands, in `protocol`'s shape.
    pub(super) fn view(&self, id: Uuid, state: &PermissionRequest, protocol: TaskProtocol) -> Option<TaskView> {
        let poll_interval = self.gate.settings().retry_after;
        TaskView::new(id, state, self.gate.settled_answer(id, state), poll_interval, protocol)
    }

    /// The answer to a `tools/call` that became task `id`.
    pub(super) async fn created(&self, id: Uuid, responder: &Responder) -> Value {
        let protocol = TaskProtocol::of(responder.era);
        let state = match self.gate.load(id).await {
            Ok(Some(state)) => state,
            Ok(None) => return unavailable(responder, &format!("permission request {id} vanished")),
            Err(error) => return unavailable(responder, &error.to_string()),
        };
        let Some(view) = self.view(id, &state, protocol) else {
            return unavailable(responder, &format!("permission request {id} vanished"));
        };
        let task = view.to_json(protocol, responder);
        match protocol {
            TaskProtocol::Experimental => responder.result(json!({
                "task": task,
                "_meta": {IMMEDIATE_RESPONSE_META_KEY: format!(
                    "This call needs a person's approval. It runs as task {id}; its result comes when a \
                     person approves it, or a 'denied' error if they reject it."
                )},
            })),
            TaskProtocol::Extension => {
                let mut result = task;
                result["resultType"] = json!("task");
                responder.result(result)
            }
        }
    }

    pub(super) async fn handle(
        &self,
        caller: &Caller,
        method: TaskMethod,
        task_id: &str,
        context: &RequestContext,
        responder: Responder,
    ) -> McpReply {
        let protocol = TaskProtocol::of(responder.era);
        let (id, state) = match self.owned(caller, task_id, &responder).await {
            Ok(owned) => owned,
            Err(body) => return McpReply::response(body),
        };
        let trace_id = context.trace_id.clone().unwrap_or_else(|| Uuid::new_v4().to_string());
        match method {
            TaskMethod::Get => {
                if state.status() == Some(RequestStatus::Approved) {
                    // Approved, not claimed yet: run it now rather than when the client
                    // next asks for the result, so polling alone sees it complete.
                    let (gate, actor) = (self.gate.clone(), caller.actor.clone());
                    let wait = self.gate.settings().call_timeout;
                    tokio::spawn(async move { gate.follow(id, &actor, &trace_id, wait).await });
                }
                match self.view(id, &state, protocol) {
                    Some(view) => McpReply::response(responder.result(view.to_json(protocol, &responder))),
                    None => McpReply::response(unavailable(&responder, "the task has no request")),
                }
            }
            TaskMethod::Update => McpReply::response(responder.result(json!({}))),
            TaskMethod::Cancel => McpReply::response(self.cancel(caller, id, &trace_id, protocol, &responder).await),
            TaskMethod::Result => {
                let wait = state
                    .details()
                    .map(|details| (details.expires_at - Utc::now()).to_std().unwrap_or_default())
                    .unwrap_or_default()
                    + self.gate.settings().call_timeout * 2;
                let follow = super::streams::Follow {
                    tasks: self.clone(),
                    id,
                    actor: caller.actor.clone(),
                    trace_id,
                    wait: wait.min(MAX_RESULT_WAIT),
                };
                if context.accepts_event_stream && protocol == TaskProtocol::Experimental {
                    McpReply::Streamed(follow.with_status_notifications(responder))
                } else {
                    McpReply::Deferred(Box::pin(async move { follow.answer(&responder).await }))
                }
            }
        }
    }

    async fn cancel(
        &self,
        caller: &Caller,
        id: Uuid,
        trace_id: &str,
        protocol: TaskProtocol,
        responder: &Responder,
    ) -> Value {
        match self.gate.withdraw(id, &caller.actor, trace_id).await {
            Ok(state) => match protocol {
                TaskProtocol::Experimental => match self.view(id, &state, protocol) {
                    Some(view) => responder.result(view.to_json(protocol, responder)),
                    None => unavailable(responder, "the task has no request"),
                },
                TaskProtocol::Extension => responder.result(json!({})),
            },
            Err(CommandError::Domain(
                PermissionRequestError::NotPending { status } | PermissionRequestError::NotApproved { status },
            )) => {
                let why = match status {
                    RequestStatus::Approved | RequestStatus::Executing => {
                        "a person approved it and the tool runs; it can no longer be withdrawn".to_owned()
                    }
                    other => format!("it has already ended (its permission request is {other})"),
                };
                responder.error(INVALID_PARAMS, format!("task {id} cannot be cancelled: {why}"), None)
            }
            Err(CommandError::Domain(PermissionRequestError::ApprovalWindowClosed { .. })) => responder.error(
                INVALID_PARAMS,
                format!("task {id} cannot be cancelled: it has already ended (its approval expired)"),
                None,
            ),
            Err(error) => unavailable(responder, &error.to_string()),
        }
    }

    /// `tasks/list`: the caller's own tasks, newest first.
    pub(super) async fn list(&self, caller: &Caller, cursor: Option<String>, responder: &Responder) -> Value {
        let protocol = TaskProtocol::of(responder.era);
        let filter =
            ListFilter { agent: Some(caller.agent.clone()), limit: Some(TASKS_PAGE), cursor, ..ListFilter::default() };
        let page = match queries::list(&self.pool, &filter).await {
            Ok(page) => page,
            Err(QueryError::InvalidFilter(message)) => return responder.error(INVALID_PARAMS, message, None),
            Err(error) => return unavailable(responder, &error.to_string()),
        };
        let mut tasks = Vec::with_capacity(page.items.len());
        for item in &page.items {
            // The log, not the row: a task's status needs the outcome, which has no column.
            match self.gate.load(item.id).await {
                Ok(Some(state)) => {
                    if let Some(view) = self.view(item.id, &state, protocol) {
                        tasks.push(view.to_json(protocol, responder));
                    }
                }
                Ok(None) => {}
                // One request whose history cannot be read (until an operator skips the
                // event) is left out, not the list: `tasks/get` of it says it failed.
                Err(CommandError::Unreadable(error)) => {
                    tracing::error!(request_id = %item.id, %error, "a task's history cannot be read");
                }
                Err(error) => return unavailable(responder, &error.to_string()),
            }
        }
        let mut result = json!({"tasks": tasks});
        if let Some(next) = page.next_cursor {
            result["nextCursor"] = json!(next);
        }
        responder.result(result)
    }
}

/// The answer when the event store fails: nothing the client did.
pub(super) fn unavailable(responder: &Responder, detail: &str) -> Value {
    tracing::error!(%detail, "tasks: the event store is unavailable");
    responder.error(INTERNAL_ERROR, "the approval gate is temporarily unavailable; retry shortly", None)
}

/// `tasks/result`'s answer: exactly the call's, tied to its task.
pub(super) fn result_of_task(responder: &Responder, id: Uuid, answer: GateResponse) -> Value {
    if let GateResponse::Pending { .. } = answer {
        return responder.error(
            INTERNAL_ERROR,
            format!("task {id} is still waiting (the gateway is shutting down or the wait ran out); call tasks/result again"),
            None,
        );
    }
    let mut body = gate_response(responder, answer, None, false);
    if let Some(result) = body.get_mut("result").and_then(Value::as_object_mut) {
        let meta = result.entry("_meta").or_insert_with(|| json!({}));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert(RELATED_TASK_META_KEY.into(), json!({"taskId": id.to_string()}));
        }
    }
    body
}
