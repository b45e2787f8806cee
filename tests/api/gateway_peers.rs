//! The gateway between real MCP peers: the Python `mcp` client (2.x) downstream, in both
//! its modes, and the official npm filesystem server upstream.
//!
//! The peers come from `scripts/install-peers.sh` (`.peers/`); without them a test is
//! skipped loudly, and under CI=true it fails.

use std::process::Stdio;
use std::time::Duration;

use alexandria_domain::request_id;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use uuid::Uuid;

use crate::auth_helpers::*;
use crate::gateway_helpers::*;
use crate::helpers::{eventually, TestApp};
use crate::peers::{peer_file, peers, repo, text_of};

const PEER_DEADLINE: Duration = Duration::from_secs(60);

/// Starts `tests/peers/python_client.py` against `url` with `token` and the driver's
/// `args` (its mode, ...): the child, its stdin (the test's commands) and its stdout lines
/// (the steps it reports).
pub(crate) fn spawn_python_client(
    peers: &std::path::Path,
    url: &str,
    token: &str,
    args: &[&str],
) -> (Child, ChildStdin, Lines<BufReader<ChildStdout>>) {
    let mut child = Command::new(python(peers))
        .arg(repo().join("tests/peers/python_client.py"))
        .arg(url)
        .arg(token)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start the Python MCP client");
    let stdin = child.stdin.take().expect("piped stdin");
    let lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    (child, stdin, lines)
}

pub(crate) async fn next_step(lines: &mut Lines<BufReader<ChildStdout>>, want: &str) -> Value {
    let line = tokio::time::timeout(PEER_DEADLINE, lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("the Python client printed no {want:?} line within {PEER_DEADLINE:?}"))
        .expect("read the client's stdout")
        .unwrap_or_else(|| panic!("the Python client exited before {want:?} (its stderr is above)"));
    let step: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
    assert_eq!(step["step"], want, "{step}");
    step
}

/// Runs `tests/peers/python_client.py` in `mode` as `agent` against the gateway: list,
/// plain call, gated call (pending), approval from here, retry (the real result).
async fn python_client_walk(
    app: &TestApp,
    admin: &Session,
    fs: &FsUpstream,
    agent: &str,
    mode: &str,
    peers: &std::path::Path,
) {
    let token = agent_token(app, admin, agent, &["echo", "read_file", "write_file"], &["write_file"]).await;
    let (mut child, mut stdin, mut lines) =
        spawn_python_client(peers, &app.url(&format!("/mcp/agents/{agent}")), &token, &[mode]);

    let session = next_step(&mut lines, "session").await;
    match mode {
        "auto" => assert_eq!(session["protocol_version"], "2026-07-28", "server/discover was used: {session}"),
        _ => assert!(
            ["2025-06-18", "2025-11-25"].contains(&session["protocol_version"].as_str().unwrap_or_default()),
            "an initialize handshake version: {session}"
        ),
    }
    assert_eq!(session["server"], "alexandria", "{session}");

    let tools = next_step(&mut lines, "tools").await;
    assert_eq!(tools["tools"], json!(["echo", "read_file", "write_file"]), "only the agent's tools: {tools}");
    assert_eq!(tools["approval"], json!({"echo": false, "read_file": false, "write_file": true}), "{tools}");

    let plain = next_step(&mut lines, "plain").await;
    assert_eq!(plain["result"]["content"], json!([{"type": "text", "text": "hi from python"}]), "{plain}");
    assert_eq!(plain["result"]["isError"], false, "{plain}");

    // The pending envelope, parsed by the SDK as a CallToolResult.
    let pending = next_step(&mut lines, "pending").await;
    let result = &pending["result"];
    let id = request_id(agent, "python-client-key-1");
    assert_eq!(result["isError"], false, "{pending}");
    assert_eq!(result["content"][0]["type"], "text", "{pending}");
    assert!(text_of(result).contains(&id.to_string()), "{pending}");
    let meta = &result["_meta"][APPROVAL_META];
    assert_eq!(meta["pending"], true, "{pending}");
    assert_eq!(meta["request_id"], id.to_string(), "{pending}");
    assert_eq!(meta["retry_after_ms"], 2000, "{pending}");
    assert_eq!(meta["status"], "pending", "{pending}");
    assert_eq!(meta["idempotency_key"], "python-client-key-1", "{pending}");
    assert_eq!(fs.file("/py/hello.txt"), None, "not written before the approval");

    approve_ok(app, admin, id).await;
    stdin.write_all(b"approved\n").await.expect("tell the client to retry");
    stdin.flush().await.unwrap();

    let last = next_step(&mut lines, "final").await;
    assert_eq!(
        last["result"]["content"],
        json!([{"type": "text", "text": "wrote 29 bytes to /py/hello.txt"}]),
        "{last}"
    );
    assert_eq!(last["result"]["isError"], false, "{last}");
    assert!(last["result"].get("_meta").is_none(), "the real result, not an envelope: {last}");
    assert_eq!(fs.file("/py/hello.txt").as_deref(), Some("written via the python client"));

    let status = tokio::time::timeout(PEER_DEADLINE, child.wait()).await.expect("the client exits").expect("wait");
    assert!(status.success(), "the Python client failed: {status}");
    assert_eq!(event_types(&app.db.pool, id).await, ["Created", "Approved", "Executed", "ResultCached"]);
}

#[tokio::test]
async fn the_python_mcp_client_lists_calls_waits_for_approval_and_gets_the_result_in_both_modes() {
    let Some(peers) = peers("the_python_mcp_client_lists_calls_waits_for_approval_and_gets_the_result_in_both_modes")
    else {
        return;
    };
    let app = spawn_gateway(Duration::from_millis(500)).await;
    let admin = admin_session(&app).await;
    let fs = register_fs(&app, &admin, "fs", None).await;

    python_client_walk(&app, &admin, &fs, "py-auto", "auto", &peers).await;
    assert_eq!(fs.calls(), ["echo", "write_file"]);
    std::fs::remove_file(fs.root.join("py/hello.txt")).unwrap();

    python_client_walk(&app, &admin, &fs, "py-legacy", "legacy", &peers).await;
    assert_eq!(fs.calls(), ["echo", "write_file", "echo", "write_file"]);
    app.stop().await;
}

/// The defect of issue 11: the Python SDK validates every non-error result of a tool that
/// declares an `outputSchema` (every typed tool of a Python `MCPServer`) and raised
/// `RuntimeError: ... has an output schema but did not return structured content` on the
/// pending envelope. Now it gets the pending answer, then the structured result.
#[tokio::test]
async fn the_python_mcp_client_waits_for_approval_of_a_tool_with_an_output_schema_then_gets_its_structured_result() {
    let Some(peers) = peers(
        "the_python_mcp_client_waits_for_approval_of_a_tool_with_an_output_schema_then_gets_its_structured_result",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (app, admin, _upstream, _token) = python_upstream_gateway(&peers, dir.path(), Duration::from_millis(200)).await;
    for (agent, mode) in [("typed-auto", "auto"), ("typed-legacy", "legacy")] {
        let token = agent_token(&app, &admin, agent, &["add"], &["add"]).await;
        let (mut child, mut stdin, mut lines) =
            spawn_python_client(&peers, &app.url(&format!("/mcp/agents/{agent}")), &token, &[mode, "typed"]);
        next_step(&mut lines, "session").await;
        let tools = next_step(&mut lines, "tools").await;
        assert_eq!(tools["tools"], json!(["add"]), "{tools}");

        let pending = next_step(&mut lines, "pending").await;
        let result = &pending["result"];
        let id = request_id(agent, "python-client-key-1");
        assert_eq!(result["isError"], true, "an error result, so the SDK does not validate it: {pending}");
        assert!(result.get("structuredContent").is_none(), "{pending}");
        assert!(text_of(result).contains(&id.to_string()), "{pending}");
        let meta = &result["_meta"][APPROVAL_META];
        assert_eq!(meta["pending"], true, "{pending}");
        assert_eq!(meta["request_id"], id.to_string(), "{pending}");
        assert_eq!(meta["retry_after_ms"], 2000, "{pending}");

        approve_ok(&app, &admin, id).await;
        stdin.write_all(b"approved\n").await.expect("tell the client to retry");
        stdin.flush().await.unwrap();
        let last = next_step(&mut lines, "final").await;
        assert_eq!(last["result"]["structuredContent"], json!({"result": 42}), "{last}");
        assert_eq!(last["result"]["isError"], false, "{last}");
        assert_eq!(text_of(&last["result"]), "42", "{last}");
        assert!(last["result"].get("_meta").is_none(), "the real result, not an envelope: {last}");

        let status = tokio::time::timeout(PEER_DEADLINE, child.wait()).await.expect("the client exits").expect("wait");
        assert!(status.success(), "the Python client failed: {status}");
        assert_eq!(event_types(&app.db.pool, id).await, ["Created", "Approved", "Executed", "ResultCached"]);
    }

    // The same call through curl keeps the runbook's shape, as an error result.
    let token = agent_token(&app, &admin, "typed-curl", &["add"], &["add"]).await;
    let id = request_id("typed-curl", "typed-curl-key");
    let first = call(&app, "typed-curl", &token, Some("typed-curl-key"), 1, "add", json!({"a": 1, "b": 2})).await;
    assert_pending_envelope_of_typed_tool(&first, 1, id, Some("typed-curl-key"), "pending");
    app.stop().await;
}

/// What a client that honours `outputSchema` must check of a result: an error result is
/// not validated; any other carries `structuredContent` with the schema's required fields.
/// (rmcp's client does not validate on its own, so the test does it for it.)
fn valid_for_output_schema(result: &rmcp::model::CallToolResult, schema: &serde_json::Map<String, Value>) -> bool {
    if result.is_error == Some(true) {
        return result.structured_content.is_none();
    }
    let Some(Value::Object(structured)) = &result.structured_content else { return false };
    let required = schema.get("required").and_then(Value::as_array).cloned().unwrap_or_default();
    required.iter().filter_map(Value::as_str).all(|field| structured.contains_key(field))
}

/// rmcp's own client (the Rust SDK) through the gateway, on the same gated typed tool:
/// it parses the pending answer as a `CallToolResult` valid for the tool's schema, then
/// gets the structured result after an approval.
#[tokio::test]
async fn the_rmcp_client_gets_a_valid_pending_answer_then_the_structured_result_of_a_tool_with_an_output_schema() {
    use std::collections::HashMap;

    use reqwest::header::{HeaderName, HeaderValue};
    use rmcp::model::CallToolRequestParams;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::ServiceExt;

    let Some(peers) =
        peers("the_rmcp_client_gets_a_valid_pending_answer_then_the_structured_result_of_a_tool_with_an_output_schema")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (app, admin, _upstream, _token) = python_upstream_gateway(&peers, dir.path(), Duration::from_millis(200)).await;
    let token = agent_token(&app, &admin, "rmcp-agent", &["add"], &["add"]).await;
    let headers = HashMap::from([
        (HeaderName::from_static("authorization"), HeaderValue::from_str(&format!("Bearer {token}")).unwrap()),
        (HeaderName::from_static("x-idempotency-key"), HeaderValue::from_static("rmcp-client-key")),
    ]);
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(app.url("/mcp/agents/rmcp-agent")).custom_headers(headers),
    );
    let client = ().serve(transport).await.expect("the rmcp client's handshake with the gateway");
    let tools = client.list_all_tools().await.expect("tools/list");
    let add = tools.iter().find(|tool| tool.name == "add").expect("add is listed");
    let schema = add.output_schema.as_deref().cloned().expect("add declares an outputSchema");

    let arguments = json!({"a": 40, "b": 2}).as_object().cloned().unwrap();
    let call = || client.call_tool(CallToolRequestParams::new("add").with_arguments(arguments.clone()));
    let pending = call().await.expect("the pending answer is a CallToolResult");
    assert!(valid_for_output_schema(&pending, &schema), "{pending:?}");
    assert_eq!(pending.is_error, Some(true), "{pending:?}");
    let id = request_id("rmcp-agent", "rmcp-client-key");
    let meta = pending.meta.as_ref().and_then(|meta| meta.get(APPROVAL_META)).expect("the approval _meta");
    assert_eq!(meta["pending"], true, "{pending:?}");
    assert_eq!(meta["request_id"], id.to_string(), "{pending:?}");

    approve_ok(&app, &admin, id).await;
    let done = call().await.expect("the real result");
    assert!(valid_for_output_schema(&done, &schema), "{done:?}");
    assert_eq!(done.is_error, Some(false), "{done:?}");
    assert_eq!(done.structured_content, Some(json!({"result": 42})), "{done:?}");
    assert!(done.meta.is_none(), "the real result, not an envelope: {done:?}");
    client.cancel().await.expect("close the rmcp client");
    assert_eq!(event_types(&app.db.pool, id).await, ["Created", "Approved", "Executed", "ResultCached"]);
    app.stop().await;
}

#[tokio::test]
async fn the_npm_filesystem_server_as_upstream_of_a_gated_write_file() {
    let Some(peers) = peers("the_npm_filesystem_server_as_upstream_of_a_gated_write_file") else {
        return;
    };
    let server_js = peer_file(&peers, "node/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js");
    let app = spawn_gateway(Duration::from_millis(500)).await;
    let admin = admin_session(&app).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let registered = register_server(
        &app,
        &admin,
        &json!({"name": "npm-fs", "transport": "stdio", "command": "node", "args": [server_js, root], "cwd": root}),
    )
    .await;
    let offered: Vec<&str> =
        registered["tools"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(offered.contains(&"write_file"), "{offered:?}");

    let token =
        agent_token(&app, &admin, "npm-agent", &["write_file", "list_allowed_directories"], &["write_file"]).await;
    let target = root.join("gated.txt").to_str().unwrap().to_owned();
    let arguments = json!({"path": target, "content": "written by the npm server after approval"});
    let key = Uuid::new_v4().to_string();
    let id = request_id("npm-agent", &key);

    // The npm server's write_file declares an outputSchema: its pending answer is an error result.
    let first = call(&app, "npm-agent", &token, Some(&key), 1, "write_file", arguments.clone()).await;
    assert_pending_envelope_of_typed_tool(&first, 1, id, Some(&key), "pending");
    assert!(!std::path::Path::new(&target).exists(), "nothing written before the approval");

    // A plain (ungated) tool of the same server goes straight through.
    let plain = call(&app, "npm-agent", &token, None, 2, "list_allowed_directories", json!({})).await;
    assert!(text_of(&plain["result"]).contains(root.to_str().unwrap()), "{plain}");

    approve_ok(&app, &admin, id).await;
    let done = call(&app, "npm-agent", &token, Some(&key), 3, "write_file", arguments.clone()).await;
    assert_eq!(done["id"], 3);
    let result = &done["result"];
    assert_ne!(result["isError"], true, "{done}");
    assert!(result.get("pending").is_none(), "{done}");
    assert!(text_of(result).contains("Successfully wrote") && text_of(result).contains("gated.txt"), "{done}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "written by the npm server after approval");

    // The upstream's own failure comes back as its isError result, once approved.
    let outside = json!({"path": "/etc/alexandria-must-not-exist", "content": "x"});
    let key2 = Uuid::new_v4().to_string();
    let id2 = request_id("npm-agent", &key2);
    let pending = call(&app, "npm-agent", &token, Some(&key2), 4, "write_file", outside.clone()).await;
    assert_pending_envelope_of_typed_tool(&pending, 4, id2, Some(&key2), "pending");
    approve_ok(&app, &admin, id2).await;
    let refused = call(&app, "npm-agent", &token, Some(&key2), 5, "write_file", outside).await;
    assert_eq!(refused["result"]["isError"], true, "{refused}");
    assert!(text_of(&refused["result"]).contains("Access denied"), "{refused}");
    assert!(!std::path::Path::new("/etc/alexandria-must-not-exist").exists());
    eventually(Duration::from_secs(10), "both requests executed in the read model", || async {
        let page: Value =
            get_with(&app, "/admin/permissions?status=executed", &admin.access_token).await.json().await.unwrap();
        page["items"].as_array().map_or(0, Vec::len) == 2
    })
    .await;
    app.stop().await;
}

/// The Python Streamable HTTP peer as the only upstream, and an agent for its tools.
async fn python_upstream_gateway(
    peers: &std::path::Path,
    dir: &std::path::Path,
    wait: Duration,
) -> (TestApp, Session, SlowPythonServer, String) {
    let upstream = slow_python_server(peers, &dir.join("calls.log")).await;
    let app = spawn_gateway(wait).await;
    let admin = admin_session(&app).await;
    register_server(&app, &admin, &json!({"name": "py", "transport": "streamable_http", "url": upstream.url})).await;
    let token =
        agent_token(&app, &admin, "py-agent", &["add", "reject", "logged_sleep"], &["reject", "logged_sleep"]).await;
    (app, admin, upstream, token)
}

#[tokio::test]
async fn an_upstream_json_rpc_error_comes_back_as_it_said_it_and_is_cached_for_every_retry() {
    let Some(peers) = peers("an_upstream_json_rpc_error_comes_back_as_it_said_it_and_is_cached_for_every_retry") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (app, admin, _upstream, token) = python_upstream_gateway(&peers, dir.path(), Duration::from_millis(200)).await;

    let sum = call(&app, "py-agent", &token, None, 1, "add", json!({"a": 40, "b": 2})).await;
    assert_eq!(text_of(&sum["result"]), "42", "a plain call over Streamable HTTP: {sum}");

    let arguments = json!({"code": -32042, "message": "not today"});
    let id = request_id("py-agent", "rpc-error");
    let pending = call(&app, "py-agent", &token, Some("rpc-error"), 2, "reject", arguments.clone()).await;
    assert_pending_envelope_of_typed_tool(&pending, 2, id, Some("rpc-error"), "pending");
    approve_ok(&app, &admin, id).await;
    for n in 3..6 {
        let failed = call(&app, "py-agent", &token, Some("rpc-error"), n, "reject", arguments.clone()).await;
        assert_eq!(
            failed,
            json!({"jsonrpc": "2.0", "id": n, "error": {
                "code": -32042, "message": "not today", "data": {"rejected_by": "python_http_server"},
            }}),
            "retry {n}"
        );
    }
    assert_eq!(event_types(&app.db.pool, id).await, ["Created", "Approved", "Executed", "ResultCached"], "run once");
    app.stop().await;
}

#[tokio::test]
async fn a_client_that_hangs_up_does_not_cancel_the_approved_upstream_call() {
    let Some(peers) = peers("a_client_that_hangs_up_does_not_cancel_the_approved_upstream_call") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (app, admin, upstream, token) = python_upstream_gateway(&peers, dir.path(), Duration::from_millis(200)).await;
    let arguments = json!({"seconds": 1.5});
    let id = request_id("py-agent", "hang-up");
    let pending = call(&app, "py-agent", &token, Some("hang-up"), 1, "logged_sleep", arguments.clone()).await;
    assert_pending_envelope_of_typed_tool(&pending, 1, id, Some("hang-up"), "pending");
    approve_ok(&app, &admin, id).await;

    // The retry claims the call; its client leaves while the upstream sleeps.
    let retry = {
        let (client, url, token, arguments) =
            (app.client.clone(), app.url("/mcp/agents/py-agent"), token.clone(), arguments.clone());
        tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .header("x-idempotency-key", "hang-up")
                .json(&tool_call(2, "logged_sleep", arguments))
                .send()
                .await?
                // The headers come at once; the JSON-RPC response is the body.
                .text()
                .await
        })
    };
    eventually(Duration::from_secs(10), "the upstream started the call", || async {
        crate::peers::calls_logged(&upstream.call_log).len() == 1
    })
    .await;
    retry.abort();
    assert!(retry.await.is_err_and(|e| e.is_cancelled()), "the client hung up before the answer");
    assert_eq!(event_types(&app.db.pool, id).await, ["Created", "Approved", "Executed"], "still running");

    eventually(Duration::from_secs(15), "the call finished and its result was cached", || async {
        event_types(&app.db.pool, id).await.last().map(String::as_str) == Some("ResultCached")
    })
    .await;
    let done = call(&app, "py-agent", &token, Some("hang-up"), 3, "logged_sleep", arguments).await;
    assert_eq!(text_of(&done["result"]), "slept 1.5", "{done}");
    assert_eq!(crate::peers::calls_logged(&upstream.call_log), ["logged_sleep"], "once");
    app.stop().await;
}
