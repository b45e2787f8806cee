//! What an upstream says to the client during a call that is not the call's answer:
//! `notifications/progress` and `notifications/message`, passed on as JSON-RPC
//! notifications in the client's terms (its own progress token). A channel, so the
//! executor never waits for the client: when the client has hung up, messages are
//! dropped and the call goes on.

use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;

/// The client side of one call's messages.
#[derive(Debug, Clone)]
pub struct CallRelay {
    /// The progress token the client sent with its call (`_meta.progressToken`), if any:
    /// upstream progress is passed on only when the client asked for it.
    pub progress_token: Option<Value>,
    /// Where each message goes, a whole JSON-RPC notification.
    pub messages: UnboundedSender<Value>,
}

impl CallRelay {
    /// Passes one message on; false when the client is gone.
    pub fn send(&self, message: Value) -> bool {
        self.messages.send(message).is_ok()
    }
}
