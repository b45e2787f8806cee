//! Drives the built server binary over stdio with rmcp's own client, as the gateway does.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::{ConfigureCommandExt as _, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt as _};
use serde_json::{json, Value};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_alexandria-example-fs");

type Client = RunningService<RoleClient, ()>;

async fn connect(root: &Path, call_log: Option<&Path>) -> Client {
    let command = Command::new(BIN).configure(|cmd| {
        // The child inherits stderr; keep test output to what matters.
        cmd.arg("--root").arg(root).env("RUST_LOG", "warn");
        cmd.env_remove("FS_SERVER_CALL_LOG");
        if let Some(log) = call_log {
            cmd.env("FS_SERVER_CALL_LOG", log);
        }
    });
    let transport = TokioChildProcess::new(command).expect("spawn server");
    ().serve(transport).await.expect("MCP handshake")
}

async fn call(client: &Client, tool: &'static str, args: Value) -> CallToolResult {
    let Value::Object(args) = args else {
        panic!("arguments must be a JSON object");
    };
    client
        .call_tool(CallToolRequestParams::new(tool).with_arguments(args))
        .await
        .unwrap_or_else(|e| panic!("{tool}: protocol error {e}"))
}

fn text(result: &CallToolResult) -> &str {
    match result.content.as_slice() {
        [block] => &block.as_text().expect("a text block").text,
        other => panic!("expected one content block, got {other:?}"),
    }
}

#[tokio::test]
async fn lists_the_four_tools_with_annotations() {
    let root = tempfile::tempdir().unwrap();
    let client = connect(root.path(), None).await;

    let info = client.peer_info().expect("server info");
    let server = info.server_info.as_ref().expect("serverInfo");
    assert_eq!(server.name, "alexandria-example-fs");

    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, ["echo", "list_directory", "read_file", "write_file"]);

    for tool in &tools {
        assert!(tool.description.as_deref().is_some_and(|d| !d.is_empty()));
        let annotations = tool.annotations.as_ref().expect("annotations");
        let writes = tool.name == "write_file";
        assert_eq!(annotations.read_only_hint, Some(!writes), "{}", tool.name);
        assert_eq!(annotations.open_world_hint, Some(false), "{}", tool.name);
        if writes {
            assert_eq!(annotations.destructive_hint, Some(true));
            let required = tool.input_schema.get("required").unwrap();
            assert_eq!(required, &json!(["path", "content"]));
        }
    }

    client.cancel().await.unwrap();
}

#[tokio::test]
async fn file_tools_work_inside_the_root_and_refuse_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(dir.path().join("secret.txt"), "outside").unwrap();
    let log = dir.path().join("calls.log");
    let client = connect(&root, Some(&log)).await;

    // The runbook's absolute path lands inside the root.
    let wrote = call(&client, "write_file", json!({"path": "/tmp/smoke.txt", "content": "hello"})).await;
    assert_eq!(wrote.is_error, Some(false));
    assert_eq!(text(&wrote), "wrote 5 bytes to /tmp/smoke.txt");
    assert_eq!(std::fs::read_to_string(root.join("tmp/smoke.txt")).unwrap(), "hello");

    let read = call(&client, "read_file", json!({"path": "/tmp/smoke.txt"})).await;
    assert_eq!(read.is_error, Some(false));
    assert_eq!(text(&read), "hello");

    let listed = call(&client, "list_directory", json!({"path": "/"})).await;
    assert_eq!(text(&listed), "tmp/");
    let listed = call(&client, "list_directory", json!({"path": "tmp"})).await;
    assert_eq!(text(&listed), "smoke.txt");

    let echoed = call(&client, "echo", json!({"message": "ping ☂"})).await;
    assert_eq!(echoed.is_error, Some(false));
    assert_eq!(text(&echoed), "ping ☂");

    // Failures are tool results with isError, not protocol errors.
    let escaped = call(&client, "read_file", json!({"path": "../secret.txt"})).await;
    assert_eq!(escaped.is_error, Some(true));
    assert!(text(&escaped).contains("outside the server's root"), "{}", text(&escaped));

    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(dir.path(), root.join("up")).unwrap();
        let escaped = call(&client, "read_file", json!({"path": "/up/secret.txt"})).await;
        assert_eq!(escaped.is_error, Some(true));
        assert!(text(&escaped).contains("outside the server's root"));
    }

    let missing = call(&client, "read_file", json!({"path": "/nope.txt"})).await;
    assert_eq!(missing.is_error, Some(true));
    assert_eq!(text(&missing), "\"/nope.txt\" does not exist");

    let bad_input = call(&client, "write_file", json!({"path": "/x.txt"})).await;
    assert_eq!(bad_input.is_error, Some(true));
    assert!(text(&bad_input).contains("content"), "{}", text(&bad_input));

    // An unknown tool is a protocol error (-32602) and executes nothing.
    let unknown = client.call_tool(CallToolRequestParams::new("no_such_tool")).await;
    assert!(unknown.is_err(), "{unknown:?}");

    client.cancel().await.unwrap();

    let logged = std::fs::read_to_string(&log).unwrap();
    let expected = ["write_file", "read_file", "list_directory", "list_directory", "echo", "read_file"]
        .into_iter()
        .chain(cfg!(unix).then_some("read_file"))
        .chain(["read_file", "write_file"]);
    assert_eq!(logged.lines().collect::<Vec<_>>(), expected.collect::<Vec<_>>());
}

#[tokio::test]
async fn exits_cleanly_when_stdin_closes() {
    let root = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .arg("--root")
        .arg(root.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdin.take());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("server did not exit after stdin closed")
        .unwrap();
    assert!(status.success(), "{status}");
}
