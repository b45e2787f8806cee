//! The catch-up projector and rebuild against real PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use alexandria::approval::store::PermissionStore;
use alexandria::event_skip::skip_unreadable_event;
use alexandria_domain::PermissionRequestEvent;
use alexandria_projections::log::{projection_position_of, read_settled_batch};
use alexandria_projections::rebuild::REBUILD_BATCH_SIZE;
use alexandria_projections::runner::{catch_up, DEFAULT_BATCH_SIZE};
use alexandria_projections::{
    projection_status, rebuild, rebuild_in_batches_of, EventListener, LogPosition, PermissionRequestsProjection,
    ProjectionRunner, StoredEvent, UnreadableEvent,
};
use chrono::Utc;
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use crate::helpers::requests::request_through;
use crate::helpers::{eventually, fresh_database, TestDatabase};

/// The read model as comparable JSON, ordered by id.
async fn read_model(pool: &PgPool, table: &str) -> Vec<Value> {
    sqlx::query_scalar(&format!("SELECT to_jsonb(t) FROM {table} t ORDER BY id")).fetch_all(pool).await.unwrap()
}

async fn status_of(pool: &PgPool, id: uuid::Uuid) -> Option<String> {
    sqlx::query_scalar("SELECT status FROM permission_requests WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
        .unwrap()
}

/// Appends `event` around the event store (which checks nothing here): how a test writes
/// what the store would not, or in a transaction of its own.
async fn append_event(conn: &mut PgConnection, id: uuid::Uuid, sequence: i64, event: PermissionRequestEvent) {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('PermissionRequest', $1, $2, $3, '1', $4, $5)",
    )
    .bind(id.to_string())
    .bind(sequence)
    .bind(event.name())
    .bind(serde_json::to_value(event).unwrap())
    .bind(json!({"actor": "test", "replica": "slow", "trace_id": "t"}))
    .execute(conn)
    .await
    .unwrap();
}

/// Appends a `Created` event inside a caller's transaction, as a slow writer would.
async fn insert_created(conn: &mut PgConnection, agent: &str, key: &str) -> uuid::Uuid {
    let id = alexandria_domain::request_id(agent, key);
    let arguments = json!({"path": "/slow"});
    let event = PermissionRequestEvent::Created {
        request_type: "tool_call".into(),
        agent: agent.into(),
        tool: "write_file".into(),
        arguments_digest: alexandria_domain::arguments_digest(&arguments),
        arguments,
        idempotency_key: key.into(),
        requested_by: format!("agent:{agent}"),
        at: Utc::now(),
        expires_at: Utc::now() + chrono::Duration::hours(1),
    };
    append_event(conn, id, 1, event).await;
    id
}

#[tokio::test]
async fn the_projector_never_skips_an_event_committed_out_of_order() {
    let db = fresh_database().await;
    let store = PermissionStore::new(db.pool.clone());
    let projection = PermissionRequestsProjection;

    // Y commits first; then a slow transaction appends X and stays open; then Z commits.
    // By global position the order is Y < X < Z, but X becomes visible last: a reader
    // that trusted global positions would pass X by.
    let y = request_through(&store, "agent-a", "y", &[]).await;
    let mut slow = PgConnection::connect_with(&db.options).await.unwrap();
    let mut slow_tx = slow.begin().await.unwrap();
    let x = insert_created(&mut slow_tx, "agent-a", "x").await;
    let z = request_through(&store, "agent-a", "z", &["approve"]).await;

    // The settled bound is the oldest transaction in the whole cluster, so other tests'
    // transactions can hold it back further: the assertions allow for less progress,
    // never for more.
    let applied_while_open = catch_up(&db.pool, &projection, DEFAULT_BATCH_SIZE).await.unwrap();
    assert!(applied_while_open <= 1, "at most Y is settled while X's transaction is open");
    assert_eq!(status_of(&db.pool, z).await, None, "Z waits behind the open transaction");
    assert_eq!(status_of(&db.pool, x).await, None);

    slow_tx.commit().await.unwrap();
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&db.pool).await.unwrap();
    let applied = applied_while_open + catch_up_all(&db.pool, total as u64 - applied_while_open).await;
    assert_eq!(applied as i64, total, "every event applied exactly once");
    assert_eq!(status_of(&db.pool, y).await.as_deref(), Some("pending"));
    assert_eq!(status_of(&db.pool, x).await.as_deref(), Some("pending"));
    assert_eq!(status_of(&db.pool, z).await.as_deref(), Some("approved"));
    assert_eq!(catch_up(&db.pool, &projection, DEFAULT_BATCH_SIZE).await.unwrap(), 0);
}

/// A damaged log (written around the store: nothing in the code can) does not move a final
/// row or invent one: an event after a final one, or for a request never created, is
/// skipped, whether the row was stored by an earlier batch or folded in the same one.
#[tokio::test]
async fn an_event_that_cannot_follow_is_skipped() {
    let db = fresh_database().await;
    let store = PermissionStore::new(db.pool.clone());
    let stray_approval = || PermissionRequestEvent::Approved { by: "mallory".into(), at: Utc::now(), execute_by: None };
    let mut conn = db.pool.acquire().await.unwrap();

    let earlier = request_through(&store, "agent-a", "earlier", &["reject"]).await;
    assert_eq!(catch_up_all(&db.pool, 2).await, 2);
    let before = read_model(&db.pool, "permission_requests").await;
    append_event(&mut conn, earlier, 3, stray_approval()).await;
    assert_eq!(catch_up_all(&db.pool, 1).await, 1);
    assert_eq!(read_model(&db.pool, "permission_requests").await, before, "the rejected row is unchanged");

    let same_batch = request_through(&store, "agent-a", "same-batch", &["reject"]).await;
    append_event(&mut conn, same_batch, 3, stray_approval()).await;
    append_event(&mut conn, uuid::Uuid::new_v4(), 1, stray_approval()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut applied = 0;
    while applied < 4 {
        assert!(tokio::time::Instant::now() < deadline, "the projection applied {applied} of 4 events");
        applied += catch_up(&db.pool, &PermissionRequestsProjection, DEFAULT_BATCH_SIZE).await.unwrap();
    }
    assert_eq!(status_of(&db.pool, same_batch).await.as_deref(), Some("rejected"));
    let reviewers: Vec<String> =
        sqlx::query_scalar("SELECT reviewed_by FROM permission_requests ORDER BY idempotency_key")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(reviewers, ["admin", "admin"], "two rows, both as the store wrote them");
}

#[tokio::test]
async fn a_restart_resumes_from_the_checkpoint_without_applying_anything_twice() {
    let db = fresh_database().await;
    let store = PermissionStore::new(db.pool.clone());
    for key in ["a", "b", "c"] {
        request_through(&store, "agent-a", key, &["approve"]).await;
    }
    let applied_first = catch_up_all(&db.pool, 6).await;
    assert_eq!(applied_first, 6);

    request_through(&store, "agent-a", "d", &["reject"]).await;
    // A new process: a new pool, nothing in memory. It applies only what is new.
    let other_process = db.new_pool(2).await;
    assert_eq!(catch_up_all(&other_process, 2).await, 2);
    let statuses: Vec<String> = sqlx::query_scalar("SELECT status FROM permission_requests ORDER BY idempotency_key")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(statuses, ["approved", "approved", "approved", "rejected"]);
}

#[tokio::test]
async fn the_running_projector_follows_the_log_and_reports_position_and_lag() {
    let db = fresh_database().await;
    let store = PermissionStore::new(db.pool.clone());
    let shutdown = CancellationToken::new();
    let listener = EventListener::new();
    tokio::spawn(Arc::clone(&listener).run(db.pool.clone(), shutdown.clone()));
    let runner = ProjectionRunner::new(db.pool.clone(), Arc::new(PermissionRequestsProjection), listener);
    let running = tokio::spawn(runner.run(shutdown.clone()));

    let id = request_through(&store, "agent-a", "live", &["approve", "claim"]).await;
    eventually(Duration::from_secs(10), "the projection to show the request executing", || async {
        status_of(&db.pool, id).await.as_deref() == Some("executing")
    })
    .await;
    let status = projection_status(&db.pool, alexandria::notify::CHECKPOINTS_LED_BY).await.unwrap();
    let ours = status.iter().find(|s| s.name == "permission_requests").unwrap();
    let last: i64 = sqlx::query_scalar("SELECT max(global_position) FROM events").fetch_one(&db.pool).await.unwrap();
    assert_eq!(ours.position, last);
    assert_eq!(ours.lag, 0);
    assert!(ours.last_error.is_none());

    shutdown.cancel();
    running.await.unwrap();
    // Stopped: new events show as lag.
    request_through(&store, "agent-a", "after-stop", &[]).await;
    let status = projection_status(&db.pool, alexandria::notify::CHECKPOINTS_LED_BY).await.unwrap();
    assert_eq!(status.iter().find(|s| s.name == "permission_requests").unwrap().lag, 1);
}

#[tokio::test]
async fn only_one_process_runs_a_projection_at_a_time() {
    let db = fresh_database().await;
    let shutdown = CancellationToken::new();
    let mut runners = Vec::new();
    for _ in 0..2 {
        let pool = db.new_pool(2).await;
        let listener = EventListener::new();
        tokio::spawn(Arc::clone(&listener).run(pool.clone(), shutdown.clone()));
        let runner = ProjectionRunner::new(pool, Arc::new(PermissionRequestsProjection), listener);
        runners.push(tokio::spawn(runner.run(shutdown.clone())));
    }
    let lock_holders = || async {
        // pg_locks is cluster-wide: count only this test's database, not the advisory locks
        // of other tests' servers running at the same time.
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap()
    };
    eventually(Duration::from_secs(10), "one runner to take the lead", || async { lock_holders().await == 1 }).await;
    // The stand-by keeps trying every few seconds; the count must stay at one.
    let store = PermissionStore::new(db.pool.clone());
    let id = request_through(&store, "agent-a", "k", &[]).await;
    eventually(Duration::from_secs(10), "the leader to project the request", || async {
        status_of(&db.pool, id).await.is_some()
    })
    .await;
    assert_eq!(lock_holders().await, 1);
    shutdown.cancel();
    for runner in runners {
        runner.await.unwrap();
    }
}

/// Applies batches of 2 until `expected` events were applied (other tests' open
/// transactions can delay settling), then checks nothing more is applied.
async fn catch_up_all(pool: &PgPool, expected: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut applied = 0;
    while applied < expected {
        assert!(tokio::time::Instant::now() < deadline, "the projection applied {applied} of {expected} events");
        applied += catch_up(pool, &PermissionRequestsProjection, 2).await.unwrap();
        if applied < expected {
            // Waiting for another test's transaction to end; nothing to wake us.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    applied + catch_up(pool, &PermissionRequestsProjection, 2).await.unwrap()
}

async fn varied_history(store: &PermissionStore, n: usize) {
    let lifecycles: [&[&str]; 5] =
        [&[], &["approve"], &["reject"], &["approve", "claim"], &["approve", "claim", "cache"]];
    for i in 0..n {
        request_through(store, &format!("agent-{}", i % 3), &format!("key-{i}"), lifecycles[i % lifecycles.len()])
            .await;
    }
}

/// Index and constraint names and definitions: a rebuild must leave the schema exactly as
/// the migrations made it.
async fn index_names(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'permission_requests' \
         UNION ALL SELECT conname || ' ' || contype::text FROM pg_constraint WHERE conrelid = 'permission_requests'::regclass \
         ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// A fresh database with 40 requests in varied states, projected by the live runner: the
/// database, its event count and the read model's rows.
async fn forty_requests_projected_live() -> (TestDatabase, i64, Vec<Value>) {
    let db = fresh_database().await;
    let store = PermissionStore::new(db.pool.clone());
    varied_history(&store, 40).await;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&db.pool).await.unwrap();
    catch_up_all(&db.pool, total as u64).await;
    let live = read_model(&db.pool, "permission_requests").await;
    (db, total, live)
}

#[tokio::test]
async fn a_rebuild_yields_the_same_read_model_as_live_projection() {
    let (db, _, live) = forty_requests_projected_live().await;
    let indexes_before = index_names(&db.pool).await;
    assert_eq!(live.len(), 40);

    let summary = rebuild(&db.pool, &PermissionRequestsProjection, &mut ()).await.unwrap();
    assert_eq!(summary.rows, 40);
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&db.pool).await.unwrap();
    assert_eq!(summary.events as i64, events);
    assert_eq!(read_model(&db.pool, "permission_requests").await, live);
    assert_eq!(index_names(&db.pool).await, indexes_before, "indexes keep their names");
    // Twice in a row works too (no leftover shadow, no index-name drift).
    rebuild(&db.pool, &PermissionRequestsProjection, &mut ()).await.unwrap();
    assert_eq!(read_model(&db.pool, "permission_requests").await, live);
    assert_eq!(index_names(&db.pool).await, indexes_before);
    // The live runner has nothing left to do.
    assert_eq!(catch_up(&db.pool, &PermissionRequestsProjection, 100).await.unwrap(), 0);
}

#[tokio::test]
async fn a_rebuild_whose_batches_split_requests_yields_the_same_read_model() {
    // Batches of 3 events: most requests' events span two or three batches, and final
    // requests are written while later ones are still open.
    let (db, total, live) = forty_requests_projected_live().await;

    let summary = rebuild_in_batches_of(&db.pool, &PermissionRequestsProjection, &mut (), 3).await.unwrap();
    assert_eq!((summary.rows, summary.events as i64), (40, total));
    assert_eq!(read_model(&db.pool, "permission_requests").await, live);
}

#[tokio::test]
async fn a_rebuild_while_the_server_writes_and_projects_loses_nothing() {
    let db = fresh_database().await;
    let store = PermissionStore::new(db.pool.clone());
    varied_history(&store, 30).await;
    let shutdown = CancellationToken::new();
    let listener = EventListener::new();
    tokio::spawn(Arc::clone(&listener).run(db.pool.clone(), shutdown.clone()));
    let runner = ProjectionRunner::new(db.pool.clone(), Arc::new(PermissionRequestsProjection), listener);
    let running = tokio::spawn(runner.run(shutdown.clone()));

    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..30 {
                request_through(&store, "agent-w", &format!("w{i}"), &["approve"]).await;
            }
        })
    };
    rebuild(&db.pool, &PermissionRequestsProjection, &mut ()).await.unwrap();
    writer.await.unwrap();
    eventually(Duration::from_secs(10), "the live runner to catch up after the swap", || async {
        projection_status(&db.pool, alexandria::notify::CHECKPOINTS_LED_BY)
            .await
            .unwrap()
            .iter()
            .any(|s| s.name == "permission_requests" && s.lag == 0)
    })
    .await;
    shutdown.cancel();
    running.await.unwrap();

    let after_concurrent_rebuild = read_model(&db.pool, "permission_requests").await;
    assert_eq!(after_concurrent_rebuild.len(), 60);
    rebuild(&db.pool, &PermissionRequestsProjection, &mut ()).await.unwrap();
    assert_eq!(read_model(&db.pool, "permission_requests").await, after_concurrent_rebuild);
}

/// Appends a raw row for request `id` (as a superuser with `psql` could: the table
/// refuses UPDATE and DELETE, not INSERT). Returns its global position.
async fn insert_raw_event(pool: &PgPool, id: uuid::Uuid, sequence: i64, payload: &str, metadata: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('PermissionRequest', $1, $2, 'Approved', '1', $3::json, $4::json) RETURNING global_position",
    )
    .bind(id.to_string())
    .bind(sequence)
    .bind(payload)
    .bind(metadata)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// The event at `position` as the live reader reads it, once it is settled: older than
/// every transaction still running in the cluster, other tests' included (as a rebuild
/// reads it, and everything before it).
async fn settled_event(pool: &PgPool, position: i64) -> StoredEvent {
    let mut conn = pool.acquire().await.unwrap();
    let own = projection_position_of(&mut conn, position).await.unwrap().unwrap();
    let before = LogPosition { global_position: position - 1, ..own };
    drop(conn);
    let read = || async {
        let mut conn = pool.acquire().await.unwrap();
        read_settled_batch(&mut conn, before, 1).await.unwrap().pop()
    };
    eventually(Duration::from_secs(20), "the event to settle", || async { read().await.is_some() }).await;
    read().await.unwrap()
}

#[tokio::test]
async fn a_rebuild_stops_at_an_unreadable_event_as_the_live_reader_does_and_passes_it_once_skipped() {
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let at = Utc::now().to_rfc3339();
    let metadata = json!({"actor": "user:dba", "replica": "psql", "trace_id": "by-hand"}).to_string();
    // Each unreadable in its own way: a payload too deep to read, a payload of the wrong
    // shape, readable fields next to an unknown one too deep to read, metadata too deep.
    let rows = [
        (format!(r#"{{"Approved": {{"by": {deep}}}}}"#), metadata.clone()),
        (json!({"Approved": {"by": 7, "when": "yesterday"}}).to_string(), metadata.clone()),
        (format!(r#"{{"Approved": {{"by": "admin", "at": "{at}", "extra": {deep}}}}}"#), metadata.clone()),
        (json!({"Approved": {"by": "admin", "at": at}}).to_string(), format!(r#"{{"actor": {deep}}}"#)),
    ];
    for (payload, metadata) in rows {
        let (db, _, live) = forty_requests_projected_live().await;
        let store = PermissionStore::new(db.pool.clone());
        let poisoned = request_through(&store, "agent-p", "poisoned", &[]).await;
        let position = insert_raw_event(&db.pool, poisoned, 2, &payload, &metadata).await;
        request_through(&store, "agent-p", "after", &["approve"]).await;

        // What the live reader says of the row.
        let stored = settled_event(&db.pool, position).await;
        let expected = stored.decode_permission_request().expect_err("unreadable for the live reader");

        for batch_size in [3, REBUILD_BATCH_SIZE] {
            let error = rebuild_in_batches_of(&db.pool, &PermissionRequestsProjection, &mut (), batch_size)
                .await
                .expect_err("a rebuild stops at an event it cannot read");
            assert_eq!(error.downcast_ref::<UnreadableEvent>(), Some(&expected), "{payload} / {metadata}");
            assert_eq!(read_model(&db.pool, "permission_requests").await, live, "the live table is untouched");
        }

        let actor = alexandria::names::Actor::System("cli");
        let skip = skip_unreadable_event(&db.pool, position, "hand-written", &actor, "test").await.unwrap();
        settled_event(&db.pool, skip.recorded_at_position).await;
        let summary = rebuild_in_batches_of(&db.pool, &PermissionRequestsProjection, &mut (), 3).await.unwrap();
        assert_eq!(summary.rows, 42);
        assert_eq!(status_of(&db.pool, poisoned).await.as_deref(), Some("pending"));
    }
}
