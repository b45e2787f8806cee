//! What an upstream says during a pass-through `tools/call` reaches the client that
//! accepts `text/event-stream`: its `notifications/progress` (under the client's own
//! progress token) and `notifications/message`, in order, before the result. A client
//! that hangs up mid-stream cancels nothing, and its relay is gone when the call is.
//! The upstream's `elicitation/create` (and `sampling/createMessage`) is asked of the
//! calling client under an id of the gateway's own, and only that agent's answer goes back; a gated call run after a
//! person's approval has no client to ask.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::process::Child;
use uuid::Uuid;

use crate::auth_helpers::{admin_session, Session};
use crate::conformance::ReferenceServer;
use crate::gateway_helpers::{
    agent_token, approve_ok, call, post_mcp, python_peer, register_server, spawn_gateway, tool_call,
};
use crate::helpers::{eventually, spawn_app, TestApp};
use crate::peers::{calls_logged, peers};

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
    python_peer(peers, LOG_THEN_SLEEP_SERVER, &[("PEER_CALL_LOG", log)]).await
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

/// Reads SSE events off a streamed reply as they come.
/// The events of a streamed answer (`text/event-stream`), one JSON-RPC message at a time.
pub struct EventReader {
    response: reqwest::Response,
    buffer: String,
}

impl EventReader {
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                let data: String = event.lines().filter_map(|line| line.strip_prefix("data:")).collect();
                if !data.trim().is_empty() {
                    return Some(serde_json::from_str(data.trim()).expect("an event's data is JSON"));
                }
                continue;
            }
            let chunk = self.response.chunk().await.expect("read the stream")?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Everything not read yet, to the stream's end, as text.
    pub async fn rest(self) -> String {
        self.buffer + &self.response.text().await.expect("the rest of the stream")
    }
}

/// POSTs `message` to `/mcp` as a client that reads a stream; the answer's events.
pub async fn post_streaming(app: &TestApp, token: &str, message: &Value) -> EventReader {
    let response = app
        .client
        .post(app.url("/mcp"))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(message)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 200);
    EventReader { response, buffer: String::new() }
}

#[tokio::test]
async fn elicitation_is_asked_of_the_calling_client_only_and_its_answer_goes_upstream() {
    let Some(peers) = peers("elicitation_is_asked_of_the_calling_client_only_and_its_answer_goes_upstream") else {
        return;
    };
    let server = ReferenceServer::start(&peers).await;
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    register_server(&app, &admin, &json!({"name": "ref", "transport": "streamable_http", "url": server.url})).await;
    let token = agent_token(&app, &admin, "asker", &["test_elicitation"], &[]).await;
    let other = agent_token(&app, &admin, "bystander", &["test_elicitation"], &[]).await;

    let call = tool_call(3, "test_elicitation", json!({"message": "What is six times seven?"}));
    let mut events = post_streaming(&app, &token, &call).await;
    let asked = events.next().await.expect("the upstream's request, relayed");
    assert_eq!(asked["method"], "elicitation/create", "{asked}");
    assert_eq!(asked["params"]["message"], "What is six times seven?", "{asked}");
    let id = asked["id"].as_str().expect("a request id of the gateway's own").to_owned();
    assert!(id.starts_with("alexandria-"), "{id}: not the upstream's id");

    // Another agent cannot answer it; the asking agent can.
    let answer =
        |text: &str| json!({"jsonrpc": "2.0", "id": id, "result": {"action": "accept", "content": {"response": text}}});
    let stray = post_mcp(&app, "/mcp", &other, None, &answer("not yours")).await;
    assert_eq!(stray.status, 202, "{}", stray.text);
    let answered = post_mcp(&app, "/mcp", &token, None, &answer("forty-two")).await;
    assert_eq!(answered.status, 202, "{}", answered.text);

    let result = events.next().await.expect("the call's result");
    assert_eq!(result["id"], 3, "{result}");
    let text = &result["result"]["content"][0]["text"];
    assert_eq!(text, r#"User response: action=accept, content={"response":"forty-two"}"#, "{result}");
    assert!(events.next().await.is_none(), "the result is the last event");
}

/// A gated `test_sampling` call (the reference server's tool that asks the client for a
/// sampling) approved and run by its retry, which has no client stream to ask on.
pub struct GatedSamplingRun {
    pub server: ReferenceServer,
    pub app: TestApp,
    pub admin: Session,
    pub token: String,
    pub arguments: Value,
    pub request_id: Uuid,
    /// The retry's answer: the tool's result.
    pub ran: Value,
}

pub async fn gated_sampling_run_after_approval(peers: &Path) -> GatedSamplingRun {
    let server = ReferenceServer::start(peers).await;
    let app = spawn_gateway(Duration::from_millis(200)).await;
    let admin = admin_session(&app).await;
    register_server(&app, &admin, &json!({"name": "ref", "transport": "streamable_http", "url": server.url})).await;
    let token = agent_token(&app, &admin, "gated", &["test_sampling"], &["test_sampling"]).await;
    let arguments = json!({"prompt": "Approve me"});

    let pending = call(&app, "gated", &token, Some("k-1"), 1, "test_sampling", arguments.clone()).await;
    let request_id = pending["result"]["request_id"].as_str().expect("a pending envelope").parse().expect("a uuid");
    approve_ok(&app, &admin, request_id).await;
    let ran = call(&app, "gated", &token, Some("k-1"), 2, "test_sampling", arguments.clone()).await;
    GatedSamplingRun { server, app, admin, token, arguments, request_id, ran }
}

#[tokio::test]
async fn a_gated_call_run_after_approval_has_no_client_to_ask_and_its_outcome_is_cached() {
    let Some(peers) = peers("a_gated_call_run_after_approval_has_no_client_to_ask_and_its_outcome_is_cached") else {
        return;
    };
    let GatedSamplingRun { server: _server, app, token, arguments, ran, .. } =
        gated_sampling_run_after_approval(&peers).await;
    let text = ran["result"]["content"][0]["text"].as_str().unwrap_or_else(|| panic!("{ran}"));
    assert!(
        text.starts_with("Sampling not supported or error:") && text.contains("cannot relay sampling/createMessage"),
        "the upstream got the gateway's clear error and made its result of it: {text}"
    );
    let again = call(&app, "gated", &token, Some("k-1"), 3, "test_sampling", arguments).await;
    assert_eq!(again["result"], ran["result"], "the outcome is cached as the upstream decided");
}

/// The Python peer plus a resource `test://doc`, `resources/subscribe` (accepted), and a
/// tool `touch(uri)` that sends `notifications/resources/updated` for `uri`.
const TOUCHING_SERVER: &str = r#"
import sys
sys.path.insert(0, sys.argv[1])
sys.argv = [sys.argv[0]] + sys.argv[2:]
import mcp_types as types
import python_http_server as peer
from mcp.server.mcpserver import Context

@peer.server.resource("test://doc")
def doc() -> str:
    """A document."""
    return "the document"

async def subscribe(ctx, params):
    return types.EmptyResult()

peer.server._lowlevel_server.add_request_handler("resources/subscribe", types.SubscribeRequestParams, subscribe)

@peer.server.tool()
async def touch(uri: str, ctx: Context) -> str:
    """Announce that a resource changed."""
    await ctx.session.send_resource_updated(uri)
    return f"touched {uri}"

peer.main()
"#;

#[tokio::test]
async fn a_resource_update_reaches_the_listening_client_that_subscribed_to_it() {
    let Some(peers) = peers("a_resource_update_reaches_the_listening_client_that_subscribed_to_it") else { return };
    let (url, _child) = python_peer(&peers, TOUCHING_SERVER, &[]).await;
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    register_server(&app, &admin, &json!({"name": "py", "transport": "streamable_http", "url": url})).await;
    crate::auth_helpers::create_agent(&app, &admin, "watcher", &["touch"], &[]).await;
    crate::conformance::set_agent_list(
        &app,
        &admin,
        "watcher",
        "allowed-resources",
        json!({"resources": ["test://*"]}),
    )
    .await;
    let token = crate::auth_helpers::mint_agent_token(&app, &admin, "watcher").await;

    let response = app
        .client
        .get(app.url("/mcp"))
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", "session-1")
        .send()
        .await
        .expect("GET the stream");
    assert_eq!(response.status(), 200);
    let mut stream = EventReader { response, buffer: String::new() };

    let subscribe = crate::gateway_helpers::request(1, "resources/subscribe", json!({"uri": "test://doc"}));
    let subscribed = crate::gateway_helpers::post_raw(
        &app,
        "/mcp",
        Some(&token),
        &[("mcp-session-id", "session-1")],
        subscribe.to_string().into_bytes(),
    )
    .await;
    assert_eq!(subscribed.body["result"], json!({}), "{}", subscribed.text);
    for (id, uri) in [(2, "test://unwatched"), (3, "test://doc")] {
        let touched = post_mcp(&app, "/mcp", &token, None, &tool_call(id, "touch", json!({"uri": uri}))).await;
        assert_eq!(touched.status, 200, "{}", touched.text);
    }
    let update = tokio::time::timeout(Duration::from_secs(30), stream.next())
        .await
        .expect("an update within 30 s")
        .expect("the stream is open");
    assert_eq!(update["method"], "notifications/resources/updated", "{update}");
    assert_eq!(update["params"]["uri"], "test://doc", "only the subscribed resource: {update}");
}

#[tokio::test]
async fn a_gated_call_approved_during_its_wait_relays_the_upstreams_request_to_the_waiting_client() {
    let Some(peers) = peers("a_gated_call_approved_during_its_wait_relays_the_upstreams_request_to_the_waiting_client")
    else {
        return;
    };
    let server = ReferenceServer::start(&peers).await;
    let app = spawn_gateway(Duration::from_secs(30)).await;
    let admin = admin_session(&app).await;
    register_server(&app, &admin, &json!({"name": "ref", "transport": "streamable_http", "url": server.url})).await;
    let token = agent_token(&app, &admin, "gated", &["test_elicitation"], &["test_elicitation"]).await;

    let mut call = tool_call(5, "test_elicitation", json!({"message": "Ship it?"}));
    call["params"]["_meta"] = json!({"progressToken": "p-1"});
    let mut events = post_streaming(&app, &token, &call).await;
    let pending_id = || async {
        let listed: Value = app
            .client
            .get(app.url("/admin/permissions?status=pending"))
            .bearer_auth(&admin.access_token)
            .send()
            .await
            .expect("list pending requests")
            .json()
            .await
            .expect("a JSON body");
        listed["items"][0]["id"].as_str().map(str::to_owned)
    };
    eventually(Duration::from_secs(10), "the call's permission request is pending", || async {
        pending_id().await.is_some()
    })
    .await;
    let pending = pending_id().await;
    let id = pending.expect("a pending request").parse().expect("a uuid");
    approve_ok(&app, &admin, id).await;

    let asked = loop {
        let event = events.next().await.expect("the stream goes on until the answer");
        if event["method"] != "notifications/progress" {
            break event;
        }
    };
    assert_eq!(asked["method"], "elicitation/create", "{asked}");
    let answer =
        json!({"jsonrpc": "2.0", "id": asked["id"], "result": {"action": "accept", "content": {"response": "yes"}}});
    assert_eq!(post_mcp(&app, "/mcp", &token, None, &answer).await.status, 202);
    let result = loop {
        let event = events.next().await.expect("the call's result");
        if event["method"] != "notifications/progress" {
            break event;
        }
    };
    assert_eq!(result["id"], 5, "{result}");
    assert_eq!(result["result"]["content"][0]["text"], r#"User response: action=accept, content={"response":"yes"}"#);
}
