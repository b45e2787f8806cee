//! One server's calls in flight: where the server's progress and log messages go (the
//! calls whose client reads a stream), and whose call a request the server asks a client
//! belongs to (every call the executor runs, so that request is recorded with its call).
//!
//! A relayed call goes upstream with the progress token rmcp gives every request, so
//! the server's `notifications/progress` name their call and reach its client only,
//! with the client's token put back. A `notifications/message` names no request: it
//! reaches a relayed call only when it is the one call in flight on that server, and no
//! one otherwise, so a client never sees a message another client's call caused.
//! Entries leave with their call (a guard), whether or not the client is still there.

// `notifications/message` is deprecated at 2026-07-28 (SEP-2577); servers of earlier
// revisions still send it.
#![allow(deprecated)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use rmcp::model::{
    LoggingMessageNotificationParam, NumberOrString, ProgressNotificationParam, ProgressToken, RequestId,
};
use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::approval::{CallOrigin, CallRelay, RelayRecorder};

/// One call in flight: its client's relay, if it has one, and where what the server
/// asks a client during the call is recorded.
#[derive(Clone, Default)]
pub struct CallScope {
    pub relay: Option<CallRelay>,
    pub record: Option<(CallOrigin, RelayRecorder)>,
}

impl CallScope {
    /// Whether the call must be registered while in flight.
    pub fn is_empty(&self) -> bool {
        self.relay.is_none() && self.record.is_none()
    }
}

pub struct Relays {
    /// By progress token: the call's scope and its upstream request id.
    calls: Mutex<HashMap<String, (CallScope, RequestId)>>,
    /// What the server announces outside any call (`resources/updated`, `list_changed`),
    /// to every listening client's stream (`mcp::listen` picks what concerns whom).
    notices: broadcast::Sender<Value>,
}

/// Removes its call's entry when dropped.
pub struct Registered {
    relays: Arc<Relays>,
    token: String,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.relays.lock().remove(&self.token);
    }
}

fn key(token: &ProgressToken) -> String {
    match &token.0 {
        NumberOrString::String(token) => format!("s:{token}"),
        NumberOrString::Number(number) => format!("n:{number}"),
    }
}

impl Relays {
    pub fn new(notices: broadcast::Sender<Value>) -> Self {
        Relays { calls: Mutex::default(), notices }
    }

    /// Passes a server's announcement on to the listening clients (none listening: dropped).
    pub fn announce(&self, method: &str, params: Option<Value>) {
        let mut notice = json!({"jsonrpc": "2.0", "method": method});
        if let Some(params) = params {
            notice["params"] = params;
        }
        let _ = self.notices.send(notice);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (CallScope, RequestId)>> {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers the call that went upstream as request `request` with progress token
    /// `token`.
    pub fn register(self: &Arc<Self>, token: &ProgressToken, request: RequestId, scope: CallScope) -> Registered {
        let token = key(token);
        self.lock().insert(token.clone(), (scope, request));
        Registered { relays: Arc::clone(self), token }
    }

    /// The scope of the call that went upstream as request `request`: where a request
    /// the server sends on that call's stream goes, and where it is recorded.
    pub fn for_request(&self, request: &RequestId) -> Option<CallScope> {
        self.lock().values().find(|(_, id)| id == request).map(|(scope, _)| scope.clone())
    }

    /// Registered calls in flight (for tests of the bookkeeping).
    pub fn in_flight(&self) -> usize {
        self.lock().len()
    }

    pub fn progress(&self, params: ProgressNotificationParam) {
        let token = key(&params.progress_token);
        let calls = self.lock();
        let Some((CallScope { relay: Some(relay), .. }, _)) = calls.get(&token) else { return };
        let Some(client_token) = relay.progress_token.clone() else { return };
        let mut message = json!({"progressToken": client_token, "progress": params.progress});
        if let Some(total) = params.total {
            message["total"] = json!(total);
        }
        if let Some(text) = params.message {
            message["message"] = json!(text);
        }
        relay.send(json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": message}));
    }

    pub fn log(&self, params: LoggingMessageNotificationParam) {
        let calls = self.lock();
        // Exactly one call in flight (relayed or not), and it relays: otherwise the
        // message might be another call's.
        let mut in_flight = calls.values();
        let (Some((CallScope { relay: Some(relay), .. }, _)), None) = (in_flight.next(), in_flight.next()) else {
            return;
        };
        let Ok(mut params) = serde_json::to_value(params) else { return };
        if let Some(object) = params.as_object_mut() {
            object.remove("_meta");
        }
        let message: Value = json!({"jsonrpc": "2.0", "method": "notifications/message", "params": params});
        relay.send(message);
    }
}
