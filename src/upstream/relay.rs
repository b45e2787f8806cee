//! One server's relayed calls: the pass-through calls in flight whose client reads a
//! stream, and where the server's progress and log messages go.
//!
//! A relayed call goes upstream with the progress token rmcp gives every request, so
//! the server's `notifications/progress` name their call and reach its client only,
//! with the client's token put back. A `notifications/message` names no request: it
//! reaches the relayed call in flight on that server when there is exactly one, and no
//! one otherwise, so a client never sees a message another client's call caused.
//! Entries leave with their call (a guard), whether or not the client is still there.

// `notifications/message` is deprecated at 2026-07-28 (SEP-2577); servers of earlier
// revisions still send it.
#![allow(deprecated)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use rmcp::model::{LoggingMessageNotificationParam, NumberOrString, ProgressNotificationParam, ProgressToken};
use serde_json::{json, Value};

use crate::approval::CallRelay;

#[derive(Default)]
pub struct Relays {
    calls: Mutex<HashMap<String, CallRelay>>,
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
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CallRelay>> {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers the call that went upstream with progress token `token`.
    pub fn register(self: &Arc<Self>, token: &ProgressToken, relay: CallRelay) -> Registered {
        let token = key(token);
        self.lock().insert(token.clone(), relay);
        Registered { relays: Arc::clone(self), token }
    }

    /// Relayed calls in flight (for tests of the bookkeeping).
    pub fn in_flight(&self) -> usize {
        self.lock().len()
    }

    pub fn progress(&self, params: ProgressNotificationParam) {
        let token = key(&params.progress_token);
        let calls = self.lock();
        let Some(relay) = calls.get(&token) else { return };
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
        let mut relays = calls.values();
        let (Some(relay), None) = (relays.next(), relays.next()) else { return };
        let Ok(mut params) = serde_json::to_value(params) else { return };
        if let Some(object) = params.as_object_mut() {
            object.remove("_meta");
        }
        let message: Value = json!({"jsonrpc": "2.0", "method": "notifications/message", "params": params});
        relay.send(message);
    }
}
