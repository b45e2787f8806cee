//! Agents' policy versions cached in each replica: a pass-through call makes no database
//! round trip to check its token, a policy change reaches every replica through
//! PostgreSQL's notifications, and while those are not heard the cache is not used.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::auth_helpers::{admin_session, create_agent, mint_agent_token, set_tools};
use crate::gateway_helpers::{post_mcp, register_fs, tool_call};
use crate::helpers::{eventually, fresh_database, spawn_app_on, test_settings, TestApp};

/// docs/AUTH.md states the propagation bound (a notification's delivery, measured in
/// milliseconds); this is only the test's patience on a busy machine.
const PATIENCE: Duration = Duration::from_secs(10);

const AGENT: &str = "cached-agent";

async fn echo(app: &TestApp, token: &str, n: i64) -> u16 {
    let message = tool_call(n, "echo", json!({"message": format!("call {n}")}));
    post_mcp(app, &format!("/mcp/agents/{AGENT}"), token, None, &message).await.status
}

fn checks(app: &TestApp, source: &str) -> u64 {
    app.state.metrics.agent_policy_checks(source)
}

#[tokio::test]
async fn pass_through_calls_check_tokens_from_memory_and_a_policy_change_reaches_the_other_replica() {
    let db = fresh_database().await;
    let a = spawn_app_on(db.clone(), test_settings()).await;
    let (counted, checkouts) = db.counting_checkouts().await;
    let b = spawn_app_on(counted, test_settings()).await;
    let admin = admin_session(&a).await;
    register_fs(&a, &admin, "fs", None).await;
    create_agent(&a, &admin, AGENT, &["echo"], &[]).await;
    let token = mint_agent_token(&a, &admin, AGENT).await;
    eventually(PATIENCE, "replica B serves the upstream and caches the agent's policy", || async {
        echo(&b, &token, 0).await == 200 && checks(&b, "cache") > 0
    })
    .await;

    // A hundred pass-through calls on B: every token check from memory, and no checkout
    // of a database connection for them (B's background workers poll once a second,
    // hence the small allowance; one per call would be a hundred).
    let (from_database, from_cache, before) =
        (checks(&b, "database"), checks(&b, "cache"), checkouts.load(Ordering::SeqCst));
    for n in 1..=100 {
        assert_eq!(echo(&b, &token, n).await, 200);
    }
    let round_trips = checkouts.load(Ordering::SeqCst) - before;
    eprintln!("100 pass-through calls: {round_trips} connection checkouts");
    assert_eq!(checks(&b, "database"), from_database, "no token check went to the database");
    assert_eq!(checks(&b, "cache"), from_cache + 100);
    assert!(round_trips < 10, "{round_trips} connection checkouts for 100 calls");

    // The change on A: A refuses the old token at once, B as soon as it hears of it.
    let response = set_tools(&a, &admin, AGENT, "approval-required-tools", &["echo"]).await;
    assert_eq!(response.status(), 200);
    let changed_at = Instant::now();
    assert_eq!(echo(&a, &token, 200).await, 401, "the replica that changed the policy refuses at once");
    eventually(PATIENCE, "replica B refuses the old token", || async { echo(&b, &token, 201).await == 401 }).await;
    eprintln!("replica B refused the old token {:?} after the change", changed_at.elapsed());
    let renewed = mint_agent_token(&a, &admin, AGENT).await;
    assert_eq!(echo(&b, &renewed, 202).await, 200, "a token minted after the change works everywhere");
}

#[tokio::test]
async fn while_its_notifications_are_not_heard_a_replica_checks_the_database() {
    let db = fresh_database().await;
    let app = spawn_app_on(db.clone(), test_settings()).await;
    let admin = admin_session(&app).await;
    register_fs(&app, &admin, "fs", None).await;
    create_agent(&app, &admin, AGENT, &["echo"], &[]).await;
    let token = mint_agent_token(&app, &admin, AGENT).await;
    eventually(PATIENCE, "the agent's policy is cached", || async {
        echo(&app, &token, 0).await == 200 && {
            let from_cache = checks(&app, "cache");
            echo(&app, &token, 1).await == 200 && checks(&app, "cache") > from_cache
        }
    })
    .await;

    // A change nobody hears of: with triggers off (what a lost notification amounts to).
    // The cache still says the old version, so the old token still works here...
    let mut tx = db.pool.begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica").execute(&mut *tx).await.unwrap();
    sqlx::query("UPDATE agents SET permissions_version = permissions_version + 1 WHERE name = $1")
        .bind(AGENT)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(echo(&app, &token, 2).await, 200, "served from the cache");

    // ...until the listening session ends: whatever it may have missed, nothing cached is
    // trusted any more, and each check goes to the database until it listens again.
    let from_database = checks(&app, "database");
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(ended, [true], "one listening session ended");

    // The cached version is not trusted: the old token is refused, from the database.
    eventually(PATIENCE, "the old token is refused", || async { echo(&app, &token, 3).await == 401 }).await;
    assert!(checks(&app, "database") > from_database, "the database was asked");
    // Listening again, the cache fills and serves again.
    let renewed = mint_agent_token(&app, &admin, AGENT).await;
    eventually(PATIENCE, "the cache serves again after resubscribing", || async {
        let from_cache = checks(&app, "cache");
        echo(&app, &renewed, 4).await == 200
            && echo(&app, &renewed, 5).await == 200
            && checks(&app, "cache") > from_cache
    })
    .await;
}
