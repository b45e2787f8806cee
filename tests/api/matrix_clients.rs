//! The stock MCP clients of the client matrix (`client_matrix.rs`) and one way to ask any
//! of them for one tool call: the Python SDK and FastMCP through
//! `tests/peers/matrix_client.py`, the TypeScript SDK through `tests/peers/matrix_client.mjs`
//! (one long-lived process each, running the scenarios it is sent concurrently), and rmcp's
//! client in this process. Every client reports what it returned or raised in one shape:
//! `{"returned": <CallToolResult>}` or `{"raised": {"class", "message", "code"}}`.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::oneshot;

use crate::gateway_helpers::python;
use crate::peers::{peer_file, repo};

/// Longer than any cell's longest call (the in-band wait, then an upstream call).
pub const CLIENT_DEADLINE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum McpClient {
    PythonSdk,
    FastMcp,
    TypeScriptSdk,
    Rmcp,
}

impl McpClient {
    pub const ALL: [McpClient; 4] = [Self::PythonSdk, Self::TypeScriptSdk, Self::Rmcp, Self::FastMcp];

    pub fn name(self) -> &'static str {
        match self {
            Self::PythonSdk => "python-sdk",
            Self::FastMcp => "fastmcp",
            Self::TypeScriptSdk => "typescript-sdk",
            Self::Rmcp => "rmcp",
        }
    }

    /// The class each client raises for a JSON-RPC error response: the "MCP error" the
    /// gateway means, as opposed to a validation or transport failure inside the client.
    pub fn mcp_error_class(self) -> &'static str {
        match self {
            Self::PythonSdk | Self::FastMcp => "mcp.shared.exceptions.MCPError",
            Self::TypeScriptSdk => "McpError",
            Self::Rmcp => "rmcp::ServiceError::McpError",
        }
    }
}

/// One tool call as a client makes it: connect, list the tools, call, close.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub url: String,
    pub token: String,
    pub tool: String,
    pub arguments: Value,
    pub key: Option<String>,
}

/// A driver process that runs scenarios sent as JSON lines and answers each with a line
/// carrying the scenario's id.
struct Driver {
    stdin: tokio::sync::Mutex<ChildStdin>,
    waiting: Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>,
    next_id: AtomicU64,
    _child: Child,
}

impl Driver {
    fn spawn(mut command: Command, what: &'static str) -> Self {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start the {what} driver: {e}"));
        let stdin = child.stdin.take().expect("piped stdin");
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let waiting: Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>> = Arc::default();
        let routes = Arc::clone(&waiting);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let answer: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| panic!("the {what} driver printed non-JSON: {line}"));
                let id = answer["id"].as_u64().unwrap_or_else(|| panic!("no id in {answer}"));
                if let Some(waiter) = routes.lock().unwrap().remove(&id) {
                    let _ = waiter.send(answer);
                }
            }
        });
        Self { stdin: tokio::sync::Mutex::new(stdin), waiting, next_id: AtomicU64::new(1), _child: child }
    }

    async fn run(&self, client: McpClient, scenario: &Scenario) -> Value {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, answer) = oneshot::channel();
        self.waiting.lock().unwrap().insert(id, sender);
        let line = json!({
            "id": id, "client": client.name(), "url": scenario.url, "token": scenario.token,
            "tool": scenario.tool, "arguments": scenario.arguments, "key": scenario.key,
        });
        let mut stdin = self.stdin.lock().await;
        stdin.write_all(format!("{line}\n").as_bytes()).await.expect("send a scenario to a driver");
        stdin.flush().await.expect("flush");
        drop(stdin);
        let mut answer = tokio::time::timeout(CLIENT_DEADLINE, answer)
            .await
            .unwrap_or_else(|_| panic!("{} answered nothing within {CLIENT_DEADLINE:?}: {line}", client.name()))
            .unwrap_or_else(|_| panic!("the driver of {} exited (its stderr is above)", client.name()));
        let object = answer.as_object_mut().expect("an object");
        object.remove("id");
        object.remove("client");
        answer
    }
}

/// The four clients, ready to run scenarios.
pub struct Clients {
    python: Driver,
    node: Driver,
}

impl Clients {
    pub fn start(peers: &Path) -> Self {
        let python_bin = python(peers);
        let fastmcp = std::process::Command::new(&python_bin).args(["-c", "import fastmcp"]).status();
        assert!(
            fastmcp.is_ok_and(|status| status.success()),
            "fastmcp is missing from .peers/venv: run scripts/install-peers.sh"
        );
        let mut python_command = Command::new(python_bin);
        python_command.arg(repo().join("tests/peers/matrix_client.py"));
        peer_file(peers, "node/node_modules/@modelcontextprotocol/sdk/package.json");
        let mut node_command = Command::new("node");
        node_command
            .arg(repo().join("tests/peers/matrix_client.mjs"))
            .env("MATRIX_NODE_MODULES", peers.join("node/node_modules"));
        Self { python: Driver::spawn(python_command, "Python"), node: Driver::spawn(node_command, "Node") }
    }

    /// What `client` returned or raised for one call.
    pub async fn run(&self, client: McpClient, scenario: &Scenario) -> Value {
        match client {
            McpClient::PythonSdk | McpClient::FastMcp => self.python.run(client, scenario).await,
            McpClient::TypeScriptSdk => self.node.run(client, scenario).await,
            McpClient::Rmcp => tokio::time::timeout(CLIENT_DEADLINE, rmcp_call(scenario))
                .await
                .unwrap_or_else(|_| panic!("rmcp answered nothing within {CLIENT_DEADLINE:?}: {scenario:?}")),
        }
    }
}

/// rmcp's Streamable HTTP client, as its examples use it. rmcp does not check a result
/// against the tool's `outputSchema` itself; the matrix checks that for it.
async fn rmcp_call(scenario: &Scenario) -> Value {
    use reqwest::header::{HeaderName, HeaderValue};
    use rmcp::model::CallToolRequestParams;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::{ServiceError, ServiceExt};

    let mut headers = HashMap::from([(
        HeaderName::from_static("authorization"),
        HeaderValue::from_str(&format!("Bearer {}", scenario.token)).expect("a header value"),
    )]);
    if let Some(key) = &scenario.key {
        headers.insert(HeaderName::from_static("x-idempotency-key"), HeaderValue::from_str(key).expect("a key"));
    }
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(scenario.url.clone()).custom_headers(headers),
    );
    let raised = |class: &str, message: String, code: Option<i32>| json!({"raised": {"class": format!("rmcp::{class}"), "message": message, "code": code}});
    let client = match ().serve(transport).await {
        Ok(client) => client,
        Err(error) => return raised("ClientInitializeError", error.to_string(), None),
    };
    let arguments = scenario.arguments.as_object().cloned().unwrap_or_default();
    let answer = match client.list_all_tools().await {
        Err(error) => Err(error),
        Ok(_) => client.call_tool(CallToolRequestParams::new(scenario.tool.clone()).with_arguments(arguments)).await,
    };
    let _ = client.cancel().await;
    match answer {
        Ok(result) => json!({"returned": serde_json::to_value(result).expect("a CallToolResult serializes")}),
        Err(ServiceError::McpError(error)) => {
            raised("ServiceError::McpError", error.message.to_string(), Some(error.code.0))
        }
        Err(error) => raised("ServiceError", format!("{error:?}"), None),
    }
}
