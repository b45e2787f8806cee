//! One LISTEN connection per process, fanned out to everything that waits on the log.
//!
//! Notifications are hints: they can be lost while the connection reconnects, so every
//! consumer also polls, and after a reconnect a `Resync` tells consumers to re-check
//! everything.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;

pub const EVENTS_CHANNEL: &str = "alexandria_events";
/// An `agents` row changed (trigger `agents_notify`); the payload is the agent's name.
pub const AGENTS_CHANNEL: &str = "alexandria_agents";

/// What in-process caches of agent policy need to hear: which agent changed, and whether
/// notifications can be trusted right now (a cache must not be used while they cannot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyNotice {
    /// Listening (again): changes from now on will be heard; anything before is unknown.
    Live,
    /// Not listening: changes may go unheard until the next `Live`.
    Down,
    /// This agent's row changed.
    Changed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogChange {
    /// An event for this aggregate was committed.
    Appended { aggregate_type: String, aggregate_id: String },
    /// Notifications may have been missed: re-check everything.
    Resync,
}

/// The process-wide listener.
pub struct EventListener {
    changes: broadcast::Sender<LogChange>,
    policies: broadcast::Sender<PolicyNotice>,
    /// Per-aggregate change counters, so ten thousand waiters do not each see every
    /// event. The count is how many `AggregateWatch`es share the entry.
    watchers: Mutex<HashMap<String, (watch::Sender<u64>, usize)>>,
}

/// A registration for one aggregate's changes; unregisters on drop.
pub struct AggregateWatch {
    listener: Arc<EventListener>,
    aggregate_id: String,
    version: watch::Receiver<u64>,
}

impl AggregateWatch {
    /// Resolves once the aggregate changed (or a resync happened) since the watch was
    /// made or since the previous call returned: a change between a caller's check and
    /// its wait is never missed.
    pub async fn changed(&mut self) {
        // The sender lives as long as any watch on this id, so this cannot fail while we
        // hold the receiver; if it ever did, returning makes the caller re-check.
        let _ = self.version.changed().await;
    }
}

impl Drop for AggregateWatch {
    fn drop(&mut self) {
        let mut watchers = self.listener.watchers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = watchers.get_mut(&self.aggregate_id) {
            entry.1 -= 1;
            if entry.1 == 0 {
                watchers.remove(&self.aggregate_id);
            }
        }
    }
}

impl EventListener {
    /// A listener with no connection behind it; `run` feeds it.
    pub fn new() -> Arc<Self> {
        let (changes, _) = broadcast::channel(1024);
        let (policies, _) = broadcast::channel(1024);
        Arc::new(Self { changes, policies, watchers: Mutex::new(HashMap::new()) })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LogChange> {
        self.changes.subscribe()
    }

    /// Agent-policy notices. A receiver starts as if `Down`: it hears `Live` at the next
    /// (re)connection only, so a cache fed by it stays unused until then.
    pub fn subscribe_policies(&self) -> broadcast::Receiver<PolicyNotice> {
        self.policies.subscribe()
    }

    fn publish_policy(&self, notice: PolicyNotice) {
        // No receivers is fine.
        let _ = self.policies.send(notice);
    }

    pub fn watch(self: &Arc<Self>, aggregate_id: &str) -> AggregateWatch {
        let mut watchers = self.watchers.lock().unwrap_or_else(|e| e.into_inner());
        let entry = watchers.entry(aggregate_id.to_owned()).or_insert_with(|| (watch::Sender::new(0), 0));
        entry.1 += 1;
        let version = entry.0.subscribe();
        AggregateWatch { listener: Arc::clone(self), aggregate_id: aggregate_id.to_owned(), version }
    }

    /// Number of live per-aggregate registrations.
    pub fn watch_count(&self) -> usize {
        self.watchers.lock().unwrap_or_else(|e| e.into_inner()).values().map(|(_, n)| n).sum()
    }

    fn publish(&self, change: LogChange) {
        {
            let watchers = self.watchers.lock().unwrap_or_else(|e| e.into_inner());
            match &change {
                LogChange::Appended { aggregate_id, .. } => {
                    if let Some((version, _)) = watchers.get(aggregate_id) {
                        version.send_modify(|v| *v += 1);
                    }
                }
                LogChange::Resync => {
                    for (version, _) in watchers.values() {
                        version.send_modify(|v| *v += 1);
                    }
                }
            }
        }
        // No receivers is fine.
        let _ = self.changes.send(change);
    }

    /// Listens until `shutdown`, reconnecting with backoff.
    pub async fn run(self: Arc<Self>, pool: PgPool, shutdown: CancellationToken) {
        let mut failures = Backoff::new(Duration::from_millis(100), Duration::from_secs(5)).retries();
        loop {
            let connected = async {
                let mut listener = PgListener::connect_with(&pool).await?;
                listener.listen_all([EVENTS_CHANNEL, AGENTS_CHANNEL]).await?;
                Ok::<_, sqlx::Error>(listener)
            };
            let mut listener = tokio::select! {
                _ = shutdown.cancelled() => return,
                result = connected => match result {
                    Ok(listener) => listener,
                    Err(error) => {
                        tracing::warn!(%error, "event listener cannot connect; retrying");
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(failures.next_delay()) => {}
                        }
                        continue;
                    }
                }
            };
            failures.reset();
            // Anything committed while we were not listening was missed.
            self.publish(LogChange::Resync);
            self.publish_policy(PolicyNotice::Live);
            loop {
                let next = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    next = listener.try_recv() => next,
                };
                match next {
                    Ok(Some(notification)) if notification.channel() == AGENTS_CHANNEL => {
                        self.publish_policy(PolicyNotice::Changed(notification.payload().to_owned()));
                    }
                    Ok(Some(notification)) => {
                        let (aggregate_type, aggregate_id) =
                            notification.payload().split_once('/').unwrap_or(("", notification.payload()));
                        self.publish(LogChange::Appended {
                            aggregate_type: aggregate_type.to_owned(),
                            aggregate_id: aggregate_id.to_owned(),
                        });
                    }
                    // The connection dropped. Reconnect here rather than in try_recv, so that
                    // `Live` is said only once listening again.
                    Ok(None) => {
                        tracing::warn!("event listener lost its connection; reconnecting");
                        self.publish_policy(PolicyNotice::Down);
                        self.publish(LogChange::Resync);
                        break;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "event listener lost its connection");
                        self.publish_policy(PolicyNotice::Down);
                        break;
                    }
                }
            }
        }
    }
}
