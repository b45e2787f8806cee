//! One registered server and its connection state machine: the state calls wait on
//! ([`Live`], in a watch channel), the transitions the registry and the supervisor make
//! (connecting, error, connected, new tools), and what the admin API shows of it
//! ([`UpstreamStatus`]). The state and its rules live here, apart from whoever drives them.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use rmcp::model::Tool;
use rmcp::{Peer, RoleClient};
use serde::Serialize;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::config::{RedactedConfig, UpstreamConfig};
use super::relay::Relays;
use super::store::StoredServer;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    Connected,
    Connecting,
    Error,
}

impl fmt::Display for ConnectionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnectionStatus::Connected => "connected",
            ConnectionStatus::Connecting => "connecting",
            ConnectionStatus::Error => "error",
        })
    }
}

/// What the admin API shows of one server.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UpstreamStatus {
    pub name: String,
    #[serde(flatten)]
    pub config: RedactedConfig,
    pub status: ConnectionStatus,
    /// When `status` last changed.
    pub since: DateTime<Utc>,
    /// The most recent connection failure, kept after a reconnect as history.
    pub last_error: Option<String>,
    /// The server's tools as agents see them (prefixed names), last known.
    #[schema(value_type = Vec<Object>)]
    pub tools: Vec<Tool>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One registered server and its connection state.
pub(super) struct Server {
    pub(super) config: UpstreamConfig,
    /// Set when the stored configuration is invalid: the server is listed, never connected.
    pub(super) invalid: Option<String>,
    pub(super) created_at: DateTime<Utc>,
    pub(super) updated_at: DateTime<Utc>,
    pub(super) state: watch::Sender<Live>,
    /// Poked by the rmcp client handler on `notifications/tools/list_changed`.
    pub(super) tools_changed: Arc<Notify>,
    /// The relayed calls in flight, fed by the rmcp client handler.
    pub(super) relays: Arc<Relays>,
    /// A call failed in a way that suggests the session is dead: check it now.
    pub(super) suspect: Notify,
    /// Calls in flight. The periodic ping waits while there are any: a server that works
    /// on one request at a time would not answer it, and the session (with the calls in
    /// it) must not be declared dead for being busy.
    in_flight: AtomicUsize,
    /// Skip the rest of the backoff and reconnect now.
    pub(super) wake: Notify,
    pub(super) stop: CancellationToken,
    supervisor: Mutex<Option<JoinHandle<()>>>,
    sessions: AtomicU64,
}

#[derive(Clone)]
pub(super) struct Live {
    pub(super) status: ConnectionStatus,
    pub(super) since: DateTime<Utc>,
    pub(super) last_error: Option<String>,
    /// Last known tools, upstream names.
    pub(super) tools: Arc<Vec<Tool>>,
    /// Some exactly while connected.
    pub(super) peer: Option<Peer<RoleClient>>,
    /// Which session `peer` and `tools` belong to.
    pub(super) session: u64,
}

impl Server {
    pub(super) fn new(
        stored: StoredServer,
        stop: CancellationToken,
        tools_changed: Arc<Notify>,
        relays: Arc<Relays>,
    ) -> Arc<Self> {
        let invalid = stored.config.validate().err().map(|e| format!("the stored configuration is invalid: {e}"));
        let (status, last_error) = match &invalid {
            Some(problem) => (ConnectionStatus::Error, Some(problem.clone())),
            None => (ConnectionStatus::Connecting, None),
        };
        let (state, _) = watch::channel(Live {
            status,
            since: Utc::now(),
            last_error,
            tools: Arc::new(Vec::new()),
            peer: None,
            session: 0,
        });
        Arc::new(Server {
            config: stored.config,
            invalid,
            created_at: stored.created_at,
            updated_at: stored.updated_at,
            state,
            tools_changed,
            relays,
            suspect: Notify::new(),
            in_flight: AtomicUsize::new(0),
            wake: Notify::new(),
            stop,
            supervisor: Mutex::new(None),
            sessions: AtomicU64::new(0),
        })
    }

    pub(super) fn next_session(&self) -> u64 {
        self.sessions.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(super) fn status(&self) -> UpstreamStatus {
        let live = self.state.borrow();
        UpstreamStatus {
            name: self.config.name.clone(),
            config: self.config.redacted(),
            status: live.status,
            since: live.since,
            last_error: live.last_error.clone(),
            tools: live
                .tools
                .iter()
                .map(|tool| {
                    let mut downstream = tool.clone();
                    downstream.name = self.config.exposed_tool_name(&tool.name).into();
                    downstream
                })
                .collect(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    pub(super) fn set_connecting(&self) {
        self.state.send_modify(|live| {
            if live.status != ConnectionStatus::Connecting {
                live.status = ConnectionStatus::Connecting;
                live.since = Utc::now();
            }
            live.peer = None;
        });
    }

    pub(super) fn set_error(&self, message: String) {
        tracing::warn!(server = %self.config.name, error = %message, "MCP server not connected");
        self.state.send_modify(|live| {
            if live.status != ConnectionStatus::Error {
                live.status = ConnectionStatus::Error;
                live.since = Utc::now();
            }
            live.last_error = Some(message);
            live.peer = None;
        });
    }

    pub(super) fn set_connected(&self, session: u64, peer: Peer<RoleClient>, tools: Vec<Tool>) {
        tracing::info!(server = %self.config.name, tools = tools.len(), "MCP server connected");
        self.state.send_modify(|live| {
            live.status = ConnectionStatus::Connected;
            live.since = Utc::now();
            live.tools = Arc::new(tools);
            live.peer = Some(peer);
            live.session = session;
        });
    }

    /// Replaces the tool list, unless it came from a session that has since been replaced.
    pub(super) fn set_tools(&self, session: u64, tools: Vec<Tool>) {
        self.state.send_if_modified(|live| {
            if live.session != session || live.status != ConnectionStatus::Connected {
                return false;
            }
            live.tools = Arc::new(tools);
            true
        });
    }

    /// Whether any call is in flight (see `in_flight`).
    pub(super) fn has_calls_in_flight(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) != 0
    }

    /// Keeps the supervisor's handle, for [`stop_and_wait`](Self::stop_and_wait).
    pub(super) fn attach_supervisor(&self, handle: JoinHandle<()>) {
        *self.supervisor.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle);
    }

    pub(super) async fn stop_and_wait(&self) {
        self.stop.cancel();
        let handle = self.supervisor.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(handle) = handle {
            if let Err(error) = handle.await {
                tracing::warn!(server = %self.config.name, %error, "MCP server supervisor failed");
            }
        }
    }
}

/// Counts a call as in flight on its server for as long as it lives.
pub(super) struct InFlight<'a>(&'a Server);

impl<'a> InFlight<'a> {
    pub(super) fn enter(server: &'a Server) -> Self {
        server.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(server)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}
