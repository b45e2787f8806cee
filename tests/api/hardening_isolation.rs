//! A hostile stdio upstream against the gateway that started it: it runs as the gateway's
//! user, and must still get none of the gateway's secrets.

use std::time::Duration;

use serde_json::{json, Value};

use crate::gateway_crash::{login, post_json, start_gateway_as};
use crate::helpers::{eventually, fresh_database, TEST_ADMIN_PASSWORD};
use crate::peers::repo;

/// `nobody`: when the tests run as root (which may read any process), the gateway runs as
/// this unprivileged user, and so does its upstream, as in a real deployment.
const UNPRIVILEGED: u32 = 65534;

#[tokio::test]
async fn a_stdio_upstream_cannot_read_the_gateways_environment_or_data_directory() {
    let db = fresh_database().await;
    let data_dir = tempfile::tempdir().unwrap();
    let as_root = nix::unistd::Uid::effective().is_root();
    let uid = as_root.then_some(UNPRIVILEGED);
    if let Some(uid) = uid {
        nix::unistd::chown(data_dir.path(), Some(uid.into()), Some(uid.into())).expect("chown the data dir");
    }
    let gateway = start_gateway_as(&db, data_dir.path(), "isolated", uid).await;
    let client = reqwest::Client::new();
    let admin = login(&client, &gateway.base).await;
    // A copy the gateway's user may read (the checkout may be private).
    let script = data_dir.path().join("prying_server.py");
    std::fs::copy(repo().join("tests/peers/prying_server.py"), &script).expect("copy the prying server");
    let server = json!({"name": "prying", "transport": "stdio", "command": "python3", "args": [script]});
    let (status, body) = post_json(&client, format!("{}/admin/mcp-servers", gateway.base), Some(&admin), &server).await;
    assert_eq!(status, 201, "{body}");
    let agent = json!({"name": "pryer", "description": "", "allowed_tools": ["pry"], "approval_required_tools": []});
    let (status, body) = post_json(&client, format!("{}/admin/agents", gateway.base), Some(&admin), &agent).await;
    assert_eq!(status, 201, "{body}");
    let (status, minted) =
        post_json(&client, format!("{}/v1/agent-token", gateway.base), Some(&admin), &json!({"agent": "pryer"})).await;
    assert_eq!(status, 200, "{minted}");
    let token = minted["token"].as_str().expect("a token");

    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "pry", "arguments": {}}});
    let found = std::cell::RefCell::new(Value::Null);
    eventually(Duration::from_secs(20), "the prying tool answers", || {
        let request = post_json(&client, format!("{}/mcp/agents/pryer", gateway.base), Some(token), &call);
        let found = &found;
        async move {
            let (status, body) = request.await;
            let text = body["result"]["content"][0]["text"].as_str().map(str::to_owned);
            match (status, text) {
                (200, Some(text)) => {
                    *found.borrow_mut() = serde_json::from_str(&text).expect("the tool's JSON");
                    true
                }
                _ => false,
            }
        }
    })
    .await;
    let found = found.into_inner();
    let shown = found.to_string();
    assert!(found.get("parent_environ").is_none(), "the gateway's environment was readable: {shown}");
    assert!(found["parent_environ_error"].as_str().is_some_and(|e| e.contains("Permission")), "{shown}");
    assert!(!shown.contains(TEST_ADMIN_PASSWORD) && !shown.contains("DATABASE_URL"), "{shown}");
    assert!(!shown.contains("ALEXANDRIA_"), "no gateway setting reached the child: {shown}");
    assert_eq!(found["cwd"], "/", "{shown}");
    assert!(!shown.contains("admin-password"), "{shown}");
}
