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
    let body: Value = app
        .client
        .get(app.url(&format!("/admin/mcp-servers/{name}")))
        .bearer_auth(&admin.access_token)
        .send()
        .await
        .expect("server status")
        .json()
        .await
        .expect("a server");
    body["status"].as_str().unwrap_or_default().to_owned()
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
