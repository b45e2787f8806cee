//! Building and running the HTTP server and its background workers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use alexandria_projections::{EventListener, ProjectionRunner};
use anyhow::Context;
use axum::routing::get;
use axum::Router;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::trace::TraceLayer;

use crate::auth::throttle::LoginThrottlePolicy;
use crate::auth::JwtKeys;
use crate::config::Secret;
use crate::event_store::PermissionStore;
use crate::gate::{Gate, GateSettings};
use crate::mcp::McpService;
use crate::metrics::Metrics;
use crate::notify::{Reconciler, ReconcilerOptions};
use crate::routes;
use crate::upstream::UpstreamTools;
use crate::upstream::{UpstreamRegistry, UpstreamSettings};

/// The retry hint in the pending envelope (the runbook shows 2000).
const RETRY_AFTER: Duration = Duration::from_millis(2000);
/// How often a waiting gated call re-checks when no notification arrives.
const GATE_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Settings the running server needs (the database is passed separately).
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub public_url: String,
    pub approval_wait: Duration,
    pub approval_ttl: Duration,
    pub replica_id: String,
    pub upstream_call_timeout: Duration,
    /// Where the generated admin password is written on first start.
    pub data_dir: PathBuf,
    /// The bootstrap admin's password (first start only); generated when `None`.
    pub admin_password: Option<Secret>,
    /// The JWT signing secret; generated once and stored in the database when `None`.
    pub jwt_secret: Option<Secret>,
    /// Login throttling limits (defaults; tests tighten them).
    pub login_throttle: LoginThrottlePolicy,
    /// Timings of the notification reconciler (retries, alert re-sends, polling).
    pub notifier: ReconcilerOptions,
}

impl Settings {
    pub fn from_args(args: &crate::config::ServeArgs) -> Self {
        Settings {
            listen: args.listen,
            public_url: args.public_url(),
            approval_wait: Duration::from_secs(args.approval_wait_secs),
            approval_ttl: Duration::from_secs(args.approval_ttl_secs),
            replica_id: args.replica_id.clone().unwrap_or_else(crate::config::default_replica_id),
            upstream_call_timeout: Duration::from_secs(args.upstream_call_timeout_secs),
            data_dir: args.database.data_dir.clone(),
            admin_password: args.admin_password.clone().map(Secret::from),
            jwt_secret: args.jwt_secret.clone().map(Secret::from),
            login_throttle: LoginThrottlePolicy::default(),
            notifier: ReconcilerOptions::default(),
        }
    }
}

/// Shared by every handler. Holds nothing that would be wrong with several replicas:
/// all state that matters is in PostgreSQL.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub store: PermissionStore,
    pub listener: Arc<EventListener>,
    pub settings: Arc<Settings>,
    pub metrics: Metrics,
    /// Upstream MCP servers: connections (per process) to the servers in `mcp_servers`.
    pub upstreams: UpstreamRegistry,
    /// The MCP endpoint's logic: policy, routing, the approval gate.
    pub mcp: McpService,
    /// Signs and verifies every token; one secret for all replicas.
    pub jwt: Arc<JwtKeys>,
}

pub struct Application {
    tcp: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
}

impl Application {
    /// Binds the listener (port 0 picks a free port), loads the JWT secret, creates the
    /// first user on a first start, and prepares the state. The database must already be
    /// migrated.
    pub async fn build(settings: Settings, pool: PgPool, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let tcp = listen(settings.listen).with_context(|| format!("cannot listen on {}", settings.listen))?;
        let jwt = JwtKeys::load(&pool, settings.jwt_secret.as_ref()).await?;
        crate::auth::bootstrap::ensure_admin(&pool, &settings.data_dir, settings.admin_password.as_ref()).await?;
        let metrics = Metrics::new();
        let upstreams = UpstreamRegistry::new(
            pool.clone(),
            UpstreamSettings { call_timeout: settings.upstream_call_timeout, ..UpstreamSettings::default() },
        );
        let listener = EventListener::new();
        let store = PermissionStore::new(pool.clone()).with_metrics(metrics.clone());
        let tools = Arc::new(UpstreamTools::new(upstreams.clone(), metrics.clone()));
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
        let state = AppState {
            mcp: McpService::new(tools.clone(), tools, gate),
            upstreams,
            jwt: Arc::new(jwt),
            store,
            metrics,
            pool,
            listener,
            settings: Arc::new(settings),
        };
        Ok(Self { tcp, state, shutdown })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.tcp.local_addr().unwrap_or(self.state.settings.listen)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until the shutdown token is cancelled, then lets in-flight requests and
    /// workers finish.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Application { tcp, state, shutdown } = self;
        let workers = TaskTracker::new();
        workers.spawn(Arc::clone(&state.listener).run(state.pool.clone(), shutdown.clone()));
        for projection in alexandria_projections::all() {
            let runner = ProjectionRunner::new(state.pool.clone(), projection, Arc::clone(&state.listener));
            workers.spawn(runner.run(shutdown.clone()));
        }
        workers.spawn(Reconciler::from_state(&state).run(shutdown.clone()));
        workers.close();
        state.upstreams.start();
        let upstreams = state.upstreams.clone();

        tracing::info!(address = %tcp.local_addr()?, replica = %state.settings.replica_id, "listening");
        let app = router(state);
        let stop = shutdown.clone();
        crate::http_server::serve(tcp, app, stop).await;
        shutdown.cancel();
        workers.wait().await;
        // Last: in-flight requests (which may be calling upstream) have finished above.
        upstreams.shutdown().await;
        Ok(())
    }
}

/// Connections a serving process holds outside its pool: one per single-instance worker
/// (each projection runner and the notification reconciler), each keeping its
/// leadership's advisory lock on a session of its own.
pub fn leadership_connections() -> u32 {
    alexandria_projections::all().len() as u32 + 1
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

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .merge(routes::auth::router())
        .merge(routes::users::router())
        .merge(routes::agents::router())
        .merge(routes::admin_audit::router())
        .merge(routes::permissions::router())
        .merge(routes::mcp_servers::router())
        .merge(routes::mcp::router())
        .merge(routes::notifications::router())
        .route("/metrics", get(crate::metrics::metrics_handler))
        .route_layer(crate::metrics::HttpMetricsLayer::new(state.metrics.clone()))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
