//! The MCP side: tool definitions, routing and the optional call log.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolRequestParams, CallToolResponse, ContentBlock, IntoContents};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_handler, tool_router, ErrorData, RoleServer, ServerHandler};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::sandbox::{Sandbox, ToolError};

/// rmcp turns the `Err` side of a tool's `Result` into a result with `isError: true` whose
/// content is this text: failures stay tool results (MCP convention) rather than JSON-RPC
/// errors, so the calling agent sees the message and can react to it.
impl IntoContents for ToolError {
    fn into_contents(self) -> Vec<ContentBlock> {
        vec![ContentBlock::text(self.to_string())]
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct WriteFileArgs {
    /// File path inside the server's root; absolute paths are taken relative to the root.
    pub path: String,
    /// Text to write; replaces any existing content.
    pub content: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct PathArgs {
    /// Path inside the server's root; absolute paths are taken relative to it, "/" is the root.
    pub path: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct EchoArgs {
    /// Text to send back.
    pub message: String,
}

/// An MCP server exposing a few file tools confined to one root directory.
#[derive(Debug, Clone)]
pub struct FsServer {
    sandbox: Arc<Sandbox>,
    call_log: Option<Arc<PathBuf>>,
    tool_router: ToolRouter<Self>,
}

impl FsServer {
    pub fn new(sandbox: Sandbox, call_log: Option<PathBuf>) -> Self {
        Self { sandbox: Arc::new(sandbox), call_log: call_log.map(Arc::new), tool_router: Self::tool_router() }
    }

    /// Runs a blocking file operation off the async runtime's worker threads.
    async fn blocking<F>(&self, op: F) -> Result<String, ToolError>
    where
        F: FnOnce(&Sandbox) -> Result<String, ToolError> + Send + 'static,
    {
        let sandbox = Arc::clone(&self.sandbox);
        tokio::task::spawn_blocking(move || op(&sandbox))
            .await
            .unwrap_or_else(|e| Err(ToolError::Internal(format!("file operation failed: {e}"))))
    }

    /// Appends the tool name to the call log. Gateway tests count these lines to prove how
    /// often a call really reached the upstream, so the line is written when the call is
    /// dispatched to a tool, whether or not the tool then succeeds.
    async fn record_call(&self, tool: &str) {
        let Some(path) = self.call_log.clone() else {
            return;
        };
        let line = format!("{tool}\n");
        let written = tokio::task::spawn_blocking(move || {
            // O_APPEND plus a single small write keeps lines whole when several server
            // processes share one log file.
            std::fs::OpenOptions::new().create(true).append(true).open(path.as_path())?.write_all(line.as_bytes())
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot append to the call log"),
            Err(e) => tracing::warn!(error = %e, "call log writer failed"),
        }
    }
}

#[tool_router]
impl FsServer {
    // Descriptions are given as attributes, not taken from doc comments, because rmcp keeps
    // a doc comment's line breaks in the description clients show.
    #[tool(
        description = "Write a text file inside the server's root directory, creating missing \
                       parent directories and replacing any existing content. Absolute paths \
                       are resolved inside the root (\"/tmp/a.txt\" is ROOT/tmp/a.txt).",
        annotations(
            title = "Write file",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn write_file(
        &self,
        Parameters(WriteFileArgs { path, content }): Parameters<WriteFileArgs>,
    ) -> Result<String, ToolError> {
        self.blocking(move |sb| sb.write_file(&path, &content)).await
    }

    #[tool(
        description = "Read a UTF-8 text file inside the server's root directory and return its \
                       content.",
        annotations(title = "Read file", read_only_hint = true, open_world_hint = false)
    )]
    async fn read_file(&self, Parameters(PathArgs { path }): Parameters<PathArgs>) -> Result<String, ToolError> {
        self.blocking(move |sb| sb.read_file(&path)).await
    }

    #[tool(
        description = "List a directory inside the server's root: one entry per line, sorted \
                       by name, subdirectories marked with a trailing \"/\". \"/\" is the root.",
        annotations(title = "List directory", read_only_hint = true, open_world_hint = false)
    )]
    async fn list_directory(&self, Parameters(PathArgs { path }): Parameters<PathArgs>) -> Result<String, ToolError> {
        self.blocking(move |sb| sb.list_directory(&path)).await
    }

    #[tool(
        description = "Return the message unchanged.",
        annotations(title = "Echo", read_only_hint = true, open_world_hint = false)
    )]
    async fn echo(&self, Parameters(EchoArgs { message }): Parameters<EchoArgs>) -> String {
        message
    }
}

#[tool_handler(
    router = self.tool_router,
    name = "alexandria-example-fs",
    instructions = "File tools confined to one root directory. Paths are resolved inside the root: \"/notes/a.txt\" and \"notes/a.txt\" name the same file; paths leaving the root are refused."
)]
impl ServerHandler for FsServer {
    // Written by hand (the macro would generate a plain router dispatch) only to record
    // each call in the call log before dispatching it. Calls to unknown tools are not
    // logged: the router rejects them (-32602) without executing anything.
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        tracing::debug!(tool = %request.name, "tools/call");
        if self.tool_router.has_route(&request.name) {
            self.record_call(&request.name).await;
        }
        self.tool_router.call(ToolCallContext::new(self, request, context)).await
    }
}
