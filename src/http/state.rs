//! What every handler can reach. Holds nothing that would be wrong with several replicas:
//! all state that matters is in PostgreSQL.

use std::sync::Arc;

use alexandria_projections::EventListener;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::console::InboxFeed;
use crate::approval::PermissionStore;
use crate::auth::policy_cache::PolicyCache;
use crate::auth::throttle::LoginThrottlePolicy;
use crate::auth::JwtKeys;
use crate::mcp::McpService;
use crate::metrics::Metrics;
use crate::notify::ReconcilerOptions;
use crate::upstream::UpstreamRegistry;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub store: PermissionStore,
    pub settings: Arc<HttpSettings>,
    pub metrics: Metrics,
    /// Upstream MCP servers: connections (per process) to the servers in `mcp_servers`.
    pub upstreams: UpstreamRegistry,
    /// The MCP endpoint's logic: policy, routing, the approval gate.
    pub mcp: McpService,
    /// Signs and verifies every token; one secret for all replicas.
    pub jwt: Arc<JwtKeys>,
    /// Agents' permissions_version in memory, kept true by the listener's notices.
    pub policy_cache: Arc<PolicyCache>,
    /// The process's one LISTEN connection, fanned out: the console's live updates
    /// subscribe to it (NOTIFY reaches every replica).
    pub listener: Arc<EventListener>,
    /// Cancelled at shutdown: endless responses (the console's event stream) end with it,
    /// so the server can drain.
    pub shutdown: CancellationToken,
    /// The log's head for the console's open inboxes: one reader per process, however
    /// many consoles are open.
    pub inbox_feed: InboxFeed,
}

/// The settings handlers read.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// The gateway's own origin (browsers may call the MCP endpoint only from it) and the
    /// base of links in notifications.
    pub public_url: String,
    /// Recorded in the metadata of events this process appends.
    pub replica_id: String,
    pub login_throttle: LoginThrottlePolicy,
    /// Timings of notification sends (the test send uses the reconciler's).
    pub notifier: ReconcilerOptions,
    /// How long an approved call may wait for its agent to run it (the approval TTL).
    pub execution_window: std::time::Duration,
}
