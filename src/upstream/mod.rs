//! Upstream MCP servers: the registry of configured servers, one long-lived rmcp client
//! session per server, and the merged tool catalog agents call through the gateway.
//!
//! # Replicas and the source of truth
//! The `mcp_servers` table is the configuration; what a registry holds in memory is only
//! this process's connections to it. Every replica connects to every registered server.
//! A change made on one replica reaches the others through [`UpstreamRegistry::reload`],
//! which diffs the table against the live set (connects what is new, disconnects what is
//! gone, reconnects what changed). It runs at [`UpstreamRegistry::start`], every
//! [`UpstreamSettings::reload_interval`] (10 s) after that, and after local changes
//! (`register` and `remove` apply theirs directly, under the same lock). So another
//! replica picks a change up within about ten seconds.
//!
//! # Sessions
//! Each server has a supervisor task: connect (spawn the child or open the HTTP session,
//! handshake, `tools/list`), then watch the session; when it dies or stops answering
//! pings, reconnect with exponential backoff (250 ms doubling to 30 s). The tool list is
//! re-read on `notifications/tools/list_changed` and on [`UpstreamRegistry::refresh`].
//! A server's last known tools stay in the catalog while it reconnects, so agents see a
//! stable list and a call in that window fails with [`UpstreamError::Unavailable`].
//!
//! # Tool names
//! A tool is exposed under its upstream name, or `<tool_prefix><name>` when the server has
//! a prefix (stripped again when calling upstream). Registering a server that would expose
//! a name already exposed is refused. Should a clash still arise (a server adds a tool
//! later, or two replicas register at once), the earlier registered server keeps the name
//! and the clash is logged.
//!
//! # Layout
//! `registry` holds the live set and every change to it, `server` one server's connection
//! state, `supervisor` the task that keeps a server connected, `catalog` the merged tool
//! names; `connection` is one rmcp session, `store` the table, `config` a server's
//! configuration, `tools` the registry as the gate and the MCP endpoint use it.

mod catalog;
mod config;
mod connection;
mod error;
mod http_client;
mod registry;
mod relay;
mod run_as;
mod server;
mod store;
mod supervisor;
mod surface;
mod tools;

use std::sync::{PoisonError, RwLock};
use std::time::Duration;

pub use self::catalog::{Catalog, CatalogTool};
pub use self::config::{
    validate_name as validate_server_name, InvalidConfig, RedactedConfig, TransportKind, UpstreamConfig,
};
pub use self::error::UpstreamError;
pub use self::registry::UpstreamRegistry;
pub use self::server::{ConnectionStatus, UpstreamStatus};
pub use self::surface::UpstreamSurface;
pub use self::tools::UpstreamTools;

/// Timing of the registry. `call_timeout` is `ALEXANDRIA_UPSTREAM_CALL_TIMEOUT_SECS`.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// Longest wait for one `tools/call` answer.
    pub call_timeout: Duration,
    /// Longest wait to connect, handshake and list tools.
    pub connect_timeout: Duration,
    /// How often the `mcp_servers` table is re-read (see the module docs).
    pub reload_interval: Duration,
    /// Upper bound of the reconnect backoff.
    pub max_backoff: Duration,
    /// How often an otherwise quiet session is pinged.
    pub health_interval: Duration,
}

pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);

impl Default for UpstreamSettings {
    fn default() -> Self {
        UpstreamSettings {
            call_timeout: DEFAULT_CALL_TIMEOUT,
            connect_timeout: Duration::from_secs(30),
            reload_interval: Duration::from_secs(10),
            max_backoff: Duration::from_secs(30),
            health_interval: Duration::from_secs(20),
        }
    }
}

// The registry's locks are taken even when poisoned: every write under them replaces,
// inserts or removes whole entries, so a panicking holder leaves nothing half-done.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}
