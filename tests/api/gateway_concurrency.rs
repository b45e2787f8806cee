//! At-most-once under contention, and waiting without holding database connections:
//! concurrent retries of one approved request, approve/reject races, and many in-band
//! waiters on a small pool.

use std::str::FromStr;
use std::time::Duration;

use alexandria_domain::request_id;
use futures::future::join_all;
use serde_json::{json, Value};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::auth_helpers::*;
use crate::gateway_helpers::*;
use crate::helpers::{admin_url, eventually, fresh_database, requests, spawn_app_on, TestDatabase};

#[tokio::test]
async fn fifty_concurrent_retries_of_one_approved_request_run_the_upstream_once_and_all_get_its_result() {
    let app = spawn_gateway(Duration::from_secs(30)).await;
    let admin = admin_session(&app).await;
    let fs = register_fs(&app, &admin, "fs", None).await;
    let token = agent_token(&app, &admin, "racer", &["write_file"], &["write_file"]).await;
    let key = Uuid::new_v4().to_string();
    let id = request_id("racer", &key);
    let arguments = json!({"path": "/once.txt", "content": "exactly once"});

    // Created and approved; nothing ran yet.
    app.state
        .store
        .execute(
            id,
            alexandria_domain::PermissionRequestCommand::Create {
                agent: "racer".into(),
                tool: "write_file".into(),
                arguments: arguments.clone(),
                idempotency_key: key.clone(),
                requested_by: "agent:racer".into(),
                at: chrono::Utc::now(),
                expires_at: chrono::Utc::now() + chrono::Duration::hours(1),
            },
            &requests::meta("agent:racer"),
        )
        .await
        .expect("create");
    approve_ok(&app, &admin, id).await;
    assert!(fs.calls().is_empty());

    let retries = (0..50).map(|n| {
        let (client, url, token, key, arguments) =
            (app.client.clone(), app.url("/mcp/agents/racer"), token.clone(), key.clone(), arguments.clone());
        tokio::spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(token)
                .header("x-idempotency-key", key)
                .json(&tool_call(n, "write_file", arguments))
                .send()
                .await
                .expect("retry");
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.expect("JSON-RPC body")
        })
    });
    let bodies: Vec<Value> = join_all(retries).await.into_iter().map(|r| r.expect("retry task")).collect();

    let expected = json!({"content": [{"type": "text", "text": "wrote 12 bytes to /once.txt"}], "isError": false});
    for (n, body) in bodies.iter().enumerate() {
        assert_eq!(body["id"], n, "{body}");
        assert_eq!(body["result"], expected, "retry {n} got another answer: {body}");
    }
    assert_eq!(fs.calls(), ["write_file"], "the upstream ran exactly once");
    assert_eq!(fs.file("/once.txt").as_deref(), Some("exactly once"));
    assert_eq!(event_types(&app.db.pool, id).await, ["Created", "Approved", "Executed", "ResultCached"]);
    let executed = events_counter(&scrape(&app).await, "write_file", "executed");
    assert_eq!(executed, Some(1.0));
    app.stop().await;
}

#[tokio::test]
async fn a_hundred_approve_reject_races_end_in_exactly_one_decision_each_and_the_loser_gets_409() {
    let app = spawn_gateway(Duration::from_secs(1)).await;
    let admin = admin_session(&app).await;
    create_user(&app, &admin, "second-reviewer", "admin").await;
    let reviewer = login_ok(&app, "second-reviewer", PASSWORD).await;
    let ids: Vec<Uuid> = join_all((0..100).map(|n| {
        let store = app.state.store.clone();
        async move { requests::request_through(&store, "race-agent", &format!("race-{n}"), &[]).await }
    }))
    .await;

    let races = ids.iter().map(|id| {
        let id = id.to_string();
        let (app, admin, reviewer) = (&app, &admin, &reviewer);
        async move {
            let (approved, rejected) =
                tokio::join!(approve(app, admin, &id), reject(app, reviewer, &id, "lost the race on purpose"));
            let approve_status = approved.status().as_u16();
            let reject_status = rejected.status().as_u16();
            let approve_body: Value = approved.json().await.expect("approve body");
            let reject_body: Value = rejected.json().await.expect("reject body");
            (id, approve_status, approve_body, reject_status, reject_body)
        }
    });
    let outcomes = join_all(races).await;

    let mut approvals = 0;
    for (id, approve_status, approve_body, reject_status, reject_body) in outcomes {
        let (winner, loser_body, loser_status, want_status) = match (approve_status, reject_status) {
            (200, 409) => {
                approvals += 1;
                (approve_body, reject_body, "approved", "approved")
            }
            (409, 200) => (reject_body, approve_body, "rejected", "rejected"),
            other => panic!("request {id}: approve/reject answered {other:?}: {approve_body} / {reject_body}"),
        };
        assert_eq!(winner["status"], want_status, "{winner}");
        assert_eq!(loser_body["error"]["code"], "conflict", "{loser_body}");
        assert_eq!(
            loser_body["error"]["message"],
            format!("permission request is {loser_status}, not pending"),
            "the 409 names the status: {loser_body}"
        );
        let history = event_types(&app.db.pool, Uuid::parse_str(&id).unwrap()).await;
        let decision = if want_status == "approved" { "Approved" } else { "Rejected" };
        assert_eq!(history, ["Created", decision], "exactly one decision for {id}");
        let expected_reviewer = if want_status == "approved" { "admin" } else { "second-reviewer" };
        assert_eq!(winner["reviewed_by"], expected_reviewer);
    }
    // Which side wins is up to the scheduler; the counters agree with the histories.
    eprintln!("approve won {approvals} of 100 races");
    let text = scrape(&app).await;
    let approved = events_counter(&text, "write_file", "approved").unwrap_or(0.0);
    let rejected = events_counter(&text, "write_file", "rejected").unwrap_or(0.0);
    assert_eq!((approved, rejected), (approvals as f64, (100 - approvals) as f64));
    app.stop().await;
}

/// Client connections to `database` as PostgreSQL sees them (from a connection to another
/// database; autovacuum workers are not clients): one line per backend, for the failure
/// message.
async fn connections_to(admin: &mut PgConnection, database: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT format('pid %s since %s, %s: %s', pid, backend_start, state, left(query, 80)) \
         FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend' ORDER BY backend_start",
    )
    .bind(database)
    .fetch_all(admin)
    .await
    .expect("pg_stat_activity")
}

#[tokio::test]
async fn ten_times_pool_size_waiters_all_complete_after_approval_without_holding_connections() {
    const POOL: u32 = 4;
    const WAITERS: usize = 10 * POOL as usize;
    let db = fresh_database().await;
    let mut observer = PgConnection::connect_with(&PgConnectOptions::from_str(&admin_url()).unwrap()).await.unwrap();
    // The gateway gets a pool of POOL connections; the migration pool is closed first so
    // that every connection to the database during the test is the gateway's. A closed
    // connection's backend can take a moment to exit when the machine is busy (seen: over
    // 10 s with two builds and three test suites on two cores).
    db.pool.close().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !connections_to(&mut observer, &db.name).await.is_empty() {
        assert!(std::time::Instant::now() < deadline, "the migration pool's connections did not go away");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pool = db.new_pool(POOL).await;
    let db = TestDatabase { pool, ..db };
    let app = spawn_app_on(db, settings_with_wait(Duration::from_secs(60))).await;

    let admin = admin_session(&app).await;
    let fs = register_fs(&app, &admin, "fs", None).await;
    let token = agent_token(&app, &admin, "waiter", &["write_file"], &["write_file"]).await;

    // Distinct calls without X-Idempotency-Key: each gets the key derived from its arguments.
    let waiters: Vec<_> = (0..WAITERS)
        .map(|n| {
            let (client, url, token) = (app.client.clone(), app.url("/mcp/agents/waiter"), token.clone());
            tokio::spawn(async move {
                let response = client
                    .post(url)
                    .bearer_auth(token)
                    .json(&tool_call(
                        n as i64,
                        "write_file",
                        json!({"path": format!("/w/{n}.txt"), "content": format!("waiter {n}")}),
                    ))
                    .send()
                    .await
                    .expect("gated call");
                assert_eq!(response.status(), 200);
                response.json::<Value>().await.expect("JSON-RPC body")
            })
        })
        .collect();

    // All of them are waiting in-band once every request is pending in the read model.
    let pending = || async {
        let page: Value = get_with(&app, "/admin/permissions?status=pending&limit=500", &admin.access_token)
            .await
            .json()
            .await
            .unwrap();
        page["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    eventually(Duration::from_secs(30), &format!("{WAITERS} pending requests"), || async {
        pending().await.len() == WAITERS
    })
    .await;
    let pending_ids = pending().await;
    let gauge = |text: &str| metric(text, "alexandria_gate_waiters", &[]);
    assert_eq!(gauge(&scrape(&app).await), Some(WAITERS as f64), "every call is still waiting in-band");
    assert!(waiters.iter().all(|w| !w.is_finished()));
    let mut samples = vec![connections_to(&mut observer, &app.db.name).await];

    // Approve them all at once; each waiter wakes, claims, runs and answers.
    let decisions = join_all(pending_ids.iter().map(|id| approve(&app, &admin, id))).await;
    for response in decisions {
        assert_eq!(response.status(), 200);
    }
    samples.push(connections_to(&mut observer, &app.db.name).await);
    let bodies: Vec<Value> = join_all(waiters).await.into_iter().map(|r| r.expect("waiter task")).collect();
    samples.push(connections_to(&mut observer, &app.db.name).await);

    for (n, body) in bodies.iter().enumerate() {
        let text = format!("wrote {} bytes to /w/{n}.txt", format!("waiter {n}").len());
        assert_eq!(body["result"], json!({"content": [{"type": "text", "text": text}], "isError": false}), "{body}");
        assert_eq!(fs.file(&format!("/w/{n}.txt")), Some(format!("waiter {n}")));
    }
    assert_eq!(fs.calls().len(), WAITERS);
    // The pool's POOL (the shared LISTEN connection is one of them), plus the advisory-lock
    // connections of the projection runner, the audit sealer and the notification
    // reconciler.
    let most = samples.iter().map(Vec::len).max().unwrap_or(0);
    assert!(most <= POOL as usize + 3, "{most} connections to the database with a pool of {POOL}: {samples:#?}");
    eprintln!("at most {most} connections with a pool of {POOL} and {WAITERS} waiters");
    observer.close().await.ok();
    app.stop().await;
}

#[tokio::test]
async fn concurrent_first_calls_with_one_key_create_one_request() {
    let app = spawn_gateway(Duration::from_millis(500)).await;
    let admin = admin_session(&app).await;
    let fs = register_fs(&app, &admin, "fs", None).await;
    let token = agent_token(&app, &admin, "twin", &["write_file"], &["write_file"]).await;
    let id = request_id("twin", "one-key");
    let calls = (0..20).map(|n| {
        let (app, token) = (&app, &token);
        async move {
            call(app, "twin", token, Some("one-key"), n, "write_file", json!({"path": "/t", "content": "t"})).await
        }
    });
    for (n, body) in join_all(calls).await.iter().enumerate() {
        assert_pending_envelope(body, n as i64, id, Some("one-key"), "pending");
    }
    assert_eq!(event_types(&app.db.pool, id).await, ["Created"], "one request");
    assert_eq!(events_counter(&scrape(&app).await, "write_file", "created"), Some(1.0));
    assert!(fs.calls().is_empty());
    app.stop().await;
}
