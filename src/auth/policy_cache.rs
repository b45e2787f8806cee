//! Each agent's `permissions_version`, kept in memory so that an agent's call makes no
//! database round trip to check its token (the pass-through path's only one).
//!
//! Correctness rests on PostgreSQL's notifications: the trigger `agents_notify` announces
//! every change to an `agents` row on the process's LISTEN connection, and the cache
//! forgets that agent. The cache is used only while that connection listens: from
//! `PolicyNotice::Live` to `PolicyNotice::Down` (or a missed notice); otherwise every
//! lookup goes to the database. So a cached version is never older than one
//! notification's delivery (docs/AUTH.md, "Policy propagation").

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use alexandria_projections::{EventListener, PolicyNotice};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

#[derive(Default)]
struct State {
    /// Notifications are being heard: entries may be used and stored.
    live: bool,
    /// Bumped by every notice: an entry read from the database before a notice must not
    /// be stored after it (the notice may have been about it).
    epoch: u64,
    versions: HashMap<String, i64>,
}

pub struct PolicyCache {
    state: RwLock<State>,
    metrics: Metrics,
}

/// What the cache knows of one agent.
pub enum Lookup {
    /// Its current `permissions_version`.
    Cached(i64),
    /// Unknown: read the database, then [`PolicyCache::remember`] with this epoch.
    Miss { epoch: u64 },
    /// Notifications are not heard right now: read the database, store nothing.
    Bypass,
}

impl PolicyCache {
    pub fn new(metrics: Metrics) -> Arc<Self> {
        Arc::new(Self { state: RwLock::new(State::default()), metrics })
    }

    pub fn lookup(&self, agent: &str) -> Lookup {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        if !state.live {
            self.metrics.agent_policy_check("database");
            return Lookup::Bypass;
        }
        match state.versions.get(agent) {
            Some(version) => {
                self.metrics.agent_policy_check("cache");
                Lookup::Cached(*version)
            }
            None => {
                self.metrics.agent_policy_check("database");
                Lookup::Miss { epoch: state.epoch }
            }
        }
    }

    /// A cached version that did not match the token's: the database decides (a token
    /// minted on another replica after a change this one has not heard of yet).
    pub fn recheck(&self) {
        self.metrics.agent_policy_check("database");
    }

    /// Stores what the database said, unless a notice arrived since `epoch`.
    pub fn remember(&self, agent: &str, version: i64, epoch: u64) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if state.live && state.epoch == epoch {
            state.versions.insert(agent.to_owned(), version);
        }
    }

    /// This process changed the agent: forget it now, before its own notification.
    pub fn forget(&self, agent: &str) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        state.epoch += 1;
        state.versions.remove(agent);
    }

    fn hear(&self, notice: Option<PolicyNotice>) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        state.epoch += 1;
        match notice {
            Some(PolicyNotice::Changed(agent)) => {
                state.versions.remove(&agent);
            }
            Some(PolicyNotice::Live) => {
                state.versions.clear();
                state.live = true;
            }
            // Down, or notices were missed (the receiver lagged): nothing cached can be
            // trusted, and nothing may be cached until the listener says `Live` again.
            Some(PolicyNotice::Down) | None => {
                state.versions.clear();
                state.live = false;
            }
        }
    }

    /// Follows the listener's notices until `shutdown`. Subscribes at once, not when the
    /// future first runs: a `Live` published in between would otherwise leave the cache
    /// unused until the next reconnection.
    pub fn follow(
        self: Arc<Self>,
        listener: &EventListener,
        shutdown: CancellationToken,
    ) -> impl std::future::Future<Output = ()> {
        let notices = listener.subscribe_policies();
        self.hear_until(notices, shutdown)
    }

    async fn hear_until(self: Arc<Self>, mut notices: Receiver<PolicyNotice>, shutdown: CancellationToken) {
        loop {
            let notice = tokio::select! {
                _ = shutdown.cancelled() => return,
                notice = notices.recv() => notice,
            };
            match notice {
                Ok(notice) => self.hear(Some(notice)),
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "agent policy notices were missed; the cache waits for the listener to resync"
                    );
                    self.hear(None);
                }
                Err(RecvError::Closed) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> Arc<PolicyCache> {
        PolicyCache::new(Metrics::new())
    }

    fn epoch_of(lookup: Lookup) -> u64 {
        match lookup {
            Lookup::Miss { epoch } => epoch,
            Lookup::Cached(_) => panic!("cached"),
            Lookup::Bypass => panic!("bypassed"),
        }
    }

    #[test]
    fn nothing_is_cached_until_the_listener_is_live() {
        let cache = cache();
        assert!(matches!(cache.lookup("a"), Lookup::Bypass));
        cache.remember("a", 1, 0);
        assert!(matches!(cache.lookup("a"), Lookup::Bypass));
        cache.hear(Some(PolicyNotice::Live));
        let epoch = epoch_of(cache.lookup("a"));
        cache.remember("a", 1, epoch);
        assert!(matches!(cache.lookup("a"), Lookup::Cached(1)));
    }

    #[test]
    fn a_change_or_a_lost_connection_forgets() {
        let cache = cache();
        cache.hear(Some(PolicyNotice::Live));
        for agent in ["a", "b"] {
            let epoch = epoch_of(cache.lookup(agent));
            cache.remember(agent, 7, epoch);
        }
        cache.hear(Some(PolicyNotice::Changed("a".into())));
        assert!(matches!(cache.lookup("a"), Lookup::Miss { .. }));
        assert!(matches!(cache.lookup("b"), Lookup::Cached(7)));
        cache.hear(Some(PolicyNotice::Down));
        assert!(matches!(cache.lookup("b"), Lookup::Bypass));
        cache.hear(Some(PolicyNotice::Live));
        assert!(matches!(cache.lookup("b"), Lookup::Miss { .. }), "a reconnect starts empty");
    }

    #[test]
    fn a_read_that_raced_a_notice_is_not_stored() {
        let cache = cache();
        cache.hear(Some(PolicyNotice::Live));
        let epoch = epoch_of(cache.lookup("a"));
        // The database answered version 1, then the change to version 2 was heard before
        // the answer was stored: storing 1 would keep it after the notice.
        cache.hear(Some(PolicyNotice::Changed("a".into())));
        cache.remember("a", 1, epoch);
        assert!(matches!(cache.lookup("a"), Lookup::Miss { .. }));
        let epoch = epoch_of(cache.lookup("a"));
        cache.forget("a");
        cache.remember("a", 1, epoch);
        assert!(matches!(cache.lookup("a"), Lookup::Miss { .. }), "nor one that raced this process's own change");
    }
}
