//! The supervisor: one task per server that keeps it connected until it is stopped —
//! connect, watch the session (tool-list changes, health pings), and on loss reconnect
//! with backoff. It drives the server's state machine and asks the registry to rebuild
//! the catalog when the tools change; it holds the registry only weakly, so it never keeps
//! a dropped registry alive.

use std::sync::{Arc, Weak};
use std::time::Duration;

use alexandria_projections::Backoff;

use super::connection::{self, Session, CLOSE_GRACE};
use super::server::Server;
use super::UpstreamSettings;

const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Whoever keeps the merged catalog (the registry): told when a server's tools change.
/// A trait, so the supervisor needs nothing else of the registry.
pub(super) trait CatalogOwner: Send + Sync {
    fn tools_changed(&self);
}

enum SessionEnd {
    Stopped,
    Lost(String),
}

/// Keeps one server connected until it is stopped: connect, watch, reconnect with backoff.
pub(super) async fn supervise(
    registry: Weak<dyn CatalogOwner>,
    server: Arc<Server>,
    mut first: Option<(u64, Session)>,
    settings: UpstreamSettings,
) {
    if server.invalid.is_some() {
        server.stop.cancelled().await;
        return;
    }
    let mut failures = Backoff::new(INITIAL_BACKOFF, settings.max_backoff).retries();
    loop {
        let (id, session) = match first.take() {
            Some(established) => established,
            None => {
                server.set_connecting();
                let attempt = connection::connect(
                    &server.config,
                    Arc::clone(&server.tools_changed),
                    Arc::clone(&server.relays),
                    server.stop.child_token(),
                    settings.connect_timeout,
                );
                let outcome = tokio::select! {
                    _ = server.stop.cancelled() => return,
                    outcome = attempt => outcome,
                };
                match outcome {
                    Ok(session) => {
                        let id = server.next_session();
                        server.set_connected(id, session.peer.clone(), session.tools.clone());
                        if let Some(owner) = registry.upgrade() {
                            owner.tools_changed();
                        }
                        (id, session)
                    }
                    Err(message) => {
                        server.set_error(message);
                        if !wait_backoff(&server, failures.next_delay()).await {
                            return;
                        }
                        continue;
                    }
                }
            }
        };
        let started = tokio::time::Instant::now();
        match watch_session(&registry, &server, id, session, &settings).await {
            SessionEnd::Stopped => return,
            SessionEnd::Lost(message) => {
                server.set_error(message);
                if started.elapsed() >= STABLE_SESSION {
                    failures.reset();
                }
                if !wait_backoff(&server, failures.next_delay()).await {
                    return;
                }
            }
        }
    }
}

/// Serves one session until it ends, is found dead, or the server is stopped. Re-lists
/// tools on `list_changed`; pings when a call failed oddly and every `health_interval`.
async fn watch_session(
    registry: &Weak<dyn CatalogOwner>,
    server: &Server,
    id: u64,
    session: Session,
    settings: &UpstreamSettings,
) -> SessionEnd {
    let Session { running, peer, cancel, .. } = session;
    let mut closed = std::pin::pin!(running.waiting());
    let mut health =
        tokio::time::interval_at(tokio::time::Instant::now() + settings.health_interval, settings.health_interval);
    health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let check = tokio::select! {
            quit = &mut closed => {
                let why = match quit {
                    Ok(rmcp::service::QuitReason::Closed) => "the session closed (the server exited or hung up)".to_owned(),
                    Ok(other) => format!("the session ended ({other:?})"),
                    Err(error) => format!("the session task failed: {error}"),
                };
                return SessionEnd::Lost(why);
            }
            _ = server.stop.cancelled() => {
                cancel.cancel();
                if tokio::time::timeout(CLOSE_GRACE, &mut closed).await.is_err() {
                    tracing::warn!(server = %server.config.name, "the MCP session did not close in time; leaving it to finish alone");
                }
                return SessionEnd::Stopped;
            }
            _ = server.tools_changed.notified() => {
                match connection::list_tools(&peer, settings.connect_timeout).await {
                    Ok(tools) => {
                        tracing::info!(server = %server.config.name, tools = tools.len(), "MCP server's tool list changed");
                        server.set_tools(id, tools);
                        if let Some(owner) = registry.upgrade() {
                            owner.tools_changed();
                        }
                        false
                    }
                    Err(message) => {
                        tracing::warn!(server = %server.config.name, error = %message, "cannot re-list tools");
                        true
                    }
                }
            }
            _ = server.suspect.notified() => true,
            // Calls in flight show the session in use; a dead one fails them, which
            // raises `suspect` instead.
            _ = health.tick() => !server.has_calls_in_flight(),
        };
        if check {
            if let Err(message) = connection::ping(&peer, PING_TIMEOUT).await {
                cancel.cancel();
                let _ = tokio::time::timeout(CLOSE_GRACE, &mut closed).await;
                return SessionEnd::Lost(message);
            }
        }
    }
}

// The reconnect schedule: the project's `Backoff` from `INITIAL_BACKOFF` up to
// `UpstreamSettings::max_backoff`, back to the start after a stable session.

const INITIAL_BACKOFF: Duration = Duration::from_millis(250);
/// A session that lived this long counts as healthy: the next reconnect starts from the
/// initial backoff again rather than where the last failures left it.
const STABLE_SESSION: Duration = Duration::from_secs(30);

/// Sleeps `delay` (cut short by a wake-up). False when the server was stopped meanwhile.
async fn wait_backoff(server: &Server, delay: Duration) -> bool {
    tokio::select! {
        _ = server.stop.cancelled() => false,
        _ = server.wake.notified() => true,
        _ = tokio::time::sleep(delay) => true,
    }
}
