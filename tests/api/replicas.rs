//! Three `alexandria serve` processes on one database, with a real MCP client (the Python
//! SDK) and a real upstream: nothing that matters lives in one process.

use std::time::{Duration, Instant};

use alexandria_domain::request_id;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::gateway_crash::post_json;
use crate::gateway_helpers::{metric, pending_gauge};
use crate::gateway_peers::{next_step, spawn_python_client};
use crate::helpers::{eventually, fresh_database};
use crate::peers::peers;
use crate::replica_cluster::{call_at, is_pending, Cluster, AGENT, NAMES};

/// Approve → the parked call's answer, across replicas. The waiter wakes on NOTIFY
/// (milliseconds, docs/BENCHMARKS.md); without it, the gate's fallback poll (every 2 s)
/// would be the only way, so a resume under 2 s shows the notification crossed replicas.
const RESUME_BOUND: Duration = Duration::from_millis(1500);

async fn scrape(client: &reqwest::Client, base: &str) -> String {
    client.get(format!("{base}/metrics")).send().await.expect("GET /metrics").text().await.expect("metrics")
}

/// Waits until every replica's `/metrics` shows `count` pending requests for `tool`.
async fn pending_everywhere(cluster: &Cluster, tool: &str, count: f64) {
    for (n, name) in NAMES.iter().enumerate() {
        let base = cluster.base(n);
        eventually(Duration::from_secs(10), &format!("{name} shows {count} pending {tool}"), || async {
            pending_gauge(&scrape(&cluster.client, &base).await, tool).unwrap_or(0.0) == count
        })
        .await;
    }
}

async fn request_status(cluster: &Cluster, n: usize, admin: &str, id: uuid::Uuid) -> Option<String> {
    let response = cluster
        .client
        .get(format!("{}/admin/permissions/{id}", cluster.base(n)))
        .bearer_auth(admin)
        .send()
        .await
        .expect("GET the request");
    if response.status() != 200 {
        return None;
    }
    let dto: Value = response.json().await.expect("JSON");
    dto["status"].as_str().map(str::to_owned)
}

#[tokio::test]
async fn three_replicas_share_one_gate_a_parked_call_resumes_across_replicas_and_thirty_retries_run_once() {
    let test = "three_replicas_share_one_gate_a_parked_call_resumes_across_replicas_and_thirty_retries_run_once";
    let Some(peers) = peers(test) else { return };
    let cluster = Cluster::start(fresh_database().await, &peers, &[("ALEXANDRIA_APPROVAL_WAIT_SECS", "30")]).await;
    let (a, b, c) = (0, 1, 2);
    let token = cluster.agent_token(a).await;
    let admin_a = cluster.admin(a).await;
    let admin_b = cluster.admin(b).await;

    // A real MCP client on replica C: its gated `add` parks there, in-band.
    let url = format!("{}/mcp/agents/{AGENT}", cluster.base(c));
    let (mut client, mut stdin, mut lines) = spawn_python_client(&peers, &url, &token, &["legacy", "typed"]);
    next_step(&mut lines, "session").await;
    next_step(&mut lines, "tools").await;
    let parked = request_id(AGENT, "python-client-key-1");
    eventually(Duration::from_secs(10), "the request exists, pending", || async {
        request_status(&cluster, a, &admin_a, parked).await.as_deref() == Some("pending")
    })
    .await;
    let base_c = cluster.base(c);
    eventually(Duration::from_secs(10), "the call is parked on replica C", || async {
        metric(&scrape(&cluster.client, &base_c).await, "alexandria_gate_waiters", &[]) == Some(1.0)
    })
    .await;
    // Every replica counts it: the gauge is read from the database, not from memory.
    pending_everywhere(&cluster, "add", 1.0).await;

    // Approved on replica A: the call parked on C answers with the real result.
    let (status, body) = post_json(
        &cluster.client,
        format!("{}/admin/permissions/{parked}/approve", cluster.base(a)),
        Some(&admin_a),
        &json!(null),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let approved_at = Instant::now();
    let answer = next_step(&mut lines, "pending").await;
    let resumed_after = approved_at.elapsed();
    eprintln!("approve on A → result on C: {resumed_after:?}");
    assert_eq!(answer["result"]["structuredContent"], json!({"result": 42}), "the real result: {answer}");
    assert!(answer["result"]["_meta"].get("alexandria/approval").is_none(), "{answer}");
    assert!(resumed_after < RESUME_BOUND, "resumed {resumed_after:?} after the approval");
    // The client's retry gets the cached result.
    stdin.write_all(b"retry\n").await.unwrap();
    let retried = next_step(&mut lines, "final").await;
    assert_eq!(retried["result"]["structuredContent"], json!({"result": 42}), "{retried}");
    client.wait().await.expect("the client exits");
    pending_everywhere(&cluster, "add", 0.0).await;

    // One request, thirty concurrent retries spread over the three replicas once it is
    // approved: the upstream runs it once and every retry gets that one result.
    let key = "thirty-retries";
    let sleep = json!({"seconds": 1});
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(500)).build().unwrap();
    let gave_up = call_at(&impatient, &cluster.base(a), &token, key, "logged_sleep", sleep.clone()).await;
    assert!(gave_up.is_err(), "the first call parks (the client gives up): {gave_up:?}");
    let id = request_id(AGENT, key);
    eventually(Duration::from_secs(10), "the second request exists, pending", || async {
        request_status(&cluster, b, &admin_b, id).await.as_deref() == Some("pending")
    })
    .await;
    pending_everywhere(&cluster, "logged_sleep", 1.0).await;
    let (status, body) = post_json(
        &cluster.client,
        format!("{}/admin/permissions/{id}/approve", cluster.base(b)),
        Some(&admin_b),
        &json!(null),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let retries = (0..30).map(|n| {
        let (client, base, token, sleep) = (cluster.client.clone(), cluster.base(n % 3), token.clone(), sleep.clone());
        tokio::spawn(async move {
            // An agent retries while the answer is an envelope ("executing" on a replica
            // that is not the one running it, once its in-band wait is over).
            loop {
                let answer =
                    call_at(&client, &base, &token, key, "logged_sleep", sleep.clone()).await.expect("answered");
                if !is_pending(&answer) {
                    return answer["result"].clone();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    });
    let results: Vec<Value> =
        futures::future::join_all(retries).await.into_iter().map(|r| r.expect("a retry")).collect();
    assert_eq!(results.len(), 30);
    assert!(results[0]["content"][0]["text"].as_str().is_some_and(|t| t.starts_with("slept 1")), "{}", results[0]);
    assert!(results.iter().all(|r| r == &results[0]), "every retry got the same result: {results:?}");
    assert_eq!(cluster.upstream_calls(), ["logged_sleep"], "the upstream ran the call exactly once");
    pending_everywhere(&cluster, "logged_sleep", 0.0).await;
}
