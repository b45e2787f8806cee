//! The write side against real PostgreSQL: appends, optimistic concurrency, metadata,
//! the append-only log and its notifications.

use alexandria::approval::store::{CommandError, PermissionStore};
use alexandria_domain::{PermissionRequest, PermissionRequestCommand as C, PermissionRequestError, RequestStatus};
use chrono::Utc;
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{AggregateContext, AggregateError, EventStore};
use std::sync::atomic::Ordering;

use futures::future::join_all;
use postgres_es::PostgresEventRepository;
use sqlx::postgres::PgListener;
use sqlx::Row;

use crate::helpers::fresh_database;
use crate::helpers::requests::{create_cmd, meta, request_through};

#[tokio::test]
async fn two_appends_from_the_same_version_one_wins_the_other_conflicts() {
    let db = fresh_database().await;
    let store = PermissionStore::new(db.pool.clone());
    let id = request_through(&store, "agent-a", "k1", &[]).await;

    // Two writers load the same version, then both commit.
    let es: PersistedEventStore<PostgresEventRepository, PermissionRequest> =
        PersistedEventStore::new_event_store(PostgresEventRepository::new(db.pool.clone()));
    let mut first = es.load_aggregate(&id.to_string()).await.unwrap();
    let mut second = es.load_aggregate(&id.to_string()).await.unwrap();
    let approve = first
        .aggregate()
        .decide(C::Approve { by: "alice".into(), at: Utc::now(), execute_by: Utc::now() + chrono::Duration::days(1) })
        .unwrap();
    let reject =
        second.aggregate().decide(C::Reject { by: "bob".into(), at: Utc::now(), reason: "no".into() }).unwrap();
    es.commit(approve, first, meta("user:alice").to_map()).await.expect("first commit wins");
    let lost = es.commit(reject, second, meta("user:bob").to_map()).await;
    assert!(matches!(lost, Err(AggregateError::AggregateConflict)), "second commit must conflict, got {lost:?}");

    let state = store.load(id).await.unwrap().unwrap();
    assert_eq!(state.status(), Some(RequestStatus::Approved));
    assert_eq!(state.review().map(|review| review.by.as_str()), Some("alice"));
}

#[tokio::test]
async fn racing_decisions_are_retried_into_exactly_one_winner_and_domain_refusals() {
    let db = fresh_database().await;
    let store = PermissionStore::new(db.pool.clone());
    let id = request_through(&store, "agent-a", "k1", &[]).await;

    let attempts = (0..16).map(|i| {
        let store = store.clone();
        async move {
            let cmd = if i % 2 == 0 {
                C::Approve {
                    by: format!("admin{i}"),
                    at: Utc::now(),
                    execute_by: Utc::now() + chrono::Duration::days(1),
                }
            } else {
                C::Reject { by: format!("admin{i}"), at: Utc::now(), reason: "no".into() }
            };
            store.execute(id, cmd, &meta("user:admin")).await
        }
    });
    let results = join_all(attempts).await;
    let winners = results.iter().filter(|r| matches!(r, Ok(a) if !a.events.is_empty())).count();
    assert_eq!(winners, 1, "exactly one decision: {results:?}");
    for result in &results {
        match result {
            Ok(_) => {}
            Err(CommandError::Domain(PermissionRequestError::NotPending { .. })) => {}
            other => panic!("a lost race must end as a domain refusal, not {other:?}"),
        }
    }
    assert_eq!(store.load_events(id).await.unwrap().len(), 2, "Created and one decision");
}

#[tokio::test]
async fn concurrent_first_calls_create_one_request() {
    let db = fresh_database().await;
    let store = PermissionStore::new(db.pool.clone());
    let id = alexandria_domain::request_id("agent-a", "same-key");
    let results = join_all((0..12).map(|_| {
        let store = store.clone();
        async move { store.execute(id, create_cmd("agent-a", "same-key"), &meta("agent:agent-a")).await }
    }))
    .await;
    assert!(results.iter().all(Result::is_ok), "every caller joins the one request: {results:?}");
    assert_eq!(results.iter().filter(|r| !r.as_ref().unwrap().events.is_empty()).count(), 1);
    assert_eq!(store.load_events(id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_new_request_costs_one_round_trip_and_a_repeat_finds_it_as_it_is() {
    let db = fresh_database().await;
    let (counted, checkouts) = db.counting_checkouts().await;
    let store = PermissionStore::new(counted.pool.clone());
    let id = alexandria_domain::request_id("agent-a", "one-trip");
    let checkouts_since = |before: usize| checkouts.load(Ordering::SeqCst) - before;

    let before = checkouts.load(Ordering::SeqCst);
    let created = store.execute(id, create_cmd("agent-a", "one-trip"), &meta("agent:agent-a")).await.unwrap();
    assert_eq!(created.events.len(), 1);
    assert_eq!(created.events[0].sequence, 1);
    assert_eq!(checkouts_since(before), 1, "a new request is one statement: no read before it");

    // The repeat's insert is refused by the primary key; it then reads the request.
    let before = checkouts.load(Ordering::SeqCst);
    let repeated = store.execute(id, create_cmd("agent-a", "one-trip"), &meta("agent:agent-a")).await.unwrap();
    assert!(repeated.events.is_empty(), "a repeat appends nothing");
    assert_eq!(repeated.state.status(), Some(RequestStatus::Pending));
    assert_eq!(repeated.state.details(), created.state.details());
    assert_eq!(checkouts_since(before), 2, "the refused insert, then the read");

    // The row reads back through postgres-es as one of its own.
    let es: PersistedEventStore<PostgresEventRepository, PermissionRequest> =
        PersistedEventStore::new_event_store(PostgresEventRepository::new(db.pool.clone()));
    let loaded = es.load_events(&id.to_string()).await.unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].payload, created.events[0].payload);
    assert_eq!(loaded[0].metadata, created.events[0].metadata);
}

#[tokio::test]
async fn a_command_on_the_version_just_read_appends_without_reading_and_a_stale_one_gets_the_domains_answer() {
    let db = fresh_database().await;
    let (counted, checkouts) = db.counting_checkouts().await;
    let store = PermissionStore::new(counted.pool.clone());
    let id = request_through(&store, "agent-a", "after", &["approve"]).await;
    let approved = store.load_versioned(id).await.unwrap().unwrap();
    assert_eq!(approved.last_sequence, 2);

    // The claim on the version just read: one statement, at the next sequence.
    let claim = C::ClaimExecution { replica: "replica-1".into(), at: Utc::now() };
    let before = checkouts.load(Ordering::SeqCst);
    let claimed = store.execute_after(id, &approved, claim, &meta("agent:agent-a")).await.unwrap();
    assert_eq!(checkouts.load(Ordering::SeqCst) - before, 1, "no read before the append");
    assert_eq!((claimed.events.len(), claimed.last_sequence), (1, 3));
    assert_eq!(claimed.state.status(), Some(RequestStatus::Executing));

    // A second claim from the same stale version (another replica that read it too):
    // the primary key refuses its insert; run on the stored request, the domain refuses
    // the claim, and nothing is appended.
    let other = C::ClaimExecution { replica: "replica-2".into(), at: Utc::now() };
    let lost = store.execute_after(id, &approved, other, &meta("agent:agent-a")).await;
    assert!(matches!(lost, Err(CommandError::Domain(_))), "a second claim is refused: {lost:?}");
    let events = store.load_events(id).await.unwrap();
    assert_eq!(events.iter().map(|e| e.sequence).collect::<Vec<_>>(), [1, 2, 3]);
}

#[tokio::test]
async fn reusing_a_key_for_another_call_is_refused_and_appends_nothing() {
    let db = fresh_database().await;
    let store = PermissionStore::new(db.pool.clone());
    let id = request_through(&store, "agent-a", "k1", &[]).await;
    let mut other = create_cmd("agent-a", "k1");
    if let C::Create { arguments, .. } = &mut other {
        *arguments = serde_json::json!({"path": "/etc/passwd", "content": "x"});
    }
    let result = store.execute(id, other, &meta("agent:agent-a")).await;
    assert!(matches!(result, Err(CommandError::Domain(PermissionRequestError::IdempotencyConflict { .. }))));
    assert_eq!(store.load_events(id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn every_event_carries_actor_replica_and_trace_metadata_and_log_columns() {
    let db = fresh_database().await;
    let store = PermissionStore::new(db.pool.clone());
    let id = request_through(&store, "agent-a", "k1", &["approve"]).await;
    let rows = sqlx::query(
        "SELECT metadata, global_position, recorded_at, tx_id::text AS tx FROM events WHERE aggregate_id = $1 ORDER BY sequence",
    )
    .bind(id.to_string())
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2);
    let actors: Vec<String> =
        rows.iter().map(|r| r.get::<serde_json::Value, _>("metadata")["actor"].as_str().unwrap().to_owned()).collect();
    assert_eq!(actors, ["agent:agent-a", "user:admin"]);
    for row in &rows {
        let metadata: serde_json::Value = row.get("metadata");
        assert_eq!(metadata["replica"], "test-replica");
        assert!(!metadata["trace_id"].as_str().unwrap().is_empty());
        assert!(row.get::<i64, _>("global_position") > 0);
        assert!(row.get::<String, _>("tx").parse::<u64>().unwrap() > 0);
    }
    assert!(rows[0].get::<i64, _>("global_position") < rows[1].get::<i64, _>("global_position"));
}

#[tokio::test]
async fn the_log_refuses_updates_deletes_and_truncation() {
    let db = fresh_database().await;
    let store = PermissionStore::new(db.pool.clone());
    request_through(&store, "agent-a", "k1", &[]).await;
    for statement in ["UPDATE events SET event_type = 'x'", "DELETE FROM events", "TRUNCATE events"] {
        let error = sqlx::query(statement).execute(&db.pool).await.expect_err(statement);
        assert!(error.to_string().contains("append-only"), "{statement}: {error}");
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&db.pool).await.unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn an_append_notifies_listeners_with_the_aggregate_id() {
    let db = fresh_database().await;
    let mut listener = PgListener::connect_with(&db.pool).await.unwrap();
    listener.listen("alexandria_events").await.unwrap();
    let store = PermissionStore::new(db.pool.clone());
    let id = request_through(&store, "agent-a", "k1", &[]).await;
    let notification = tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv())
        .await
        .expect("a notification")
        .unwrap();
    assert_eq!(notification.payload(), format!("PermissionRequest/{id}"));
}
