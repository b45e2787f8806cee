//! Composition: builds the services from the settings and a database, hands them to the
//! HTTP layer, and runs the server and its background workers until shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use alexandria_projections::{EventListener, ProjectionRunner};
use anyhow::Context;
use secrecy::SecretString;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::approval::{Gate, GateSettings, PermissionStore, RelayRecorder};
use crate::audit::checkpoints::CheckpointSink;
use crate::audit::push::WebhookCheckpoints;
use crate::audit::{AuditKey, Sealer, SealerSettings};
use crate::auth::policy_cache::PolicyCache;
use crate::auth::throttle::LoginThrottlePolicy;
use crate::auth::JwtKeys;
use crate::http::console::InboxFeed;
use crate::http::{AppState, HttpSettings};
use crate::mcp::McpService;
use crate::metrics::Metrics;
use crate::notify::{Reconciler, ReconcilerOptions};
use crate::upstream::{UpstreamRegistry, UpstreamSettings, UpstreamSurface, UpstreamTools};

/// The retry hint in the pending envelope (the runbook shows 2000).
const RETRY_AFTER: Duration = Duration::from_millis(2000);
/// How often a waiting gated call re-checks when no notification arrives.
const GATE_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Settings the running server needs (the database is passed separately).
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    /// When set, `/metrics` is served here only (not on `listen`): the scrape endpoint is
    /// unauthenticated, so it can stay on an internal address.
    pub metrics_listen: Option<SocketAddr>,
    pub public_url: String,
    pub approval_wait: Duration,
    pub approval_ttl: Duration,
    pub replica_id: String,
    pub upstream_call_timeout: Duration,
    /// Where the generated admin password is written on first start.
    pub data_dir: PathBuf,
    /// The bootstrap admin's password (first start only); generated when `None`.
    pub admin_password: Option<SecretString>,
    /// The JWT signing secret; generated once and stored in the database when `None`.
    pub jwt_secret: Option<SecretString>,
    /// Login throttling limits (defaults; tests tighten them).
    pub login_throttle: LoginThrottlePolicy,
    /// Timings of the notification reconciler (retries, alert re-sends, polling).
    pub notifier: ReconcilerOptions,
    /// The audit chain's signing key file (outside the database; created 0600 on first
    /// start) and when the sealer signs checkpoints.
    pub audit_key_file: PathBuf,
    pub sealer: SealerSettings,
}

pub struct Application {
    tcp: TcpListener,
    /// `/metrics` on an address of its own (`Settings::metrics_listen`).
    metrics_tcp: Option<TcpListener>,
    state: AppState,
    /// Wakes projectors, the reconciler and parked gated calls (NOTIFY on every append).
    listener: Arc<EventListener>,
    settings: Settings,
    shutdown: CancellationToken,
    /// Shutdown lets its claimed calls finish before upstream sessions close.
    gate: Gate,
    /// Signs the sealer's checkpoints.
    audit_key: Arc<AuditKey>,
}

impl Application {
    /// Binds the listener (port 0 picks a free port), loads the JWT secret, creates the
    /// first user on a first start, and prepares the state. The database must already be
    /// migrated.
    pub async fn build(settings: Settings, pool: PgPool, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let tcp = listen(settings.listen).with_context(|| format!("cannot listen on {}", settings.listen))?;
        Self::build_on(tcp, settings, pool, shutdown).await
    }

    /// [`build`](Self::build) on a listener already bound (by [`wait_for_schema`]).
    pub async fn build_on(
        tcp: TcpListener,
        settings: Settings,
        pool: PgPool,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let metrics_tcp = match settings.metrics_listen {
            Some(address) => Some(listen(address).with_context(|| format!("cannot listen on {address} for metrics"))?),
            None => None,
        };
        let jwt = JwtKeys::load(&pool, settings.jwt_secret.as_ref()).await?;
        let audit_key = Arc::new(AuditKey::load_or_create(&settings.audit_key_file)?);
        crate::auth::bootstrap::ensure_admin(&pool, &settings.data_dir, settings.admin_password.as_ref()).await?;
        let metrics = Metrics::new();
        let upstreams = UpstreamRegistry::new(
            pool.clone(),
            UpstreamSettings { call_timeout: settings.upstream_call_timeout, ..UpstreamSettings::default() },
        );
        let listener = EventListener::new();
        let store = PermissionStore::new(pool.clone()).with_metrics(metrics.clone());
        let recorder = RelayRecorder::new(pool.clone(), metrics.clone(), &settings.replica_id);
        let tools = Arc::new(UpstreamTools::new(upstreams.clone(), metrics.clone(), recorder));
        let gate = Gate::new(
            store.clone(),
            Arc::clone(&listener),
            tools.clone(),
            GateSettings {
                wait: settings.approval_wait,
                ttl: settings.approval_ttl,
                retry_after: RETRY_AFTER,
                call_timeout: settings.upstream_call_timeout,
                poll_interval: GATE_POLL_INTERVAL,
                replica_id: settings.replica_id.clone(),
            },
            metrics.clone(),
            shutdown.clone(),
        );
        let http_settings = HttpSettings {
            public_url: settings.public_url.clone(),
            replica_id: settings.replica_id.clone(),
            login_throttle: settings.login_throttle.clone(),
            notifier: settings.notifier.clone(),
            execution_window: settings.approval_ttl,
        };
        let policy_cache = PolicyCache::new(metrics.clone());
        let state = AppState {
            policy_cache,
            mcp: McpService::new(
                tools.clone(),
                tools,
                Arc::new(UpstreamSurface::new(upstreams.clone())),
                gate.clone(),
                pool.clone(),
            ),
            upstreams,
            jwt: Arc::new(jwt),
            listener: Arc::clone(&listener),
            shutdown: shutdown.clone(),
            inbox_feed: InboxFeed::default(),
            store,
            metrics,
            pool,
            settings: Arc::new(http_settings),
        };
        Ok(Self { tcp, metrics_tcp, state, listener, settings, shutdown, gate, audit_key })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.tcp.local_addr().unwrap_or(self.settings.listen)
    }

    /// Where `/metrics` is served when it has an address of its own.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_tcp.as_ref().and_then(|tcp| tcp.local_addr().ok())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until the shutdown token is cancelled, then lets in-flight requests and
    /// workers finish.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Application { tcp, metrics_tcp, state, listener, settings, shutdown, gate, audit_key } = self;
        let workers = TaskTracker::new();
        workers.spawn(Arc::clone(&state.policy_cache).follow(&listener, shutdown.clone()));
        workers.spawn(Arc::clone(&listener).run(state.pool.clone(), shutdown.clone()));
        for projection in alexandria_projections::all() {
            let runner = ProjectionRunner::new(state.pool.clone(), projection, Arc::clone(&listener));
            workers.spawn(runner.run(shutdown.clone()));
        }
        let sealer = Sealer {
            pool: state.pool.clone(),
            listener: Arc::clone(&listener),
            key: audit_key,
            settings: settings.sealer.clone(),
            sink: settings.sealer.push_to_webhook.then(|| {
                Arc::new(WebhookCheckpoints::new(state.pool.clone(), settings.notifier.delivery_timeout))
                    as Arc<dyn CheckpointSink>
            }),
        };
        workers.spawn(sealer.run(shutdown.clone()));
        let reconciler = Reconciler::new(
            state.pool.clone(),
            state.store.clone(),
            listener,
            state.metrics.clone(),
            &settings.public_url,
            &settings.replica_id,
            settings.notifier.clone(),
        );
        workers.spawn(reconciler.run(shutdown.clone()));
        workers.close();
        state.upstreams.start();
        let upstreams = state.upstreams.clone();

        tracing::info!(address = %tcp.local_addr()?, replica = %settings.replica_id, "listening");
        let metrics = metrics_tcp.map(|metrics_tcp| {
            if let Ok(address) = metrics_tcp.local_addr() {
                tracing::info!(%address, "serving /metrics on its own address");
            }
            let app = crate::http::metrics_router(state.clone());
            tokio::spawn(crate::http::server::serve(metrics_tcp, app, shutdown.clone()))
        });
        let app = crate::http::router(state, metrics.is_none());
        let stop = shutdown.clone();
        crate::http::server::serve(tcp, app, stop).await;
        if let Some(metrics) = metrics {
            let _ = metrics.await;
        }
        shutdown.cancel();
        workers.wait().await;
        // Claimed calls nobody waits for any more (a client gone, a task's poll) finish
        // and record their outcome; each is bounded by the upstream call timeout.
        if !gate.finish_claimed_calls().await {
            tracing::error!("claimed calls still running at shutdown; their outcomes will be reported unknown");
        }
        // Last: in-flight requests and claimed calls (which call upstream) have finished.
        upstreams.shutdown().await;
        Ok(())
    }
}

/// How often a replica waiting for its schema looks again.
const SCHEMA_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// For a replica that does not migrate on start (`ALEXANDRIA_MIGRATE_ON_START=false`) on a
/// database whose schema is older than the binary: binds `listen` and serves only
/// `/healthz`, `/readyz` (503, naming the missing migrations) and 503 for the rest until
/// `alexandria migrate` has run, then hands the listener over. `None` when shut down
/// first. A replica must never serve on a schema it was not built for: its queries would
/// fail on missing columns mid-request.
pub async fn wait_for_schema(
    listen_on: SocketAddr,
    pool: &PgPool,
    reason: String,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<TcpListener>> {
    let tcp = listen(listen_on).with_context(|| format!("cannot listen on {listen_on}"))?;
    tracing::error!(address = %tcp.local_addr()?, reason, "listening; not serving until the database schema is migrated");
    let stop = shutdown.child_token();
    let router = crate::http::schema_wait_router(pool.clone(), reason);
    let waiting = tokio::spawn(crate::http::server::serve_then_hand_over(tcp, router, stop.clone(), shutdown.clone()));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(SCHEMA_POLL_INTERVAL) => {}
            _ = shutdown.cancelled() => break,
        }
        match crate::db::schema_status(pool).await {
            Ok(crate::db::SchemaStatus::Behind { .. }) => {}
            Ok(_) => {
                tracing::info!("the database schema is migrated; serving");
                break;
            }
            Err(error) => tracing::warn!(%error, "cannot read the database schema; looking again shortly"),
        }
    }
    stop.cancel();
    let tcp = waiting.await.context("the schema wait's server failed")?;
    Ok((!shutdown.is_cancelled()).then_some(tcp))
}

/// Connections a serving process holds outside its pool: one per single-instance worker
/// (each projection runner, the audit sealer and the notification reconciler), each
/// keeping its leadership's advisory lock on a session of its own.
pub fn leadership_connections() -> u32 {
    alexandria_projections::all().len() as u32 + 2
}

/// Pending connections the kernel queues before accepting (capped by `somaxconn`). Agents
/// retrying after an outage arrive in bursts; tokio's default of 1024 turns a burst of a
/// few thousand into client-side connect timeouts.
const LISTEN_BACKLOG: u32 = 4096;

fn listen(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}
