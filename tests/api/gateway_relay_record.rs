//! Every request an upstream asks a client during a call (`elicitation/create`,
//! `sampling/createMessage`) is recorded with the call as an event of the log (aggregate
//! type `RelayedClientRequests`, keyed by the call: a gated call's permission request id,
//! a fresh id for a pass-through call): which server asked what, and how it ended —
//! answered, refused with its code, or no answer. The client's answer is never stored.
//! The records are sealed by the audit chain like every event, exported, verified, and a
//! gated call's are listed in its permission request's detail.

use std::time::Duration;

use serde_json::{json, Value};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::audit_chain::{alexandria, seal_all};
use crate::auth_helpers::{admin_session, console_cookie};
use crate::conformance::ReferenceServer;
use crate::gateway_helpers::{agent_token, metric, post_mcp, register_server, scrape, tool_call};
use crate::gateway_relay::{gated_sampling_run_after_approval, post_streaming, EventReader, GatedSamplingRun};
use crate::helpers::{eventually, spawn_app, TestApp};
use crate::peers::peers;

const RECORDS: &str = "RelayedClientRequests";

/// The relayed-request records in the log: (aggregate id, sequence, payload of the
/// `ClientRequestRelayed` event, the whole row as text).
async fn records(pool: &PgPool) -> Vec<(String, i64, Value, String)> {
    sqlx::query(
        "SELECT aggregate_id, sequence, event_type, payload, row_to_json(events)::text AS whole \
         FROM events WHERE aggregate_type = $1 ORDER BY global_position",
    )
    .bind(RECORDS)
    .fetch_all(pool)
    .await
    .expect("read the records")
    .iter()
    .map(|row| {
        assert_eq!(row.get::<String, _>("event_type"), "ClientRequestRelayed");
        let payload: Value = row.get("payload");
        (row.get("aggregate_id"), row.get("sequence"), payload["ClientRequestRelayed"].clone(), row.get("whole"))
    })
    .collect()
}

async fn one_record(app: &TestApp) -> (String, i64, Value, String) {
    eventually(Duration::from_secs(10), "the relayed request is recorded", || async {
        !records(&app.db.pool).await.is_empty()
    })
    .await;
    let mut all = records(&app.db.pool).await;
    assert_eq!(all.len(), 1, "one record per relayed request: {all:?}");
    all.remove(0)
}

/// Reads the stream until the upstream's request arrives; its id.
async fn asked_id(events: &mut EventReader) -> String {
    loop {
        let message = events.next().await.expect("the stream goes on until the request");
        if message["method"] == "elicitation/create" {
            return message["id"].as_str().expect("a string id").to_owned();
        }
    }
}

async fn elicitation_gateway(peers: &std::path::Path) -> (TestApp, ReferenceServer, String) {
    let server = ReferenceServer::start(peers).await;
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    register_server(&app, &admin, &json!({"name": "ref", "transport": "streamable_http", "url": server.url})).await;
    let token = agent_token(&app, &admin, "asker", &["test_elicitation"], &[]).await;
    (app, server, token)
}

#[tokio::test]
async fn an_answered_elicitation_is_recorded_with_its_call_but_not_the_answer() {
    let Some(peers) = peers("an_answered_elicitation_is_recorded_with_its_call_but_not_the_answer") else { return };
    let (app, _server, token) = elicitation_gateway(&peers).await;

    let call = tool_call(3, "test_elicitation", json!({"message": "What is six times seven?"}));
    let mut stream = post_streaming(&app, &token, &call).await;
    let id = asked_id(&mut stream).await;
    let answer =
        json!({"jsonrpc": "2.0", "id": id, "result": {"action": "accept", "content": {"response": "secret-42"}}});
    assert_eq!(post_mcp(&app, "/mcp", &token, None, &answer).await.status, 202);
    let rest = stream.rest().await;
    assert!(rest.contains("secret-42"), "the upstream got the answer: {rest}");

    let (call_id, sequence, record, whole) = one_record(&app).await;
    assert_eq!(record["outcome"], json!({"kind": "answered"}), "{record}");
    assert_eq!(record["method"], "elicitation/create");
    assert_eq!(record["server"], "ref");
    assert_eq!(record["agent"], "asker");
    assert_eq!(record["tool"], "test_elicitation");
    assert_eq!(record["params"]["message"], "What is six times seven?", "the params as asked: {record}");
    assert_eq!(record["permission_request_id"], Value::Null, "a pass-through call has no request");
    assert_eq!(record["call_id"], call_id, "keyed by the call");
    assert!(call_id.parse::<Uuid>().is_ok() && sequence == 1, "{call_id} #{sequence}");
    assert!(record["asked_at"].is_string() && record["ended_at"].is_string(), "{record}");
    assert!(!whole.contains("secret-42"), "the client's answer is not stored: {whole}");
    let stored: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM events WHERE payload::text LIKE '%secret-42%')")
            .fetch_one(&app.db.pool)
            .await
            .expect("search the log");
    assert!(!stored, "no event anywhere holds the answer");

    let metrics = scrape(&app).await;
    let labels = [("method", "elicitation/create"), ("outcome", "answered")];
    assert_eq!(metric(&metrics, "alexandria_relayed_client_requests_total", &labels), Some(1.0), "{metrics}");
}

#[tokio::test]
async fn a_refused_elicitation_is_recorded_with_the_clients_error_code() {
    let Some(peers) = peers("a_refused_elicitation_is_recorded_with_the_clients_error_code") else { return };
    let (app, _server, token) = elicitation_gateway(&peers).await;

    let call = tool_call(4, "test_elicitation", json!({"message": "May I?"}));
    let mut stream = post_streaming(&app, &token, &call).await;
    let id = asked_id(&mut stream).await;
    let refusal = json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32042, "message": "the user said no"}});
    assert_eq!(post_mcp(&app, "/mcp", &token, None, &refusal).await.status, 202);
    let rest = stream.rest().await;
    assert!(rest.contains("\"id\":4"), "the call ends: {rest}");

    let (_, _, record, _) = one_record(&app).await;
    assert_eq!(record["outcome"], json!({"kind": "refused", "code": -32042}), "{record}");
    assert_eq!(record["params"]["message"], "May I?");
    let metrics = scrape(&app).await;
    let labels = [("method", "elicitation/create"), ("outcome", "refused")];
    assert_eq!(metric(&metrics, "alexandria_relayed_client_requests_total", &labels), Some(1.0), "{metrics}");
}

#[tokio::test]
async fn a_gated_call_run_without_a_client_stream_records_no_answer_against_its_request_and_the_chain_seals_it() {
    let Some(peers) =
        peers("a_gated_call_run_without_a_client_stream_records_no_answer_against_its_request_and_the_chain_seals_it")
    else {
        return;
    };
    let GatedSamplingRun { server: _server, app, admin, request_id, ran, .. } =
        gated_sampling_run_after_approval(&peers).await;
    assert!(ran["result"]["content"][0]["text"].as_str().is_some_and(|text| text.contains("cannot relay")), "{ran}");

    let (aggregate_id, _, record, _) = one_record(&app).await;
    assert_eq!(aggregate_id, request_id.to_string(), "recorded against the permission request");
    assert_eq!(record["permission_request_id"], request_id.to_string());
    assert_eq!(record["method"], "sampling/createMessage");
    assert_eq!(record["outcome"], json!({"kind": "no_answer", "reason": "no_client_stream"}), "{record}");
    assert_eq!(record["params"]["messages"][0]["content"]["text"], "Approve me", "{record}");

    // The request's detail lists it; its own events are as they were.
    let detail: Value = app
        .client
        .get(app.url(&format!("/admin/permissions/{request_id}")))
        .bearer_auth(&admin.access_token)
        .send()
        .await
        .expect("GET the request")
        .json()
        .await
        .expect("JSON");
    let listed = detail["relayed_requests"].as_array().unwrap_or_else(|| panic!("relayed_requests: {detail}"));
    assert_eq!(listed.len(), 1, "{detail}");
    assert_eq!(listed[0]["server"], "ref");
    assert_eq!(listed[0]["method"], "sampling/createMessage");
    assert_eq!(listed[0]["outcome"]["kind"], "no_answer");
    assert_eq!(detail["status"], "executed", "recording changes nothing of the request: {detail}");

    // And so does its console page.
    let cookie = console_cookie(&app, "admin", crate::helpers::TEST_ADMIN_PASSWORD).await;
    let page = app
        .client
        .get(app.url(&format!("/requests/{request_id}")))
        .header("cookie", cookie)
        .send()
        .await
        .expect("GET the request's page");
    assert_eq!(page.status(), 200);
    let page = page.text().await.expect("the page");
    assert!(page.contains("Asked of the client during the call") && page.contains("sampling/createMessage"), "{page}");
    assert!(page.contains("no answer: this call has no client stream to ask on"), "{page}");

    // Sealed, exported and verified like every event; and an edit of it is named.
    seal_all(&app.db.pool).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("export.jsonl");
    let export = alexandria(&app.db.url(), dir.path(), &["events", "export", "--output", file.to_str().unwrap()]).await;
    assert!(export.status.success(), "{export:?}");
    let text = std::fs::read_to_string(&file).expect("the export");
    let line = text
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("a JSON line"))
        .find(|line| line["aggregate_type"] == RECORDS)
        .unwrap_or_else(|| panic!("the record is exported: {text}"));
    assert_eq!(line["aggregate_id"], request_id.to_string());
    assert_eq!(line["type"], "ClientRequestRelayed");
    assert!(line["hash"].is_string(), "sealed: {line}");
    let verified = alexandria(
        "postgres://nobody@127.0.0.1:1/none",
        dir.path(),
        &["events", "verify", "--file", file.to_str().unwrap()],
    )
    .await;
    assert!(verified.status.success(), "{verified:?}");

    let position = line["position"].as_i64().expect("a position");
    let mut tx = app.db.pool.begin().await.expect("begin");
    sqlx::query("ALTER TABLE events DISABLE TRIGGER USER").execute(&mut *tx).await.expect("triggers off");
    let forge =
        "UPDATE events SET payload = jsonb_set(payload::jsonb, '{ClientRequestRelayed,server}', '\"forged\"')::json \
                 WHERE global_position = $1";
    sqlx::query(forge).bind(position).execute(&mut *tx).await.expect("edit the record");
    sqlx::query("ALTER TABLE events ENABLE TRIGGER USER").execute(&mut *tx).await.expect("triggers on");
    tx.commit().await.expect("commit");
    let live = alexandria(&app.db.url(), dir.path(), &["events", "verify"]).await;
    assert!(!live.status.success(), "an edited record fails verification: {live:?}");
    let said = String::from_utf8_lossy(&live.stdout);
    assert!(said.contains(&format!("FAILED at position {position}")), "{said}");
}
