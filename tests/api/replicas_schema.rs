//! Migrations with replicas running: `alexandria migrate` takes a lock (two at once are
//! safe), a replica told not to migrate waits — unready, saying why — on a schema older than
//! it expects, and a replica on a schema newer than it knows serves on.

use std::time::Duration;

use serde_json::Value;

use crate::gateway_crash::{gateway_binary, login, spawn_gateway, GatewayProcess};
use crate::helpers::{empty_database, eventually, TestDatabase, TEST_ADMIN_PASSWORD};

/// A migration no build has: what a newer version leaves in `_sqlx_migrations`.
const NEWER_VERSION: i64 = 99_991_231_000_000;

async fn start(db: &TestDatabase, dir: &std::path::Path, name: &'static str, migrate_on_start: bool) -> GatewayProcess {
    let settings = [
        ("DATABASE_URL", db.url()),
        ("ALEXANDRIA_ADMIN_PASSWORD", TEST_ADMIN_PASSWORD.to_owned()),
        ("ALEXANDRIA_DB_POOL_SIZE", "8".to_owned()),
        ("ALEXANDRIA_MIGRATE_ON_START", migrate_on_start.to_string()),
    ];
    spawn_gateway(dir, name, None, &settings).await
}

async fn get(client: &reqwest::Client, url: String) -> (u16, Value) {
    let response = client.get(url).send().await.expect("GET");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn migrate(db: &TestDatabase) -> (bool, String) {
    let output = tokio::process::Command::new(gateway_binary())
        .arg("migrate")
        .env("DATABASE_URL", db.url())
        .output()
        .await
        .expect("run alexandria migrate");
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[tokio::test]
async fn replicas_wait_unready_for_an_older_schema_migrate_runs_beside_them_and_a_newer_schema_is_served() {
    let db = empty_database().await;
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let names = ["replica-a", "replica-b", "replica-c"];
    let mut replicas = Vec::new();
    for (dir, name) in dirs.iter().zip(names) {
        replicas.push(start(&db, dir.path(), name, false).await);
    }
    let client = reqwest::Client::new();
    let latest = alexandria::db::MIGRATOR.iter().map(|m| m.version).max().expect("migrations");

    // Alive, not ready, and nothing else is served: the reason names what is missing.
    for replica in &replicas {
        let (status, health) = get(&client, format!("{}/healthz", replica.base)).await;
        assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
        let (status, ready) = get(&client, format!("{}/readyz", replica.base)).await;
        assert_eq!(status, 503, "{ready}");
        assert_eq!(ready["status"], "migrations pending", "{ready}");
        let detail = ready["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("older than this binary"), "{detail}");
        assert!(detail.contains(&latest.to_string()) && detail.contains("run `alexandria migrate`"), "{detail}");
        let response = client
            .post(format!("{}/auth/login", replica.base))
            .json(&serde_json::json!({"username": "admin", "password": TEST_ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 503);
        // No connection outlives an answer while waiting: the hand-over to the serving
        // router must not cut one under a client's next request.
        assert_eq!(response.headers().get("connection").and_then(|v| v.to_str().ok()), Some("close"));
        let refused: Value = response.json().await.unwrap();
        let message = refused["error"]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with("not serving yet: the database schema is older"), "{refused}");
    }

    // Two `alexandria migrate` at once, beside the running replicas: the lock lets one
    // apply, the other finds nothing left; both succeed.
    let ((first_ok, first), (second_ok, second)) = tokio::join!(migrate(&db), migrate(&db));
    assert!(first_ok && second_ok, "both migrate runs succeed:\n{first}\n{second}");
    assert!(first.contains("migrations applied") || second.contains("migrations applied"), "{first}\n{second}");

    // Every replica notices, becomes ready and serves.
    for replica in &replicas {
        eventually(Duration::from_secs(20), "the replica is ready", || async {
            get(&client, format!("{}/readyz", replica.base)).await.0 == 200
        })
        .await;
        let admin = login(&client, &replica.base).await;
        let response = client.get(format!("{}/admin/agents", replica.base)).bearer_auth(admin).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }

    // A newer version migrates further; this version's replicas serve on, restart, and
    // `alexandria migrate` of this version has nothing to do.
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES ($1, 'from a newer version', true, '\\x00', 0)",
    )
    .bind(NEWER_VERSION)
    .execute(&db.pool)
    .await
    .unwrap();
    let restarted = start(&db, dirs[1].path(), "replica-b-restarted", true).await;
    let (status, ready) = get(&client, format!("{}/readyz", restarted.base)).await;
    assert_eq!(status, 200, "{ready}");
    assert!(ready["detail"].as_str().is_some_and(|d| d.contains("newer than this binary")), "{ready}");
    login(&client, &restarted.base).await;
    let (ok, said) = migrate(&db).await;
    assert!(ok, "{said}");
    assert!(said.contains("nothing to apply") && said.contains(&NEWER_VERSION.to_string()), "{said}");
}

#[tokio::test]
async fn the_hand_over_from_waiting_to_serving_drops_no_request_of_a_client_polling_readiness() {
    let db = empty_database().await;
    let dir = tempfile::tempdir().unwrap();
    let replica = start(&db, dir.path(), "replica-polled", false).await;
    // Probes as a load balancer's or a deploy script's: back to back, each on a client
    // that keeps its connections alive, until the replica serves.
    let pollers: Vec<_> = (0..8)
        .map(|_| {
            let url = format!("{}/readyz", replica.base);
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut answered = 0u32;
                loop {
                    match client.get(&url).send().await {
                        Ok(response) if response.status() == 200 => return Ok(answered + 1),
                        Ok(response) => {
                            response.bytes().await.map_err(|e| format!("after {answered} answers: {e:?}"))?;
                            answered += 1;
                        }
                        Err(error) => return Err(format!("after {answered} answers: {error:?}")),
                    }
                }
            })
        })
        .collect();
    let (ok, said) = migrate(&db).await;
    assert!(ok, "{said}");
    for poller in pollers {
        let answered = poller.await.unwrap().expect("every probe is answered across the hand-over");
        assert!(answered > 1, "the poller saw the replica waiting before it served");
    }
}
