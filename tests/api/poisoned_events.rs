//! A stored event nobody can read (written around the gateway, as a database superuser
//! could): it fails only its own request, never panics a reader, shows in `projections
//! status` where the projections stop, and `events skip` records a way past it.

use std::process::Output;
use std::time::Duration;

use alexandria::approval::store::{CommandError, PermissionStore};
use alexandria_domain::{request_id, RequestStatus};
use alexandria_projections::{projection_status, ProjectionStatus};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::auth_helpers::*;
use crate::gateway_helpers::*;
use crate::helpers::requests::request_through;
use crate::helpers::{
    eventually, fresh_database, spawn_app, spawn_app_on, test_settings, TestApp, TEST_ADMIN_PASSWORD,
};

const WAIT: Duration = Duration::from_secs(15);

/// `{"Approved":{"by":[[[…]]]}}`, nested 200 deep: valid JSON that PostgreSQL keeps, and
/// that serde_json (128 levels at most) will not read.
fn too_deep() -> String {
    format!(r#"{{"Approved":{{"by":{}{}}}}}"#, "[".repeat(200), "]".repeat(200))
}

/// An `Approved` event whose fields are not an `Approved` event's.
fn wrong_shape() -> String {
    json!({"Approved": {"by": 7, "when": "yesterday"}}).to_string()
}

/// Appends a raw event row for request `id`, as a superuser with `psql` would (the table
/// refuses UPDATE and DELETE, not INSERT). Returns its global position.
async fn insert_raw_event(pool: &PgPool, id: Uuid, sequence: i64, payload: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('PermissionRequest', $1, $2, 'Approved', '1', $3::json, $4) RETURNING global_position",
    )
    .bind(id.to_string())
    .bind(sequence)
    .bind(payload)
    .bind(json!({"actor": "user:dba", "replica": "psql", "trace_id": "by-hand"}))
    .fetch_one(pool)
    .await
    .expect("insert a raw event")
}

/// The CLI as a child process, awaited: a blocking wait would stop this test's runtime,
/// and with it the in-process gateway's projector in the middle of its batch, while a
/// `projections rebuild` child waits for that batch's checkpoint lock.
async fn alexandria(database_url: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_alexandria"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .output()
        .await
        .expect("run alexandria")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn statuses(pool: &PgPool) -> Vec<ProjectionStatus> {
    projection_status(pool, alexandria::notify::CHECKPOINTS_LED_BY).await.expect("projection status")
}

/// Waits until both projections that read requests' events report being stuck at `position`.
async fn both_projections_stuck_at(app: &TestApp, position: i64) {
    eventually(WAIT, "both projections to report the unreadable event", || async {
        let statuses = statuses(&app.db.pool).await;
        ["permission_requests", "notification_outbox"]
            .iter()
            .all(|name| statuses.iter().any(|s| s.name == *name && s.unreadable_position == Some(position)))
    })
    .await;
}

async fn read_model_status(pool: &PgPool, id: Uuid) -> Option<String> {
    sqlx::query_scalar("SELECT status FROM permission_requests WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
        .expect("read model")
}

#[tokio::test]
async fn an_unreadable_event_fails_only_its_own_request_and_panics_nothing() {
    let app = spawn_gateway(Duration::from_millis(200)).await;
    let admin = admin_session(&app).await;
    let fs = register_fs(&app, &admin, "fs", None).await;
    let token = agent_token(&app, &admin, "agent-p", &["write_file"], &["write_file"]).await;
    let arguments = json!({"path": "/p", "content": "p"});
    let first = call(&app, "agent-p", &token, Some("poisoned"), 1, "write_file", arguments.clone()).await;
    let poisoned = request_id("agent-p", "poisoned");
    assert_pending_envelope(&first, 1, poisoned, Some("poisoned"), "pending");
    let position = insert_raw_event(&app.db.pool, poisoned, 2, &too_deep()).await;

    // The write side reads the request's history itself: an error naming the event, where
    // postgres-es's reader panicked.
    match app.state.store.load(poisoned).await {
        Err(CommandError::Unreadable(error)) => {
            assert_eq!(error.position, position);
            assert_eq!(error.aggregate_id, poisoned.to_string());
            assert_eq!(error.sequence, 2);
            assert!(error.reason.contains("recursion limit"), "{error}");
        }
        other => panic!("expected the request to be unreadable, got {other:?}"),
    }

    // The agent's retry: a JSON-RPC internal error that names nothing internal.
    let retry = call(&app, "agent-p", &token, Some("poisoned"), 2, "write_file", arguments.clone()).await;
    let (code, message) = rpc_error(&retry);
    assert_eq!(code, -32603, "{retry}");
    assert!(!message.contains("cannot be read") && !message.contains(&position.to_string()), "{message}");
    // The admin API: a 500 whose details stay in the server's log.
    let response = get_with(&app, &format!("/admin/permissions/{poisoned}"), &admin.access_token).await;
    let (status, code, message) = error_of(response).await;
    assert_eq!((status, code.as_str(), message.as_str()), (500, "internal", "internal error"));
    let response = approve(&app, &admin, &poisoned.to_string()).await;
    assert_eq!(response.status().as_u16(), 500);

    // Every other request works as before, through the same gateway.
    let other =
        call(&app, "agent-p", &token, Some("fine"), 3, "write_file", json!({"path": "/f", "content": "f"})).await;
    let fine = request_id("agent-p", "fine");
    assert_pending_envelope(&other, 3, fine, Some("fine"), "pending");
    approve_ok(&app, &admin, fine).await;
    let done =
        call(&app, "agent-p", &token, Some("fine"), 4, "write_file", json!({"path": "/f", "content": "f"})).await;
    assert!(done.get("result").is_some_and(|r| r["isError"] == false), "{done}");
    assert_eq!(fs.file("/f").as_deref(), Some("f"));
    assert_eq!(fs.file("/p"), None, "the poisoned request never ran");
    app.stop().await;
}

#[tokio::test]
async fn projections_status_names_the_event_the_projections_cannot_read() {
    let app = spawn_app().await;
    let store = &app.state.store;
    let before = request_through(store, "agent-a", "before", &[]).await;
    let poisoned = request_through(store, "agent-a", "poisoned", &[]).await;
    // Projected before the damage (else it may share the failing batch, which applies
    // nothing).
    crate::helpers::eventually(std::time::Duration::from_secs(10), "the first requests to be projected", || async {
        read_model_status(&app.db.pool, poisoned).await.is_some()
    })
    .await;
    let position = insert_raw_event(&app.db.pool, poisoned, 2, &wrong_shape()).await;
    let after = request_through(store, "agent-a", "after", &[]).await;

    both_projections_stuck_at(&app, position).await;
    for status in statuses(&app.db.pool).await.iter().filter(|s| s.unreadable_position.is_some()) {
        let error = status.last_error.as_deref().unwrap_or_default();
        assert!(
            error.contains(&format!("event {position} (PermissionRequest {poisoned} #2) cannot be read")),
            "{error}"
        );
        assert!(error.contains("alexandria events skip"), "{error}");
        assert!(status.position < position, "{} applied nothing past the event", status.name);
    }
    assert_eq!(read_model_status(&app.db.pool, before).await.as_deref(), Some("pending"));
    assert_eq!(read_model_status(&app.db.pool, after).await, None, "stuck behind the event");

    // The command line says it too: `--json` as a field, the table as a column and a hint.
    let json_status = alexandria(&app.db.url(), &["projections", "status", "--json"]).await;
    assert!(json_status.status.success(), "{}", String::from_utf8_lossy(&json_status.stderr));
    let listed: Vec<Value> = serde_json::from_slice(&json_status.stdout).expect("JSON status");
    let requests = listed.iter().find(|s| s["name"] == "permission_requests").expect("permission_requests");
    assert_eq!(requests["unreadable_position"], position);
    let table = stdout(&alexandria(&app.db.url(), &["projections", "status"]).await);
    assert!(table.contains("STUCK AT"), "{table}");
    assert!(
        table.contains(&format!("permission_requests is stuck at event {position}, which cannot be read")),
        "{table}"
    );
    assert!(table.contains(&format!("alexandria events skip {position} --reason")), "{table}");

    // And the console's Projections page (signed in through its login form).
    let login = app
        .client
        .post(app.url("/login"))
        .header("origin", &app.address)
        .form(&[("username", "admin"), ("password", TEST_ADMIN_PASSWORD)])
        .send()
        .await
        .expect("console login");
    assert_eq!(login.status(), 303);
    let cookie = login.headers()["set-cookie"].to_str().expect("ASCII").split(';').next().expect("cookie").to_owned();
    let page = app.client.get(app.url("/projections")).header("cookie", cookie).send().await.expect("page");
    assert_eq!(page.status(), 200);
    let page = page.text().await.expect("HTML");
    assert!(page.contains(&format!("Stuck at event {position}, which cannot be read.")), "{page}");
    assert!(page.contains(&format!("alexandria events skip {position} --reason")), "{page}");
    app.stop().await;
}

#[tokio::test]
async fn a_recorded_skip_lets_every_reader_pass_the_event() {
    let db = fresh_database().await;
    let app = spawn_app_on(db, test_settings()).await;
    let store = &app.state.store;
    let poisoned = request_through(store, "agent-a", "poisoned", &[]).await;
    let position = insert_raw_event(&app.db.pool, poisoned, 2, &too_deep()).await;
    let after = request_through(store, "agent-a", "after", &["approve"]).await;
    both_projections_stuck_at(&app, position).await;
    let url = app.db.url();

    // Refused: a readable event, a position with no event, no reason.
    let readable = alexandria(&url, &["events", "skip", &(position - 1).to_string(), "--reason", "try"]).await;
    assert!(!readable.status.success());
    assert!(String::from_utf8_lossy(&readable.stderr).contains("can be read, so it is not skipped"));
    let missing = alexandria(&url, &["events", "skip", "999999", "--reason", "try"]).await;
    assert!(String::from_utf8_lossy(&missing.stderr).contains("there is no event at position 999999"));
    let blank = alexandria(&url, &["events", "skip", &position.to_string(), "--reason", "  "]).await;
    assert!(String::from_utf8_lossy(&blank.stderr).contains("give a reason"));

    let skip =
        alexandria(&url, &["events", "skip", &position.to_string(), "--reason", "hand-written, ticket 17"]).await;
    assert!(skip.status.success(), "{}", String::from_utf8_lossy(&skip.stderr));
    let summary = stdout(&skip);
    assert!(
        summary.contains(&format!("skipped event {position} (PermissionRequest {poisoned} #2, Approved)")),
        "{summary}"
    );
    assert!(summary.contains("recorded as event") && summary.contains("system:cli"), "{summary}");
    let again = alexandria(&url, &["events", "skip", &position.to_string(), "--reason", "again"]).await;
    assert!(String::from_utf8_lossy(&again.stderr).contains(&format!("event {position} is already skipped")));

    // The running gateway's projections pass it and apply what came after.
    eventually(WAIT, "the projections to pass the skipped event", || async {
        let statuses = statuses(&app.db.pool).await;
        statuses.iter().all(|s| s.unreadable_position.is_none() && s.last_error.is_none() && s.lag == 0)
    })
    .await;
    assert_eq!(read_model_status(&app.db.pool, after).await.as_deref(), Some("approved"));
    assert_eq!(read_model_status(&app.db.pool, poisoned).await.as_deref(), Some("pending"));

    // The request loads in the state its other events give, and takes new events after
    // the skipped one's sequence.
    let state = store.load(poisoned).await.expect("loadable").expect("exists");
    assert_eq!(state.status(), Some(RequestStatus::Pending));
    let reopened = PermissionStore::new(app.db.pool.clone());
    let rejected = reopened
        .execute(
            poisoned,
            alexandria_domain::PermissionRequestCommand::Reject {
                by: "admin".into(),
                at: chrono::Utc::now(),
                reason: "after the skip".into(),
            },
            &crate::helpers::requests::meta("user:admin"),
        )
        .await
        .expect("a decision after the skip");
    assert_eq!(rejected.events.first().map(|e| e.sequence), Some(3));

    // The skip is an event of the log; the unreadable row is still there, marked.
    let export = alexandria(&url, &["events", "export"]).await;
    assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));
    let lines: Vec<Value> = stdout(&export).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    let skipped = lines.iter().find(|l| l["position"] == position).expect("the skipped row is exported");
    assert_eq!(skipped["payload"], Value::Null);
    assert!(skipped["unreadable"].as_str().is_some_and(|why| why.contains("recursion limit")), "{skipped}");
    let skip_line = lines.iter().find(|l| l["type"] == "EventSkipped").expect("the skip is exported");
    assert_eq!(skip_line["aggregate_type"], "EventSkip");
    assert_eq!(skip_line["aggregate_id"], position.to_string());
    assert_eq!(skip_line["payload"]["EventSkipped"]["position"], position);
    assert_eq!(skip_line["payload"]["EventSkipped"]["aggregate_id"], poisoned.to_string());
    assert_eq!(skip_line["payload"]["EventSkipped"]["reason"], "hand-written, ticket 17");
    assert_eq!(skip_line["metadata"]["actor"], "system:cli");
    assert!(skip_line["position"].as_i64() > Some(position));

    // A rebuild from event 0 leaves it out as well.
    let rebuilt = alexandria(&url, &["projections", "rebuild", "permission_requests"]).await;
    assert!(rebuilt.status.success(), "{}", String::from_utf8_lossy(&rebuilt.stderr));
    assert_eq!(read_model_status(&app.db.pool, poisoned).await.as_deref(), Some("rejected"));
    app.stop().await;
}
