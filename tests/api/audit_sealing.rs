//! Sealing while three gateway processes append at once: one chain, every event sealed
//! exactly once, no gap, and it verifies.

use std::time::Duration;

use serde_json::json;

use crate::audit_chain::alexandria;
use crate::gateway_crash::{login, post_json, spawn_gateway, GatewayProcess};
use crate::gateway_helpers::{post_raw_to, tool_call};
use crate::helpers::{eventually, fresh_database, TestDatabase, TEST_ADMIN_PASSWORD};
use crate::peers::example_fs_bin;

const CALLS_PER_PROCESS: usize = 40;

async fn gateway(db: &TestDatabase, dir: &std::path::Path, name: &'static str) -> GatewayProcess {
    let settings = [
        ("DATABASE_URL", db.url()),
        ("ALEXANDRIA_ADMIN_PASSWORD", TEST_ADMIN_PASSWORD.to_owned()),
        // One key for every replica, as a deployment mounts one Secret.
        ("ALEXANDRIA_AUDIT_KEY_FILE", dir.join("audit-signing-key").display().to_string()),
        ("ALEXANDRIA_AUDIT_CHECKPOINT_SECS", "1".to_owned()),
    ];
    spawn_gateway(&dir.join(name), name, None, &settings).await
}

#[tokio::test]
async fn three_processes_appending_while_sealing_make_one_chain_without_gaps() {
    let db = fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let first = gateway(&db, dir.path(), "sealing-1").await;
    let admin = login(&client, &first.base).await;
    let root = dir.path().join("root");
    let (status, body) = post_json(
        &client,
        format!("{}/admin/mcp-servers", first.base),
        Some(&admin),
        &json!({"name": "fs", "transport": "stdio", "command": example_fs_bin(), "args": ["--root", root]}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = post_json(
        &client,
        format!("{}/admin/agents", first.base),
        Some(&admin),
        &json!({"name": "busy", "allowed_tools": ["echo"], "approval_required_tools": ["echo"]}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) =
        post_json(&client, format!("{}/v1/agent-token", first.base), Some(&admin), &json!({"agent": "busy"})).await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let second = gateway(&db, dir.path(), "sealing-2").await;
    let third = gateway(&db, dir.path(), "sealing-3").await;
    let bases = [first.base.clone(), second.base.clone(), third.base.clone()];
    for base in &bases {
        eventually(Duration::from_secs(30), "the upstream connected on every gateway", || async {
            let response = client.get(format!("{base}/admin/mcp-servers/fs")).bearer_auth(&admin).send().await;
            match response {
                Ok(response) => response.json::<serde_json::Value>().await.is_ok_and(|s| s["status"] == "connected"),
                Err(_) => false,
            }
        })
        .await;
    }

    // Gated calls through all three at once (each appends its Created), then every
    // request approved through a process other than its own (each appends an Approved).
    let calls = bases.iter().enumerate().flat_map(|(p, base)| {
        (0..CALLS_PER_PROCESS).map({
            let (client, token) = (client.clone(), token.clone());
            move |n| {
                let (client, token, base) = (client.clone(), token.clone(), base.clone());
                async move {
                    let key = format!("p{p}-{n}");
                    let body = tool_call(n as i64, "echo", json!({"text": key})).to_string().into_bytes();
                    let reply = post_raw_to(
                        &client,
                        &base,
                        "/mcp/agents/busy",
                        Some(&token),
                        &[("x-idempotency-key", &key)],
                        body,
                    )
                    .await;
                    assert_eq!(reply.status, 200, "{}", reply.text);
                    (p, reply.body["result"]["request_id"].as_str().map(str::to_owned).expect(&reply.text))
                }
            }
        })
    });
    let ids = futures::future::join_all(calls).await;
    let approvals = ids.iter().map(|(p, id)| {
        let base = bases[(p + 1) % 3].clone();
        let (client, admin) = (client.clone(), admin.clone());
        async move {
            let (status, body) =
                post_json(&client, format!("{base}/admin/permissions/{id}/approve"), Some(&admin), &json!({})).await;
            assert!(status == 200 || status == 409, "{status} {body}");
        }
    });
    futures::future::join_all(approvals).await;

    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&db.pool).await.unwrap();
    assert!(events >= 2 * (3 * CALLS_PER_PROCESS) as i64, "{events} events");
    eventually(Duration::from_secs(30), "every event sealed", || async {
        let sealed: i64 = sqlx::query_scalar("SELECT count(*) FROM event_seals").fetch_one(&db.pool).await.unwrap();
        let now: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&db.pool).await.unwrap();
        sealed == now
    })
    .await;
    // One chain: seals 1..=n, each event once, each linked to the one before.
    let (count, max_seq, positions, broken): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), max(seq), count(DISTINCT position), count(*) FILTER (WHERE prev_hash <> expected) \
         FROM (SELECT seq, position, prev_hash, \
                      COALESCE(lag(hash) OVER (ORDER BY seq), decode(repeat('00', 32), 'hex')) AS expected \
               FROM event_seals) AS chain",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&db.pool).await.unwrap();
    assert_eq!((count, max_seq, positions), (total, total, total), "seals 1..=n, one per event");
    assert_eq!(broken, 0, "each seal follows the one before it");
    let verified = alexandria(&db.url(), dir.path(), &["events", "verify"]).await;
    let out = String::from_utf8_lossy(&verified.stdout);
    assert!(verified.status.success(), "{out}{}", String::from_utf8_lossy(&verified.stderr));
    assert!(out.contains(&format!("events: OK: {total} sealed")), "{out}");
    drop((first, second, third));
}
