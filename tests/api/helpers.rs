//! `spawn_app`, after zero2prod: a fresh database per test, migrated, and the server on
//! port 0.
#![allow(dead_code)] // shared by many test modules; not each uses every helper

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use alexandria::http::AppState;
use alexandria::notify::ReconcilerOptions;
use alexandria::startup::{Application, Settings};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection, PgPool};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The server tests create their databases on. CI and the development machines run one
/// on 127.0.0.1:5432 with trust auth.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A new, empty, migrated database.
#[derive(Clone)]
pub struct TestDatabase {
    pub name: String,
    pub options: PgConnectOptions,
    pub pool: PgPool,
}

impl TestDatabase {
    pub fn url(&self) -> String {
        let admin = admin_url();
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        format!("{base}/{}", self.name)
    }

    /// This database with a pool that counts every connection checkout (each database
    /// round trip takes one): of an idle connection, or of one opened for it.
    pub async fn counting_checkouts(&self) -> (TestDatabase, Arc<AtomicUsize>) {
        let checkouts = Arc::new(AtomicUsize::new(0));
        let (reused, opened) = (Arc::clone(&checkouts), Arc::clone(&checkouts));
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .before_acquire(move |_, _| {
                reused.fetch_add(1, Ordering::SeqCst);
                Box::pin(async { Ok(true) })
            })
            .after_connect(move |_, _| {
                opened.fetch_add(1, Ordering::SeqCst);
                Box::pin(async { Ok(()) })
            })
            .connect_with(self.options.clone())
            .await
            .expect("connect");
        (TestDatabase { name: self.name.clone(), options: self.options.clone(), pool }, checkouts)
    }

    /// Another pool on the same database (a second "replica").
    pub async fn new_pool(&self, max_connections: u32) -> PgPool {
        PgPoolOptions::new()
            .max_connections(max_connections)
            .connect_with(self.options.clone())
            .await
            .expect("connect to test database")
    }
}

pub async fn fresh_database() -> TestDatabase {
    let db = empty_database().await;
    alexandria::db::migrate(&db.pool).await.expect("migrate");
    db
}

/// A new database with no schema at all (not migrated).
pub async fn empty_database() -> TestDatabase {
    let admin = PgConnectOptions::from_str(&admin_url()).expect("TEST_DATABASE_URL");
    let name = format!("alexandria_test_{}", Uuid::new_v4().simple());
    let mut conn = PgConnection::connect_with(&admin).await.expect("connect to PostgreSQL for tests");
    conn.execute(format!(r#"CREATE DATABASE "{name}""#).as_str()).await.expect("create test database");
    conn.close().await.ok();
    let options = admin.database(&name);
    let pool = PgPoolOptions::new().max_connections(10).connect_with(options.clone()).await.expect("connect");
    TestDatabase { name, options, pool }
}

/// The bootstrap `admin` user's password in `test_settings()`.
pub const TEST_ADMIN_PASSWORD: &str = "test admin password";

pub fn test_settings() -> Settings {
    let data_dir = std::env::temp_dir().join(format!("alexandria-test-{}", Uuid::new_v4().simple()));
    let key_dir = std::env::temp_dir().join(format!("alexandria-test-key-{}", Uuid::new_v4().simple()));
    Settings {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        metrics_listen: None,
        public_url: "http://127.0.0.1".to_owned(),
        approval_wait: Duration::from_secs(2),
        approval_ttl: Duration::from_secs(86_400),
        replica_id: format!("test-{}", Uuid::new_v4().simple()),
        upstream_call_timeout: Duration::from_secs(60),
        // Only written to when no admin password is given (the bootstrap test).
        data_dir,
        // Beside it, not in it (by default the key is generated in the data directory).
        audit_key_file: key_dir.join("audit-signing-key"),
        sealer: alexandria::audit::SealerSettings {
            checkpoint_every_seals: 20,
            checkpoint_every: Duration::from_secs(1),
            ..alexandria::audit::SealerSettings::default()
        },
        admin_password: Some(TEST_ADMIN_PASSWORD.into()),
        jwt_secret: None,
        login_throttle: Default::default(),
        // Quick retries so a test sees a receiver come back without waiting long.
        notifier: ReconcilerOptions {
            poll_interval: Duration::from_millis(200),
            retry_base: Duration::from_millis(50),
            retry_max: Duration::from_millis(500),
            delivery_timeout: Duration::from_secs(5),
            ..ReconcilerOptions::default()
        },
    }
}

pub struct TestApp {
    pub address: String,
    /// `http://host:port` of `/metrics` when `Settings::metrics_listen` is set.
    pub metrics_address: Option<String>,
    pub db: TestDatabase,
    pub state: AppState,
    pub client: reqwest::Client,
    shutdown: CancellationToken,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_on(fresh_database().await, test_settings()).await
}

/// Starts a server on an existing database (a restart, or a second replica).
pub async fn spawn_app_on(db: TestDatabase, settings: Settings) -> TestApp {
    let shutdown = CancellationToken::new();
    let app = Application::build(settings, db.pool.clone(), shutdown.clone()).await.expect("build app");
    let address = format!("http://{}", app.local_addr());
    let metrics_address = app.metrics_addr().map(|address| format!("http://{address}"));
    let state = app.state().clone();
    let server = tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        metrics_address,
        db,
        state,
        client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client"),
        shutdown,
        server: Some(server),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Stops the server gracefully and hands back its database.
    pub async fn stop(mut self) -> TestDatabase {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server result");
        }
        self.db.clone()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// True under CI (`CI` set to anything but empty, `0` or `false`), where a missing peer
/// fails a test instead of skipping it.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Says loudly that `test` was skipped and why. Written to the process's stderr directly:
/// the test harness captures `eprintln!` of a passing test, and a skip must not pass
/// unnoticed.
pub fn announce_skip(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "\n!!!!!!!! SKIPPED {test}: {why} !!!!!!!!\n");
}

/// Waits for `check` to hold, re-checking every 20 ms, failing after `timeout`. For
/// conditions reached by background workers: it waits for the condition, never for time.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub mod requests {
    //! Building permission requests through the real event store.

    use alexandria::approval::store::PermissionStore;
    use alexandria_domain::{CallOutcome, EventMetadata, PermissionRequestCommand as C};
    use chrono::{Duration, Utc};
    use serde_json::json;
    use uuid::Uuid;

    pub fn meta(actor: &str) -> EventMetadata {
        EventMetadata::new(actor, "test-replica", Uuid::new_v4().to_string())
    }

    pub fn create_cmd(agent: &str, key: &str) -> C {
        C::Create {
            agent: agent.into(),
            tool: "write_file".into(),
            arguments: json!({"path": format!("/tmp/{key}"), "content": "hello"}),
            idempotency_key: key.into(),
            requested_by: format!("agent:{agent}"),
            at: Utc::now(),
            expires_at: Utc::now() + Duration::hours(1),
        }
    }

    /// Creates a request and takes it through `steps` of: approve, reject, claim, cache.
    pub async fn request_through(store: &PermissionStore, agent: &str, key: &str, steps: &[&str]) -> Uuid {
        let id = alexandria_domain::request_id(agent, key);
        store.execute(id, create_cmd(agent, key), &meta(&format!("agent:{agent}"))).await.expect("create");
        for step in steps {
            let cmd = match *step {
                "approve" => C::Approve {
                    by: "admin".into(),
                    at: Utc::now(),
                    execute_by: Utc::now() + chrono::Duration::days(1),
                },
                "reject" => C::Reject { by: "admin".into(), at: Utc::now(), reason: format!("no to {key}") },
                "claim" => C::ClaimExecution { replica: "test-replica".into(), at: Utc::now() },
                "cache" => C::CacheResult {
                    outcome: CallOutcome::Result(json!({"content": [{"type": "text", "text": key}], "isError": false})),
                    at: Utc::now(),
                },
                other => panic!("unknown step {other}"),
            };
            store.execute(id, cmd, &meta("user:admin")).await.expect(step);
        }
        id
    }
}
