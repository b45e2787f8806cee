//! Prometheus metrics. Counters are incremented by the process that did the thing;
//! gauges that describe shared state (pending requests, projector lag) are computed from
//! PostgreSQL at scrape time, so they are right after a restart and equal on every
//! replica. They are refreshed at most once per [`REFRESH_INTERVAL`], whatever the
//! number of scrapers: a scrape costs the database at most one refresh a second, and a
//! flood of scrapes costs it nothing more.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use sqlx::{PgPool, Row};

#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    permission_events: IntCounterVec,
    pending: IntGaugeVec,
    oldest_pending: IntGauge,
    http_duration: HistogramVec,
    upstream_duration: HistogramVec,
    upstream_errors: IntCounterVec,
    projection_position: IntGaugeVec,
    projection_lag: IntGaugeVec,
    gate_waiters: IntGauge,
    seal_lag: prometheus::Gauge,
    notifier_deliveries: IntCounterVec,
    agent_policy_checks: IntCounterVec,
    relayed_client_requests: IntCounterVec,
    relay_record_failures: prometheus::IntCounter,
    refresh_failures: prometheus::IntCounter,
    refreshes: prometheus::IntCounter,
    /// When the database-derived gauges were last refreshed. Held while they are: scrapes
    /// that arrive meanwhile wait for that refresh and share it.
    refreshed_at: tokio::sync::Mutex<Option<Instant>>,
}

/// The database-derived gauges are at most this old when a scrape reads them.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, collector: T) -> T {
    // Names are static and unique: registration cannot fail except by a programming
    // error, which the metrics test catches.
    if let Err(error) = registry.register(Box::new(collector.clone())) {
        tracing::error!(%error, "metric registration failed");
    }
    collector
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            register(&registry, IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            register(&registry, IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"))
        };
        let latency_buckets =
            vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
        let inner = Inner {
            permission_events: counter(
                "alexandria_permission_request_events_total",
                "Permission request events appended by this process.",
                &["request_type", "tool", "event"],
            ),
            pending: gauge(
                "alexandria_permission_request_pending",
                "Permission requests waiting for a decision (from the read model).",
                &["request_type", "tool"],
            ),
            oldest_pending: register(
                &registry,
                IntGauge::new(
                    "alexandria_permission_request_oldest_pending_seconds",
                    "How long the oldest pending permission request has waited for a decision (0: none is pending).",
                )
                .expect("valid metric"),
            ),
            http_duration: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "alexandria_http_request_duration_seconds",
                        "HTTP request duration by route template.",
                    )
                    .buckets(latency_buckets.clone()),
                    &["method", "route", "status_class"],
                )
                .expect("valid metric"),
            ),
            upstream_duration: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new("alexandria_upstream_call_duration_seconds", "Upstream MCP tool call duration.")
                        .buckets(latency_buckets),
                    &["server", "tool"],
                )
                .expect("valid metric"),
            ),
            upstream_errors: counter(
                "alexandria_upstream_call_errors_total",
                "Upstream MCP tool calls that failed (transport, timeout or JSON-RPC error).",
                &["server", "tool"],
            ),
            projection_position: gauge(
                "alexandria_projection_position",
                "Global position of the last event a projection applied.",
                &["projection"],
            ),
            projection_lag: gauge(
                "alexandria_projection_lag_events",
                "Events a projection has not applied yet.",
                &["projection"],
            ),
            seal_lag: register(
                &registry,
                prometheus::Gauge::new(
                    "alexandria_audit_seal_lag_seconds",
                    "How long the oldest event not yet sealed into the audit chain has been in the log (0: all sealed).",
                )
                .expect("valid metric"),
            ),
            gate_waiters: register(
                &registry,
                IntGauge::new("alexandria_gate_waiters", "Gated tool calls of this process waiting in-band.")
                    .expect("valid metric"),
            ),
            notifier_deliveries: counter(
                "alexandria_notifier_deliveries_total",
                "Notification sends by this process, by channel and outcome (delivered, refreshed, failed).",
                &["channel", "outcome"],
            ),
            agent_policy_checks: counter(
                "alexandria_agent_policy_checks_total",
                "Agent token checks by where the agent's permissions_version came from: cache (no database \
                 round trip) or database (not cached yet, or the cache unusable while its notifications are not heard).",
                &["source"],
            ),
            relayed_client_requests: counter(
                "alexandria_relayed_client_requests_total",
                "Requests an upstream asked a client during a call (sampling/createMessage, elicitation/create), \
                 by method and outcome (answered, refused, no_answer).",
                &["method", "outcome"],
            ),
            relay_record_failures: register(
                &registry,
                prometheus::IntCounter::new(
                    "alexandria_relayed_client_request_record_failures_total",
                    "Relayed client requests whose record could not be appended to the event log (the call went on).",
                )
                .expect("valid metric"),
            ),
            refresh_failures: register(
                &registry,
                prometheus::IntCounter::new(
                    "alexandria_metrics_refresh_failures_total",
                    "Scrapes whose database-derived gauges could not be refreshed (they show the last values).",
                )
                .expect("valid metric"),
            ),
            refreshes: register(
                &registry,
                prometheus::IntCounter::new(
                    "alexandria_metrics_refreshes_total",
                    "Refreshes of the database-derived gauges (at most one a second, however many scrapes).",
                )
                .expect("valid metric"),
            ),
            refreshed_at: tokio::sync::Mutex::new(None),
            registry,
        };
        Metrics { inner: Arc::new(inner) }
    }

    pub fn permission_event(&self, request_type: &str, tool: &str, event: &str) {
        self.inner.permission_events.with_label_values(&[request_type, tool, event]).inc();
    }

    pub fn upstream_call(&self, server: &str, tool: &str, seconds: f64, failed: bool) {
        self.inner.upstream_duration.with_label_values(&[server, tool]).observe(seconds);
        if failed {
            self.inner.upstream_errors.with_label_values(&[server, tool]).inc();
        }
    }

    /// One notification send: `outcome` is `delivered` (first delivery of a notice),
    /// `refreshed` (a firing alert re-sent) or `failed`.
    pub fn notifier_delivery(&self, channel: &str, outcome: &str) {
        self.inner.notifier_deliveries.with_label_values(&[channel, outcome]).inc();
    }

    /// One agent token check; `source` is `cache` or `database`.
    pub fn agent_policy_check(&self, source: &str) {
        self.inner.agent_policy_checks.with_label_values(&[source]).inc();
    }

    /// One request an upstream asked a client during a call; `outcome` is `answered`,
    /// `refused` or `no_answer`.
    pub fn relayed_client_request(&self, method: &str, outcome: &str) {
        self.inner.relayed_client_requests.with_label_values(&[method, outcome]).inc();
    }

    /// Relayed client requests of this process that ended with `outcome` (for tests).
    pub fn relayed_client_requests(&self, method: &str, outcome: &str) -> u64 {
        self.inner.relayed_client_requests.with_label_values(&[method, outcome]).get()
    }

    /// A relayed request's record that could not be appended.
    pub fn relayed_client_request_record_failure(&self) {
        self.inner.relay_record_failures.inc();
    }

    /// Records of relayed requests this process could not append (for tests).
    pub fn relayed_client_request_record_failures(&self) -> u64 {
        self.inner.relay_record_failures.get()
    }

    /// Agent token checks of this process answered from `source` (for tests).
    pub fn agent_policy_checks(&self, source: &str) -> u64 {
        self.inner.agent_policy_checks.with_label_values(&[source]).get()
    }

    /// How many sends to `channel` ended with `outcome` in this process (for tests and
    /// diagnostics; reading a series creates it at 0).
    pub fn notifier_deliveries(&self, channel: &str, outcome: &str) -> u64 {
        self.inner.notifier_deliveries.with_label_values(&[channel, outcome]).get()
    }

    /// One HTTP request's duration, by route template (never the raw path: ids in paths
    /// would explode the label set) and status class.
    pub fn http_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let status_class = match status / 100 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        };
        self.inner.http_duration.with_label_values(&[method, route, status_class]).observe(seconds);
    }

    /// Counts an in-band waiter for as long as the guard lives.
    pub fn waiter(&self) -> WaiterGuard {
        self.inner.gate_waiters.inc();
        WaiterGuard(self.inner.gate_waiters.clone())
    }

    /// Refreshes the database-derived gauges unless they are younger than
    /// [`REFRESH_INTERVAL`], then renders the text exposition. A refresh that fails is
    /// counted and logged, and the gauges keep their last values: the endpoint is
    /// unauthenticated and says nothing about the database (which a failing refresh does
    /// not ask again before the interval is over either).
    pub async fn render(&self, pool: &PgPool) -> Result<String, anyhow::Error> {
        let mut refreshed_at = self.inner.refreshed_at.lock().await;
        if refreshed_at.is_none_or(|at| at.elapsed() >= REFRESH_INTERVAL) {
            self.inner.refreshes.inc();
            if let Err(error) = self.refresh(pool).await {
                self.inner.refresh_failures.inc();
                tracing::error!(%error, "cannot refresh the database-derived metrics");
            }
            *refreshed_at = Some(Instant::now());
        }
        drop(refreshed_at);
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.inner.registry.gather(), &mut buffer)?;
        Ok(String::from_utf8(buffer)?)
    }

    async fn refresh(&self, pool: &PgPool) -> Result<(), anyhow::Error> {
        // Every tool ever seen keeps a series (at 0 when nothing is pending). A loose
        // index scan over the tool index keeps this cheap however many rows there are.
        let rows = sqlx::query(
            "WITH RECURSIVE tools AS ( \
               (SELECT tool FROM permission_requests ORDER BY tool LIMIT 1) \
               UNION ALL \
               SELECT (SELECT p.tool FROM permission_requests p WHERE p.tool > t.tool ORDER BY p.tool LIMIT 1) \
               FROM tools t WHERE t.tool IS NOT NULL) \
             SELECT 'tool_call' AS request_type, t.tool, \
               (SELECT count(*) FROM permission_requests p WHERE p.tool = t.tool AND p.status = 'pending') AS pending \
             FROM tools t WHERE t.tool IS NOT NULL",
        )
        .fetch_all(pool)
        .await?;
        for row in rows {
            let request_type: String = row.try_get("request_type")?;
            let tool: String = row.try_get("tool")?;
            let pending: i64 = row.try_get("pending")?;
            self.inner.pending.with_label_values(&[&request_type, &tool]).set(pending);
        }
        let oldest: Option<f64> = sqlx::query_scalar(
            "SELECT extract(epoch FROM now() - min(created_at))::float8 FROM permission_requests WHERE status = 'pending'",
        )
        .fetch_one(pool)
        .await?;
        self.inner.oldest_pending.set(oldest.unwrap_or(0.0).max(0.0) as i64);
        // Through the sealer's checkpoint: only the (few) events after it are looked at.
        let seal_lag: Option<f64> = sqlx::query_scalar(
            "SELECT extract(epoch FROM now() - min(e.recorded_at))::float8 \
             FROM projection_checkpoints c JOIN events e ON (e.tx_id, e.global_position) > (c.last_tx_id, c.last_position) \
             WHERE c.name = $1",
        )
        .bind(crate::audit::SEALER_NAME)
        .fetch_one(pool)
        .await?;
        self.inner.seal_lag.set(seal_lag.unwrap_or(0.0).max(0.0));
        for status in alexandria_projections::projection_status(pool, crate::notify::CHECKPOINTS_LED_BY).await? {
            self.inner.projection_position.with_label_values(&[&status.name]).set(status.position);
            self.inner.projection_lag.with_label_values(&[&status.name]).set(status.lag);
        }
        Ok(())
    }
}

pub struct WaiterGuard(IntGauge);

impl Drop for WaiterGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
