//! What an upstream says during a pass-through `tools/call` reaches the client that
//! accepts `text/event-stream`: its `notifications/progress` (under the client's own
//! progress token) and `notifications/message`, in order, before the result. A client
//! that hangs up mid-stream cancels nothing, and its relay is gone when the call is.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::auth_helpers::admin_session;
use crate::conformance::ReferenceServer;
use crate::gateway_helpers::{agent_token, post_mcp, python, register_server, tool_call};
use crate::helpers::{eventually, spawn_app, TestApp};
use crate::peers::{calls_logged, peers, repo};

/// The SSE events of a reply body, each `data:` line as JSON.
fn sse_messages(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(|data| serde_json::from_str(data.trim()).unwrap_or_else(|_| panic!("not JSON: {data}")))
        .collect()
}

async fn gateway_with_reference(peers: &Path) -> (TestApp, ReferenceServer, String) {
    let server = ReferenceServer::start(peers).await;
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    register_server(&app, &admin, &json!({"name": "ref", "transport": "streamable_http", "url": server.url})).await;
    let tools = ["test_tool_with_progress", "test_tool_with_logging", "test_simple_text"];
    let token = agent_token(&app, &admin, "relayed", &tools, &[]).await;
    (app, server, token)
}

#[tokio::test]
async fn progress_and_log_messages_arrive_in_order_before_the_result() {
    let Some(peers) = peers("progress_and_log_messages_arrive_in_order_before_the_result") else { return };
    let (app, _server, token) = gateway_with_reference(&peers).await;

    let mut call = tool_call(7, "test_tool_with_progress", json!({}));
    call["params"]["_meta"] = json!({"progressToken": "mine-1"});
    let reply = post_mcp(&app, "/mcp", &token, None, &call).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.headers["content-type"].to_str().unwrap().starts_with("text/event-stream"), "{:?}", reply.headers);
    let messages = sse_messages(&reply.text);
    let (result, progress) = messages.split_last().expect("messages");
    assert_eq!(result["id"], 7, "the result comes last: {messages:?}");
    assert!(result["result"]["content"].is_array(), "{result}");
    let steps: Vec<f64> = progress
        .iter()
        .map(|message| {
            assert_eq!(message["method"], "notifications/progress", "{message}");
            assert_eq!(message["params"]["progressToken"], "mine-1", "the client's own token: {message}");
            message["params"]["progress"].as_f64().expect("progress")
        })
        .collect();
    assert_eq!(steps, [0.0, 50.0, 100.0], "{messages:?}");

    let reply = post_mcp(&app, "/mcp", &token, None, &tool_call(8, "test_tool_with_logging", json!({}))).await;
    let messages = sse_messages(&reply.text);
    let (result, logs) = messages.split_last().expect("messages");
    assert_eq!(result["id"], 8, "{messages:?}");
    let data: Vec<&str> = logs
        .iter()
        .map(|message| {
            assert_eq!(message["method"], "notifications/message", "{message}");
            message["params"]["data"].as_str().expect("data")
        })
        .collect();
    assert_eq!(data, ["Tool execution started", "Tool processing data", "Tool execution completed"]);

    // A client that reads JSON only, or a call with nothing to say, gets a plain response.
    let reply = post_mcp(&app, "/mcp", &token, None, &tool_call(9, "test_simple_text", json!({}))).await;
    assert_eq!(reply.body["id"], 9, "{}", reply.text);
    assert_eq!(app.state.upstreams.relayed_calls(), 0);
}

/// The Python peer plus `log_then_sleep(seconds)`: logs "started", sleeps, then appends
/// "finished" to `$PEER_CALL_LOG` and answers.
const LOG_THEN_SLEEP_SERVER: &str = r#"
import os, sys
sys.path.insert(0, sys.argv[1])
sys.argv = [sys.argv[0]] + sys.argv[2:]
import anyio
import python_http_server as peer
from mcp.server.mcpserver import Context

@peer.server.tool()
async def log_then_sleep(seconds: float, ctx: Context) -> str:
    """Log, sleep, then record that the call finished."""
    await ctx.info("started")
    await anyio.sleep(seconds)
    with open(os.environ["PEER_CALL_LOG"], "a") as log:
        log.write("finished\n")
    return "done"

peer.main()
"#;

async fn log_then_sleep_server(peers: &Path, log: &Path) -> (String, Child) {
    let mut child = Command::new(python(peers))
        .arg("-c")
        .arg(LOG_THEN_SLEEP_SERVER)
        .arg(repo().join("tests/peers"))
        .arg("0")
        .env("PEER_CALL_LOG", log)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start the Python MCP server");
    let stdout = child.stdout.take().expect("piped stdout");
    let line = tokio::time::timeout(Duration::from_secs(60), BufReader::new(stdout).lines().next_line())
        .await
        .expect("the Python server did not start within 60 s")
        .expect("read its stdout")
        .expect("it exited before listening");
    let port = line.strip_prefix("LISTENING ").expect("LISTENING <port>").trim().to_owned();
    (format!("http://127.0.0.1:{port}/mcp"), child)
}

#[tokio::test]
async fn a_client_that_hangs_up_mid_stream_cancels_nothing_and_leaves_no_relay() {
    let Some(peers) = peers("a_client_that_hangs_up_mid_stream_cancels_nothing_and_leaves_no_relay") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("calls.log");
    let (url, _server) = log_then_sleep_server(&peers, &log).await;
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    register_server(&app, &admin, &json!({"name": "py", "transport": "streamable_http", "url": url})).await;
    let token = agent_token(&app, &admin, "leaver", &["log_then_sleep"], &[]).await;

    let response = app
        .client
        .post(app.url("/mcp"))
        .bearer_auth(&token)
        .header("accept", "application/json, text/event-stream")
        .json(&tool_call(1, "log_then_sleep", json!({"seconds": 2})))
        .send()
        .await
        .expect("POST the call");
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut response = response;
    let first = response.chunk().await.expect("read").expect("the first event");
    let first = String::from_utf8_lossy(&first).into_owned();
    assert!(first.contains("notifications/message") && first.contains("started"), "{first}");
    assert_eq!(app.state.upstreams.relayed_calls(), 1, "the call's relay is registered while it runs");
    drop(response); // hang up mid-stream

    eventually(Duration::from_secs(30), "the call finishes upstream", || {
        let log = log.clone();
        async move { calls_logged(&log) == ["finished"] }
    })
    .await;
    eventually(Duration::from_secs(10), "the relay is gone with its call", || async {
        app.state.upstreams.relayed_calls() == 0
    })
    .await;
}
