//! The upstream registry against real MCP servers: the example rmcp server and the official
//! npm filesystem server over stdio, a Python `mcp` server over Streamable HTTP.
//!
//! The npm and Python peers come from `scripts/install-peers.sh` (into `.peers/`). Without
//! `.peers/` a test that needs them is skipped with a loud message, except under CI=true,
//! where a missing peer fails the test.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use alexandria::upstream::{
    ConnectionStatus, UpstreamConfig, UpstreamError, UpstreamRegistry, UpstreamSettings, UpstreamStatus,
};
use chrono::Utc;
use serde_json::{json, Map, Value};
use tokio::process::{Child, Command};

use crate::helpers::{eventually, fresh_database, spawn_app, TestDatabase};

const CONNECT_DEADLINE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------- peers and fixtures ----

use crate::peers::{calls_logged, example_fs_bin, listening_port, peer_file, peers, repo, text_of};

fn config(value: Value) -> UpstreamConfig {
    serde_json::from_value(value).expect("a well-formed configuration")
}

fn fs_config(name: &str, root: &Path, call_log: &Path) -> UpstreamConfig {
    config(json!({
        "name": name,
        "transport": "stdio",
        "command": example_fs_bin(),
        "args": ["--root", root],
        "env": {"FS_SERVER_CALL_LOG": call_log, "RUST_LOG": "debug"},
    }))
}

fn args(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("arguments must be an object, got {other}"),
    }
}

async fn registry_on(db: &TestDatabase, settings: UpstreamSettings) -> UpstreamRegistry {
    UpstreamRegistry::new(db.pool.clone(), settings)
}

async fn wait_connected(registry: &UpstreamRegistry, name: &str) -> UpstreamStatus {
    eventually(CONNECT_DEADLINE, &format!("{name} connected"), || async {
        registry.get(name).is_ok_and(|s| s.status == ConnectionStatus::Connected)
    })
    .await;
    registry.get(name).expect("registered")
}

fn process_alive(pid: i32) -> bool {
    // Signal 0 checks existence only. Children are reaped by the registry, so a stopped
    // one does not linger as a zombie.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

async fn stored_names(db: &TestDatabase) -> Vec<String> {
    sqlx::query_scalar("SELECT name FROM mcp_servers ORDER BY name").fetch_all(&db.pool).await.expect("query")
}

/// The Python Streamable HTTP server, killed when dropped.
struct PythonServer {
    url: String,
    port: u16,
    child: Child,
}

async fn python_server(peers: &Path, required_authorization: Option<&str>) -> PythonServer {
    python_server_on(peers, 0, required_authorization).await
}

/// Port 0 picks a free port.
async fn python_server_on(peers: &Path, port: u16, required_authorization: Option<&str>) -> PythonServer {
    let python = peer_file(peers, "venv/bin/python");
    let script = repo().join("tests/peers/python_http_server.py");
    let mut command = Command::new(python);
    command.arg(script).arg(port.to_string()).stdout(Stdio::piped()).stderr(Stdio::inherit()).kill_on_drop(true);
    if let Some(value) = required_authorization {
        command.env("PEER_REQUIRED_AUTHORIZATION", value);
    }
    let mut child = command.spawn().expect("start the Python MCP server");
    let port = listening_port(&mut child, "the Python MCP server").await;
    PythonServer { url: format!("http://127.0.0.1:{port}/mcp"), port, child }
}

// ----------------------------------------------------------------------------- tests ----

#[tokio::test]
async fn example_server_over_stdio_lists_annotated_tools_and_really_writes_files() {
    let db = fresh_database().await;
    let registry = registry_on(&db, UpstreamSettings::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls.log");

    let status = registry.register(fs_config("fs", &dir.path().join("root"), &log)).await.expect("register");
    assert_eq!(status.status, ConnectionStatus::Connected);
    assert_eq!(status.last_error, None);
    let mut names: Vec<&str> = status.tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort();
    assert_eq!(names, ["echo", "list_directory", "read_file", "write_file"]);
    let write = status.tools.iter().find(|t| t.name == "write_file").unwrap();
    let annotations = write.annotations.as_ref().expect("annotations");
    assert_eq!(annotations.destructive_hint, Some(true));
    assert_eq!(annotations.read_only_hint, Some(false));
    assert_eq!(write.input_schema.get("required"), Some(&json!(["path", "content"])));

    // The catalog carries the same definitions, routed to the server.
    let catalog = registry.tools();
    assert_eq!(catalog.len(), 4);
    assert_eq!(catalog["write_file"].server, "fs");
    assert_eq!(catalog["write_file"].upstream_name, "write_file");
    assert_eq!(catalog["read_file"].tool.annotations.as_ref().and_then(|a| a.read_only_hint), Some(true));
    assert_eq!(stored_names(&db).await, ["fs"]);

    let wrote = registry
        .call_tool("write_file", args(json!({"path": "/notes/a.txt", "content": "hello upstream"})))
        .await
        .expect("write_file");
    assert_eq!(wrote["isError"], json!(false), "{wrote}");
    assert_eq!(std::fs::read_to_string(dir.path().join("root/notes/a.txt")).unwrap(), "hello upstream");

    let read = registry.call_tool("read_file", args(json!({"path": "/notes/a.txt"}))).await.expect("read_file");
    assert_eq!(text_of(&read), "hello upstream");

    // A tool failure is a result with isError, not an error of the call.
    let escaped = registry.call_tool("read_file", args(json!({"path": "../../etc/passwd"}))).await.expect("a result");
    assert_eq!(escaped["isError"], json!(true), "{escaped}");
    assert_eq!(calls_logged(&log), ["write_file", "read_file", "read_file"]);

    // The status view is JSON the admin API can return as is.
    let listed = serde_json::to_value(registry.list()).unwrap();
    assert_eq!(listed[0]["name"], "fs");
    assert_eq!(listed[0]["transport"], "stdio");
    assert_eq!(listed[0]["status"], "connected");
    assert_eq!(listed[0]["env_names"], json!(["FS_SERVER_CALL_LOG", "RUST_LOG"]));
    assert!(listed[0]["tools"].as_array().unwrap().iter().any(|t| t["annotations"]["destructiveHint"] == json!(true)));

    registry.shutdown().await;
}

#[tokio::test]
async fn npm_filesystem_server_over_stdio_writes_files_and_reports_failures_as_results() {
    let Some(peers) = peers("npm_filesystem_server_over_stdio_writes_files_and_reports_failures_as_results") else {
        return;
    };
    let server_js = peer_file(&peers, "node/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js");
    let db = fresh_database().await;
    let registry = registry_on(&db, UpstreamSettings::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();

    let status = registry
        .register(config(json!({
            "name": "npm-fs",
            "transport": "stdio",
            "command": "node",
            "args": [server_js, root],
            "cwd": root,
        })))
        .await
        .expect("register the npm filesystem server");
    assert_eq!(status.status, ConnectionStatus::Connected);
    let write = status.tools.iter().find(|t| t.name == "write_file").expect("write_file is offered");
    assert_eq!(write.annotations.as_ref().and_then(|a| a.destructive_hint), Some(true));

    let target = root.join("from-gateway.txt");
    let wrote = registry
        .call_tool("write_file", args(json!({"path": target, "content": "written through alexandria"})))
        .await
        .expect("write_file");
    assert_ne!(wrote["isError"], json!(true), "{wrote}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "written through alexandria");

    let outside = registry
        .call_tool("write_file", args(json!({"path": "/etc/alexandria-must-not-exist", "content": "x"})))
        .await
        .expect("a refused write is still a result");
    assert_eq!(outside["isError"], json!(true), "{outside}");
    assert!(text_of(&outside).contains("Access denied"), "{outside}");
    assert!(!Path::new("/etc/alexandria-must-not-exist").exists());

    registry.shutdown().await;
}

#[tokio::test]
async fn python_server_over_streamable_http_gets_the_configured_headers_on_every_request() {
    let Some(peers) = peers("python_server_over_streamable_http_gets_the_configured_headers_on_every_request") else {
        return;
    };
    let token = format!("Bearer secret-{}", uuid::Uuid::new_v4().simple());
    let server = python_server(&peers, Some(&token)).await;
    let db = fresh_database().await;
    let registry = registry_on(&db, UpstreamSettings::default()).await;

    // Without the header the server answers 401: registration fails and stores nothing.
    let refused = registry
        .register(config(json!({"name": "py", "transport": "streamable_http", "url": server.url})))
        .await
        .expect_err("refused without Authorization");
    assert!(matches!(&refused, UpstreamError::Connect { server, .. } if server == "py"), "{refused:?}");
    assert!(stored_names(&db).await.is_empty());

    let status = registry
        .register(config(json!({
            "name": "py",
            "transport": "streamable_http",
            "url": server.url,
            "headers": {"Authorization": token},
        })))
        .await
        .expect("register with the header");
    assert_eq!(status.status, ConnectionStatus::Connected);
    let add = status.tools.iter().find(|t| t.name == "add").expect("add is offered");
    assert_eq!(add.annotations.as_ref().and_then(|a| a.read_only_hint), Some(true));

    let sum = registry.call_tool("add", args(json!({"a": 2, "b": 40}))).await.expect("add");
    assert_eq!(text_of(&sum), "42", "{sum}");
    let loud = registry.call_tool("shout", args(json!({"text": "quiet please"}))).await.expect("shout");
    assert_eq!(text_of(&loud), "QUIET PLEASE");

    // isError results pass through as results.
    let failed = registry.call_tool("fail", args(json!({"message": "as asked"}))).await.expect("a result");
    assert_eq!(failed["isError"], json!(true), "{failed}");
    assert!(text_of(&failed).contains("failed on purpose: as asked"), "{failed}");

    // A JSON-RPC error comes back typed, with its code, message and data.
    let rejected = registry
        .call_tool("reject", args(json!({"code": -32042, "message": "not today"})))
        .await
        .expect_err("a JSON-RPC error");
    match rejected {
        UpstreamError::Rpc { server, code, message, data } => {
            assert_eq!(server, "py");
            assert_eq!(code, -32042);
            assert_eq!(message, "not today");
            assert_eq!(data, Some(json!({"rejected_by": "python_http_server"})));
        }
        other => panic!("expected an Rpc error, got {other:?}"),
    }

    // The header's value is a secret: neither the status view nor Debug shows it.
    let shown = format!("{} {:?}", serde_json::to_string(&registry.list()).unwrap(), registry.list());
    assert!(!shown.contains(&token), "{shown}");
    assert!(shown.contains("Authorization"), "{shown}");

    registry.shutdown().await;
}

#[tokio::test]
async fn a_tools_list_changed_notification_refreshes_the_catalog() {
    let Some(peers) = peers("a_tools_list_changed_notification_refreshes_the_catalog") else {
        return;
    };
    let server = python_server(&peers, None).await;
    let db = fresh_database().await;
    let registry = registry_on(&db, UpstreamSettings::default()).await;
    registry
        .register(config(
            json!({"name": "py", "transport": "streamable_http", "url": server.url, "tool_prefix": "py_"}),
        ))
        .await
        .expect("register");
    assert!(!registry.tools().contains_key("py_grown"));

    // `grow` adds a tool and sends notifications/tools/list_changed; no refresh is asked.
    registry.call_tool("py_grow", args(json!({"name": "grown"}))).await.expect("grow");
    eventually(Duration::from_secs(10), "py_grown in the catalog", || async {
        registry.tools().contains_key("py_grown")
    })
    .await;
    let grown = registry.call_tool("py_grown", Map::new()).await.expect("the new tool");
    assert_eq!(text_of(&grown), "I am grown");

    registry.shutdown().await;
}

#[tokio::test]
async fn refresh_re_reads_the_tool_list() {
    let Some(peers) = peers("refresh_re_reads_the_tool_list") else {
        return;
    };
    let server = python_server(&peers, None).await;
    let db = fresh_database().await;
    let registry = registry_on(&db, UpstreamSettings::default()).await;
    registry.register(config(json!({"name": "py", "transport": "streamable_http", "url": server.url}))).await.unwrap();
    let before = registry.refresh("py").await.expect("refresh");
    assert_eq!(before.status, ConnectionStatus::Connected);
    assert!(before.tools.iter().any(|t| t.name == "sleep"));
    assert!(matches!(
        registry.refresh("nobody").await,
        Err(UpstreamError::ServerNotFound { name }) if name == "nobody"
    ));
    registry.shutdown().await;
}

#[tokio::test]
async fn a_tool_name_offered_twice_is_refused_naming_both_servers_unless_prefixed() {
    let db = fresh_database().await;
    let registry = registry_on(&db, UpstreamSettings::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let log_a = dir.path().join("a.log");
    let log_b = dir.path().join("b.log");
    registry.register(fs_config("fs-a", &dir.path().join("a"), &log_a)).await.expect("first");

    let refused = registry.register(fs_config("fs-b", &dir.path().join("b"), &log_b)).await.expect_err("a clash");
    match &refused {
        UpstreamError::DuplicateTool { tool, existing_server, new_server } => {
            assert_eq!((existing_server.as_str(), new_server.as_str()), ("fs-a", "fs-b"));
            assert!(["echo", "list_directory", "read_file", "write_file"].contains(&tool.as_str()));
        }
        other => panic!("expected DuplicateTool, got {other:?}"),
    }
    let message = refused.to_string();
    assert!(
        message.contains("\"fs-a\"") && message.contains("\"fs-b\"") && message.contains("tool_prefix"),
        "{message}"
    );
    assert_eq!(stored_names(&db).await, ["fs-a"], "a refused server is not stored");
    assert!(registry.get("fs-b").is_err());

    let mut prefixed = fs_config("fs-b", &dir.path().join("b"), &log_b);
    prefixed.tool_prefix = Some("b_".into());
    let status = registry.register(prefixed).await.expect("accepted with a prefix");
    assert!(status.tools.iter().any(|t| t.name == "b_echo"), "{:?}", status.tools);

    let catalog = registry.tools();
    assert_eq!(catalog.len(), 8);
    assert_eq!((catalog["echo"].server.as_str(), catalog["echo"].upstream_name.as_str()), ("fs-a", "echo"));
    assert_eq!((catalog["b_echo"].server.as_str(), catalog["b_echo"].upstream_name.as_str()), ("fs-b", "echo"));

    // The prefix is stripped on the way upstream: fs-b runs its own `echo`.
    let echoed = registry.call_tool("b_echo", args(json!({"message": "to b"}))).await.expect("b_echo");
    assert_eq!(text_of(&echoed), "to b");
    assert_eq!(calls_logged(&log_b), ["echo"]);
    assert!(calls_logged(&log_a).is_empty());

    registry.shutdown().await;
}

#[tokio::test]
async fn a_killed_stdio_child_is_restarted_and_serves_again() {
    let db = fresh_database().await;
    let registry = registry_on(&db, UpstreamSettings::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("server.pid");
    // `exec` keeps the shell's pid, so the file names the server process itself.
    let script = format!(
        "echo $$ > '{}'; exec '{}' --root '{}'",
        pid_file.display(),
        example_fs_bin().display(),
        dir.path().join("root").display()
    );
    registry
        .register(config(json!({"name": "fs", "transport": "stdio", "command": "sh", "args": ["-c", script]})))
        .await
        .expect("register");
    let read_pid = || std::fs::read_to_string(&pid_file).ok().and_then(|p| p.trim().parse::<i32>().ok());
    let first_pid = read_pid().expect("pid written");
    assert!(process_alive(first_pid));

    let killed_at = Utc::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(first_pid), nix::sys::signal::Signal::SIGKILL).expect("kill");

    // The status leaves `connected` (the loss is recorded) and comes back with a new child.
    eventually(CONNECT_DEADLINE, "reconnected after the kill", || async {
        let status = registry.get("fs").unwrap();
        status.status == ConnectionStatus::Connected && status.since > killed_at && status.last_error.is_some()
    })
    .await;
    let status = registry.get("fs").unwrap();
    assert!(status.last_error.as_deref().unwrap().contains("session"), "{:?}", status.last_error);
    let second_pid = read_pid().expect("pid rewritten");
    assert_ne!(first_pid, second_pid, "a new child was started");

    let echoed = registry.call_tool("echo", args(json!({"message": "again"}))).await.expect("echo after restart");
    assert_eq!(text_of(&echoed), "again");

    // Removing the server stops its child before remove() returns.
    registry.remove("fs").await.expect("remove");
    assert!(!process_alive(second_pid), "the child outlived remove()");
    assert!(registry.tools().is_empty());
    assert!(stored_names(&db).await.is_empty());
    assert!(matches!(registry.remove("fs").await, Err(UpstreamError::ServerNotFound { .. })));

    registry.shutdown().await;
}

#[tokio::test]
async fn an_http_upstream_that_goes_away_is_reconnected_when_it_is_back() {
    let Some(peers) = peers("an_http_upstream_that_goes_away_is_reconnected_when_it_is_back") else {
        return;
    };
    let mut server = python_server(&peers, None).await;
    let db = fresh_database().await;
    let registry = registry_on(&db, UpstreamSettings::default()).await;
    registry.register(config(json!({"name": "py", "transport": "streamable_http", "url": server.url}))).await.unwrap();

    let killed_at = Utc::now();
    server.child.kill().await.expect("stop the Python server");
    let error = registry.call_tool("add", args(json!({"a": 1, "b": 2}))).await.expect_err("the server is gone");
    assert!(
        matches!(&error, UpstreamError::Transport { server, .. } | UpstreamError::Unavailable { server, .. } if server == "py"),
        "{error:?}"
    );
    // The failed call prompts a liveness check, which finds the session dead.
    eventually(CONNECT_DEADLINE, "py marked not connected", || async {
        registry.get("py").unwrap().status != ConnectionStatus::Connected
    })
    .await;
    let down = registry.get("py").unwrap();
    assert!(down.last_error.is_some(), "{down:?}");
    assert!(registry.tools().contains_key("add"), "last known tools stay listed while reconnecting");
    let unavailable = registry.call_tool("add", args(json!({"a": 1, "b": 2}))).await;
    assert!(
        matches!(&unavailable, Err(UpstreamError::Unavailable { .. } | UpstreamError::Transport { .. })),
        "{unavailable:?}"
    );

    let _restarted = python_server_on(&peers, server.port, None).await;
    eventually(CONNECT_DEADLINE, "py reconnected", || async {
        let status = registry.get("py").unwrap();
        status.status == ConnectionStatus::Connected && status.since > killed_at
    })
    .await;
    let sum = registry.call_tool("add", args(json!({"a": 1, "b": 2}))).await.expect("add after the restart");
    assert_eq!(text_of(&sum), "3");

    registry.shutdown().await;
}

#[tokio::test]
async fn a_call_longer_than_the_per_call_timeout_fails_with_the_timeout_error() {
    let Some(peers) = peers("a_call_longer_than_the_per_call_timeout_fails_with_the_timeout_error") else {
        return;
    };
    let server = python_server(&peers, None).await;
    let db = fresh_database().await;
    let settings = UpstreamSettings { call_timeout: Duration::from_secs(1), ..UpstreamSettings::default() };
    let registry = registry_on(&db, settings).await;
    registry.register(config(json!({"name": "py", "transport": "streamable_http", "url": server.url}))).await.unwrap();

    let started = std::time::Instant::now();
    let error = registry.call_tool("sleep", args(json!({"seconds": 30}))).await.expect_err("a timeout");
    let waited = started.elapsed();
    match &error {
        UpstreamError::Timeout { server, tool, after } => {
            assert_eq!((server.as_str(), tool.as_str(), *after), ("py", "sleep", Duration::from_secs(1)));
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(waited >= Duration::from_secs(1) && waited < Duration::from_secs(10), "waited {waited:?}");

    // The session survives a timed-out call.
    let sum = registry.call_tool("add", args(json!({"a": 1, "b": 1}))).await.expect("add after the timeout");
    assert_eq!(text_of(&sum), "2");
    assert_eq!(registry.get("py").unwrap().status, ConnectionStatus::Connected);

    registry.shutdown().await;
}

#[tokio::test]
async fn another_registry_on_the_same_database_picks_up_registrations_and_removals() {
    let db = fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls.log");
    let first = registry_on(&db, UpstreamSettings::default()).await;
    first.register(fs_config("fs", &dir.path().join("root"), &log)).await.expect("register on the first");

    // A second replica (or a restart) loads the stored server and connects it.
    let second = registry_on(&db, UpstreamSettings::default()).await;
    second.start();
    let status = wait_connected(&second, "fs").await;
    assert_eq!(status.tools.len(), 4);
    assert_eq!(status.config.env_names, ["FS_SERVER_CALL_LOG", "RUST_LOG"]);
    let echoed = second.call_tool("echo", args(json!({"message": "from the second"}))).await.expect("echo");
    assert_eq!(text_of(&echoed), "from the second");
    assert_eq!(calls_logged(&log), ["echo"]);

    // A removal on the first reaches the second at its next reload.
    first.remove("fs").await.expect("remove");
    second.reload().await.expect("reload");
    assert!(matches!(second.get("fs"), Err(UpstreamError::ServerNotFound { .. })));
    assert!(matches!(
        second.call_tool("echo", args(json!({"message": "x"}))).await,
        Err(UpstreamError::ToolNotFound { .. })
    ));

    first.shutdown().await;
    second.shutdown().await;
}

#[tokio::test]
async fn an_unknown_tool_is_not_found_and_nothing_is_sent_upstream() {
    let db = fresh_database().await;
    let registry = registry_on(&db, UpstreamSettings::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls.log");
    registry.register(fs_config("fs", &dir.path().join("root"), &log)).await.expect("register");

    let error = registry.call_tool("no_such_tool", args(json!({"path": "/x"}))).await.expect_err("not found");
    assert!(matches!(&error, UpstreamError::ToolNotFound { tool } if tool == "no_such_tool"), "{error:?}");
    assert!(error.to_string().contains("no_such_tool"));
    assert!(calls_logged(&log).is_empty(), "an upstream call was made: {:?}", calls_logged(&log));

    registry.shutdown().await;
}

#[tokio::test]
async fn bad_configurations_and_unreachable_servers_are_refused_and_not_stored() {
    let db = fresh_database().await;
    let registry = registry_on(&db, UpstreamSettings::default()).await;

    let invalid = registry.register(config(json!({"name": "Bad Name", "transport": "stdio", "command": "x"}))).await;
    assert!(matches!(&invalid, Err(UpstreamError::InvalidConfig(e)) if e.0.contains("name")), "{invalid:?}");

    let missing = registry
        .register(config(json!({"name": "ghost", "transport": "stdio", "command": "/nonexistent/mcp-server"})))
        .await
        .expect_err("cannot start");
    assert!(
        matches!(&missing, UpstreamError::Connect { server, message } if server == "ghost" && message.contains("cannot start")),
        "{missing:?}"
    );

    // Nothing listens on a port just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let unreachable = registry
        .register(config(json!({"name": "nobody-home", "transport": "streamable_http",
                                "url": format!("http://127.0.0.1:{port}/mcp")})))
        .await;
    assert!(matches!(&unreachable, Err(UpstreamError::Connect { .. })), "{unreachable:?}");

    assert!(stored_names(&db).await.is_empty());
    assert!(registry.list().is_empty());

    let dir = tempfile::tempdir().unwrap();
    registry.register(fs_config("fs", &dir.path().join("root"), &dir.path().join("log"))).await.unwrap();
    let again = registry.register(fs_config("fs", &dir.path().join("root"), &dir.path().join("log"))).await;
    assert!(matches!(&again, Err(UpstreamError::AlreadyRegistered { name }) if name == "fs"), "{again:?}");
    registry.shutdown().await;
}

#[tokio::test]
async fn the_application_connects_stored_servers_at_start_and_stops_their_children_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("server.pid");
    let script = format!(
        "echo $$ > '{}'; exec '{}' --root '{}'",
        pid_file.display(),
        example_fs_bin().display(),
        dir.path().join("root").display()
    );
    // Stored before the application starts, as after a restart.
    let db = fresh_database().await;
    let setup = registry_on(&db, UpstreamSettings::default()).await;
    setup
        .register(config(json!({"name": "fs", "transport": "stdio", "command": "sh", "args": ["-c", script]})))
        .await
        .expect("register");
    setup.shutdown().await;

    let app = crate::helpers::spawn_app_on(db, crate::helpers::test_settings()).await;
    let status = wait_connected(&app.state.upstreams, "fs").await;
    assert_eq!(status.tools.len(), 4);
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    assert!(process_alive(pid));

    app.stop().await;
    assert!(!process_alive(pid), "the child outlived the application");
}

#[tokio::test]
async fn spawn_app_has_an_empty_registry() {
    let app = spawn_app().await;
    assert!(app.state.upstreams.list().is_empty());
    assert!(app.state.upstreams.tools().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_tools_call_answered_404_is_never_sent_a_second_time() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls.log");
    let mut child = Command::new("python3")
        .arg(repo().join("tests/peers/session_losing_server.py"))
        .env("CALL_LOG", &log)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start the session-losing server");
    let port = listening_port(&mut child, "the session-losing server").await;
    let db = fresh_database().await;
    let registry = registry_on(&db, UpstreamSettings::default()).await;
    let url = format!("http://127.0.0.1:{port}/mcp");
    registry.register(config(json!({"name": "losing", "transport": "streamable_http", "url": url}))).await.unwrap();
    wait_connected(&registry, "losing").await;

    let answer = registry.call_tool("once", args(json!({}))).await;
    assert!(answer.is_err(), "the call's session was lost: {answer:?}");
    assert_eq!(calls_logged(&log), ["once"], "the call reached the upstream once, and was not sent again");
    registry.shutdown().await;
}
