//! MCP Tasks end to end with a stock task-aware client: the TypeScript SDK's
//! `client.experimental.tasks.callToolStream` (driven by `tests/peers/tasks_client.mjs`),
//! decisions made through the admin API while the client polls.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use uuid::Uuid;

use crate::auth_helpers::*;
use crate::gateway_helpers::*;
use crate::helpers::{spawn_app_on, TestApp};
use crate::peers::{peer_file, peers, repo};

const AGENT: &str = "ts-tasker";
/// Longer than any scenario takes (a few 2 s polls).
const DEADLINE: Duration = Duration::from_secs(60);

/// One run of the driver, read message by message as it prints them.
struct TaskClient {
    lines: Lines<BufReader<ChildStdout>>,
    _child: Child,
}

impl TaskClient {
    fn start(peers: &Path, scenario: Value) -> Self {
        peer_file(peers, "node/node_modules/@modelcontextprotocol/sdk/package.json");
        let mut child = Command::new("node")
            .arg(repo().join("tests/peers/tasks_client.mjs"))
            .arg(scenario.to_string())
            .env("MATRIX_NODE_MODULES", peers.join("node/node_modules"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start node");
        let lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        Self { lines, _child: child }
    }

    /// The next message; `None` once the client is done.
    async fn next(&mut self) -> Option<Value> {
        let line = tokio::time::timeout(DEADLINE, self.lines.next_line())
            .await
            .expect("the task client said something within its deadline")
            .expect("read the client's output")?;
        Some(serde_json::from_str(&line).unwrap_or_else(|_| panic!("the task client printed non-JSON: {line}")))
    }

    /// Every message until the client is done.
    async fn rest(&mut self) -> Vec<Value> {
        let mut messages = Vec::new();
        while let Some(message) = self.next().await {
            messages.push(message);
        }
        messages
    }

    /// The task id of the first message, which must be `taskCreated`.
    async fn created(&mut self) -> String {
        let first = self.next().await.expect("a first message");
        assert_eq!(first["type"], "taskCreated", "{first}");
        assert_eq!(first["task"]["status"], "working", "{first}");
        first["task"]["taskId"].as_str().expect("a task id").to_owned()
    }
}

struct Setup {
    app: TestApp,
    admin: Session,
    token: String,
    fs: FsUpstream,
}

async fn setup() -> Setup {
    let app = spawn_gateway(Duration::from_secs(5)).await;
    let admin = admin_session(&app).await;
    let fs = register_fs(&app, &admin, "fs", None).await;
    let token = agent_token(&app, &admin, AGENT, &["write_file", "echo"], &["write_file"]).await;
    Setup { app, admin, token, fs }
}

impl Setup {
    fn scenario(&self, op: &str, file: &str) -> Value {
        json!({
            "op": op, "url": self.app.url(&format!("/mcp/agents/{AGENT}")), "token": self.token,
            "tool": "write_file", "arguments": {"path": file, "content": "from a task"},
        })
    }
}

impl Setup {
    fn resume(&self, task_id: &str) -> Value {
        json!({"op": "resume", "url": self.app.url(&format!("/mcp/agents/{AGENT}")), "token": self.token, "taskId": task_id})
    }
}

fn types(messages: &[Value]) -> Vec<&str> {
    messages.iter().map(|m| m["type"].as_str().unwrap_or("?")).collect()
}

#[tokio::test]
async fn the_typescript_sdks_task_stream_yields_the_task_its_status_and_the_result_after_an_api_approval() {
    let Some(peers) = peers("the_typescript_sdks_task_stream_yields_the_task_its_status_and_the_result") else {
        return;
    };
    let setup = setup().await;
    let mut client = TaskClient::start(&peers, setup.scenario("stream", "/ts/a.txt"));
    let task_id = client.created().await;
    let status = client.next().await.expect("a status");
    assert_eq!((&status["type"], &status["task"]["status"]), (&json!("taskStatus"), &json!("working")), "{status}");
    approve_ok(&setup.app, &setup.admin, Uuid::parse_str(&task_id).unwrap()).await;
    let rest = client.rest().await;
    let (last, statuses) = rest.split_last().expect("the stream ends with its result");
    assert_eq!(last["type"], "result", "{rest:?}");
    assert_eq!(last["result"]["isError"], false, "{last}");
    assert_eq!(last["result"]["_meta"]["io.modelcontextprotocol/related-task"]["taskId"], task_id);
    assert!(statuses.iter().all(|m| m["type"] == "taskStatus"), "{:?}", types(&rest));
    assert_eq!(statuses.last().map(|m| m["task"]["status"].clone()), Some(json!("completed")), "{rest:?}");
    assert_eq!(setup.fs.file("/ts/a.txt").as_deref(), Some("from a task"));
    assert_eq!(setup.fs.calls(), ["write_file"]);
}

#[tokio::test]
async fn the_typescript_sdks_task_stream_ends_in_an_error_when_the_call_is_rejected() {
    let Some(peers) = peers("the_typescript_sdks_task_stream_ends_in_an_error_when_the_call_is_rejected") else {
        return;
    };
    let setup = setup().await;
    let mut client = TaskClient::start(&peers, setup.scenario("stream", "/ts/r.txt"));
    let task_id = client.created().await;
    assert_eq!(reject(&setup.app, &setup.admin, &task_id, "not from a task").await.status(), 200);
    let rest = client.rest().await;
    let (last, statuses) = rest.split_last().expect("the stream ends");
    assert_eq!(last["type"], "error", "{rest:?}");
    let failed = statuses.last().expect("the failed status before the error");
    assert_eq!(failed["task"]["status"], "failed", "{rest:?}");
    assert_eq!(failed["task"]["statusMessage"], "denied: not from a task", "{failed}");
    assert!(setup.fs.calls().is_empty());
    // The task's result is the gateway's denial, as the client's getTaskResult sees it.
    let resumed = TaskClient::start(&peers, setup.resume(&task_id)).rest().await;
    let error = resumed.last().expect("a last message");
    assert_eq!(error["type"], "error", "{resumed:?}");
    assert_eq!(
        (&error["error"]["code"], &error["error"]["message"]),
        (&json!(ACCESS_DENIED), &json!("MCP error -32003: denied: not from a task")),
        "{error}"
    );
}

#[tokio::test]
async fn cancelling_through_the_typescript_sdk_withdraws_the_request() {
    let Some(peers) = peers("cancelling_through_the_typescript_sdk_withdraws_the_request") else {
        return;
    };
    let setup = setup().await;
    let mut scenario = setup.scenario("stream", "/ts/c.txt");
    scenario["cancel"] = json!(true);
    let mut client = TaskClient::start(&peers, scenario);
    let task_id = client.created().await;
    let cancelled = client.next().await.expect("the cancel's answer");
    assert_eq!(
        (&cancelled["type"], &cancelled["task"]["status"]),
        (&json!("cancelled"), &json!("cancelled")),
        "{cancelled}"
    );
    let rest = client.rest().await;
    assert_eq!(rest.last().map(|m| m["type"].clone()), Some(json!("error")), "{rest:?}");
    let id = Uuid::parse_str(&task_id).unwrap();
    assert_eq!(event_types(&setup.app.db.pool, id).await, ["Created", "Withdrawn"]);
    assert_eq!(approve(&setup.app, &setup.admin, &task_id).await.status(), 409, "a withdrawn request is not decided");
    assert!(setup.fs.calls().is_empty());
}

#[tokio::test]
async fn a_task_created_through_the_typescript_sdk_survives_a_gateway_restart_before_its_approval() {
    let Some(peers) = peers("a_task_created_through_the_typescript_sdk_survives_a_gateway_restart") else {
        return;
    };
    let setup = setup().await;
    let task_id = TaskClient::start(&peers, setup.scenario("create", "/ts/restart.txt")).created().await;
    let Setup { app, admin: _, token, fs } = setup;
    let db = app.stop().await;
    let app = spawn_app_on(db, settings_with_wait(Duration::from_secs(5))).await;
    let admin = admin_session(&app).await;
    let setup = Setup { app, admin, token, fs };
    approve_ok(&setup.app, &setup.admin, Uuid::parse_str(&task_id).unwrap()).await;
    let resumed = TaskClient::start(&peers, setup.resume(&task_id)).rest().await;
    let (last, statuses) = resumed.split_last().expect("messages");
    assert_eq!(statuses.last().map(|m| m["task"]["status"].clone()), Some(json!("completed")), "{resumed:?}");
    assert_eq!(last["type"], "result", "{resumed:?}");
    assert_eq!(last["result"]["isError"], false, "{last}");
    assert_eq!(setup.fs.file("/ts/restart.txt").as_deref(), Some("from a task"));
}

#[tokio::test]
async fn progress_during_the_in_band_wait_keeps_the_typescript_sdks_request_timeout_from_firing() {
    let Some(peers) = peers("progress_during_the_in_band_wait_keeps_the_typescript_sdks_request_timeout_from_firing")
    else {
        return;
    };
    // A 3 s in-band wait reports progress every 500 ms; the client's timeout is 1.5 s.
    let app = spawn_gateway(Duration::from_secs(3)).await;
    let admin = admin_session(&app).await;
    let _fs = register_fs(&app, &admin, "fs", None).await;
    let token = agent_token(&app, &admin, AGENT, &["write_file"], &["write_file"]).await;
    let scenario = |file: &str, reset: bool| {
        json!({
            "op": "progress", "url": app.url(&format!("/mcp/agents/{AGENT}")), "token": token,
            "tool": "write_file", "arguments": {"path": file, "content": "x"}, "timeoutMs": 1500, "reset": reset,
        })
    };
    let reset = TaskClient::start(&peers, scenario("/p/reset.txt", true)).rest().await;
    let (last, progress) = reset.split_last().expect("messages");
    assert_eq!(last["type"], "result", "the pending answer arrives after 3 s: {reset:?}");
    assert_eq!(last["result"]["_meta"][APPROVAL_META]["pending"], true, "{last}");
    assert!(progress.len() >= 3 && progress.iter().all(|m| m["type"] == "progress"), "{reset:?}");
    // The same call without resetting times out in the client: progress is what helped.
    let plain = TaskClient::start(&peers, scenario("/p/plain.txt", false)).rest().await;
    let last = plain.last().expect("a message");
    assert_eq!((&last["type"], &last["error"]["code"]), (&json!("error"), &json!(-32001)), "{plain:?}");
}
