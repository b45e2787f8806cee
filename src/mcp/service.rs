//! One message in, one reply out: the endpoint's dispatch by method.

use std::sync::Arc;

use super::exchange::{Caller, McpReply, RequestContext, StreamedResponse};
use super::jsonrpc::{ClientMessage, Method, RequestId, Responder, METHOD_NOT_FOUND};
use super::lifecycle;
use super::listen::{self, Subscriptions};
use super::surface::{self, Surface};
use super::tasks::Tasks;
use super::tools::{ToolDirectory, Tools};
use crate::approval::{Gate, ToolExecutor};

/// The MCP endpoint's logic, shared by every request. Cheap to clone.
#[derive(Clone)]
pub struct McpService {
    tools: Tools,
    surface: Arc<dyn Surface>,
    subscriptions: Arc<Subscriptions>,
}

impl McpService {
    /// `pool` reads the permission requests' read model (`tasks/list`).
    pub fn new(
        directory: Arc<dyn ToolDirectory>,
        executor: Arc<dyn ToolExecutor>,
        surface: Arc<dyn Surface>,
        gate: Gate,
        pool: sqlx::PgPool,
    ) -> Self {
        let tasks = Tasks { gate: gate.clone(), pool };
        let answers = Arc::default();
        Self { tools: Tools { directory, executor, gate, tasks, answers }, surface, subscriptions: Arc::default() }
    }

    /// The caller's server-to-client stream outside any request (`GET` of the endpoint):
    /// the upstreams' announcements that concern it, for as long as it is read.
    pub fn listen(&self, caller: &Caller, context: &RequestContext) -> StreamedResponse {
        let session = context.session_id.clone().unwrap_or_default();
        listen::stream(caller.clone(), session, self.surface.notices(), Arc::clone(&self.subscriptions))
    }

    /// Answers one parsed message. Takes the message and context by value: a gated call
    /// may wait a long time, and holds neither while it does.
    pub async fn handle(&self, caller: &Caller, message: ClientMessage, context: RequestContext) -> McpReply {
        let request = match message {
            ClientMessage::Request(request) => request,
            // An answer to a request relayed during one of this agent's calls.
            ClientMessage::Answer { id: RequestId::String(id), response } => {
                self.tools.answers.deliver(&caller.agent, &id, response);
                return McpReply::Accepted;
            }
            ClientMessage::Answer { .. } | ClientMessage::NoAnswer => return McpReply::Accepted,
        };
        let era = match lifecycle::era_of(
            context.protocol_version.as_deref(),
            request.meta.protocol_version.as_deref(),
            &request.id,
        ) {
            Ok(era) => era,
            Err(body) => return McpReply::Refused { body },
        };
        let responder = Responder { id: request.id, era };
        match request.method {
            Method::CallTool(params) => self.tools.call(caller, params, request.meta, context, responder).await,
            Method::Task(method, task_id) => {
                self.tools.tasks.handle(caller, method, &task_id, &context, responder).await
            }
            Method::ListTasks { cursor } => McpReply::response(self.tools.tasks.list(caller, cursor, &responder).await),
            Method::ListTools => McpReply::response(self.tools.list(caller, &responder)),
            Method::Initialize(params) => McpReply::Response {
                body: lifecycle::initialize(&responder, &params.protocol_version),
                session: Some(uuid::Uuid::new_v4().to_string()),
            },
            Method::Surface(method, params) => {
                let session = context.session_id.as_deref().unwrap_or_default();
                let subscriber = surface::Subscriber { subscriptions: &self.subscriptions, session };
                let surface = self.surface.as_ref();
                McpReply::response(surface::handle(surface, caller, method, params, &responder, subscriber).await)
            }
            Method::Discover => McpReply::response(lifecycle::discover(&responder)),
            Method::Ping => McpReply::response(responder.result(serde_json::json!({}))),
            Method::Unsupported(method) => McpReply::response(responder.error(
                METHOD_NOT_FOUND,
                format!("method {method:?} is not supported by this gateway"),
                None,
            )),
        }
    }
}
