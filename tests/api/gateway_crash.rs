//! A gateway process killed between the execution claim and the result: after a restart
//! the call is never executed again, and retries learn that its outcome is unknown.
//!
//! The gateway runs as a child process (`alexandria serve`) so that it can really be
//! SIGKILLed; the upstream is the Python Streamable HTTP peer with a slow tool that logs
//! each execution.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use alexandria_domain::request_id;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::gateway_helpers::*;
use crate::helpers::{eventually, fresh_database, TestDatabase, TEST_ADMIN_PASSWORD};
use crate::peers::{calls_logged, peers};

/// ALEXANDRIA_UPSTREAM_CALL_TIMEOUT_SECS: the kill must come before the call times out.
const CALL_TIMEOUT_SECS: i64 = 6;
/// gate/claim.rs `abandoned_after`: a claim older than the call timeout plus the caching
/// window (10 s) plus the clock allowance (5 s) is abandoned.
const ABANDONED_CLAIM_GRACE_SECS: i64 = 15;

/// `alexandria serve` as a child process; SIGKILLed when dropped.
pub(crate) struct GatewayProcess {
    pub(crate) child: Child,
    pub(crate) base: String,
}

pub(crate) async fn start_gateway(db: &TestDatabase, data_dir: &Path, name: &'static str) -> GatewayProcess {
    start_gateway_as(db, data_dir, name, None).await
}

/// [`start_gateway`] as another user (`uid`, with its group of the same number), from a
/// copy of the binary that user may run (the build directory may be private).
pub(crate) async fn start_gateway_as(
    db: &TestDatabase,
    data_dir: &Path,
    name: &'static str,
    uid: Option<u32>,
) -> GatewayProcess {
    let settings = [("DATABASE_URL", db.url()), ("ALEXANDRIA_ADMIN_PASSWORD", TEST_ADMIN_PASSWORD.to_owned())];
    spawn_gateway(data_dir, name, uid, &settings).await
}

/// `alexandria serve` with `settings` beyond the ones every test gateway has: without
/// `DATABASE_URL` it runs its managed PostgreSQL in `data_dir`, without
/// `ALEXANDRIA_ADMIN_PASSWORD` it writes a generated one to `data_dir/admin-password`.
pub(crate) async fn spawn_gateway(
    data_dir: &Path,
    name: &'static str,
    uid: Option<u32>,
    settings: &[(&str, String)],
) -> GatewayProcess {
    let mut command = match uid {
        None => Command::new(gateway_binary()),
        Some(uid) => {
            let binary = data_dir.join("alexandria");
            std::fs::copy(gateway_binary(), &binary).expect("copy the binary");
            let mut command = Command::new(binary);
            command.uid(uid).gid(uid).current_dir("/");
            command
        }
    };
    let mut child = command
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("ALEXANDRIA_DATA_DIR", data_dir)
        .env("ALEXANDRIA_LISTEN", "127.0.0.1:0")
        .env("ALEXANDRIA_APPROVAL_WAIT_SECS", "1")
        .env("ALEXANDRIA_UPSTREAM_CALL_TIMEOUT_SECS", CALL_TIMEOUT_SECS.to_string())
        .env("ALEXANDRIA_REPLICA_ID", name)
        .env("ALEXANDRIA_LOG_FORMAT", "json")
        // Last, so that a test's settings win over the defaults above.
        .envs(settings.iter().map(|(name, value)| (name, value)))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start alexandria serve");
    let mut lines = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
    // The JSON log line `listening` carries the bound address.
    let address = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("read the gateway's log") {
            eprintln!("[{name}] {line}");
            let Ok(entry) = serde_json::from_str::<Value>(&line) else { continue };
            // "listening", or "listening; not serving until the database schema is migrated".
            if entry["fields"]["message"].as_str().is_some_and(|m| m.starts_with("listening")) {
                return entry["fields"]["address"].as_str().expect("address").to_owned();
            }
        }
        panic!("{name} exited before listening");
    })
    .await
    .unwrap_or_else(|_| panic!("{name} did not listen within 60 s"));
    // Keep draining its log (a full pipe would block it); shown if the test fails.
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("[{name}] {line}");
        }
    });
    GatewayProcess { child, base: format!("http://{address}") }
}

/// The `alexandria` binary the process tests run: `ALEXANDRIA_TEST_BINARY` when set
/// (`.ci/run` points it at the release build the Quick start makes), else the one cargo
/// built for this test run.
pub(crate) fn gateway_binary() -> std::path::PathBuf {
    std::env::var_os("ALEXANDRIA_TEST_BINARY")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_alexandria").into())
}

pub(crate) async fn post_json(
    client: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    let mut request = client.post(url).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("POST");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn login(client: &reqwest::Client, base: &str) -> String {
    let (status, body) = post_json(
        client,
        format!("{base}/auth/login"),
        None,
        &json!({"username": "admin", "password": TEST_ADMIN_PASSWORD}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

pub(crate) async fn upstream_connected(client: &reqwest::Client, base: &str, admin: &str, name: &str) -> bool {
    let response = client.get(format!("{base}/admin/mcp-servers/{name}")).bearer_auth(admin).send().await.expect("GET");
    response.json::<Value>().await.is_ok_and(|status| status["status"] == "connected")
}

/// When the request's `Executed` claim was recorded.
async fn claimed_at(pool: &sqlx::PgPool, id: uuid::Uuid) -> DateTime<Utc> {
    let at: String = sqlx::query_scalar(
        "SELECT payload->'Executed'->>'at' FROM events WHERE aggregate_id = $1 AND event_type = 'Executed'",
    )
    .bind(id.to_string())
    .fetch_one(pool)
    .await
    .expect("the Executed event");
    DateTime::parse_from_rfc3339(&at).expect("a timestamp").into()
}

#[tokio::test]
async fn a_gateway_killed_between_claim_and_result_never_runs_the_call_again_and_reports_the_outcome_unknown() {
    let Some(peers) =
        peers("a_gateway_killed_between_claim_and_result_never_runs_the_call_again_and_reports_the_outcome_unknown")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let upstream = slow_python_server(&peers, &dir.path().join("calls.log")).await;
    let db = fresh_database().await;
    let data_dir = dir.path().join("data");
    let client = reqwest::Client::new();

    let first = start_gateway(&db, &data_dir, "gateway-1").await;
    let base = first.base.clone();
    let admin = login(&client, &base).await;
    let (status, body) = post_json(
        &client,
        format!("{base}/admin/mcp-servers"),
        Some(&admin),
        &json!({"name": "py", "transport": "streamable_http", "url": upstream.url}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = post_json(
        &client,
        format!("{base}/admin/agents"),
        Some(&admin),
        &json!({"name": "sleeper", "allowed_tools": ["logged_sleep", "add"], "approval_required_tools": ["logged_sleep"]}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) =
        post_json(&client, format!("{base}/v1/agent-token"), Some(&admin), &json!({"agent": "sleeper"})).await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();

    let key = "killed-mid-call";
    let id = request_id("sleeper", key);
    // Far longer than the test: only the kill ends this call.
    let call_body = |n: i64| tool_call(n, "logged_sleep", json!({"seconds": 600})).to_string().into_bytes();
    let mcp = |base: String, n: i64| {
        let (client, token) = (client.clone(), token.clone());
        let body = call_body(n);
        async move {
            post_raw_to(&client, &base, "/mcp/agents/sleeper", Some(&token), &[("x-idempotency-key", key)], body).await
        }
    };

    let pending = mcp(base.clone(), 1).await;
    assert_eq!(pending.status, 200, "{}", pending.text);
    assert_pending_envelope_of_typed_tool(&pending.body, 1, id, Some(key), "pending");
    let (status, body) =
        post_json(&client, format!("{base}/admin/permissions/{id}/approve"), Some(&admin), &json!(null)).await;
    assert_eq!(status, 200, "{body}");

    // The retry claims the execution and calls upstream, where it sleeps.
    let in_flight = {
        let (client, url, token) = (client.clone(), format!("{base}/mcp/agents/sleeper"), token.clone());
        let body = call_body(2);
        tokio::spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(token)
                .header("x-idempotency-key", key)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await?;
            // The headers come at once; the JSON-RPC response is the body.
            response.text().await
        })
    };
    eventually(Duration::from_secs(3), "the upstream started the call", || async {
        calls_logged(&upstream.call_log).len() == 1
    })
    .await;
    // Meanwhile another retry gets the pending envelope, now saying "executing".
    let meanwhile = mcp(base.clone(), 3).await;
    assert_pending_envelope_of_typed_tool(&meanwhile.body, 3, id, Some(key), "executing");

    // SIGKILL between the claim and the result.
    let mut first = first;
    first.child.start_kill().expect("SIGKILL the gateway");
    first.child.wait().await.expect("reap the gateway");
    let cut_off = in_flight.await.expect("the retry task");
    assert!(cut_off.is_err(), "the in-flight retry lost its connection, it got {cut_off:?}");
    assert_eq!(event_types(&db.pool, id).await, ["Created", "Approved", "Executed"], "claimed, no result");
    let claimed = claimed_at(&db.pool, id).await;
    let abandoned_at = claimed + chrono::Duration::seconds(CALL_TIMEOUT_SECS + ABANDONED_CLAIM_GRACE_SECS);

    // Restart on the same database.
    let second = start_gateway(&db, &data_dir, "gateway-2").await;
    let base = second.base.clone();
    let admin = login(&client, &base).await;
    eventually(Duration::from_secs(30), "the restarted gateway connected the upstream", || {
        upstream_connected(&client, &base, &admin, "py")
    })
    .await;

    // Before the claim counts as abandoned, retries keep getting "executing".
    let asked_at = Utc::now();
    let retry = mcp(base.clone(), 4).await;
    assert_eq!(retry.status, 200, "{}", retry.text);
    if asked_at + chrono::Duration::seconds(2) < abandoned_at {
        assert_pending_envelope_of_typed_tool(&retry.body, 4, id, Some(key), "executing");
    } else {
        eprintln!("the restart took too long to see the executing envelope after it: {}", retry.text);
    }

    // Once it is older than the call timeout plus the grace: the outcome-unknown error.
    let mut n = 10;
    eventually(Duration::from_secs(45), "the outcome-unknown error", || {
        n += 1;
        let call = mcp(base.clone(), n);
        async move { call.await.body.get("error").is_some() }
    })
    .await;
    assert!(Utc::now() >= abandoned_at, "not before the claim is abandoned");
    let unknown = mcp(base.clone(), 99).await;
    assert_eq!(unknown.status, 200);
    assert_eq!(unknown.body["id"], 99);
    let (code, message) = rpc_error(&unknown.body);
    assert_eq!(code, OUTCOME_UNKNOWN, "{}", unknown.text);
    assert!(message.contains("outcome unknown") && message.contains(&id.to_string()), "{message}");
    assert!(message.contains("will not be executed again"), "{message}");
    assert_eq!(unknown.body["error"]["data"]["request_id"], id.to_string());

    // Never a second execution.
    assert_eq!(calls_logged(&upstream.call_log), ["logged_sleep"], "the upstream ran once");
    assert_eq!(event_types(&db.pool, id).await, ["Created", "Approved", "Executed"]);
    let dto: Value = client
        .get(format!("{base}/admin/permissions/{id}"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(dto["status"], "executing", "{dto}");
    assert_eq!(dto["has_result"], false, "{dto}");
    // The restarted gateway still serves other calls of the same upstream.
    let add = post_raw_to(
        &client,
        &base,
        "/mcp/agents/sleeper",
        Some(&token),
        &[],
        tool_call(100, "add", json!({"a": 20, "b": 22})).to_string().into_bytes(),
    )
    .await;
    assert_eq!(add.body["result"]["content"][0]["text"], "42", "{}", add.text);
    drop(second);
}
