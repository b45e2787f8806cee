//! `/admin/permissions`: listing with filters and cursor pagination, a request, its
//! history, and decisions refused for what the request is or what the caller sent.

use std::collections::HashSet;
use std::time::Duration;

use alexandria_domain::PermissionRequestCommand as C;
use chrono::Utc;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::auth_helpers::*;
use crate::gateway_helpers::*;
use crate::helpers::{eventually, requests, spawn_app, TestApp};

async fn get_json(app: &TestApp, path: &str, token: &str) -> (u16, Value) {
    let response = get_with(app, path, token).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn list(app: &TestApp, admin: &Session, query: &str) -> Value {
    let (status, page) = get_json(app, &format!("/admin/permissions{query}"), &admin.access_token).await;
    assert_eq!(status, 200, "GET /admin/permissions{query}: {page}");
    page
}

fn ids(page: &Value) -> Vec<String> {
    page["items"].as_array().expect("items").iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect()
}

/// A request for `tool` (the helper's `create_cmd` is always write_file).
async fn create_for_tool(app: &TestApp, agent: &str, key: &str, tool: &str) -> Uuid {
    let id = alexandria_domain::request_id(agent, key);
    let command = C::Create {
        agent: agent.into(),
        tool: tool.into(),
        arguments: json!({"message": key}),
        idempotency_key: key.into(),
        requested_by: format!("agent:{agent}"),
        at: Utc::now(),
        expires_at: Utc::now() + chrono::Duration::hours(1),
    };
    app.state.store.execute(id, command, &requests::meta(&format!("agent:{agent}"))).await.expect("create");
    id
}

#[tokio::test]
async fn listing_filters_and_pages_newest_first_without_duplicates() {
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    let store = &app.state.store;
    // Created one after another: creation order is age order.
    let mut all = Vec::new(); // oldest first
    for n in 0..7 {
        let steps: &[&str] = match n % 3 {
            0 => &[],
            1 => &["approve"],
            _ => &["reject"],
        };
        all.push(requests::request_through(store, "agent-a", &format!("a-{n}"), steps).await);
    }
    for n in 0..3 {
        all.push(requests::request_through(store, "agent-b", &format!("b-{n}"), &[]).await);
    }
    for n in 0..2 {
        all.push(create_for_tool(&app, "agent-b", &format!("echo-{n}"), "echo").await);
    }
    let newest_first: Vec<String> = all.iter().rev().map(Uuid::to_string).collect();
    eventually(Duration::from_secs(10), "the read model has every request", || async {
        list(&app, &admin, "?limit=500").await["items"].as_array().unwrap().len() == all.len()
    })
    .await;

    let page = list(&app, &admin, "").await;
    assert_eq!(ids(&page), newest_first, "newest first");
    assert_eq!(page["next_cursor"], Value::Null);
    let first = &page["items"][0];
    assert_eq!(first["agent"], "agent-b");
    assert_eq!(first["tool"], "echo");
    assert_eq!(first["status"], "pending");

    // Filters, alone and together.
    let pending = list(&app, &admin, "?status=pending").await;
    assert!(pending["items"].as_array().unwrap().iter().all(|i| i["status"] == "pending"));
    assert_eq!(ids(&pending).len(), 3 + 3 + 2, "a-0, a-3, a-6, b-*, echo-*");
    let rejected = list(&app, &admin, "?status=rejected").await;
    let want: Vec<String> = [5, 2].iter().map(|n| all[*n].to_string()).collect();
    assert_eq!(ids(&rejected), want);
    assert!(rejected["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["reason"].as_str().unwrap().starts_with("no to a-")));
    let approved = list(&app, &admin, "?status=approved&agent=agent-a").await;
    assert_eq!(ids(&approved), [all[4].to_string(), all[1].to_string()]);
    let agent_b = list(&app, &admin, "?agent=agent-b").await;
    assert_eq!(ids(&agent_b), newest_first[..5].to_vec());
    let echo = list(&app, &admin, "?tool=echo").await;
    assert_eq!(ids(&echo), newest_first[..2].to_vec());
    let b_writes = list(&app, &admin, "?agent=agent-b&tool=write_file&status=pending").await;
    assert_eq!(ids(&b_writes), newest_first[2..5].to_vec());
    assert_eq!(ids(&list(&app, &admin, "?agent=nobody").await), Vec::<String>::new());

    // Pages of 5: the same order, nothing twice, nothing missed; the last page says so.
    let mut seen = Vec::new();
    let mut query = "?limit=5".to_owned();
    let mut pages = 0;
    loop {
        let page = list(&app, &admin, &query).await;
        pages += 1;
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=5&cursor={cursor}"),
            None => break,
        }
        assert!(pages < 10, "the cursor does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, newest_first);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), seen.len(), "no duplicates");
    // Paging through a filter stays inside it.
    let first_two = list(&app, &admin, "?status=pending&limit=2").await;
    let cursor = first_two["next_cursor"].as_str().expect("more pending");
    let next = list(&app, &admin, &format!("?status=pending&limit=2&cursor={cursor}")).await;
    let mut paged = ids(&first_two);
    paged.extend(ids(&next));
    assert_eq!(paged, ids(&pending)[..4].to_vec());

    // Bad queries: 400 with a message saying what to send.
    for (query, needle) in [
        ("?status=bogus", "unknown status"),
        ("?limit=0", "limit"),
        ("?limit=501", "limit"),
        ("?limit=ten", "limit"),
        ("?cursor=not-a-cursor", "cursor"),
        ("?colour=blue", "colour"),
    ] {
        let (status, body) = get_json(&app, &format!("/admin/permissions{query}"), &admin.access_token).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(needle), "{query}: {body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn one_request_its_history_and_ids_that_are_unknown_or_malformed() {
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    let id = requests::request_through(&app.state.store, "agent-a", "history", &["approve", "claim", "cache"]).await;

    let (status, dto) = get_json(&app, &format!("/admin/permissions/{id}"), &admin.access_token).await;
    assert_eq!(status, 200, "{dto}");
    assert_eq!(dto["id"], id.to_string());
    assert_eq!(dto["request_type"], "tool_call");
    assert_eq!(dto["agent"], "agent-a");
    assert_eq!(dto["tool"], "write_file");
    assert_eq!(dto["arguments"], json!({"path": "/tmp/history", "content": "hello"}));
    assert_eq!(dto["status"], "executed");
    assert_eq!(dto["reviewed_by"], "admin");
    assert!(dto["reviewed_at"].is_string() && dto["executed_at"].is_string() && dto["created_at"].is_string());
    assert!(dto["expires_at"].is_string());
    assert_eq!(dto["has_result"], true);
    assert_eq!(dto["reason"], Value::Null);
    assert!(dto["notifier_meta"].is_object());

    let (status, history) = get_json(&app, &format!("/admin/permissions/{id}/events"), &admin.access_token).await;
    assert_eq!(status, 200, "{history}");
    let events = history.as_array().expect("a list of events");
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["Created", "Approved", "Executed", "ResultCached"]);
    let sequences: Vec<i64> = events.iter().map(|e| e["sequence"].as_i64().unwrap()).collect();
    assert_eq!(sequences, [1, 2, 3, 4]);
    assert!(events.iter().all(|e| e["aggregate_id"] == id.to_string()));
    assert_eq!(events[1]["metadata"]["actor"], "user:admin");
    assert_eq!(events[0]["payload"]["Created"]["agent"], "agent-a");
    let positions: Vec<i64> = events.iter().map(|e| e["position"].as_i64().unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");

    let unknown = Uuid::new_v4();
    for path in [format!("/admin/permissions/{unknown}"), format!("/admin/permissions/{unknown}/events")] {
        let (status, body) = get_json(&app, &path, &admin.access_token).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["error"]["code"], "not_found");
    }
    let (status, code, _) = error_of(approve(&app, &admin, &unknown.to_string()).await).await;
    assert_eq!((status, code.as_str()), (404, "not_found"));
    let (status, _, _) = error_of(reject(&app, &admin, &unknown.to_string(), "no").await).await;
    assert_eq!(status, 404);

    for path in ["/admin/permissions/not-a-uuid", "/admin/permissions/not-a-uuid/events"] {
        let (status, body) = get_json(&app, path, &admin.access_token).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("not-a-uuid"), "{body}");
    }
    assert_eq!(approve(&app, &admin, "not-a-uuid").await.status(), 400);
    assert_eq!(reject(&app, &admin, "not-a-uuid", "no").await.status(), 400);
    app.stop().await;
}

#[tokio::test]
async fn decisions_refuse_bad_reasons_and_decided_requests() {
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    let store = &app.state.store;
    let open = requests::request_through(store, "agent-a", "open", &[]).await;
    let post_reject = |body: Value| {
        app.client
            .post(app.url(&format!("/admin/permissions/{open}/reject")))
            .bearer_auth(&admin.access_token)
            .json(&body)
            .send()
    };

    // Reject needs a reason of 1 to 1,000 characters: 422 otherwise, and nothing changes.
    for body in [
        json!({}),
        json!({"reason": ""}),
        json!({"reason": "   "}),
        json!({"reason": "x".repeat(1001)}),
        json!({"reason": 5}),
    ] {
        let (status, code, message) = error_of(post_reject(body.clone()).await.unwrap()).await;
        assert_eq!(status, 422, "{body}: {message}");
        assert_eq!(code, "unprocessable", "{body}");
        if body.get("reason").is_some_and(Value::is_string) {
            assert!(message.contains("1000"), "the limit is named: {message}");
        }
    }
    let unknown_field = post_reject(json!({"reason": "ok", "extra": 1})).await.unwrap();
    assert_eq!(unknown_field.status(), 422);
    assert_eq!(event_types(&app.db.pool, open).await, ["Created"], "refused rejections change nothing");
    // Exactly 1,000 characters (multi-byte ones count as one) is accepted.
    let longest = "é".repeat(1000);
    let accepted = post_reject(json!({"reason": longest})).await.unwrap();
    assert_eq!(accepted.status(), 200);
    let dto: Value = accepted.json().await.unwrap();
    assert_eq!(dto["reason"], longest);

    // Deciding a decided request: 409 naming its status.
    let approved = requests::request_through(store, "agent-a", "approved", &["approve"]).await;
    let executing = requests::request_through(store, "agent-a", "executing", &["approve", "claim"]).await;
    let executed = requests::request_through(store, "agent-a", "executed", &["approve", "claim", "cache"]).await;
    for (id, status) in [(open, "rejected"), (approved, "approved"), (executing, "executing"), (executed, "executed")] {
        for response in
            [approve(&app, &admin, &id.to_string()).await, reject(&app, &admin, &id.to_string(), "late").await]
        {
            let (http, code, message) = error_of(response).await;
            assert_eq!((http, code.as_str()), (409, "conflict"), "{id}: {message}");
            assert_eq!(message, format!("permission request is {status}, not pending"));
        }
    }
    // An expired request cannot be approved either.
    let expired = alexandria_domain::request_id("agent-a", "expired");
    let past = Utc::now() - chrono::Duration::hours(2);
    store
        .execute(
            expired,
            C::Create {
                agent: "agent-a".into(),
                tool: "write_file".into(),
                arguments: json!({}),
                idempotency_key: "expired".into(),
                requested_by: "agent:agent-a".into(),
                at: past,
                expires_at: past + chrono::Duration::hours(1),
            },
            &requests::meta("agent:agent-a"),
        )
        .await
        .unwrap();
    let (http, _, message) = error_of(approve(&app, &admin, &expired.to_string()).await).await;
    assert_eq!(http, 409, "{message}");
    assert!(message.contains("expired"), "{message}");
    assert_eq!(event_types(&app.db.pool, approved).await, ["Created", "Approved"]);
    app.stop().await;
}
