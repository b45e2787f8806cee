//! A `tools/call` registered while in flight (`relay.rs`): its server's messages during
//! the call go to its client, and what the server asks a client is recorded with it.
//! rmcp gives every request a progress token of its own, known once the request is
//! sent: the call is registered under it then, before its answer is awaited.

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResponse, CallToolResult, CancelledNotification, ClientRequest,
    ServerResult,
};
use rmcp::service::{PeerRequestOptions, ServiceError};
use rmcp::{Peer, RoleClient};
use std::sync::Arc;

use super::super::relay::{CallScope, Relays};

/// How many times the relayed call yields after its answer before its relay closes:
/// rmcp hands each notification to the client handler in a task of its own, and those of
/// messages that came before the answer must run first.
const SETTLE_YIELDS: usize = 8;

/// The call's answer, or None when `deadline` passed first (the server is then told the
/// request is cancelled).
pub(super) async fn call(
    peer: &Peer<RoleClient>,
    relays: &Arc<Relays>,
    params: CallToolRequestParams,
    scope: CallScope,
    deadline: tokio::time::Instant,
) -> Option<Result<CallToolResponse, ServiceError>> {
    let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
    let handle = match peer.send_request_with_option(request, PeerRequestOptions::no_options()).await {
        Ok(handle) => handle,
        Err(error) => return Some(Err(error)),
    };
    let registered = relays.register(&handle.progress_token, handle.id.clone(), scope);
    let mut abandoned = CancelOnDrop { peer: peer.clone(), id: Some(handle.id.clone()) };
    let answer = tokio::time::timeout_at(deadline, handle.await_response()).await.ok()?;
    abandoned.id = None;
    for _ in 0..SETTLE_YIELDS {
        tokio::task::yield_now().await;
    }
    drop(registered);
    Some(answer.and_then(|result| match result {
        ServerResult::CallToolResult(result) => Ok(CallToolResponse::Complete(result)),
        ServerResult::InputRequiredResult(result) => Ok(CallToolResponse::InputRequired(result)),
        ServerResult::CreateTaskResult(result) => Ok(CallToolResponse::Task(result)),
        other => contentless(other).map(CallToolResponse::Complete).ok_or(ServiceError::UnexpectedResponse),
    }))
}

/// A result with no content (`{}` or only `_meta`) as an empty `CallToolResult`, as
/// rmcp's `call_tool_once` reads it.
fn contentless(result: ServerResult) -> Option<CallToolResult> {
    let mut value = serde_json::to_value(result).ok()?;
    let object = value.as_object_mut()?;
    if object.keys().any(|key| key != "_meta") {
        return None;
    }
    object.insert("content".to_owned(), serde_json::json!([]));
    serde_json::from_value(value).ok()
}

/// Tells the server a request is cancelled when the call is abandoned (timed out, or its
/// future dropped) before its answer.
struct CancelOnDrop {
    peer: Peer<RoleClient>,
    id: Option<rmcp::model::RequestId>,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        let peer = self.peer.clone();
        let reason = Some("request abandoned by the gateway".to_owned());
        let notification = CancelledNotification::new(rmcp::model::CancelledNotificationParam::new(Some(id), reason));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = peer.send_notification(notification.into()).await;
            });
        }
    }
}
