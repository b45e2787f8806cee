//! MCP Tasks over the wire: a gated call as a task (2025-11-25 experimental tasks and the
//! 2026-07-28 tasks extension), `tasks/get|result|list|cancel`, durability across a
//! restart, and progress notifications during the in-band wait. The TypeScript SDK's own
//! task client is driven in `mcp_tasks_typescript.rs`.

use std::time::Duration;

use alexandria_domain::{derived_idempotency_key, request_id};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::auth_helpers::*;
use crate::gateway_helpers::*;
use crate::helpers::{eventually, spawn_app_on, TestApp};

const AGENT: &str = "tasker";
const MODERN: &str = "2026-07-28";

struct Setup {
    app: TestApp,
    admin: Session,
    token: String,
    fs: FsUpstream,
}

async fn setup(wait: Duration) -> Setup {
    let app = spawn_gateway(wait).await;
    let admin = admin_session(&app).await;
    let fs = register_fs(&app, &admin, "fs", None).await;
    let token = agent_token(&app, &admin, AGENT, &["write_file", "read_file", "echo"], &["write_file"]).await;
    Setup { app, admin, token, fs }
}

fn path() -> String {
    format!("/mcp/agents/{AGENT}")
}

/// A `tools/call` of `write_file` asking for a task (2025-11-25).
fn task_call(id: i64, file: &str) -> Value {
    let mut call = tool_call(id, "write_file", json!({"path": file, "content": "hello"}));
    call["params"]["task"] = json!({"ttl": 60000});
    call
}

/// The request id of a `write_file` call without an idempotency key.
fn id_of(file: &str) -> Uuid {
    request_id(AGENT, &derived_idempotency_key("write_file", &json!({"path": file, "content": "hello"})))
}

/// The response to `message`: the body, or the last message of an event stream.
async fn rpc(setup: &Setup, message: &Value) -> Value {
    let reply = post_mcp(&setup.app, &path(), &setup.token, None, message).await;
    assert_eq!(reply.status, 200, "{message}: {}", reply.text);
    response_of(&reply)
}

fn response_of(reply: &Reply) -> Value {
    if reply.headers["content-type"] == "text/event-stream" {
        sse_messages(&reply.text).pop().expect("a response at the end of the stream")
    } else {
        reply.body.clone()
    }
}

/// How long a request stays open in the tests' settings, in ms: a task's `ttl`.
fn ttl_ms() -> i64 {
    crate::helpers::test_settings().approval_ttl.as_millis() as i64
}

async fn task_method(setup: &Setup, method: &str, task_id: &str) -> Value {
    rpc(setup, &request(9, method, json!({"taskId": task_id}))).await
}

/// A 2026-07-28 request: the version header, `_meta`, and the tasks extension declared.
async fn modern(setup: &Setup, method: &str, mut params: Value, with_tasks: bool) -> Value {
    let mut meta = json!({"io.modelcontextprotocol/protocolVersion": MODERN});
    if with_tasks {
        meta["io.modelcontextprotocol/clientCapabilities"] =
            json!({"extensions": {"io.modelcontextprotocol/tasks": {}}});
    }
    params["_meta"] = meta;
    let message = request(5, method, params);
    let headers = [("mcp-protocol-version", MODERN)];
    let reply = post_raw(&setup.app, &path(), Some(&setup.token), &headers, message.to_string().into_bytes()).await;
    assert_eq!(reply.status, 200, "{message}: {}", reply.text);
    reply.body
}

/// The JSON-RPC messages of an SSE reply, in order.
fn sse_messages(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).unwrap_or_else(|_| panic!("an SSE data line is JSON: {data}")))
        .collect()
}

async fn status_of(setup: &Setup, task_id: &str) -> String {
    let body = task_method(setup, "tasks/get", task_id).await;
    body["result"]["status"].as_str().unwrap_or_else(|| panic!("a status: {body}")).to_owned()
}

#[tokio::test]
async fn a_gated_call_asked_as_a_task_answers_at_once_and_its_result_comes_after_approval() {
    let setup = setup(Duration::from_secs(20)).await;
    let init = rpc(&setup, &request(1, "initialize", json!({"protocolVersion": "2025-11-25"}))).await;
    assert_eq!(
        init["result"]["capabilities"]["tasks"],
        json!({"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}),
        "{init}"
    );
    let tools = rpc(&setup, &request(2, "tools/list", json!({}))).await;
    let support = |name: &str| {
        let tool = tools["result"]["tools"].as_array().unwrap().iter().find(|t| t["name"] == name).cloned();
        tool.unwrap_or_else(|| panic!("{name} listed: {tools}"))["execution"]["taskSupport"].clone()
    };
    assert_eq!((support("write_file"), support("read_file")), (json!("optional"), Value::Null));

    // Asked as a task, the call answers at once although the in-band wait is 20 s.
    let started = std::time::Instant::now();
    let created = rpc(&setup, &task_call(3, "/t/a.txt")).await;
    assert!(started.elapsed() < Duration::from_secs(10), "a task answers without the in-band wait");
    let id = id_of("/t/a.txt");
    let task = &created["result"]["task"];
    assert_eq!(task["taskId"], id.to_string(), "the task id is the request id: {created}");
    assert_eq!(task["status"], "working", "{created}");
    assert!(task["statusMessage"].as_str().unwrap().contains("waiting for a person's approval"), "{created}");
    assert_eq!((task["pollInterval"].as_u64(), task["ttl"].as_i64()), (Some(2000), Some(ttl_ms())), "{created}");
    assert_eq!(event_types(&setup.app.db.pool, id).await, ["Created"], "durable before the answer");
    assert!(created["result"]["_meta"]["io.modelcontextprotocol/model-immediate-response"].is_string());

    assert_eq!(status_of(&setup, &id.to_string()).await, "working");
    approve_ok(&setup.app, &setup.admin, id).await;
    // Polling alone brings it to completion: a poll that sees it approved runs it.
    eventually(Duration::from_secs(20), "the task completes", || async {
        status_of(&setup, &id.to_string()).await == "completed"
    })
    .await;
    let result = task_method(&setup, "tasks/result", &id.to_string()).await;
    assert_eq!(result["result"]["isError"], false, "{result}");
    assert_eq!(result["result"]["_meta"]["io.modelcontextprotocol/related-task"]["taskId"], id.to_string());
    assert_eq!(setup.fs.file("/t/a.txt").as_deref(), Some("hello"));
    // The same call without a task gets the same cached outcome; the tool ran once.
    let again =
        call(&setup.app, AGENT, &setup.token, None, 4, "write_file", json!({"path": "/t/a.txt", "content": "hello"}))
            .await;
    assert_eq!(again["result"]["content"], result["result"]["content"], "{again}");
    assert_eq!(setup.fs.calls(), ["write_file"]);
}

#[tokio::test]
async fn a_rejected_task_fails_and_its_result_is_the_denial() {
    let setup = setup(Duration::from_secs(5)).await;
    let created = rpc(&setup, &task_call(1, "/t/r.txt")).await;
    let task_id = created["result"]["task"]["taskId"].as_str().expect("a task id").to_owned();
    assert_eq!(reject(&setup.app, &setup.admin, &task_id, "not today").await.status(), 200);
    let task = task_method(&setup, "tasks/get", &task_id).await;
    assert_eq!(task["result"]["status"], "failed", "{task}");
    assert_eq!(task["result"]["statusMessage"], "denied: not today", "{task}");
    let result = task_method(&setup, "tasks/result", &task_id).await;
    assert_eq!(rpc_error(&result), (ACCESS_DENIED, "denied: not today".to_owned()));
    assert!(setup.fs.calls().is_empty());
}

#[tokio::test]
async fn cancelling_a_pending_task_withdraws_its_request_and_a_decided_one_cannot_be_cancelled() {
    let setup = setup(Duration::from_secs(5)).await;
    let created = rpc(&setup, &task_call(1, "/t/c.txt")).await;
    let task_id = created["result"]["task"]["taskId"].as_str().expect("a task id").to_owned();
    let cancelled = task_method(&setup, "tasks/cancel", &task_id).await;
    assert_eq!(cancelled["result"]["status"], "cancelled", "{cancelled}");
    assert_eq!(cancelled["result"]["statusMessage"], "withdrawn by the agent", "{cancelled}");
    let id = Uuid::parse_str(&task_id).unwrap();
    assert_eq!(event_types(&setup.app.db.pool, id).await, ["Created", "Withdrawn"]);
    // Nobody can decide it any more; cancelling again is refused; its result is the denial.
    assert_eq!(approve(&setup.app, &setup.admin, &task_id).await.status(), 409);
    let again = task_method(&setup, "tasks/cancel", &task_id).await;
    let (code, message) = rpc_error(&again);
    assert_eq!(code, INVALID_PARAMS);
    assert!(message.contains("already ended"), "{message}");
    let result = task_method(&setup, "tasks/result", &task_id).await;
    assert_eq!(rpc_error(&result), (ACCESS_DENIED, "denied: withdrawn by the agent".to_owned()));
    // Listed once the read model has the request (its status comes from the log).
    eventually(Duration::from_secs(10), "the task to be listed as cancelled", || async {
        let listed = rpc(&setup, &request(2, "tasks/list", json!({}))).await;
        listed["result"]["tasks"][0]["status"] == "cancelled"
    })
    .await;
    eventually(Duration::from_secs(10), "the read model shows it withdrawn", || async {
        let row: Option<String> = sqlx::query_scalar("SELECT status FROM permission_requests WHERE id = $1")
            .bind(id)
            .fetch_optional(&setup.app.db.pool)
            .await
            .unwrap();
        row.as_deref() == Some("withdrawn")
    })
    .await;

    // Once a person approved, the task can no longer be withdrawn.
    let created = rpc(&setup, &task_call(3, "/t/d.txt")).await;
    let decided = created["result"]["task"]["taskId"].as_str().expect("a task id").to_owned();
    approve_ok(&setup.app, &setup.admin, Uuid::parse_str(&decided).unwrap()).await;
    let refused = task_method(&setup, "tasks/cancel", &decided).await;
    let (code, message) = rpc_error(&refused);
    assert_eq!(code, INVALID_PARAMS);
    assert!(message.contains("can no longer be withdrawn"), "{message}");
}

#[tokio::test]
async fn a_task_is_its_agents_alone_and_bad_task_requests_are_invalid_params() {
    let setup = setup(Duration::from_secs(5)).await;
    let created = rpc(&setup, &task_call(1, "/t/o.txt")).await;
    let task_id = created["result"]["task"]["taskId"].as_str().expect("a task id").to_owned();
    let other = agent_token(&setup.app, &setup.admin, "other", &["write_file"], &["write_file"]).await;
    for method in ["tasks/get", "tasks/result", "tasks/cancel"] {
        let reply =
            post_mcp(&setup.app, "/mcp/agents/other", &other, None, &request(2, method, json!({"taskId": task_id})))
                .await;
        assert_eq!(rpc_error(&response_of(&reply)), (INVALID_PARAMS, format!("unknown task {task_id:?}")), "{method}");
    }
    // The list is read from the read model, which the projector fills a moment later.
    eventually(Duration::from_secs(10), "the agent's own task to be listed", || async {
        let mine = rpc(&setup, &request(4, "tasks/list", json!({}))).await;
        mine["result"]["tasks"][0]["taskId"] == task_id.as_str()
    })
    .await;
    let listed = post_mcp(&setup.app, "/mcp/agents/other", &other, None, &request(3, "tasks/list", json!({}))).await;
    let listed = Reply { body: response_of(&listed), ..listed };
    assert_eq!(
        listed.body["result"]["tasks"],
        json!([]),
        "another agent's tasks are not listed, though the read model has them"
    );

    for task_id in ["not-a-uuid", &Uuid::new_v4().to_string()] {
        let reply = task_method(&setup, "tasks/get", task_id).await;
        assert_eq!(rpc_error(&reply).0, INVALID_PARAMS, "{reply}");
    }
    let bad_cursor = rpc(&setup, &request(5, "tasks/list", json!({"cursor": "nope"}))).await;
    assert_eq!(rpc_error(&bad_cursor).0, INVALID_PARAMS);
    // A tool that does not need approval declares no task support.
    let mut echo = tool_call(6, "echo", json!({"text": "hi"}));
    echo["params"]["task"] = json!({});
    let refused = rpc(&setup, &echo).await;
    assert_eq!(rpc_error(&refused).0, METHOD_NOT_FOUND, "{refused}");
    assert!(setup.fs.calls().is_empty(), "nothing ran");
}

#[tokio::test]
async fn a_2026_client_with_the_tasks_extension_gets_a_task_after_the_in_band_wait_with_its_outcome_inline() {
    let setup = setup(Duration::from_millis(300)).await;
    let discover = modern(&setup, "server/discover", json!({}), false).await;
    assert_eq!(discover["result"]["capabilities"]["extensions"], json!({"io.modelcontextprotocol/tasks": {}}));

    let arguments = |file: &str| json!({"name": "write_file", "arguments": {"path": file, "content": "hello"}});
    // Without the extension: the pending envelope, as for any client.
    let plain = modern(&setup, "tools/call", arguments("/m/plain.txt"), false).await;
    assert_eq!(plain["result"]["pending"], true, "{plain}");
    assert_eq!(plain["result"]["resultType"], "complete", "{plain}");

    let created = modern(&setup, "tools/call", arguments("/m/a.txt"), true).await;
    let id = id_of("/m/a.txt");
    assert_eq!(created["result"]["resultType"], "task", "{created}");
    assert_eq!(created["result"]["taskId"], id.to_string(), "{created}");
    assert_eq!(created["result"]["status"], "working", "{created}");
    assert_eq!(
        (created["result"]["pollIntervalMs"].as_u64(), created["result"]["ttlMs"].as_i64()),
        (Some(2000), Some(ttl_ms()))
    );
    approve_ok(&setup.app, &setup.admin, id).await;
    eventually(Duration::from_secs(20), "the task completes", || async {
        let task = modern(&setup, "tasks/get", json!({"taskId": id.to_string()}), true).await;
        task["result"]["status"] == "completed"
    })
    .await;
    let completed = modern(&setup, "tasks/get", json!({"taskId": id.to_string()}), true).await;
    assert_eq!(completed["result"]["resultType"], "complete", "{completed}");
    assert_eq!(completed["result"]["result"]["isError"], false, "the result is inline: {completed}");
    assert_eq!(setup.fs.file("/m/a.txt").as_deref(), Some("hello"));

    // Rejected: failed, with the denial inline; cancel acknowledges with an empty result.
    let created = modern(&setup, "tools/call", arguments("/m/r.txt"), true).await;
    let rejected = created["result"]["taskId"].as_str().expect("a task id").to_owned();
    assert_eq!(reject(&setup.app, &setup.admin, &rejected, "no").await.status(), 200);
    let failed = modern(&setup, "tasks/get", json!({"taskId": rejected}), true).await;
    assert_eq!(failed["result"]["status"], "failed", "{failed}");
    assert_eq!(failed["result"]["error"]["code"], ACCESS_DENIED, "{failed}");
    assert_eq!(failed["result"]["error"]["message"], "denied: no", "{failed}");
    let created = modern(&setup, "tools/call", arguments("/m/c.txt"), true).await;
    let cancelled = created["result"]["taskId"].as_str().expect("a task id").to_owned();
    let ack = modern(&setup, "tasks/cancel", json!({"taskId": cancelled}), true).await;
    assert_eq!(ack["result"], json!({"resultType": "complete"}), "{ack}");
    let task = modern(&setup, "tasks/get", json!({"taskId": cancelled}), true).await;
    assert_eq!(task["result"]["status"], "cancelled", "{task}");
    assert_eq!(setup.fs.calls(), ["write_file"]);
}

#[tokio::test]
async fn a_task_survives_a_restart_of_the_gateway_between_creation_and_approval() {
    let setup = setup(Duration::from_secs(5)).await;
    let created = rpc(&setup, &task_call(1, "/t/restart.txt")).await;
    let task_id = created["result"]["task"]["taskId"].as_str().expect("a task id").to_owned();
    let Setup { app, admin: _, token, fs } = setup;
    let db = app.stop().await;
    let app = spawn_app_on(db, settings_with_wait(Duration::from_secs(5))).await;
    let admin = admin_session(&app).await;
    let setup = Setup { app, admin, token, fs };
    assert_eq!(status_of(&setup, &task_id).await, "working");
    approve_ok(&setup.app, &setup.admin, Uuid::parse_str(&task_id).unwrap()).await;
    let result = task_method(&setup, "tasks/result", &task_id).await;
    assert_eq!(result["result"]["isError"], false, "{result}");
    assert_eq!(setup.fs.file("/t/restart.txt").as_deref(), Some("hello"));
}

#[tokio::test]
async fn tasks_result_on_an_event_stream_tells_each_status_change_then_answers() {
    let setup = setup(Duration::from_secs(5)).await;
    let created = rpc(&setup, &task_call(1, "/t/s.txt")).await;
    let task_id = created["result"]["task"]["taskId"].as_str().expect("a task id").to_owned();
    let message = request(7, "tasks/result", json!({"taskId": task_id}));
    let path = path();
    let waiting = post_mcp(&setup.app, &path, &setup.token, None, &message);
    let decide = async {
        // The stream is open once the gateway watches the request; approve then.
        eventually(Duration::from_secs(10), "tasks/result is waiting", || async {
            setup.app.state.listener.watch_count() > 0
        })
        .await;
        approve_ok(&setup.app, &setup.admin, Uuid::parse_str(&task_id).unwrap()).await;
    };
    let (reply, ()) = tokio::join!(waiting, decide);
    assert_eq!(reply.headers["content-type"], "text/event-stream", "{}", reply.text);
    let messages = sse_messages(&reply.text);
    let (last, notifications) = messages.split_last().expect("messages");
    assert_eq!(last["id"], 7, "the response comes last: {}", reply.text);
    assert_eq!(last["result"]["isError"], false, "{last}");
    assert!(!notifications.is_empty(), "status notifications before the answer: {}", reply.text);
    for notification in notifications {
        assert_eq!(notification["method"], "notifications/tasks/status", "{notification}");
        assert_eq!(notification["params"]["taskId"], task_id, "{notification}");
    }
}

#[tokio::test]
async fn a_waiting_call_with_a_progress_token_reports_progress_on_its_event_stream() {
    let setup = setup(Duration::from_secs(2)).await;
    let mut message = tool_call(8, "write_file", json!({"path": "/p/a.txt", "content": "hello"}));
    message["params"]["_meta"] = json!({"progressToken": "wait-1"});
    let reply = post_mcp(&setup.app, &path(), &setup.token, None, &message).await;
    assert_eq!(reply.headers["content-type"], "text/event-stream", "{}", reply.text);
    let messages = sse_messages(&reply.text);
    let (last, progress) = messages.split_last().expect("messages");
    assert_eq!(last["result"]["pending"], true, "the answer comes last: {}", reply.text);
    assert!(progress.len() >= 2, "progress every ~330 ms of a 2 s wait: {}", reply.text);
    let mut previous = 0.0;
    for notification in progress {
        assert_eq!(notification["method"], "notifications/progress", "{notification}");
        assert_eq!(notification["params"]["progressToken"], "wait-1", "{notification}");
        let value = notification["params"]["progress"].as_f64().expect("progress");
        assert!(value > previous, "progress increases: {}", reply.text);
        previous = value;
        assert!(notification["params"]["message"].as_str().unwrap().starts_with("waiting for approval, "));
    }
    // A client that accepts only JSON gets the plain answer.
    let headers = [("accept", "application/json")];
    let message = tool_call(9, "write_file", json!({"path": "/p/b.txt", "content": "hello"}));
    let mut message = message;
    message["params"]["_meta"] = json!({"progressToken": 2});
    let plain = post_raw(&setup.app, &path(), Some(&setup.token), &headers, message.to_string().into_bytes()).await;
    assert_eq!(plain.body["result"]["pending"], true, "{}", plain.text);
}
