//! Runbook Steps 2–8 (`../shared/spec/approval-gating-runbook.txt`) through HTTP, against
//! the example filesystem server registered through the admin API, bodies checked field
//! by field; and an approval that arrives within the in-band wait.

use std::time::{Duration, Instant};

use alexandria_domain::request_id;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::auth_helpers::*;
use crate::gateway_helpers::*;
use crate::helpers::{eventually, TestApp};

const AGENT: &str = "demo-agent";
const PATH: &str = "/mcp/agents/demo-agent";
const PROJECTION_DEADLINE: Duration = Duration::from_secs(10);

fn timestamp(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .unwrap_or_else(|| panic!("a timestamp: {value}"))
        .into()
}

/// Waits for the pending gauge (computed from the read model) to show `want`.
async fn pending_becomes(app: &TestApp, want: f64) {
    eventually(
        PROJECTION_DEADLINE,
        &format!("alexandria_permission_request_pending{{tool=write_file}} = {want}"),
        || async { pending_gauge(&scrape(app).await, "write_file").unwrap_or(0.0) == want },
    )
    .await;
}

async fn counters(app: &TestApp) -> [f64; 4] {
    let text = scrape(app).await;
    ["created", "approved", "rejected", "executed"]
        .map(|event| events_counter(&text, "write_file", event).unwrap_or(0.0))
}

#[tokio::test]
async fn runbook_steps_2_to_8_through_http_field_by_field() {
    let app = spawn_gateway(Duration::from_secs(1)).await;
    // Step 1 (login) is covered by runbook_auth; the super_admin session:
    let admin = admin_session(&app).await;
    let fs = register_fs(&app, &admin, "demo-fs", None).await;
    let created = create_agent(&app, &admin, AGENT, &["write_file", "read_file", "list_directory", "echo"], &[]).await;
    let token_before_step_2 = mint_agent_token(&app, &admin, AGENT).await;

    // ---- Step 2: set approval_required_tools; the agent DTO comes back.
    let response = set_tools(&app, &admin, AGENT, "approval-required-tools", &["write_file"]).await;
    assert_eq!(response.status(), 200);
    let agent: Value = response.json().await.unwrap();
    assert_eq!(agent["name"], AGENT);
    assert_eq!(agent["approval_required_tools"], json!(["write_file"]));
    assert_eq!(agent["allowed_tools"], created["allowed_tools"]);
    assert!(
        agent["permissions_version"].as_i64().unwrap() > created["permissions_version"].as_i64().unwrap(),
        "permissions_version is bumped: {agent}"
    );
    // ... so a token minted before it no longer works.
    let stale = post_mcp(&app, PATH, &token_before_step_2, None, &request(1, "tools/list", json!({}))).await;
    assert_eq!(stale.status, 401, "{}", stale.text);
    assert_eq!(stale.body["error"]["message"], "agent policy changed; mint a new token");

    // ---- Step 3: mint an agent token.
    let response = app
        .client
        .post(app.url("/v1/agent-token"))
        .bearer_auth(&admin.access_token)
        .json(&json!({"agent": AGENT}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let minted: Value = response.json().await.unwrap();
    assert_eq!(minted["agent"], AGENT);
    assert_eq!(minted["expires_in"], 3600);
    let mut effective: Vec<&str> =
        minted["effective_tools"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    effective.sort();
    assert_eq!(effective, ["echo", "list_directory", "read_file", "write_file"]);
    let token = minted["token"].as_str().expect("token").to_owned();
    assert_eq!(claims_of(&token)["approval_required_tools"], json!(["write_file"]), "baked into the JWT");

    // Before anything was gated: no pending request, no event counted.
    assert_eq!(pending_gauge(&scrape(&app).await, "write_file").unwrap_or(0.0), 0.0);
    assert_eq!(counters(&app).await, [0.0; 4]);

    // ---- Step 4: a gated tools/call answers with the pending envelope once the in-band
    // wait (1 s here, 30 s by default) is over.
    let key = Uuid::new_v4().to_string();
    let id = request_id(AGENT, &key);
    let arguments = json!({"path": "/tmp/smoke.txt", "content": "hello"});
    let started = Instant::now();
    let resp1 = call(&app, AGENT, &token, Some(&key), 1, "write_file", arguments.clone()).await;
    assert!(started.elapsed() >= Duration::from_secs(1), "it waited in-band first");
    assert_pending_envelope(&resp1, 1, id, Some(&key), "pending");
    assert!(fs.calls().is_empty(), "nothing ran upstream: {:?}", fs.calls());
    assert_eq!(fs.file("/tmp/smoke.txt"), None);
    pending_becomes(&app, 1.0).await;
    assert_eq!(counters(&app).await, [1.0, 0.0, 0.0, 0.0]);
    // The request as the admin API shows it, before the decision.
    let shown: Value =
        get_with(&app, &format!("/admin/permissions/{id}"), &admin.access_token).await.json().await.unwrap();
    assert_eq!(shown["status"], "pending", "{shown}");

    // ---- Step 5: approve; the DTO reflects the decision.
    let before_approval = Utc::now();
    let dto = approve_ok(&app, &admin, id).await;
    let after_approval = Utc::now();
    assert_eq!(dto["id"], id.to_string());
    assert_eq!(dto["request_type"], "tool_call");
    assert_eq!(dto["agent"], AGENT);
    assert_eq!(dto["tool"], "write_file");
    assert_eq!(dto["arguments"], arguments);
    assert_eq!(dto["status"], "approved");
    assert_eq!(dto["reviewed_by"], "admin");
    let reviewed_at = timestamp(&dto["reviewed_at"]);
    assert!(before_approval <= reviewed_at && reviewed_at <= after_approval, "reviewed_at {reviewed_at}");
    let created_at = timestamp(&dto["created_at"]);
    assert!(created_at < reviewed_at);
    assert_eq!(timestamp(&dto["expires_at"]) - created_at, chrono::Duration::hours(24), "default TTL 24 h");
    assert_eq!(dto["reason"], Value::Null);
    assert_eq!(dto["executed_at"], Value::Null);
    assert_eq!(dto["has_result"], false);
    assert!(dto["notifier_meta"].is_object(), "{dto}");
    assert_eq!(dto["notifier_meta"].get("reason"), None, "no reason for an approval: {dto}");
    let keys: Vec<&str> = dto.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 14, "the DTO's fields: {keys:?}");
    pending_becomes(&app, 0.0).await;
    assert_eq!(counters(&app).await, [1.0, 1.0, 0.0, 0.0]);

    // ---- Step 6: the retry with the same key gets the real tool result.
    let resp2 = call(&app, AGENT, &token, Some(&key), 2, "write_file", arguments.clone()).await;
    assert_eq!(
        resp2,
        json!({"jsonrpc": "2.0", "id": 2, "result": {
            "content": [{"type": "text", "text": "wrote 5 bytes to /tmp/smoke.txt"}],
            "isError": false,
        }}),
        "the real write_file result, not a pending envelope"
    );
    assert_eq!(fs.file("/tmp/smoke.txt").as_deref(), Some("hello"), "the file really exists in the server's root");
    assert_eq!(fs.calls(), ["write_file"]);
    // Every later retry gets the cached result; the upstream is not called again.
    let again = call(&app, AGENT, &token, Some(&key), 5, "write_file", arguments.clone()).await;
    assert_eq!(again["result"], resp2["result"]);
    assert_eq!(fs.calls(), ["write_file"]);
    let shown: Value =
        get_with(&app, &format!("/admin/permissions/{id}"), &admin.access_token).await.json().await.unwrap();
    assert_eq!(shown["status"], "executed", "{shown}");
    assert_eq!(shown["has_result"], true, "{shown}");
    assert!(timestamp(&shown["executed_at"]) >= reviewed_at);
    assert_eq!(event_types(&app.db.pool, id).await, ["Created", "Approved", "Executed", "ResultCached"]);

    // ---- Step 7: metrics after one full create → approve → execute cycle.
    let text = scrape(&app).await;
    assert_eq!(pending_gauge(&text, "write_file"), Some(0.0), "{text}");
    assert!(text
        .lines()
        .any(|l| l == r#"alexandria_permission_request_pending{request_type="tool_call",tool="write_file"} 0"#));
    assert_eq!(counters(&app).await, [1.0, 1.0, 0.0, 1.0]);

    // ---- Step 8: the reject path, with a fresh key.
    let key3 = Uuid::new_v4().to_string();
    let id3 = request_id(AGENT, &key3);
    let reject_me = json!({"path": "/tmp/smoke.txt", "content": "reject me"});
    let resp3 = call(&app, AGENT, &token, Some(&key3), 3, "write_file", reject_me.clone()).await;
    assert_pending_envelope(&resp3, 3, id3, Some(&key3), "pending");
    pending_becomes(&app, 1.0).await;
    let response = reject(&app, &admin, &id3.to_string(), "smoke test rejection").await;
    assert_eq!(response.status(), 200);
    let rejected: Value = response.json().await.unwrap();
    assert_eq!(rejected["id"], id3.to_string());
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["reason"], "smoke test rejection");
    assert_eq!(rejected["reviewed_by"], "admin");
    assert_eq!(rejected["notifier_meta"]["reason"], "smoke test rejection");
    assert_eq!(rejected["has_result"], false);
    let resp4 = call(&app, AGENT, &token, Some(&key3), 4, "write_file", reject_me.clone()).await;
    assert_eq!(resp4["jsonrpc"], "2.0");
    assert_eq!(resp4["id"], 4);
    assert_eq!(rpc_error(&resp4), (ACCESS_DENIED, "denied: smoke test rejection".to_owned()));
    assert_eq!(resp4["error"]["data"]["request_id"], id3.to_string());
    assert_eq!(fs.file("/tmp/smoke.txt").as_deref(), Some("hello"), "the rejected write never ran");
    assert_eq!(fs.calls(), ["write_file"]);
    pending_becomes(&app, 0.0).await;
    assert_eq!(counters(&app).await, [2.0, 1.0, 1.0, 1.0]);

    // ---- A retry while still pending: the envelope again, no second request.
    let key6 = Uuid::new_v4().to_string();
    let id6 = request_id(AGENT, &key6);
    let waiting = json!({"path": "/tmp/later.txt", "content": "later"});
    let first = call(&app, AGENT, &token, Some(&key6), 6, "write_file", waiting.clone()).await;
    assert_pending_envelope(&first, 6, id6, Some(&key6), "pending");
    let second = call(&app, AGENT, &token, Some(&key6), 7, "write_file", waiting.clone()).await;
    assert_pending_envelope(&second, 7, id6, Some(&key6), "pending");
    assert_eq!(second["result"]["_meta"], first["result"]["_meta"], "the same request, the same expiry");
    assert_eq!(event_types(&app.db.pool, id6).await, ["Created"], "no second request");
    assert_eq!(counters(&app).await, [3.0, 1.0, 1.0, 1.0], "created once");
    pending_becomes(&app, 1.0).await;

    // ---- The Step 4 key reused with other arguments: -32602, nothing changes.
    let conflict =
        call(&app, AGENT, &token, Some(&key), 8, "write_file", json!({"path": "/tmp/smoke.txt", "content": "other"}))
            .await;
    let (code, message) = rpc_error(&conflict);
    assert_eq!(code, INVALID_PARAMS, "{conflict}");
    assert!(
        message.contains(&key) && message.contains("other arguments") && message.contains("write_file"),
        "{message}"
    );
    assert_eq!(conflict["id"], 8);
    // ... and with another tool.
    let other_tool = call(&app, AGENT, &token, Some(&key), 9, "echo", json!({"message": "hi"})).await;
    assert_eq!(other_tool["result"]["content"][0]["text"], "hi", "echo is not gated: no request, no conflict");
    assert_eq!(event_types(&app.db.pool, id).await, ["Created", "Approved", "Executed", "ResultCached"]);
    assert_eq!(fs.calls(), ["write_file", "echo"]);
    assert_eq!(fs.file("/tmp/smoke.txt").as_deref(), Some("hello"));
    assert_eq!(counters(&app).await, [3.0, 1.0, 1.0, 1.0]);

    app.stop().await;
}

#[tokio::test]
async fn a_key_reused_for_another_gated_tool_is_refused() {
    let app = spawn_gateway(Duration::from_millis(200)).await;
    let admin = admin_session(&app).await;
    let fs = register_fs(&app, &admin, "fs", None).await;
    let token = agent_token(&app, &admin, "both-gated", &["write_file", "echo"], &["write_file", "echo"]).await;
    let key = "shared-key";
    let first =
        call(&app, "both-gated", &token, Some(key), 1, "write_file", json!({"path": "/a", "content": "a"})).await;
    assert_pending_envelope(&first, 1, request_id("both-gated", key), Some(key), "pending");
    let other = call(&app, "both-gated", &token, Some(key), 2, "echo", json!({"message": "a"})).await;
    let (code, message) = rpc_error(&other);
    assert_eq!(code, INVALID_PARAMS);
    assert!(message.contains("shared-key") && message.contains("write_file"), "{message}");
    assert_eq!(event_types(&app.db.pool, request_id("both-gated", key)).await, ["Created"]);
    assert!(fs.calls().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn an_approval_within_the_in_band_wait_returns_the_real_result_in_the_same_response() {
    let app = spawn_gateway(Duration::from_secs(10)).await;
    let admin = admin_session(&app).await;
    let fs = register_fs(&app, &admin, "demo-fs", None).await;
    let token = agent_token(&app, &admin, AGENT, &["write_file", "echo"], &["write_file"]).await;
    let key = Uuid::new_v4().to_string();
    let id = request_id(AGENT, &key);

    let started = Instant::now();
    let caller = {
        let (client, url, token, key) = (app.client.clone(), app.url(PATH), token.clone(), key.clone());
        tokio::spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(token)
                .header("x-idempotency-key", key)
                .json(&tool_call(1, "write_file", json!({"path": "/in-band.txt", "content": "approved in time"})))
                .send()
                .await
                .expect("the gated call");
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.expect("JSON-RPC body")
        })
    };
    // Approve from here as soon as the request exists; the call is still waiting.
    eventually(Duration::from_secs(10), "the permission request exists", || async {
        app.state.store.load(id).await.ok().flatten().is_some()
    })
    .await;
    assert!(!caller.is_finished(), "the call waits in-band");
    assert!(fs.calls().is_empty());
    // The request's HTTP duration ends with its (deferred) body, so it covers the wait:
    // while the call is parked it has not been counted.
    let mcp_requests = r#"alexandria_http_request_duration_seconds_count{method="POST",route="/mcp/agents/{name}",status_class="2xx"} "#;
    let counted =
        |text: &str| text.lines().find_map(|l| l.strip_prefix(mcp_requests)?.parse::<u64>().ok()).unwrap_or(0);
    assert_eq!(counted(&scrape(&app).await), 0, "a parked call is still in progress");
    approve_ok(&app, &admin, id).await;

    let body = caller.await.expect("the call task");
    let waited = started.elapsed();
    eventually(Duration::from_secs(5), "the finished call to be counted", || async {
        counted(&scrape(&app).await) == 1
    })
    .await;
    assert_eq!(
        body,
        json!({"jsonrpc": "2.0", "id": 1, "result": {
            "content": [{"type": "text", "text": "wrote 16 bytes to /in-band.txt"}],
            "isError": false,
        }})
    );
    assert!(waited < Duration::from_secs(8), "woken by the decision, not by the end of the wait: {waited:?}");
    assert_eq!(fs.file("/in-band.txt").as_deref(), Some("approved in time"));
    assert_eq!(fs.calls(), ["write_file"]);
    assert_eq!(event_types(&app.db.pool, id).await, ["Created", "Approved", "Executed", "ResultCached"]);
    app.stop().await;
}

#[tokio::test]
async fn an_expired_request_is_denied_with_approval_expired_and_can_no_longer_be_approved() {
    let settings = alexandria::startup::Settings {
        approval_ttl: Duration::from_secs(1),
        ..settings_with_wait(Duration::from_millis(200))
    };
    let app = crate::helpers::spawn_app_on(crate::helpers::fresh_database().await, settings).await;
    let admin = admin_session(&app).await;
    let fs = register_fs(&app, &admin, "fs", None).await;
    let token = agent_token(&app, &admin, AGENT, &["write_file"], &["write_file"]).await;
    let arguments = json!({"path": "/late.txt", "content": "too late"});
    let id = request_id(AGENT, "short-lived");

    let first = call(&app, AGENT, &token, Some("short-lived"), 1, "write_file", arguments.clone()).await;
    assert_pending_envelope(&first, 1, id, Some("short-lived"), "pending");
    let expires_at = timestamp(&first["result"]["_meta"][APPROVAL_META]["expires_at"]);
    let mut n = 1;
    eventually(Duration::from_secs(10), "the retry is denied", || {
        n += 1;
        let (app, token, arguments) = (&app, &token, arguments.clone());
        async move { call(app, AGENT, token, Some("short-lived"), n, "write_file", arguments).await.get("error").is_some() }
    })
    .await;
    assert!(Utc::now() >= expires_at);
    let denied = call(&app, AGENT, &token, Some("short-lived"), 100, "write_file", arguments.clone()).await;
    assert_eq!(rpc_error(&denied), (ACCESS_DENIED, "denied: approval expired".to_owned()));
    assert_eq!(event_types(&app.db.pool, id).await, ["Created", "Expired"]);
    let (status, _, message) = error_of(approve(&app, &admin, &id.to_string()).await).await;
    assert_eq!((status, message.as_str()), (409, "permission request is expired, not pending"));
    assert_eq!(events_counter(&scrape(&app).await, "write_file", "expired"), Some(1.0));
    assert!(fs.calls().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn without_an_idempotency_key_the_key_is_derived_from_the_tool_and_canonical_arguments() {
    let app = spawn_gateway(Duration::from_millis(200)).await;
    let admin = admin_session(&app).await;
    let fs = register_fs(&app, &admin, "fs", None).await;
    let token = agent_token(&app, &admin, AGENT, &["write_file"], &["write_file"]).await;

    let first =
        call(&app, AGENT, &token, None, 1, "write_file", json!({"path": "/derived.txt", "content": "same call"})).await;
    let id: Uuid = first["result"]["request_id"].as_str().expect("request_id").parse().unwrap();
    assert_pending_envelope(&first, 1, id, None, "pending");
    // The same arguments in another order are the same call.
    let reordered =
        call(&app, AGENT, &token, None, 2, "write_file", json!({"content": "same call", "path": "/derived.txt"})).await;
    assert_pending_envelope(&reordered, 2, id, None, "pending");
    // Other arguments are another request.
    let other =
        call(&app, AGENT, &token, None, 3, "write_file", json!({"path": "/derived.txt", "content": "another call"}))
            .await;
    assert_ne!(other["result"]["request_id"], first["result"]["request_id"], "{other}");
    assert_eq!(event_types(&app.db.pool, id).await, ["Created"]);

    approve_ok(&app, &admin, id).await;
    let done =
        call(&app, AGENT, &token, None, 4, "write_file", json!({"content": "same call", "path": "/derived.txt"})).await;
    assert_eq!(done["result"]["content"][0]["text"], "wrote 9 bytes to /derived.txt", "{done}");
    assert_eq!(fs.file("/derived.txt").as_deref(), Some("same call"));
    assert_eq!(fs.calls(), ["write_file"]);
    app.stop().await;
}

#[tokio::test]
async fn a_waiting_call_whose_client_hangs_up_still_runs_when_approved_within_the_wait() {
    let app = spawn_gateway(Duration::from_secs(20)).await;
    let admin = admin_session(&app).await;
    let fs = register_fs(&app, &admin, "fs", None).await;
    let token = agent_token(&app, &admin, AGENT, &["write_file"], &["write_file"]).await;
    let id = request_id(AGENT, "hung-up");

    let waiting = {
        let (client, url, token) = (app.client.clone(), app.url(PATH), token.clone());
        tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .header("x-idempotency-key", "hung-up")
                .json(&tool_call(1, "write_file", json!({"path": "/orphan.txt", "content": "still written"})))
                .send()
                .await?
                // The headers come at once; the JSON-RPC response is the body.
                .text()
                .await
        })
    };
    eventually(Duration::from_secs(10), "the request exists", || async {
        app.state.store.load(id).await.ok().flatten().is_some()
    })
    .await;
    // The client hangs up while its call waits in-band.
    waiting.abort();
    assert!(waiting.await.is_err_and(|e| e.is_cancelled()), "the client hung up before the answer");

    // Nobody is connected any more; the approval still reaches the waiting call.
    approve_ok(&app, &admin, id).await;
    eventually(Duration::from_secs(15), "the waiting call ran and cached its result", || async {
        event_types(&app.db.pool, id).await.last().map(String::as_str) == Some("ResultCached")
    })
    .await;
    assert_eq!(fs.file("/orphan.txt").as_deref(), Some("still written"));
    let arguments = json!({"path": "/orphan.txt", "content": "still written"});
    let retry = call(&app, AGENT, &token, Some("hung-up"), 2, "write_file", arguments).await;
    assert_eq!(retry["result"]["content"][0]["text"], "wrote 13 bytes to /orphan.txt", "{retry}");
    assert_eq!(fs.calls(), ["write_file"], "executed once, by the call whose client left");
    app.stop().await;
}

#[tokio::test]
async fn a_waiting_call_answers_pending_at_once_when_the_server_shuts_down() {
    let app = spawn_gateway(Duration::from_secs(60)).await;
    let admin = admin_session(&app).await;
    let _fs = register_fs(&app, &admin, "fs", None).await;
    let token = agent_token(&app, &admin, AGENT, &["write_file"], &["write_file"]).await;
    let id = request_id(AGENT, "at-shutdown");
    let waiting = {
        let (client, url, token) = (app.client.clone(), app.url(PATH), token.clone());
        tokio::spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(token)
                .header("x-idempotency-key", "at-shutdown")
                .json(&tool_call(1, "write_file", json!({"path": "/s.txt", "content": "s"})))
                .send()
                .await
                .expect("the call");
            response.json::<Value>().await.expect("JSON-RPC body")
        })
    };
    eventually(Duration::from_secs(10), "the request exists", || async {
        app.state.store.load(id).await.ok().flatten().is_some()
    })
    .await;
    let started = Instant::now();
    app.stop().await;
    let body = waiting.await.expect("the call task");
    assert!(started.elapsed() < Duration::from_secs(10), "shutdown did not wait out the 60 s wait");
    assert_pending_envelope(&body, 1, id, Some("at-shutdown"), "pending");
}
