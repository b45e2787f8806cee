//! Replicas dying and being replaced: `kill -9` of the replica that leads every background
//! worker, and a rolling restart under steady traffic.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use alexandria_domain::request_id;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::alertmanager::Alertmanager;
use crate::gateway_crash::post_json;
use crate::gateway_helpers::metric;
use crate::helpers::{eventually, fresh_database};
use crate::notifications::{Receiver, WEBHOOK_SECRET};
use crate::peers::peers;
use crate::replica_cluster::{call_at, is_pending, leaders, Cluster, NAMES};

/// After the leader's process dies its sessions end with its sockets, and a stand-by
/// looks for a free lock every 5 s (5 × the 1 s poll interval).
const TAKEOVER_AFTER_KILL: Duration = Duration::from_secs(15);

async fn decide(cluster: &Cluster, n: usize, id: Uuid, decision: &str, body: Value) {
    let admin = cluster.admin(n).await;
    let url = format!("{}/admin/permissions/{id}/{decision}", cluster.base(n));
    let (status, answer) = post_json(&cluster.client, url, Some(&admin), &body).await;
    assert_eq!(status, 200, "{decision} {id}: {answer}");
}

/// A gated call that answers with the pending envelope (the replicas wait 1 s in-band).
async fn pending_request(cluster: &Cluster, n: usize, token: &str, key: &str) -> Uuid {
    let answer = cluster.call(n, token, key, "logged_sleep", json!({"seconds": 0})).await;
    assert!(is_pending(&answer), "{answer}");
    request_id(crate::replica_cluster::AGENT, key)
}

async fn undelivered(pool: &sqlx::PgPool) -> (i64, i64) {
    sqlx::query_as("SELECT count(*), count(*) FILTER (WHERE delivered_at IS NULL) FROM notification_outbox")
        .fetch_one(pool)
        .await
        .expect("the outbox")
}

#[tokio::test]
async fn killing_the_leading_replica_hands_every_worker_over_and_no_notice_is_lost_or_doubled() {
    let Some(peers) = peers("killing_the_leading_replica_hands_every_worker_over_and_no_notice_is_lost_or_doubled")
    else {
        return;
    };
    let Some(alertmanager) = Alertmanager::start().await else { return };
    let receiver = Receiver::start(0).await;
    let mut cluster = Cluster::start(fresh_database().await, &peers, &[]).await;
    let (a, b, c) = (0, 1, 2);
    let admin = cluster.admin(a).await;
    let config =
        json!({"alertmanager_url": alertmanager.url(), "webhook_url": receiver.url, "webhook_secret": WEBHOOK_SECRET});
    let response = cluster
        .client
        .patch(format!("{}/admin/notifications/config", cluster.base(a)))
        .bearer_auth(&admin)
        .json(&config)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let token = cluster.agent_token(a).await;

    // Three pending requests, made on each replica; replica A sends their notices.
    let mut before = Vec::new();
    for (n, key) in [(a, "before-1"), (b, "before-2"), (c, "before-3")] {
        before.push(pending_request(&cluster, n, &token, key).await);
    }
    for id in &before {
        eventually(Duration::from_secs(20), "the alert and the webhook of each", || async {
            alertmanager.alerts(*id).await.len() == 1 && receiver.accepted_for(*id).len() == 1
        })
        .await;
    }
    eventually(Duration::from_secs(20), "every notice recorded as delivered", || async {
        undelivered(&cluster.db.pool).await == (6, 0)
    })
    .await;
    let leader = format!("alexandria {}", NAMES[a]);
    assert!(leaders(&cluster.db.pool).await.iter().all(|l| l.as_deref() == Some(leader.as_str())), "A leads all");

    // kill -9 the leader, then decide and create while nobody leads.
    cluster.kill(a).await;
    let killed_at = Instant::now();
    let (approved, rejected, untouched) = (before[0], before[1], before[2]);
    decide(&cluster, b, approved, "approve", json!(null)).await;
    decide(&cluster, c, rejected, "reject", json!({"reason": "not during the failover"})).await;
    let created = pending_request(&cluster, b, &token, "during-failover").await;

    eventually(TAKEOVER_AFTER_KILL + Duration::from_secs(15), "another replica leads every worker", || async {
        leaders(&cluster.db.pool).await.iter().all(|l| l.as_ref().is_some_and(|name| name != &leader))
    })
    .await;
    let took = killed_at.elapsed();
    eprintln!("every worker led again {took:?} after the kill; leaders now {:?}", leaders(&cluster.db.pool).await);
    assert!(took <= TAKEOVER_AFTER_KILL, "took {took:?}");

    // Every notice the log asks for, sent once: 4 pending + 2 reviewed, on both channels.
    eventually(Duration::from_secs(30), "every notice delivered", || async {
        undelivered(&cluster.db.pool).await == (12, 0)
    })
    .await;
    let events = |id: Uuid| -> Vec<String> {
        receiver.accepted_for(id).iter().map(|d| d["event"].as_str().unwrap_or_default().to_owned()).collect()
    };
    for id in [approved, rejected] {
        let mut got = events(id);
        got.sort();
        assert_eq!(got, ["permission_request.pending", "permission_request.reviewed"], "webhook for {id}");
        assert!(alertmanager.alerts(id).await.is_empty(), "{id}'s alert is resolved");
    }
    for id in [untouched, created] {
        assert_eq!(events(id), ["permission_request.pending"], "webhook for {id}");
        assert_eq!(alertmanager.alerts(id).await.len(), 1, "{id}'s alert is active");
    }
    assert_eq!(alertmanager.received("resolved").await, 2, "each decided request's alert resolved once");

    // The read model went on from where A's runner stopped: each request's row is at its
    // last event and in the state it gives.
    let rows: Vec<(Uuid, String, i64, i64)> = sqlx::query_as(
        "SELECT p.id, p.status, p.last_position, \
                (SELECT max(global_position) FROM events e WHERE e.aggregate_id = p.id::text) \
         FROM permission_requests p ORDER BY p.created_at",
    )
    .fetch_all(&cluster.db.pool)
    .await
    .unwrap();
    let statuses: Vec<(Uuid, &str)> = rows.iter().map(|(id, status, _, _)| (*id, status.as_str())).collect();
    assert_eq!(
        statuses,
        [(approved, "approved"), (rejected, "rejected"), (untouched, "pending"), (created, "pending")],
    );
    for (id, _, projected, last) in &rows {
        assert_eq!(projected, last, "{id} is projected up to its last event");
    }
}

/// Steady traffic of ungated calls, spread over whichever replicas are listed; a transport
/// error (refused, or closed by a stopping replica) is retried on the next replica, as
/// any HTTP client does. Anything else that is not the tool's result is a failure.
struct Traffic {
    bases: Arc<RwLock<Vec<String>>>,
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicUsize>,
    retried: Arc<AtomicUsize>,
    failures: Arc<RwLock<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Traffic {
    fn start(bases: Vec<String>, token: &str, clients: usize) -> Traffic {
        let mut traffic = Traffic {
            bases: Arc::new(RwLock::new(bases)),
            stop: Arc::new(AtomicBool::new(false)),
            answered: Arc::default(),
            retried: Arc::default(),
            failures: Arc::default(),
            tasks: Vec::new(),
        };
        for worker in 0..clients {
            let (bases, stop, answered, retried, failures) = (
                Arc::clone(&traffic.bases),
                Arc::clone(&traffic.stop),
                Arc::clone(&traffic.answered),
                Arc::clone(&traffic.retried),
                Arc::clone(&traffic.failures),
            );
            let token = token.to_owned();
            let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
            traffic.tasks.push(tokio::spawn(async move {
                let mut turn = worker;
                while !stop.load(Ordering::SeqCst) {
                    turn += 1;
                    let base = {
                        let bases = bases.read().unwrap();
                        bases[turn % bases.len()].clone()
                    };
                    let text = format!("call {turn} of client {worker}");
                    match call_at(&client, &base, &token, "", "shout", json!({"text": text})).await {
                        Ok(answer) if answer["result"]["content"][0]["text"] == text.to_uppercase() => {
                            answered.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(answer) => failures.write().unwrap().push(format!("{base}: {answer}")),
                        Err(error) if error.is_timeout() => failures.write().unwrap().push(format!("{base}: {error}")),
                        Err(_) => {
                            retried.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            }));
        }
        traffic
    }

    fn replace(&self, old: &str, new: String) {
        let mut bases = self.bases.write().unwrap();
        let slot = bases.iter_mut().find(|b| b.as_str() == old).expect("listed");
        *slot = new;
    }

    fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }

    async fn finish(self) -> (usize, usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.await.expect("a traffic client");
        }
        let failures = self.failures.read().unwrap().clone();
        (self.answered.load(Ordering::SeqCst), self.retried.load(Ordering::SeqCst), failures)
    }
}

#[tokio::test]
async fn a_rolling_restart_under_steady_traffic_fails_no_request_and_loses_no_waiter() {
    let Some(peers) = peers("a_rolling_restart_under_steady_traffic_fails_no_request_and_loses_no_waiter") else {
        return;
    };
    let mut cluster = Cluster::start(fresh_database().await, &peers, &[("ALEXANDRIA_APPROVAL_WAIT_SECS", "30")]).await;
    let token = cluster.agent_token(0).await;
    let traffic = Traffic::start((0..3).map(|n| cluster.base(n)).collect(), &token, 4);

    for (n, name) in NAMES.iter().enumerate() {
        let old_base = cluster.base(n);
        // A gated call parked on the replica about to stop.
        let key = format!("waiter-on-{name}");
        let waiter = {
            let (client, base, token, key) = (cluster.client.clone(), old_base.clone(), token.clone(), key.clone());
            tokio::spawn(async move {
                let answer = call_at(&client, &base, &token, &key, "logged_sleep", json!({"seconds": 0})).await;
                (answer, Instant::now())
            })
        };
        eventually(Duration::from_secs(10), "the waiter is parked", || async {
            let text = cluster.client.get(format!("{old_base}/metrics")).send().await.unwrap().text().await.unwrap();
            metric(&text, "alexandria_gate_waiters", &[]) == Some(1.0)
        })
        .await;
        let answered_before = traffic.answered();
        let stopping_at = Instant::now();
        cluster.stop(n).await;
        let (answer, answered_at) = waiter.await.expect("the waiter");
        let answer = answer.expect("the waiter got an answer, not a broken connection");
        assert!(is_pending(&answer), "the stopping replica answered its waiter with the envelope: {answer}");
        let waited = answered_at.duration_since(stopping_at);
        assert!(waited < Duration::from_secs(20), "answered at shutdown, not at the 30 s wait's end: {waited:?}");

        cluster.start_replica(n).await;
        cluster.wait_for_upstream(n).await;
        traffic.replace(&old_base, cluster.base(n));
        let during = traffic.answered() - answered_before;
        eprintln!("{name}: restarted; {during} calls answered meanwhile; waiter answered after {waited:?}");
        assert!(during > 0, "traffic went on while {name} restarted");

        // Its retry, on another replica once approved, gets the result.
        let id = request_id(crate::replica_cluster::AGENT, &key);
        let (approver, retrier) = ((n + 1) % 3, (n + 2) % 3);
        decide(&cluster, approver, id, "approve", json!(null)).await;
        let result = cluster.call(retrier, &token, &key, "logged_sleep", json!({"seconds": 0})).await;
        let text = result["result"]["content"][0]["text"].as_str().unwrap_or_default();
        assert!(text.starts_with("slept 0"), "the tool's result: {result}");
    }

    let (answered, retried, failures) = traffic.finish().await;
    eprintln!("rolling restart: {answered} calls answered, {retried} transport errors retried on another replica");
    assert!(failures.is_empty(), "requests failed: {failures:?}");
    assert_eq!(cluster.upstream_calls().len(), 3, "each waiter's call ran once");
}
