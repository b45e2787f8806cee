//! What crosses the endpoint's boundary: who calls and with what request context in,
//! an [`McpReply`] out. Plain values: the HTTP layer builds them from headers and turns
//! the reply into a response.

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

use crate::names::Actor;

/// Who is calling, with the policy that applies: an agent's token policy, or a user
/// acting through an agent's path with that agent's stored policy.
#[derive(Debug, Clone)]
pub struct Caller {
    pub agent: String,
    pub effective_tools: Vec<String>,
    pub approval_required_tools: Vec<String>,
    /// Downstream names of the prompts it may list and get (none: no prompts).
    pub allowed_prompts: Vec<String>,
    /// URI patterns (`*` any run of characters) of the resources it may list, read and
    /// subscribe to (none: no resources).
    pub allowed_resources: Vec<String>,
    /// The agent, or the user acting through its path; recorded in event metadata.
    pub actor: Actor,
}

impl Caller {
    pub fn needs_approval(&self, tool: &str) -> bool {
        self.approval_required_tools.iter().any(|t| t == tool)
    }

    pub fn may_call(&self, tool: &str) -> bool {
        self.effective_tools.iter().any(|t| t == tool)
    }

    pub fn may_get_prompt(&self, prompt: &str) -> bool {
        self.allowed_prompts.iter().any(|p| p == prompt)
    }

    /// A resource URI (or a resource template, as written) the policy lets it use.
    pub fn may_use_resource(&self, uri: &str) -> bool {
        self.allowed_resources.iter().any(|pattern| super::surface::glob_matches(pattern, uri))
    }
}

/// What the transport carried beside the message.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// The `MCP-Protocol-Version` header.
    pub protocol_version: Option<String>,
    /// The `X-Idempotency-Key` header as sent; checked only by `tools/call`.
    pub idempotency_key: Option<String>,
    /// The caller's trace id (W3C `traceparent` or `X-Request-Id`), if it sent one.
    pub trace_id: Option<String>,
    /// The client's `Accept` lists `text/event-stream`: a reply may be a stream of
    /// messages (progress and task status notifications, then the response).
    pub accepts_event_stream: bool,
}

/// What the endpoint answers.
pub enum McpReply {
    /// A notification or a response from the client: nothing to send back.
    Accepted,
    /// A JSON-RPC response; `session` is set on a successful `initialize`.
    Response { body: Value, session: Option<String> },
    /// A message the endpoint could not take (malformed, or a protocol version it does
    /// not speak): the JSON-RPC error, sent as a client error.
    Refused { body: Value },
    /// A response not known yet: a gated call waiting in-band for a decision. The
    /// transport answers at once and sends the body when this resolves, so a parked call
    /// holds only this future, not the request's handler stack.
    Deferred(DeferredResponse),
    /// Notifications about the request while it is in progress, then its response, the
    /// last message. Only for a client that accepts `text/event-stream`; the transport
    /// sends each message as an SSE event.
    Streamed(StreamedResponse),
}

/// The JSON-RPC response of a call still in progress.
pub type DeferredResponse = Pin<Box<dyn Future<Output = Value> + Send>>;
/// Messages of a request in progress, its response last.
pub type StreamedResponse = Pin<Box<dyn futures::Stream<Item = Value> + Send>>;

impl McpReply {
    pub(super) fn response(body: Value) -> Self {
        McpReply::Response { body, session: None }
    }
}
