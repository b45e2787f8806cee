//! One message in, one reply out: the endpoint's dispatch by method.

use std::sync::Arc;

use super::exchange::{Caller, McpReply, RequestContext};
use super::jsonrpc::{ClientMessage, Method, Responder, METHOD_NOT_FOUND};
use super::lifecycle;
use super::surface::{self, Surface};
use super::tasks::Tasks;
use super::tools::{ToolDirectory, Tools};
use crate::approval::{Gate, ToolExecutor};

/// The MCP endpoint's logic, shared by every request. Cheap to clone.
#[derive(Clone)]
pub struct McpService {
    tools: Tools,
    surface: Arc<dyn Surface>,
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
        Self { tools: Tools { directory, executor, gate, tasks }, surface }
    }

    /// Answers one parsed message. Takes the message and context by value: a gated call
    /// may wait a long time, and holds neither while it does.
    pub async fn handle(&self, caller: &Caller, message: ClientMessage, context: RequestContext) -> McpReply {
        let ClientMessage::Request(request) = message else { return McpReply::Accepted };
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
                McpReply::response(surface::handle(self.surface.as_ref(), caller, method, params, &responder).await)
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
