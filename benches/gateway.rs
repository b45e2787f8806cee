//! Gateway benchmarks (issue 4). Not a test: it prints numbers for docs/BENCHMARKS.md.
//!
//!   scripts/bench-gateway.sh [passthrough|resume|waiters|consoles|sealing|creates|propagation|sessions|all]
//!
//! Starts `alexandria serve --demo` (release build) as a child process on a fresh
//! database and measures:
//! - passthrough: `tools/call echo` (no gate) through the gateway vs. the same example
//!   upstream called directly over rmcp, at concurrency 1 and 64;
//! - resume: time from an approve response to the waiting gated call's response;
//! - waiters: 10,000 concurrent in-band waiters: server RSS and database connections;
//! - consoles: 200 open consoles (the inbox's event streams): server RSS, database
//!   connections, and how long until every stream has heard of a new request;
//! - creates: gated creates per second at concurrency 64 against `pgbench` inserting one
//!   row per transaction into the same database;
//! - propagation: how long after replica A acknowledges a policy change replica B still
//!   accepts a token minted before it (two replicas, one database);
//! - sessions: the admin API's per-request session check, on `GET /auth/me`;
//! - sealing: gated creates per second (each appends a `Created`) with the audit sealer
//!   running and with it standing by (this harness holds its lock), alternating.
//!
//! Profiling: BENCH_HEAPTRACK=/tmp/out runs the server under heaptrack (Debian package
//! `heaptrack`); BENCH_STDERR=1 shows the server's log; BENCH_WAITERS=N sets the count.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::{ConfigureCommandExt as _, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt as _};
use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgConnection};

const PASSWORD: &str = "benchmark-admin-password";
const POOL_SIZE: u32 = 16;

fn admin_url() -> String {
    std::env::var("BENCH_DATABASE_ADMIN_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `database` on the benchmark's PostgreSQL.
fn database_url_of(database: &str) -> String {
    format!("{}/{database}", admin_url().rsplit_once('/').unwrap().0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// A Markdown table of p50, p90, p99 and the maximum of `sorted`.
fn print_percentiles(sorted: &[Duration]) {
    println!("| p50 | p90 | p99 | max |\n|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} |\n",
        ms(percentile(sorted, 0.5)),
        ms(percentile(sorted, 0.9)),
        ms(percentile(sorted, 0.99)),
        ms(*sorted.last().unwrap())
    );
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

struct Report {
    p50: Duration,
    p99: Duration,
    per_second: f64,
}

fn summarise(mut samples: Vec<Duration>, wall: Duration) -> Report {
    samples.sort();
    Report {
        p50: percentile(&samples, 0.5),
        p99: percentile(&samples, 0.99),
        per_second: samples.len() as f64 / wall.as_secs_f64(),
    }
}

struct Server {
    child: tokio::process::Child,
    url: String,
    database: String,
    /// The audit sealer's lock, held by this harness so the server's sealer stands by.
    sealer_lock: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    async fn start(wait_secs: u64) -> Server {
        Self::start_with(wait_secs, false).await
    }

    /// `hold_sealer`: the harness takes the sealer's leadership lock (and beats its
    /// heartbeat) before the server starts, so the server never seals.
    async fn start_with(wait_secs: u64, hold_sealer: bool) -> Server {
        let database = "alexandria_bench_gateway".to_owned();
        let admin = admin_url();
        let mut conn = PgConnection::connect(&admin).await.expect("PostgreSQL for the benchmark");
        conn.execute(format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)").as_str()).await.unwrap();
        conn.execute(format!("CREATE DATABASE {database}").as_str()).await.unwrap();
        let url = database_url_of(&database);
        let sealer_lock = if hold_sealer {
            let migrated = tokio::process::Command::new(env!("CARGO_BIN_EXE_alexandria"))
                .arg("migrate")
                .env("DATABASE_URL", &url)
                .output()
                .await
                .unwrap();
            assert!(migrated.status.success());
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            let key = alexandria_projections::runner::lock_key(alexandria::audit::SEALER_NAME);
            let mut lock = alexandria_projections::Leadership::try_acquire(&pool, &key).await.unwrap().expect("free");
            Some(tokio::spawn(async move {
                loop {
                    assert!(lock.is_held().await, "the harness lost the sealer's lock");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }))
        } else {
            None
        };
        Self::serve(database, wait_secs, "alexandria-bench-gateway", sealer_lock).await
    }

    /// A second replica on this server's database (its own port and data directory).
    async fn replica(&self, wait_secs: u64) -> Server {
        Self::serve(self.database.clone(), wait_secs, "alexandria-bench-gateway-replica", None).await
    }

    /// Starts `alexandria serve --demo` on `database` and waits until it is ready.
    async fn serve(
        database: String,
        wait_secs: u64,
        data_dir_name: &str,
        sealer_lock: Option<tokio::task::JoinHandle<()>>,
    ) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let data_dir = std::env::temp_dir().join(data_dir_name);
        let _ = std::fs::remove_dir_all(&data_dir);
        let binary = env!("CARGO_BIN_EXE_alexandria");
        let mut command = match std::env::var("BENCH_HEAPTRACK") {
            Ok(output) => {
                let mut heaptrack = tokio::process::Command::new("heaptrack");
                heaptrack.args(["-o", &output, binary]);
                heaptrack
            }
            Err(_) => tokio::process::Command::new(binary),
        };
        let child = command
            .args(["serve", "--demo"])
            .env("DATABASE_URL", database_url_of(&database))
            .env("ALEXANDRIA_LISTEN", format!("127.0.0.1:{port}"))
            .env("ALEXANDRIA_ADMIN_PASSWORD", PASSWORD)
            .env("ALEXANDRIA_DATA_DIR", &data_dir)
            .env("ALEXANDRIA_APPROVAL_WAIT_SECS", wait_secs.to_string())
            .env("ALEXANDRIA_DB_POOL_SIZE", POOL_SIZE.to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(if std::env::var("BENCH_STDERR").is_ok() { Stdio::inherit() } else { Stdio::null() })
            .kill_on_drop(true)
            .spawn()
            .expect("start alexandria");
        let url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = client.get(format!("{url}/readyz")).send().await {
                if r.status() == 200 {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "server did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Server { child, url, database, sealer_lock }
    }

    /// The benchmark database's URL (for the harness's own queries).
    fn database_url(&self) -> String {
        database_url_of(&self.database)
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }
}

struct Tokens {
    admin: String,
    agent: String,
}

async fn tokens(client: &reqwest::Client, server: &Server) -> Tokens {
    let login: Value = client
        .post(format!("{}/auth/login", server.url))
        .json(&json!({"username": "admin", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let admin = login["access_token"].as_str().unwrap().to_owned();
    let agent = mint_demo_agent_token(client, server, &admin).await;
    Tokens { admin, agent }
}

/// A new token for the demo agent, minted by `admin` on `server`.
async fn mint_demo_agent_token(client: &reqwest::Client, server: &Server, admin: &str) -> String {
    let minted: Value = client
        .post(format!("{}/v1/agent-token", server.url))
        .bearer_auth(admin)
        .json(&json!({"agent": "demo-agent"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    minted["token"].as_str().unwrap().to_owned()
}

fn call_body(id: u64, tool: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": arguments}})
}

/// A gated `write_file` through the gateway; returns the JSON-RPC response (the body,
/// which comes when the call is answered).
async fn gated_write(client: &reqwest::Client, endpoint: &str, token: &str, key: &str, n: u64, path: &str) -> Value {
    client
        .post(endpoint)
        .bearer_auth(token)
        .header("X-Idempotency-Key", key)
        .json(&call_body(n, "write_file", json!({"path": path, "content": "x"})))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn gateway_echo(client: &reqwest::Client, url: &str, token: &str, n: u64) -> Duration {
    let started = Instant::now();
    let response: Value = client
        .post(url)
        .bearer_auth(token)
        .json(&call_body(n, "echo", json!({"message": "ping"})))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(response["result"]["content"][0]["text"], "ping", "{response}");
    started.elapsed()
}

type Direct = RunningService<RoleClient, ()>;

async fn direct_client() -> Direct {
    let root = std::env::temp_dir().join("alexandria-bench-direct");
    std::fs::create_dir_all(&root).unwrap();
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_alexandria")).with_file_name("alexandria-example-fs");
    let command = tokio::process::Command::new(binary).configure(|c| {
        c.arg("--root").arg(&root).stderr(Stdio::null());
    });
    ().serve(TokioChildProcess::new(command).unwrap()).await.unwrap()
}

async fn direct_echo(client: &Direct) -> Duration {
    let started = Instant::now();
    let args = json!({"message": "ping"}).as_object().cloned().unwrap();
    let result = client.call_tool(CallToolRequestParams::new("echo").with_arguments(args)).await.unwrap();
    assert!(result.is_error != Some(true));
    started.elapsed()
}

async fn run_concurrent<F, Fut>(concurrency: usize, total: usize, f: F) -> Report
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Duration> + Send,
{
    let f = Arc::new(f);
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (f, next) = (Arc::clone(&f), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= total as u64 {
                    return samples;
                }
                samples.push(f(n).await);
            }
        }));
    }
    let mut samples = Vec::with_capacity(total);
    for task in tasks {
        samples.extend(task.await.unwrap());
    }
    summarise(samples, started.elapsed())
}

async fn passthrough() {
    let server = Server::start(30).await;
    let client = reqwest::Client::builder().pool_max_idle_per_host(128).build().unwrap();
    let tokens = tokens(&client, &server).await;
    let endpoint = format!("{}/mcp/agents/demo-agent", server.url);
    let direct = Arc::new(direct_client().await);
    println!("## Pass-through tools/call (echo, no gate)\n");
    println!("| concurrency | path | p50 | p99 | calls/s |\n|---|---|---|---|---|");
    for (concurrency, total) in [(1usize, 2000usize), (64, 20000)] {
        // Warm up both paths.
        for n in 0..200 {
            gateway_echo(&client, &endpoint, &tokens.agent, n).await;
            direct_echo(&direct).await;
        }
        let d = Arc::clone(&direct);
        let direct_report = run_concurrent(concurrency, total, move |_| {
            let d = Arc::clone(&d);
            async move { direct_echo(&d).await }
        })
        .await;
        let (c, e, t) = (client.clone(), endpoint.clone(), tokens.agent.clone());
        let gateway_report = run_concurrent(concurrency, total, move |n| {
            let (c, e, t) = (c.clone(), e.clone(), t.clone());
            async move { gateway_echo(&c, &e, &t, n).await }
        })
        .await;
        for (path, r) in [("direct (rmcp stdio)", &direct_report), ("through Alexandria (HTTP)", &gateway_report)] {
            println!("| {concurrency} | {path} | {} | {} | {:.0} |", ms(r.p50), ms(r.p99), r.per_second);
        }
        println!(
            "| {concurrency} | added by the gateway | {} | | {:.0} % of direct |",
            ms(gateway_report.p50.saturating_sub(direct_report.p50)),
            100.0 * gateway_report.per_second / direct_report.per_second
        );
    }
    println!();
}

async fn resume() {
    let server = Server::start(30).await;
    let client = reqwest::Client::new();
    let tokens = tokens(&client, &server).await;
    let endpoint = format!("{}/mcp/agents/demo-agent", server.url);
    let mut samples = Vec::new();
    for n in 0..300u64 {
        let key = format!("resume-{n}");
        let request_id = alexandria_domain::request_id("demo-agent", &key);
        let call = {
            let (client, endpoint, token) = (client.clone(), endpoint.clone(), tokens.agent.clone());
            tokio::spawn(async move {
                let response = gated_write(&client, &endpoint, &token, &key, n, &format!("/resume/{n}.txt")).await;
                (Instant::now(), response)
            })
        };
        // Wait until the request exists and is waiting, then approve.
        loop {
            let r = client
                .get(format!("{}/admin/permissions/{request_id}", server.url))
                .bearer_auth(&tokens.admin)
                .send()
                .await
                .unwrap();
            if r.status() == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let approve = client
            .post(format!("{}/admin/permissions/{request_id}/approve", server.url))
            .bearer_auth(&tokens.admin)
            .send()
            .await
            .unwrap();
        let approved_at = Instant::now();
        assert_eq!(approve.status(), 200);
        let (done_at, response) = call.await.unwrap();
        assert!(response["result"]["content"][0]["text"].as_str().unwrap().starts_with("wrote"), "{response}");
        samples.push(done_at.saturating_duration_since(approved_at));
    }
    samples.sort();
    println!("## Approve → resume of a waiting call ({} calls)\n", samples.len());
    print_percentiles(&samples);
}

/// A client for `server`, the agent's token and its endpoint, after 200 gated creates to
/// warm both sides up.
async fn warmed_up_for_gated_creates(server: &Server, connections: usize) -> (reqwest::Client, String, String) {
    let client = reqwest::Client::builder().pool_max_idle_per_host(connections).build().unwrap();
    let tokens = tokens(&client, server).await;
    let endpoint = format!("{}/mcp/agents/demo-agent", server.url);
    for n in 0..200u64 {
        gated_write(&client, &endpoint, &tokens.agent, &format!("warm-{n}"), n, "/warm.txt").await;
    }
    (client, endpoint, tokens.agent)
}

/// `calls` new gated requests at `concurrency`, each answered pending (the server's
/// in-band wait is 0).
async fn gated_creates(
    client: &reqwest::Client,
    endpoint: &str,
    token: &str,
    concurrency: usize,
    calls: usize,
) -> Report {
    let (c, e, t) = (client.clone(), endpoint.to_owned(), token.to_owned());
    run_concurrent(concurrency, calls, move |n| {
        let (c, e, t) = (c.clone(), e.clone(), t.clone());
        async move {
            let started = Instant::now();
            let response = gated_write(&c, &e, &t, &format!("create-{n}"), n, &format!("/c/{n}.txt")).await;
            assert!(response["result"]["pending"] == true, "{response}");
            started.elapsed()
        }
    })
    .await
}

/// Gated creates per second: each call appends a `Created` and is answered pending at
/// once (no in-band wait). With the sealer running, and standing by, alternating.
async fn sealing() {
    const CALLS: usize = 4000;
    const CONCURRENCY: usize = 32;
    println!("## Gated creates with and without the audit sealer ({CALLS} calls, concurrency {CONCURRENCY})\n");
    println!(
        "| round | sealer | creates/s | p50 | p99 | seal lag, max sampled | unsealed at the end |\n|---|---|---|---|---|---|---|"
    );
    for round in 1..=3 {
        for hold in [false, true] {
            let server = Server::start_with(0, hold).await;
            let (client, endpoint, token) = warmed_up_for_gated_creates(&server, 64).await;
            // The seal lag (age of the oldest unsealed event), sampled every 100 ms.
            let database_url = server.database_url();
            let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
            let sampler = {
                let (sampling, database_url) = (Arc::clone(&sampling), database_url.clone());
                tokio::spawn(async move {
                    let mut conn = PgConnection::connect(&database_url).await.unwrap();
                    let mut max_lag = 0f64;
                    while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                        let lag: Option<f64> = sqlx::query_scalar(
                            "SELECT extract(epoch FROM now() - min(e.recorded_at))::float8 \
                             FROM projection_checkpoints c JOIN events e \
                               ON (e.tx_id, e.global_position) > (c.last_tx_id, c.last_position) \
                             WHERE c.name = 'event_seals'",
                        )
                        .fetch_one(&mut conn)
                        .await
                        .unwrap();
                        max_lag = max_lag.max(lag.unwrap_or(0.0));
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    max_lag
                })
            };
            let report = gated_creates(&client, &endpoint, &token, CONCURRENCY, CALLS).await;
            sampling.store(false, std::sync::atomic::Ordering::Relaxed);
            let max_lag = sampler.await.unwrap();
            let mut conn = PgConnection::connect(&database_url).await.unwrap();
            let unsealed: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM events WHERE global_position NOT IN (SELECT position FROM event_seals)",
            )
            .fetch_one(&mut conn)
            .await
            .unwrap();
            let sealer = if hold { "standing by" } else { "running" };
            if let Some(lock) = server.sealer_lock {
                lock.abort();
            }
            println!(
                "| {round} | {sealer} | {:.0} | {} | {} | {max_lag:.2} s | {unsealed} |",
                report.per_second,
                ms(report.p50),
                ms(report.p99)
            );
        }
    }
    println!();
}

/// Gated creates per second at concurrency 64 (in-band wait 0: each call appends a
/// `Created` and answers pending), then `pgbench` inserting one row per transaction
/// into the same database at the same concurrency: the database's own ceiling for one
/// durable write, on the same machine in the same run.
async fn creates() {
    const CALLS: usize = 8000;
    const CONCURRENCY: usize = 64;
    println!("## Gated creates against pgbench's one-insert transactions (concurrency {CONCURRENCY})\n");
    println!(
        "| round | gated creates/s | p50 | p99 | CPU per create: gateway / PostgreSQL / load generator | pgbench inserts/s | share |\n|---|---|---|---|---|---|---|"
    );
    for round in 1..=3 {
        let server = Server::start(0).await;
        let (client, endpoint, token) = warmed_up_for_gated_creates(&server, CONCURRENCY).await;
        let database_url = server.database_url();
        let mut conn = PgConnection::connect(&database_url).await.unwrap();
        // The server's backends (its pool is open after the warm-up).
        let backends = database_backends(&mut conn).await;
        let (gateway_before, postgres_before, client_before) =
            (cpu_seconds(server.pid()), cpu_seconds_of(&backends), cpu_seconds(std::process::id()));
        let report = gated_creates(&client, &endpoint, &token, CONCURRENCY, CALLS).await;
        let per_create = |before: f64, after: f64| format!("{:.0} µs", (after - before) / CALLS as f64 * 1e6);
        let cpu_per_create = format!(
            "{} / {} / {}",
            per_create(gateway_before, cpu_seconds(server.pid())),
            per_create(postgres_before, cpu_seconds_of(&backends)),
            per_create(client_before, cpu_seconds(std::process::id()))
        );
        drop(server);
        conn.execute("CREATE TABLE IF NOT EXISTS bench_insert (id bigserial PRIMARY KEY, payload jsonb NOT NULL)")
            .await
            .unwrap();
        let script = std::env::temp_dir().join("alexandria-bench-insert.sql");
        std::fs::write(&script, "INSERT INTO bench_insert (payload) VALUES ('{\"tool\": \"write_file\"}');\n").unwrap();
        let pgbench = tokio::process::Command::new("pgbench")
            .args(["-n", "-c", &CONCURRENCY.to_string(), "-j", "2", "-T", "10", "-f"])
            .arg(&script)
            .arg(&database_url)
            .output()
            .await
            .expect("pgbench (Debian postgresql-client)");
        let output = String::from_utf8_lossy(&pgbench.stdout);
        let tps: f64 = output
            .lines()
            .find_map(|line| line.strip_prefix("tps = ")?.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("pgbench said: {output}{}", String::from_utf8_lossy(&pgbench.stderr)));
        println!(
            "| {round} | {:.0} | {} | {} | {cpu_per_create} | {tps:.0} | {:.0} % |",
            report.per_second,
            ms(report.p50),
            ms(report.p99),
            100.0 * report.per_second / tps
        );
    }
    println!();
}

/// The admin API's per-request session check (one indexed read of `sessions`, so a
/// logout or a password reset ends a session at once), measured on `GET /auth/me`, which
/// does nothing else: is it hot enough to be worth a cache like the agents' policy?
async fn sessions() {
    const CALLS: usize = 20_000;
    let server = Server::start(0).await;
    let client = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
    let tokens = tokens(&client, &server).await;
    let me = format!("{}/auth/me", server.url);
    println!("## The admin API's session check (`GET /auth/me`, {CALLS} requests)\n");
    println!("| concurrency | requests/s | p50 | p99 | CPU per request: gateway / PostgreSQL |\n|---|---|---|---|---|");
    let mut conn = PgConnection::connect(&server.database_url()).await.unwrap();
    for concurrency in [1usize, 64] {
        let (c, url, token) = (client.clone(), me.clone(), tokens.admin.clone());
        let request = move |_| {
            let (c, url, token) = (c.clone(), url.clone(), token.clone());
            async move {
                let started = Instant::now();
                let status = c.get(&url).bearer_auth(&token).send().await.unwrap().status();
                assert_eq!(status, 200);
                started.elapsed()
            }
        };
        for n in 0..200 {
            request(n).await;
        }
        let backends = database_backends(&mut conn).await;
        let (gateway_before, postgres_before) = (cpu_seconds(server.pid()), cpu_seconds_of(&backends));
        let report = run_concurrent(concurrency, CALLS, request).await;
        let per_request = |before: f64, after: f64| format!("{:.0} µs", (after - before) / CALLS as f64 * 1e6);
        println!(
            "| {concurrency} | {:.0} | {} | {} | {} / {} |",
            report.per_second,
            ms(report.p50),
            ms(report.p99),
            per_request(gateway_before, cpu_seconds(server.pid())),
            per_request(postgres_before, cpu_seconds_of(&backends))
        );
    }
    println!();
}

/// [`cpu_seconds`] of several processes together.
fn cpu_seconds_of(pids: &[u32]) -> f64 {
    pids.iter().map(|&pid| cpu_seconds(pid)).sum()
}

/// CPU time (user + system) process `pid` has used so far, in seconds; 0 once it is gone.
fn cpu_seconds(pid: u32) -> f64 {
    // /proc counts in USER_HZ, which Linux fixes at 100 for user space.
    const TICKS_PER_SECOND: f64 = 100.0;
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // After the command name (in parentheses): state, then utime and stime at 12 and 13.
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    (fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()) as f64 / TICKS_PER_SECOND
}

/// How long after replica A acknowledges a policy change replica B still accepts a token
/// minted before it (docs/AUTH.md, "Policy propagation"). Each round mints a token, has
/// B cache the agent's policy, then keeps `CALLERS` pass-through calls going on B with
/// that token while A changes the policy. The bound of a round is when B's first refusal
/// arrived, counted from A's answer to the change (an upper bound: B forgot the agent
/// before it served that call); and no call B accepted was sent after it refused one.
async fn propagation() {
    const ROUNDS: usize = 200;
    const CALLERS: usize = 2;
    let a = Server::start(0).await;
    let b = a.replica(0).await;
    let client = reqwest::Client::builder().pool_max_idle_per_host(16).build().unwrap();
    let tokens = tokens(&client, &a).await;
    let agent: Value = client
        .get(format!("{}/admin/agents/demo-agent", a.url))
        .bearer_auth(&tokens.admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let allowed = agent["allowed_tools"].clone();
    assert!(allowed.as_array().is_some_and(|tools| !tools.is_empty()), "{agent}");
    let b_endpoint = format!("{}/mcp/agents/demo-agent", b.url);
    let mut bounds = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let token = mint_demo_agent_token(&client, &a, &tokens.admin).await;
        // B learns this version (from the database, once), then answers from memory.
        gateway_echo(&client, &b_endpoint, &token, 0).await;
        let callers: Vec<_> = (0..CALLERS)
            .map(|_| {
                let (client, endpoint, token) = (client.clone(), b_endpoint.clone(), token.clone());
                tokio::spawn(async move {
                    // (sent, answered, accepted) of every call until the first refusal.
                    let mut calls = Vec::new();
                    loop {
                        let sent = Instant::now();
                        let status = client
                            .post(&endpoint)
                            .bearer_auth(&token)
                            .json(&call_body(1, "echo", json!({"message": "ping"})))
                            .send()
                            .await
                            .unwrap()
                            .status();
                        let accepted = status == 200;
                        assert!(accepted || status == 401, "B answered {status}");
                        calls.push((sent, Instant::now(), accepted));
                        if !accepted {
                            return calls;
                        }
                    }
                })
            })
            .collect();
        // Let the callers get going: the change lands while calls are in flight.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let changed = client
            .put(format!("{}/admin/agents/demo-agent/allowed-tools", a.url))
            .bearer_auth(&tokens.admin)
            .json(&json!({"tools": allowed}))
            .send()
            .await
            .unwrap();
        let acknowledged = Instant::now();
        assert_eq!(changed.status(), 200);
        let mut first_refusal: Option<Instant> = None;
        let mut last_accepted_send: Option<Instant> = None;
        for caller in callers {
            for (sent, answered, accepted) in caller.await.unwrap() {
                if accepted {
                    last_accepted_send = last_accepted_send.max(Some(sent));
                } else {
                    first_refusal = Some(first_refusal.map_or(answered, |t| t.min(answered)));
                }
            }
        }
        let first_refusal = first_refusal.expect("every caller ends with a refusal");
        assert!(
            last_accepted_send.is_none_or(|sent| sent <= first_refusal),
            "B accepted the old token on a call sent after it had refused it"
        );
        bounds.push(first_refusal.saturating_duration_since(acknowledged));
    }
    bounds.sort();
    println!("## Policy propagation: A changes an agent's policy, B refuses the old token ({ROUNDS} changes)\n");
    print_percentiles(&bounds);
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field).map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap()))
        .unwrap()
}

async fn waiters() {
    let count: usize = std::env::var("BENCH_WAITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    // Each waiter holds a socket on both sides: raise the limit as far as this user may
    // (root: to the kernel's `nr_open`); the server inherits it.
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let nr_open: u64 =
        std::fs::read_to_string("/proc/sys/fs/nr_open").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(hard);
    if setrlimit(Resource::RLIMIT_NOFILE, nr_open, nr_open).is_err() {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    }
    let server = Server::start(600).await;
    let client = reqwest::Client::builder().pool_max_idle_per_host(count).build().unwrap();
    let tokens = tokens(&client, &server).await;
    // One loopback source address per 20,000 waiters: a (source, destination) pair has
    // only the ephemeral port range (about 28,000 ports on Linux) to give.
    let clients: Vec<reqwest::Client> = (0..count.div_ceil(20_000).max(1))
        .map(|i| {
            let source = std::net::IpAddr::from([127, 0, 0, 1 + i as u8]);
            reqwest::Client::builder().pool_max_idle_per_host(count).local_address(source).build().unwrap()
        })
        .collect();
    let endpoint = format!("{}/mcp/agents/demo-agent", server.url);
    let rss_before = rss_kib(server.pid(), "VmRSS:");
    let started = Instant::now();
    let mut calls = Vec::with_capacity(count);
    for n in 0..count as u64 {
        let client = clients[n as usize % clients.len()].clone();
        let (endpoint, token) = (endpoint.clone(), tokens.agent.clone());
        calls.push(tokio::spawn(async move {
            // Connect in waves: ten thousand simultaneous SYNs overflow the listen
            // backlog and turn into client-side connect timeouts.
            tokio::time::sleep(Duration::from_millis(n / 100 * 50)).await;
            gated_write(&client, &endpoint, &token, &format!("waiter-{n}"), n, &format!("/waiters/{n}.txt")).await
        }));
    }
    // All waiting: the gateway's own gauge says so.
    let mut admin_db = PgConnection::connect(&server.database_url()).await.unwrap();
    let mut max_connections = 0i64;
    loop {
        let metrics = client.get(format!("{}/metrics", server.url)).send().await.unwrap().text().await.unwrap();
        let waiting: f64 =
            metrics.lines().find_map(|l| l.strip_prefix("alexandria_gate_waiters ")).unwrap().trim().parse().unwrap();
        let connections = database_connections(&mut admin_db).await;
        max_connections = max_connections.max(connections);
        if waiting as usize >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let all_waiting_after = started.elapsed();
    let rss_waiting = rss_kib(server.pid(), "VmRSS:");
    // Approve every request, 32 at a time, and check every waiter completes.
    let approvals = futures::stream::iter(0..count as u64)
        .map(|n| {
            let (client, url, admin) = (client.clone(), server.url.clone(), tokens.admin.clone());
            async move {
                let id = alexandria_domain::request_id("demo-agent", &format!("waiter-{n}"));
                client
                    .post(format!("{url}/admin/permissions/{id}/approve"))
                    .bearer_auth(admin)
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        })
        .buffer_unordered(32);
    let statuses: Vec<_> = approvals.collect().await;
    assert!(statuses.iter().all(|s| s.as_u16() == 200));
    let mut completed = 0;
    for call in calls {
        let response = call.await.unwrap();
        if response["result"]["content"][0]["text"].as_str().is_some_and(|t| t.starts_with("wrote")) {
            completed += 1;
        }
    }
    let connections = database_connections(&mut admin_db).await;
    max_connections = max_connections.max(connections);
    println!("## {count} concurrent in-band waiters\n");
    println!("| measure | value |\n|---|---|");
    println!("| all {count} waiting after | {:.1} s |", all_waiting_after.as_secs_f64());
    println!("| server RSS idle | {} MiB |", rss_before / 1024);
    println!("| server RSS with all waiting | {} MiB |", rss_waiting / 1024);
    println!("| server peak RSS (VmHWM) | {} MiB |", rss_kib(server.pid(), "VmHWM:") / 1024);
    println!(
        "| database connections of the server, max seen (ALEXANDRIA_DB_POOL_SIZE {POOL_SIZE}) | {max_connections} |"
    );
    println!("| waiters completed with the real result after approval | {completed} / {count} |\n");
    if std::env::var("BENCH_HEAPTRACK").is_ok() {
        // heaptrack writes its profile when the server exits cleanly, not when killed.
        let _ = std::process::Command::new("pkill").args(["-TERM", "-f", "alexandria serve --demo"]).status();
        let mut server = server;
        let _ = server.child.wait().await;
    }
}

/// The process ids of every other session on this database (the server's connections).
async fn database_backends(admin_db: &mut PgConnection) -> Vec<u32> {
    let pids: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(admin_db)
    .await
    .unwrap();
    pids.into_iter().map(|pid| pid as u32).collect()
}

async fn database_connections(admin_db: &mut PgConnection) -> i64 {
    database_backends(admin_db).await.len() as i64
}

async fn consoles() {
    let count: usize = std::env::var("BENCH_CONSOLES").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    const ROUNDS: usize = 20;
    let server = Server::start(1).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(count)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let tokens = tokens(&client, &server).await;
    let login = client
        .post(format!("{}/login", server.url))
        .header("origin", &server.url)
        .form(&[("username", "admin"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303, "console login");
    let cookie = login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let mut admin_db = PgConnection::connect(&server.database_url()).await.unwrap();
    // One page view first, so the process has served the console once (templates, feed).
    client.get(format!("{}/", server.url)).header("cookie", &cookie).send().await.unwrap();
    let rss_before = rss_kib(server.pid(), "VmRSS:");
    let connections_before = database_connections(&mut admin_db).await;
    let (heard, mut receipts) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    let mut streams = Vec::with_capacity(count);
    for index in 0..count {
        let response =
            client.get(format!("{}/console/events", server.url)).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let heard = heard.clone();
        streams.push(tokio::spawn(async move {
            let mut chunks = response.bytes_stream();
            let mut text = String::new();
            while let Some(Ok(chunk)) = chunks.next().await {
                text.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = text.find("\n\n") {
                    let event: String = text.drain(..end + 2).collect();
                    if event.contains("event: changed") && heard.send((index, Instant::now())).is_err() {
                        return;
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_open = rss_kib(server.pid(), "VmRSS:");
    let connections_open = database_connections(&mut admin_db).await;
    let endpoint = format!("{}/mcp/agents/demo-agent", server.url);
    let mut all_heard = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let started = Instant::now();
        let (client, endpoint, token) = (client.clone(), endpoint.clone(), tokens.agent.clone());
        tokio::spawn(async move {
            gated_write(&client, &endpoint, &token, &format!("console-{round}"), round as u64, "/consoles.txt").await
        });
        let mut seen = vec![false; count];
        let mut remaining = count;
        let mut last = started;
        while remaining > 0 {
            let (index, at) = tokio::time::timeout(Duration::from_secs(10), receipts.recv())
                .await
                .expect("every stream hears of the request within 10 s")
                .unwrap();
            if !std::mem::replace(&mut seen[index], true) {
                remaining -= 1;
                last = last.max(at);
            }
        }
        all_heard.push(last - started);
        // Let stragglers of this round (a second event for the same change) drain.
        tokio::time::sleep(Duration::from_millis(300)).await;
        while receipts.try_recv().is_ok() {}
    }
    all_heard.sort();
    println!("## {count} open consoles (event streams) on one replica\n");
    println!("| measure | value |\n|---|---|");
    println!("| server RSS before the streams | {} MiB |", rss_before / 1024);
    println!("| server RSS with {count} streams open | {} MiB (+{} KiB) |", rss_open / 1024, rss_open - rss_before);
    println!(
        "| database connections of the server, before / with the streams | {connections_before} / {connections_open} |"
    );
    println!(
        "| a new request heard by all {count} streams, p50 / max of {ROUNDS} | {} / {} |\n",
        ms(percentile(&all_heard, 0.5)),
        ms(all_heard[ROUNDS - 1])
    );
    for stream in streams {
        stream.abort();
    }
}

#[tokio::main]
async fn main() {
    let which = std::env::args().skip(1).find(|a| !a.starts_with('-')).unwrap_or_else(|| "all".into());
    if which == "passthrough" || which == "all" {
        passthrough().await;
    }
    if which == "resume" || which == "all" {
        resume().await;
    }
    if which == "waiters" || which == "all" {
        waiters().await;
    }
    if which == "consoles" || which == "all" {
        consoles().await;
    }
    if which == "sealing" || which == "all" {
        sealing().await;
    }
    if which == "creates" || which == "all" {
        creates().await;
    }
    if which == "propagation" || which == "all" {
        propagation().await;
    }
    if which == "sessions" || which == "all" {
        sessions().await;
    }
}
