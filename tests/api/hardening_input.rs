//! Input PostgreSQL cannot store: a NUL character (`\u0000`) in any text a client sends
//! is a clear 4xx (or JSON-RPC `-32602`) that changes nothing, never a 500 — and never an
//! event that a projection cannot apply (the read model's `jsonb` refuses NUL).

use std::time::Duration;

use serde_json::{json, Value};

use crate::auth_helpers::*;
use crate::gateway_helpers::*;
use crate::helpers::{eventually, spawn_app};

async fn failures_counted(app: &crate::helpers::TestApp) -> i64 {
    sqlx::query_scalar("SELECT coalesce(sum(failures), 0)::bigint FROM login_throttle")
        .fetch_one(&app.db.pool)
        .await
        .expect("login_throttle")
}

#[tokio::test]
async fn a_nul_in_a_login_is_a_400_counted_as_a_failed_login() {
    let app = spawn_app().await;
    for body in [json!({"username": "a\u{0}", "password": "x"}), json!({"username": "admin", "password": "x\u{0}y"})] {
        let before = failures_counted(&app).await;
        let response = app.client.post(app.url("/auth/login")).json(&body).send().await.expect("login");
        let status = response.status().as_u16();
        let error: Value = response.json().await.expect("a JSON error");
        assert_eq!(status, 400, "{body}: {error}");
        assert!(error["error"]["message"].as_str().unwrap().contains("NUL"), "{error}");
        assert!(failures_counted(&app).await > before, "{body} counts as a failed login");
    }
}

#[tokio::test]
async fn a_nul_in_an_admin_body_or_filter_is_a_400_that_changes_nothing() {
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    let agent = json!({"name": "nul", "description": "bad\u{0}", "allowed_tools": [], "approval_required_tools": []});
    let response = app.client.post(app.url("/admin/agents")).bearer_auth(&admin.access_token).json(&agent).send().await;
    assert_eq!(response.expect("create").status(), 400);
    let listed: Value = get_with(&app, "/admin/agents", &admin.access_token).await.json().await.expect("agents");
    assert!(!listed.to_string().contains("\"nul\""), "no agent was created: {listed}");
    for filter in ["agent=a%00b", "tool=%00", "status=pending%00"] {
        let response = get_with(&app, &format!("/admin/permissions?{filter}"), &admin.access_token).await;
        assert_eq!(response.status(), 400, "{filter}");
    }
}

#[tokio::test]
async fn a_nul_in_tool_arguments_or_a_reject_reason_is_refused_and_the_projections_keep_going() {
    let app = spawn_gateway(Duration::from_millis(200)).await;
    let admin = admin_session(&app).await;
    let _fs = register_fs(&app, &admin, "fs", None).await;
    let token = agent_token(&app, &admin, "nul-agent", &["write_file"], &["write_file"]).await;
    let poisoned =
        call(&app, "nul-agent", &token, Some("k-nul"), 1, "write_file", json!({"path": "/a\u{0}", "content": "x"}))
            .await;
    let (code, message) = rpc_error(&poisoned);
    assert_eq!(code, INVALID_PARAMS, "{poisoned}");
    assert!(message.contains("NUL"), "{message}");
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&app.db.pool).await.unwrap();
    assert_eq!(events, 0, "nothing was appended");

    // A good call still becomes a request, and the read model shows it.
    let pending =
        call(&app, "nul-agent", &token, Some("k-ok"), 2, "write_file", json!({"path": "/a", "content": "x"})).await;
    let id = pending["result"]["request_id"].as_str().expect("pending").to_owned();
    let reason = app
        .client
        .post(app.url(&format!("/admin/permissions/{id}/reject")))
        .bearer_auth(&admin.access_token)
        .json(&json!({"reason": "no\u{0}"}))
        .send()
        .await
        .expect("reject");
    assert_eq!(reason.status(), 400);
    eventually(Duration::from_secs(10), "the read model lists the pending request", || async {
        let listed: Value =
            get_with(&app, "/admin/permissions?status=pending", &admin.access_token).await.json().await.expect("page");
        listed["items"].as_array().is_some_and(|items| items.iter().any(|item| item["id"] == id.as_str()))
    })
    .await;
}

#[tokio::test]
async fn an_oversized_or_malformed_trace_header_is_not_stored_in_the_log() {
    let app = spawn_gateway(Duration::from_millis(100)).await;
    let admin = admin_session(&app).await;
    let _fs = register_fs(&app, &admin, "fs", None).await;
    let token = agent_token(&app, &admin, "tracer", &["write_file"], &["write_file"]).await;
    let huge = format!("00-{}-00f067aa0ba902b7-01", "a".repeat(10_000));
    let cases = [
        ("traceparent", huge.as_str()),
        ("traceparent", "00-not-hex-at-all-01"),
        ("x-request-id", &*"r".repeat(10_000)),
        ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    ];
    for (i, (header, value)) in cases.iter().enumerate() {
        let message = tool_call(i as i64, "write_file", json!({"path": format!("/t{i}"), "content": "x"}));
        let headers = [(*header, *value), ("x-idempotency-key", &*format!("trace-{i}"))];
        let reply =
            post_raw(&app, "/mcp/agents/tracer", Some(&token), &headers, message.to_string().into_bytes()).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let traces: Vec<String> = sqlx::query_scalar("SELECT metadata->>'trace_id' FROM events ORDER BY global_position")
        .fetch_all(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(traces.len(), 4, "{traces:?}");
    assert!(traces.iter().all(|trace| trace.len() <= 64), "{traces:?}");
    assert_eq!(traces[3], "4bf92f3577b34da6a3ce929d0e0e4736", "a well-formed traceparent is kept");
}

#[tokio::test]
async fn concurrent_wrong_passwords_get_no_more_checks_than_the_limit() {
    let app = spawn_app().await;
    let limit = app.state.settings.login_throttle.max_failures_per_username as usize;
    let attempts = (0..50).map(|i| {
        let body = json!({"username": "admin", "password": format!("guess {i}")});
        let request = app.client.post(app.url("/auth/login")).json(&body).send();
        async move { request.await.expect("login").status().as_u16() }
    });
    let statuses = futures::future::join_all(attempts).await;
    let checked = statuses.iter().filter(|&&status| status == 401).count();
    let refused = statuses.iter().filter(|&&status| status == 429).count();
    assert_eq!(checked + refused, 50, "only 401 and 429: {statuses:?}");
    assert!(checked <= limit, "{checked} passwords were checked; the limit is {limit}: {statuses:?}");
    // The right password is refused too while the username is locked.
    let right = json!({"username": "admin", "password": crate::helpers::TEST_ADMIN_PASSWORD});
    let response = app.client.post(app.url("/auth/login")).json(&right).send().await.expect("login");
    assert_eq!(response.status(), 429);
}

#[tokio::test]
async fn metrics_say_nothing_about_a_failing_database_and_keep_serving() {
    let app = spawn_app().await;
    assert!(scrape(&app).await.contains("alexandria_metrics_refresh_failures_total 0"));
    app.db.pool.close().await;
    // The next refresh (at most a second away) fails; every scrape meanwhile answers 200.
    eventually(Duration::from_secs(10), "a refresh to fail", || async {
        let response = app.client.get(app.url("/metrics")).send().await.expect("scrape");
        assert_eq!(response.status(), 200);
        response.text().await.expect("a body").contains("alexandria_metrics_refresh_failures_total 1")
    })
    .await;
    let response = app.client.get(app.url("/metrics")).send().await.expect("scrape");
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("a body");
    for leak in ["closed pool", "acquire", "sqlx", "unavailable"] {
        assert!(!text.to_lowercase().contains(leak), "{leak} in {text}");
    }
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_answered_with_a_4xx_and_the_connection_freed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.expect("connect");
    let head = "POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(b"{\"username\": \"ad").await.unwrap();
    // The rest never comes: the gateway answers once the body read times out (30 s).
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(90), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the gateway answered a stalled body within its body-read timeout");
    let answer = String::from_utf8_lossy(&answer);
    let status: u16 = answer.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    assert!((400..500).contains(&status), "a 4xx for a stalled body: {answer}");
}

#[tokio::test]
async fn metrics_can_be_served_on_an_address_of_their_own_only() {
    let settings = alexandria::startup::Settings {
        metrics_listen: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
        ..crate::helpers::test_settings()
    };
    let app = crate::helpers::spawn_app_on(crate::helpers::fresh_database().await, settings).await;
    let own = app.metrics_address.clone().expect("a metrics address");
    let scraped = app.client.get(format!("{own}/metrics")).send().await.expect("scrape");
    assert_eq!(scraped.status(), 200);
    assert!(scraped.text().await.unwrap().contains("alexandria_gate_waiters"));
    let main = app.client.get(app.url("/metrics")).send().await.expect("the main address");
    assert_eq!(main.status(), 404, "not on the public address");
    let other = app.client.get(format!("{own}/healthz")).send().await.expect("the metrics address");
    assert_eq!(other.status(), 404, "nothing else on the metrics address");
}

/// Found by schemathesis: serde builds a struct from an array of its fields in order, so
/// `[null, null]` was a valid notification-settings patch (and wrote an audit row), and an
/// array of a user's fields created the user. Every body is an object or a 422.
#[tokio::test]
async fn a_body_that_is_an_array_of_the_fields_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    let send = |method: reqwest::Method, path: &str, body: Value| {
        app.client.request(method, app.url(path)).bearer_auth(&admin.access_token).json(&body).send()
    };
    let patched = send(reqwest::Method::PATCH, "/admin/notifications/config", json!([null, null])).await.unwrap();
    assert_eq!(error_of(patched).await.0, 422);
    let created =
        send(reqwest::Method::POST, "/admin/users", json!(["array-user", "a long enough password", "viewer"]))
            .await
            .unwrap();
    assert_eq!(error_of(created).await.0, 422);
    let users = get_with(&app, "/admin/users", &admin.access_token).await.json::<Value>().await.unwrap();
    assert!(!users.to_string().contains("array-user"), "{users}");
    assert!(audit_rows(&app, "notification_settings").await.is_empty(), "nothing was changed, nothing audited");
}
