//! The vocabulary of the gateway tests: a gateway app with a real upstream registered
//! through the admin API, MCP calls over HTTP, decisions, metrics and event histories.
#![allow(dead_code)] // shared by the gateway test modules; not each uses every helper

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use alexandria::startup::Settings;
use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::process::{Child, Command};
use uuid::Uuid;

use crate::auth_helpers::{create_agent, mint_agent_token, Session};
use crate::helpers::{fresh_database, spawn_app_on, test_settings, TestApp};
use crate::peers::{calls_logged, example_fs_bin, listening_port, peer_file, repo};

/// The JSON-RPC error codes of the runbook and the MCP spec.
pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const ACCESS_DENIED: i64 = -32003;
pub const OUTCOME_UNKNOWN: i64 = -32004;
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

pub const APPROVAL_META: &str = "alexandria/approval";

pub fn settings_with_wait(wait: Duration) -> Settings {
    Settings { approval_wait: wait, ..test_settings() }
}

/// A gateway on a fresh database whose gated calls wait `wait` in-band.
pub async fn spawn_gateway(wait: Duration) -> TestApp {
    spawn_app_on(fresh_database().await, settings_with_wait(wait)).await
}

// ------------------------------------------------------------------------ upstreams ----

/// The example fs server behind a `sh` wrapper that starts it only while a flag file
/// exists, so "upstream down" stays down: the gateway's supervisor restarts a stdio
/// server that dies, and this one then exits at once.
pub struct StoppableFs {
    dir: tempfile::TempDir,
}

impl StoppableFs {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("up"), "").expect("flag");
        Self { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn config(&self) -> Value {
        let script = format!(
            "[ -e '{up}' ] || exit 1; echo $$ >> '{pids}'; exec '{bin}' --root '{root}'",
            up = self.path("up").display(),
            pids = self.path("pids").display(),
            bin = example_fs_bin().display(),
            root = self.path("root").display(),
        );
        json!({"name": "fs", "transport": "stdio", "command": "sh", "args": ["-c", script]})
    }

    /// Stops every instance (one per gateway) until [`Self::start`].
    pub fn stop(&self) {
        std::fs::remove_file(self.path("up")).expect("remove the flag");
        let pids = std::fs::read_to_string(self.path("pids")).expect("pids written");
        for pid in pids.lines().filter_map(|p| p.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }

    /// Lets the gateway's supervisor start it again (on its next reconnect attempt).
    pub fn start(&self) {
        std::fs::write(self.path("up"), "").expect("flag");
    }

    /// A file the server wrote, as its clients name it.
    pub fn file(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(self.path("root").join(path.trim_start_matches('/'))).ok()
    }
}

/// The example filesystem server (`alexandria-example-fs`), registered through
/// `POST /admin/mcp-servers`, with its root directory and its log of real executions.
pub struct FsUpstream {
    pub name: String,
    pub root: PathBuf,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl FsUpstream {
    /// Tool names in the order the server executed them (`FS_SERVER_CALL_LOG`).
    pub fn calls(&self) -> Vec<String> {
        calls_logged(&self.log)
    }

    /// A file's content as the server's clients name it (`/tmp/a` is `<root>/tmp/a`).
    pub fn file(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(self.root.join(path.trim_start_matches('/'))).ok()
    }
}

pub async fn register_server(app: &TestApp, admin: &Session, config: &Value) -> Value {
    let response = app
        .client
        .post(app.url("/admin/mcp-servers"))
        .bearer_auth(&admin.access_token)
        .json(config)
        .send()
        .await
        .expect("register an MCP server");
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!(status, 201, "register {config}: {body}");
    assert_eq!(body["name"], config["name"], "{body}");
    assert_eq!(body["status"], "connected", "{body}");
    body
}

pub async fn register_fs(app: &TestApp, admin: &Session, name: &str, tool_prefix: Option<&str>) -> FsUpstream {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    let log = dir.path().join("calls.log");
    let mut config = json!({
        "name": name,
        "transport": "stdio",
        "command": example_fs_bin(),
        "args": ["--root", root],
        "env": {"FS_SERVER_CALL_LOG": log},
    });
    if let Some(prefix) = tool_prefix {
        config["tool_prefix"] = json!(prefix);
    }
    register_server(app, admin, &config).await;
    FsUpstream { name: name.to_owned(), root, log, _dir: dir }
}

/// Creates an agent and mints its token.
pub async fn agent_token(app: &TestApp, admin: &Session, name: &str, allowed: &[&str], approval: &[&str]) -> String {
    create_agent(app, admin, name, allowed, approval).await;
    mint_agent_token(app, admin, name).await
}

// ------------------------------------------------------------------------- MCP calls ----

pub fn tool_call(id: i64, tool: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": arguments}})
}

pub fn request(id: i64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// One HTTP exchange with the MCP endpoint.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    /// The body as JSON; `Null` when empty or not JSON.
    pub body: Value,
}

/// POSTs raw bytes with the given headers (Content-Type is application/json unless given).
pub async fn post_raw(
    app: &TestApp,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Reply {
    post_raw_to(&app.client, &app.address, path, token, headers, body).await
}

pub async fn post_raw_to(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Reply {
    let mut request = client.post(format!("{base}{path}")).body(body);
    if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-type")) {
        request = request.header("content-type", "application/json");
    }
    if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("accept")) {
        request = request.header("accept", "application/json, text/event-stream");
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("POST to the MCP endpoint");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("read the body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply { status, headers, text, body }
}

pub async fn post_mcp(app: &TestApp, path: &str, token: &str, key: Option<&str>, message: &Value) -> Reply {
    let key_header = key.map(|k| [("x-idempotency-key", k)]);
    let headers: &[(&str, &str)] = key_header.as_ref().map(|h| h.as_slice()).unwrap_or(&[]);
    post_raw(app, path, Some(token), headers, message.to_string().into_bytes()).await
}

/// A `tools/call` through `/mcp/agents/{agent}` that must get HTTP 200; the JSON-RPC body.
pub async fn call(
    app: &TestApp,
    agent: &str,
    token: &str,
    key: Option<&str>,
    id: i64,
    tool: &str,
    arguments: Value,
) -> Value {
    let reply = post_mcp(app, &format!("/mcp/agents/{agent}"), token, key, &tool_call(id, tool, arguments)).await;
    assert_eq!(reply.status, 200, "tools/call {tool}: {}", reply.text);
    reply.body
}

/// Checks a pending envelope field by field: the runbook's `{pending, request_id,
/// retry_after_ms}` and a valid `CallToolResult` with `_meta["alexandria/approval"]`, for a
/// tool without an `outputSchema` (`isError: false`).
pub fn assert_pending_envelope(body: &Value, id: i64, request_id: Uuid, key: Option<&str>, status: &str) {
    assert_pending_answer(body, id, request_id, key, status, false);
}

/// The pending envelope of a tool that declares an `outputSchema`: the same fields, with
/// `isError: true` and no `structuredContent` (clients skip output validation for errors).
pub fn assert_pending_envelope_of_typed_tool(body: &Value, id: i64, request_id: Uuid, key: Option<&str>, status: &str) {
    assert_pending_answer(body, id, request_id, key, status, true);
    assert!(body["result"].get("structuredContent").is_none(), "{body}");
}

fn assert_pending_answer(body: &Value, id: i64, request_id: Uuid, key: Option<&str>, status: &str, is_error: bool) {
    assert_eq!(body["jsonrpc"], "2.0", "{body}");
    assert_eq!(body["id"], id, "{body}");
    assert!(body.get("error").is_none(), "a pending envelope is a result: {body}");
    let result = &body["result"];
    assert_eq!(result["pending"], true, "{body}");
    assert_eq!(result["request_id"], request_id.to_string(), "{body}");
    assert_eq!(result["retry_after_ms"], 2000, "{body}");
    assert_eq!(result["isError"], is_error, "{body}");
    let content = result["content"].as_array().unwrap_or_else(|| panic!("content is an array: {body}"));
    assert_eq!(content.len(), 1, "{body}");
    assert_eq!(content[0]["type"], "text", "{body}");
    let text = content[0]["text"].as_str().expect("text");
    assert!(text.contains(&request_id.to_string()), "the text names the request: {text}");
    assert!(text.contains("Retry") && text.contains("2000 ms"), "the text says to retry: {text}");
    match key {
        Some(_) => assert!(text.contains("X-Idempotency-Key"), "{text}"),
        None => assert!(text.contains("same tool and arguments"), "{text}"),
    }
    let meta = &result["_meta"][APPROVAL_META];
    assert_eq!(meta["pending"], true, "{body}");
    assert_eq!(meta["request_id"], request_id.to_string(), "{body}");
    assert_eq!(meta["retry_after_ms"], 2000, "{body}");
    assert_eq!(meta["status"], status, "{body}");
    assert_eq!(meta["idempotency_key"], key.map_or(Value::Null, |k| json!(k)), "{body}");
    let expires_at = meta["expires_at"].as_str().expect("expires_at");
    chrono::DateTime::parse_from_rfc3339(expires_at).expect("expires_at is RFC 3339");
}

/// The JSON-RPC error of a reply: `(code, message)`.
pub fn rpc_error(body: &Value) -> (i64, String) {
    assert!(body.get("result").is_none(), "expected an error, got a result: {body}");
    let code = body["error"]["code"].as_i64().unwrap_or_else(|| panic!("error.code in {body}"));
    let message = body["error"]["message"].as_str().unwrap_or_else(|| panic!("error.message in {body}")).to_owned();
    (code, message)
}

// ------------------------------------------------------------------------- decisions ----

pub async fn approve(app: &TestApp, by: &Session, id: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/admin/permissions/{id}/approve")))
        .bearer_auth(&by.access_token)
        .send()
        .await
        .expect("approve")
}

pub async fn reject(app: &TestApp, by: &Session, id: &str, reason: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/admin/permissions/{id}/reject")))
        .bearer_auth(&by.access_token)
        .json(&json!({"reason": reason}))
        .send()
        .await
        .expect("reject")
}

/// Approves and checks the answer is 200 with the approved DTO.
pub async fn approve_ok(app: &TestApp, by: &Session, id: Uuid) -> Value {
    let response = approve(app, by, &id.to_string()).await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("DTO");
    assert_eq!(status, 200, "approve {id}: {body}");
    assert_eq!(body["status"], "approved", "{body}");
    body
}

// -------------------------------------------------------------------------- metrics ----

/// `GET /metrics`: the text exposition (checked to be served as Prometheus text).
pub async fn scrape(app: &TestApp) -> String {
    let response = app.client.get(app.url("/metrics")).send().await.expect("GET /metrics");
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    response.text().await.expect("metrics text")
}

/// The value of the sample `name` whose labels are exactly `labels` (in any order).
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut want: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    want.sort();
    text.lines().filter(|line| !line.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric_name, label_text) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.strip_suffix('}')?),
            None => (series, ""),
        };
        if metric_name != name {
            return None;
        }
        let mut have: Vec<String> = label_text.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect();
        have.sort();
        (have == want).then(|| value.parse().ok()).flatten()
    })
}

pub fn pending_gauge(text: &str, tool: &str) -> Option<f64> {
    metric(text, "alexandria_permission_request_pending", &[("request_type", "tool_call"), ("tool", tool)])
}

pub fn events_counter(text: &str, tool: &str, event: &str) -> Option<f64> {
    metric(
        text,
        "alexandria_permission_request_events_total",
        &[("request_type", "tool_call"), ("tool", tool), ("event", event)],
    )
}

// --------------------------------------------------------------------------- events ----

/// A request's event types, oldest first, straight from the event store.
pub async fn event_types(pool: &PgPool, id: Uuid) -> Vec<String> {
    sqlx::query_scalar("SELECT event_type FROM events WHERE aggregate_id = $1 ORDER BY sequence")
        .bind(id.to_string())
        .fetch_all(pool)
        .await
        .expect("events of a request")
}

// ------------------------------------------------------------------------ processes ----

/// The Python `mcp` venv's interpreter.
pub fn python(peers: &Path) -> PathBuf {
    peer_file(peers, "venv/bin/python")
}

/// The Python Streamable HTTP peer (`tests/peers/python_http_server.py`) plus the tool
/// `logged_sleep(seconds)`, which appends a line to `call_log` when it starts running and
/// then sleeps: a slow upstream call whose executions can be counted. Killed on drop.
pub struct SlowPythonServer {
    pub url: String,
    pub port: u16,
    pub call_log: PathBuf,
    pub child: Child,
}

const LOGGED_SLEEP_SERVER: &str = r#"
import os, sys
sys.path.insert(0, sys.argv[1])
sys.argv = [sys.argv[0]] + sys.argv[2:]
import anyio
import python_http_server as peer

LOG = os.environ["PEER_CALL_LOG"]

@peer.server.tool()
async def logged_sleep(seconds: float) -> str:
    """Record that a call started, then sleep."""
    with open(LOG, "a") as log:
        log.write("logged_sleep\n")
    await anyio.sleep(seconds)
    return f"slept {seconds}"

peer.main()
"#;

pub async fn slow_python_server(peers: &Path, call_log: &Path) -> SlowPythonServer {
    slow_python_server_on(peers, call_log, 0).await
}

/// [`slow_python_server`] on `port` (0: a free one), e.g. to start it again where it was.
pub async fn slow_python_server_on(peers: &Path, call_log: &Path, port: u16) -> SlowPythonServer {
    let (port, child) = python_peer_on(peers, LOGGED_SLEEP_SERVER, port, &[("PEER_CALL_LOG", call_log)]).await;
    SlowPythonServer { url: format!("http://127.0.0.1:{port}/mcp"), port, call_log: call_log.to_owned(), child }
}

/// A Python Streamable HTTP peer: `script` (run with `tests/peers` on its path, usually
/// importing `python_http_server` and adding tools) on a free port, with `env`; its URL and
/// process (killed on drop) once it says `LISTENING <port>`.
pub async fn python_peer(peers: &Path, script: &str, env: &[(&str, &Path)]) -> (String, Child) {
    let (port, child) = python_peer_on(peers, script, 0, env).await;
    (format!("http://127.0.0.1:{port}/mcp"), child)
}

async fn python_peer_on(peers: &Path, script: &str, port: u16, env: &[(&str, &Path)]) -> (u16, Child) {
    let mut child = Command::new(python(peers))
        .arg("-c")
        .arg(script)
        .arg(repo().join("tests/peers"))
        .arg(port.to_string())
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start the Python MCP server");
    let port = listening_port(&mut child, "the Python MCP server").await;
    (port, child)
}
