//! Faults around an approved call: an upstream outage must not use up an approval.

use std::time::Duration;

use serde_json::{json, Value};
use uuid::Uuid;

use crate::auth_helpers::*;
use crate::gateway_helpers::*;
use crate::helpers::{eventually, TestApp};

/// Longer than the supervisor's reconnect backoff (at most 30 s) plus a start.
const RECONNECT_DEADLINE: Duration = Duration::from_secs(60);

async fn server_status(app: &TestApp, admin: &Session, name: &str) -> String {
    let body: Value =
        get_with(app, &format!("/admin/mcp-servers/{name}"), &admin.access_token).await.json().await.expect("a server");
    body["status"].as_str().unwrap_or_default().to_owned()
}

/// A gateway with the Python upstream (plus `logged_sleep`, which logs each run to
/// `log`) registered as `py`, and `agent` allowed `tools`, all of them gated.
struct PythonGateway {
    upstream: SlowPythonServer,
    log: std::path::PathBuf,
    app: TestApp,
    admin: Session,
    token: String,
    _logs: tempfile::TempDir,
}

async fn python_gateway(peers: &std::path::Path, wait: Duration, agent: &str, tools: &[&str]) -> PythonGateway {
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("calls.log");
    let upstream = slow_python_server(peers, &log).await;
    let app = spawn_gateway(wait).await;
    let admin = admin_session(&app).await;
    register_server(&app, &admin, &json!({"name": "py", "transport": "streamable_http", "url": upstream.url})).await;
    let token = agent_token(&app, &admin, agent, tools, tools).await;
    PythonGateway { upstream, log, app, admin, token, _logs: logs }
}

#[tokio::test]
async fn an_approved_call_is_not_claimed_while_its_upstream_is_down_and_runs_once_when_it_is_back() {
    let app = spawn_gateway(Duration::from_millis(500)).await;
    let admin = admin_session(&app).await;
    let fs = StoppableFs::new();
    register_server(&app, &admin, &fs.config()).await;
    let token = agent_token(&app, &admin, "outage", &["write_file"], &["write_file"]).await;
    let arguments = json!({"path": "/outage.txt", "content": "once"});
    let first = call(&app, "outage", &token, Some("k-outage"), 1, "write_file", arguments.clone()).await;
    let id = Uuid::parse_str(first["result"]["request_id"].as_str().expect("pending")).unwrap();
    approve_ok(&app, &admin, id).await;

    fs.stop();
    eventually(RECONNECT_DEADLINE, "the gateway sees the upstream down", || async {
        server_status(&app, &admin, "fs").await != "connected"
    })
    .await;
    let during = call(&app, "outage", &token, Some("k-outage"), 2, "write_file", arguments.clone()).await;
    assert_pending_envelope(&during, 2, id, Some("k-outage"), "approved");
    assert_eq!(event_types(&app.db.pool, id).await, ["Created", "Approved"], "not claimed while the upstream is down");

    fs.start();
    eventually(RECONNECT_DEADLINE, "the upstream is back", || async {
        server_status(&app, &admin, "fs").await == "connected"
    })
    .await;
    let after = call(&app, "outage", &token, Some("k-outage"), 3, "write_file", arguments).await;
    assert_eq!(after["result"]["isError"], false, "the real result: {after}");
    assert_eq!(event_types(&app.db.pool, id).await, ["Created", "Approved", "Executed", "ResultCached"]);
    assert_eq!(fs.file("/outage.txt").as_deref(), Some("once"));
}

#[tokio::test]
async fn a_call_claimed_when_the_gateway_stops_finishes_and_its_result_is_cached() {
    let Some(peers) = crate::peers::peers("a_call_claimed_when_the_gateway_stops_finishes_and_its_result_is_cached")
    else {
        return;
    };
    let PythonGateway { upstream: slow, app, admin, token, _logs, .. } =
        python_gateway(&peers, Duration::from_millis(200), "stopper", &["logged_sleep"]).await;
    // As a task: once approved, a poll runs it, and nobody's connection waits for it.
    let mut message = tool_call(1, "logged_sleep", json!({"seconds": 2}));
    message["params"]["task"] = json!({});
    let created = post_mcp(&app, "/mcp/agents/stopper", &token, None, &message).await;
    let task_id = created.body["result"]["task"]["taskId"].as_str().expect("a task").to_owned();
    let id = Uuid::parse_str(&task_id).unwrap();
    approve_ok(&app, &admin, id).await;
    let poll = request(2, "tasks/get", json!({"taskId": task_id}));
    assert_eq!(post_mcp(&app, "/mcp/agents/stopper", &token, None, &poll).await.status, 200);
    eventually(Duration::from_secs(20), "the upstream runs the call", || async {
        !crate::peers::calls_logged(&slow.call_log).is_empty()
    })
    .await;

    let db = app.stop().await;
    let outcome: Value = sqlx::query_scalar(
        "SELECT payload::jsonb -> 'ResultCached' -> 'outcome' FROM events \
         WHERE aggregate_id = $1 AND event_type = 'ResultCached'",
    )
    .bind(id.to_string())
    .fetch_optional(&db.pool)
    .await
    .unwrap()
    .expect("the outcome was cached before the gateway stopped");
    assert_eq!(outcome["result"]["content"][0]["text"], "slept 2.0", "the real result: {outcome}");
}

#[tokio::test]
async fn a_server_is_registered_or_removed_only_together_with_its_audit_record() {
    let app = crate::helpers::spawn_app().await;
    let admin = admin_session(&app).await;
    // The audit trail refuses this one change (a fault injected in the database).
    sqlx::query(
        "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN RAISE EXCEPTION 'audit refused'; END $$",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse_audit BEFORE INSERT ON admin_audit FOR EACH ROW \
         WHEN (NEW.action LIKE 'mcp_server.%') EXECUTE FUNCTION refuse_audit()",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    let fs = StoppableFs::new();
    let response = app
        .client
        .post(app.url("/admin/mcp-servers"))
        .bearer_auth(&admin.access_token)
        .json(&fs.config())
        .send()
        .await
        .expect("register");
    assert!(response.status().is_server_error(), "the change failed: {}", response.status());
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM mcp_servers").fetch_one(&app.db.pool).await.unwrap();
    assert_eq!(stored, 0, "no server without its audit record");

    sqlx::query("DROP TRIGGER refuse_audit ON admin_audit").execute(&app.db.pool).await.unwrap();
    register_server(&app, &admin, &fs.config()).await;
    sqlx::query(
        "CREATE TRIGGER refuse_audit BEFORE INSERT ON admin_audit FOR EACH ROW \
         WHEN (NEW.action LIKE 'mcp_server.%') EXECUTE FUNCTION refuse_audit()",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    let response = app
        .client
        .delete(app.url("/admin/mcp-servers/fs"))
        .bearer_auth(&admin.access_token)
        .send()
        .await
        .expect("remove");
    assert!(response.status().is_server_error(), "the change failed: {}", response.status());
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM mcp_servers").fetch_one(&app.db.pool).await.unwrap();
    assert_eq!(stored, 1, "not removed without its audit record");
}

#[tokio::test]
async fn a_result_too_deep_to_read_back_is_recorded_as_an_error_and_the_request_stays_readable() {
    let Some(peers) = crate::peers::peers("a_result_too_deep_to_read_back_is_recorded_as_an_error") else {
        return;
    };
    let PythonGateway { upstream: _upstream, app, admin, token, _logs, .. } =
        python_gateway(&peers, Duration::from_secs(5), "nester", &["nest"]).await;
    for (key, depth) in [("shallow", 20), ("deep", 124)] {
        let first = call(&app, "nester", &token, Some(key), 1, "nest", json!({"depth": depth})).await;
        let id = Uuid::parse_str(first["result"]["request_id"].as_str().expect("pending")).unwrap();
        approve_ok(&app, &admin, id).await;
        let answer = call(&app, "nester", &token, Some(key), 2, "nest", json!({"depth": depth})).await;
        // The request reads back from the log, on this replica and through the API.
        let again = call(&app, "nester", &token, Some(key), 3, "nest", json!({"depth": depth})).await;
        assert_eq!((&again["result"], &again["error"]), (&answer["result"], &answer["error"]), "the cached answer");
        let shown = get_with(&app, &format!("/admin/permissions/{id}"), &admin.access_token).await;
        assert_eq!(shown.status(), 200);
        if depth == 124 {
            let (code, message) = rpc_error(&answer);
            assert_eq!(code, -32603, "{answer}");
            assert!(message.contains("too deeply nested"), "{message}");
        } else {
            assert!(answer["result"]["structuredContent"]["n"].is_object(), "{answer}");
        }
    }
}

/// The backend of this database's LISTEN session, if one is open.
async fn listen_session(pool: &sqlx::PgPool) -> Option<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity \
         WHERE datname = current_database() AND query ILIKE 'LISTEN%' AND pid <> pg_backend_pid() LIMIT 1",
    )
    .fetch_optional(pool)
    .await
    .expect("pg_stat_activity")
}

#[tokio::test]
async fn a_killed_listener_session_is_reopened_and_a_parked_call_still_resumes() {
    let app = spawn_gateway(Duration::from_secs(20)).await;
    let admin = admin_session(&app).await;
    let fs = register_fs(&app, &admin, "fs", None).await;
    let token = agent_token(&app, &admin, "listener", &["write_file"], &["write_file"]).await;
    eventually(Duration::from_secs(10), "the gateway listens", || async {
        listen_session(&app.db.pool).await.is_some()
    })
    .await;
    let first_listen = listen_session(&app.db.pool).await.expect("a LISTEN session");
    let arguments = json!({"path": "/listened.txt", "content": "resumed"});
    let id = alexandria_domain::request_id("listener", "k-listen");
    let parked = call(&app, "listener", &token, Some("k-listen"), 1, "write_file", arguments);
    let fault = async {
        eventually(Duration::from_secs(10), "the call is parked", || async {
            !event_types(&app.db.pool, id).await.is_empty()
        })
        .await;
        let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
            .bind(first_listen)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
        assert!(ended, "the LISTEN session was ended");
        approve_ok(&app, &admin, id).await;
    };
    let (answer, ()) = tokio::join!(parked, fault);
    assert_eq!(answer["result"]["isError"], false, "the parked call resumed with the result: {answer}");
    assert_eq!(fs.file("/listened.txt").as_deref(), Some("resumed"));
    eventually(Duration::from_secs(20), "the listener opens a new session", || async {
        listen_session(&app.db.pool).await.is_some_and(|pid| pid != first_listen)
    })
    .await;
}

#[tokio::test]
async fn an_approved_call_its_agent_never_runs_expires_after_the_execution_window() {
    let settings = alexandria::startup::Settings {
        approval_ttl: Duration::from_secs(3),
        ..settings_with_wait(Duration::from_millis(100))
    };
    let app = crate::helpers::spawn_app_on(crate::helpers::fresh_database().await, settings).await;
    let admin = admin_session(&app).await;
    let fs = register_fs(&app, &admin, "fs", None).await;
    let token = agent_token(&app, &admin, "forgetful", &["write_file"], &["write_file"]).await;
    let arguments = json!({"path": "/never.txt", "content": "x"});
    let first = call(&app, "forgetful", &token, Some("k-never"), 1, "write_file", arguments.clone()).await;
    let id = Uuid::parse_str(first["result"]["request_id"].as_str().expect("pending")).unwrap();
    let approved = approve_ok(&app, &admin, id).await;
    assert!(approved["status"] == "approved", "{approved}");
    // The reconciler expires it once the window after the approval has passed.
    eventually(Duration::from_secs(20), "the approved request expires", || async {
        event_types(&app.db.pool, id).await == ["Created", "Approved", "Expired"]
    })
    .await;
    let late = call(&app, "forgetful", &token, Some("k-never"), 2, "write_file", arguments).await;
    assert_eq!(rpc_error(&late), (ACCESS_DENIED, "denied: approval expired".to_owned()));
    assert!(fs.calls().is_empty(), "the call never ran");
}

#[tokio::test]
async fn an_approved_call_is_not_claimed_while_an_http_upstream_is_gone_unnoticed() {
    let Some(peers) = crate::peers::peers("an_approved_call_is_not_claimed_while_an_http_upstream_is_gone_unnoticed")
    else {
        return;
    };
    let PythonGateway { mut upstream, log, app, admin, token, _logs } =
        python_gateway(&peers, Duration::from_millis(500), "http-outage", &["logged_sleep"]).await;
    let arguments = json!({"seconds": 0});
    let first = call(&app, "http-outage", &token, Some("k-http"), 1, "logged_sleep", arguments.clone()).await;
    let id = Uuid::parse_str(first["result"]["request_id"].as_str().expect("pending")).unwrap();
    approve_ok(&app, &admin, id).await;

    // Gone, and the gateway has not noticed: its session still counts as connected.
    upstream.child.kill().await.expect("stop the Python server");
    assert_eq!(server_status(&app, &admin, "py").await, "connected");
    let during = call(&app, "http-outage", &token, Some("k-http"), 2, "logged_sleep", arguments.clone()).await;
    assert_pending_envelope_of_typed_tool(&during, 2, id, Some("k-http"), "approved");
    assert_eq!(event_types(&app.db.pool, id).await, ["Created", "Approved"], "not claimed while it is gone");

    let _back = slow_python_server_on(&peers, &log, upstream.port).await;
    eventually(RECONNECT_DEADLINE, "the upstream is back", || async {
        call(&app, "http-outage", &token, Some("k-http"), 3, "logged_sleep", arguments.clone()).await["result"]
            ["isError"]
            == false
    })
    .await;
    assert_eq!(event_types(&app.db.pool, id).await, ["Created", "Approved", "Executed", "ResultCached"]);
    assert_eq!(crate::peers::calls_logged(&log), ["logged_sleep"], "ran once");
}
