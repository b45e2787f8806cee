//! The registry: the live set of servers and every change to it — register, remove,
//! reload (the `mcp_servers` table diffed against the live set), refresh — plus listing,
//! shutdown, and routing a `tools/call` to the server that offers the tool (`calls`). It owns the
//! locks that keep those changes consistent; one server's state, the merged catalog and
//! the reconnect loop live in `server`, `catalog` and `supervisor`.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, Weak};

use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::catalog::{Catalog, LiveCatalog};
use super::config::UpstreamConfig;
use super::connection::{self, Session, CLOSE_GRACE};
use super::error::UpstreamError;
use super::relay::Relays;
use super::server::{Server, UpstreamStatus};
use super::store::{self, StoredServer};
use super::supervisor::{supervise, CatalogOwner};
use super::{read, write, UpstreamSettings};

/// Announcements kept for a slow listener before it misses some.
const NOTICES_CAPACITY: usize = 256;

mod calls;
mod relayed;
mod surface;
use crate::audit_trail;
use crate::names::Actor;
pub use surface::{Capability, Connected};

/// The live registry. Cheap to clone; every clone is the same registry.
#[derive(Clone)]
pub struct UpstreamRegistry {
    inner: Arc<Inner>,
}

/// The registry's shared state; supervisors hold it weakly.
pub(super) struct Inner {
    pool: PgPool,
    settings: UpstreamSettings,
    servers: RwLock<BTreeMap<String, Arc<Server>>>,
    catalog: LiveCatalog,
    /// Serialises register, remove and reload, so their check-then-act steps see each
    /// other's results.
    changes: tokio::sync::Mutex<()>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// Every server's announcements to clients (see `relay.rs`).
    notices: tokio::sync::broadcast::Sender<serde_json::Value>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Supervisors hold only weak references: with the last registry handle gone, this
        // stops them (and their children) even without an explicit shutdown().
        self.shutdown.cancel();
    }
}

impl Inner {
    /// Recomputes the catalog from every server's last known tools.
    pub(super) fn rebuild_catalog(&self) {
        self.catalog.rebuild(&self.servers);
    }
}

impl CatalogOwner for Inner {
    fn tools_changed(&self) {
        self.rebuild_catalog();
    }
}

impl UpstreamRegistry {
    /// An empty registry; nothing connects until [`start`](Self::start) or
    /// [`register`](Self::register).
    pub fn new(pool: PgPool, settings: UpstreamSettings) -> Self {
        UpstreamRegistry {
            inner: Arc::new(Inner {
                pool,
                settings,
                servers: RwLock::new(BTreeMap::new()),
                catalog: LiveCatalog::new(),
                changes: tokio::sync::Mutex::new(()),
                shutdown: CancellationToken::new(),
                tasks: TaskTracker::new(),
                notices: tokio::sync::broadcast::channel(NOTICES_CAPACITY).0,
            }),
        }
    }

    pub fn settings(&self) -> &UpstreamSettings {
        &self.inner.settings
    }

    /// Loads the stored servers (each connects in the background) and keeps re-reading the
    /// table every `reload_interval` until [`shutdown`](Self::shutdown).
    pub fn start(&self) {
        let registry = Arc::downgrade(&self.inner);
        let stopped = self.inner.shutdown.clone();
        let interval = self.inner.settings.reload_interval;
        self.inner.tasks.spawn(async move {
            loop {
                // A weak handle, so this loop never keeps a dropped registry alive.
                let Some(inner) = registry.upgrade() else { return };
                if let Err(error) = (UpstreamRegistry { inner }).reload().await {
                    tracing::warn!(error = %error, "cannot reload the MCP server list; keeping the current one");
                }
                tokio::select! {
                    _ = stopped.cancelled() => return,
                    _ = tokio::time::sleep(interval) => {}
                }
            }
        });
    }

    /// Brings the live set in line with the `mcp_servers` table: connects new servers,
    /// disconnects removed ones, reconnects changed ones.
    pub async fn reload(&self) -> Result<(), UpstreamError> {
        let inner = &self.inner;
        let _changes = inner.changes.lock().await;
        if inner.shutdown.is_cancelled() {
            return Ok(());
        }
        let mut wanted = BTreeMap::new();
        for row in store::load_all(&inner.pool).await? {
            match row {
                Ok(stored) => {
                    wanted.insert(stored.config.name.clone(), stored);
                }
                Err(unreadable) => tracing::error!(
                    server = %unreadable.name, problem = %unreadable.problem,
                    "a stored MCP server cannot be read; it is left out"
                ),
            }
        }
        let (stale, fresh): (Vec<Arc<Server>>, Vec<StoredServer>) = {
            let servers = read(&inner.servers);
            let stale = servers
                .values()
                .filter(|live| {
                    wanted
                        .get(&live.config.name)
                        .is_none_or(|stored| stored.config != live.config || stored.updated_at != live.updated_at)
                })
                .cloned()
                .collect();
            let fresh = wanted
                .into_values()
                .filter(|stored| {
                    servers
                        .get(&stored.config.name)
                        .is_none_or(|live| stored.config != live.config || stored.updated_at != live.updated_at)
                })
                .collect();
            (stale, fresh)
        };
        if stale.is_empty() && fresh.is_empty() {
            return Ok(());
        }
        {
            let mut servers = write(&inner.servers);
            for server in &stale {
                servers.remove(&server.config.name);
            }
        }
        for server in stale {
            tracing::info!(server = %server.config.name, "MCP server removed or changed in the database; disconnecting");
            server.stop_and_wait().await;
        }
        for stored in fresh {
            tracing::info!(server = %stored.config.name, "MCP server found in the database; connecting");
            let relays = Arc::new(Relays::new(inner.notices.clone()));
            let server = Server::new(stored, inner.shutdown.child_token(), Arc::new(Notify::new()), relays);
            write(&inner.servers).insert(server.config.name.clone(), Arc::clone(&server));
            self.spawn_supervisor(server, None);
        }
        inner.rebuild_catalog();
        Ok(())
    }

    /// Registers a server: validates the configuration, connects and lists its tools
    /// (refusing a tool name another server already exposes), stores it, and keeps the
    /// session. Nothing is stored when any step fails. If the caller drops this future
    /// after the row is written, the next `reload` connects the server; a dropped
    /// `remove` is finished the same way.
    pub async fn register(&self, config: UpstreamConfig) -> Result<UpstreamStatus, UpstreamError> {
        self.register_by(config, None).await
    }

    /// [`Self::register`], recording `actor`'s change in `admin_audit` in the same
    /// transaction as the stored row: there is no registered server without its record.
    pub async fn register_by(
        &self,
        config: UpstreamConfig,
        actor: Option<&Actor>,
    ) -> Result<UpstreamStatus, UpstreamError> {
        config.validate()?;
        if let Some(user) = &config.run_as {
            // Refused now, with the reason, rather than stored and never connecting.
            super::run_as::resolve(user).map_err(super::config::InvalidConfig)?;
        }
        let inner = &self.inner;
        let _changes = inner.changes.lock().await;
        if inner.shutdown.is_cancelled() {
            return Err(UpstreamError::ShuttingDown);
        }
        let name = config.name.clone();
        if read(&inner.servers).contains_key(&name) || store::exists(&inner.pool, &name).await? {
            return Err(UpstreamError::AlreadyRegistered { name });
        }

        let stop = inner.shutdown.child_token();
        let tools_changed = Arc::new(Notify::new());
        let relays = Arc::new(Relays::new(inner.notices.clone()));
        let session = connection::connect(
            &config,
            Arc::clone(&tools_changed),
            Arc::clone(&relays),
            stop.child_token(),
            inner.settings.connect_timeout,
        )
        .await
        .map_err(|message| UpstreamError::Connect { server: name.clone(), message })?;

        let refuse = |error: UpstreamError, session: Session| async move {
            session.cancel.cancel();
            let _ = tokio::time::timeout(CLOSE_GRACE, session.running.waiting()).await;
            Err(error)
        };
        if let Some(clash) = inner.catalog.first_clash(&config, &session.tools) {
            return refuse(clash, session).await;
        }
        let stored = match insert_recorded(&inner.pool, &config, actor).await {
            Ok(Some(stored)) => stored,
            Ok(None) => return refuse(UpstreamError::AlreadyRegistered { name }, session).await,
            Err(error) => return refuse(error.into(), session).await,
        };

        let server = Server::new(stored, stop, tools_changed, relays);
        let id = server.next_session();
        server.set_connected(id, session.peer.clone(), session.tools.clone());
        write(&inner.servers).insert(name.clone(), Arc::clone(&server));
        inner.rebuild_catalog();
        self.spawn_supervisor(Arc::clone(&server), Some((id, session)));
        tracing::info!(server = %name, tools = server.state.borrow().tools.len(), "MCP server registered");
        Ok(server.status())
    }

    /// Unregisters a server: deletes it, closes its session and stops its child process
    /// before returning.
    pub async fn remove(&self, name: &str) -> Result<(), UpstreamError> {
        self.remove_by(name, None).await
    }

    /// [`Self::remove`], recording `actor`'s change in the same transaction as the delete.
    pub async fn remove_by(&self, name: &str, actor: Option<&Actor>) -> Result<(), UpstreamError> {
        let inner = &self.inner;
        let _changes = inner.changes.lock().await;
        let before = read(&inner.servers).get(name).map(|server| server.status().config);
        let mut tx = inner.pool.begin().await?;
        let deleted = store::delete(&mut tx, name).await?;
        if let (true, Some(actor)) = (deleted, actor) {
            let before = before.and_then(|config| serde_json::to_value(config).ok());
            audit_trail::record(&mut tx, actor, "mcp_server.delete", name, before, None).await?;
        }
        tx.commit().await?;
        let live = write(&inner.servers).remove(name);
        if !deleted && live.is_none() {
            return Err(UpstreamError::ServerNotFound { name: name.to_owned() });
        }
        inner.rebuild_catalog();
        if let Some(server) = live {
            server.stop_and_wait().await;
        }
        tracing::info!(server = %name, "MCP server removed");
        Ok(())
    }

    /// Re-reads the server's tool list now when connected; otherwise asks for an immediate
    /// reconnect. Returns the status afterwards.
    pub async fn refresh(&self, name: &str) -> Result<UpstreamStatus, UpstreamError> {
        let server = self.server(name)?;
        let live = server.state.borrow().clone();
        match live.peer {
            Some(peer) => match connection::list_tools(&peer, self.inner.settings.connect_timeout).await {
                Ok(tools) => {
                    server.set_tools(live.session, tools);
                    self.inner.rebuild_catalog();
                }
                Err(message) => {
                    server.suspect.notify_one();
                    return Err(UpstreamError::Transport { server: name.to_owned(), message });
                }
            },
            None => server.wake.notify_one(),
        }
        Ok(server.status())
    }

    /// Every registered server, by name.
    pub fn list(&self) -> Vec<UpstreamStatus> {
        read(&self.inner.servers).values().map(|server| server.status()).collect()
    }

    pub fn get(&self, name: &str) -> Result<UpstreamStatus, UpstreamError> {
        Ok(self.server(name)?.status())
    }

    /// The merged catalog: every tool agents can call, by downstream name. A snapshot;
    /// cheap to take.
    pub fn tools(&self) -> Arc<Catalog> {
        self.inner.catalog.snapshot()
    }

    /// What the servers announce to clients from now on (see `relay.rs`).
    pub fn notices(&self) -> tokio::sync::broadcast::Receiver<serde_json::Value> {
        self.inner.notices.subscribe()
    }

    /// Registered calls in flight on every server (see `relay.rs`): none once every
    /// call is over, whether its client stayed or not.
    pub fn relayed_calls(&self) -> usize {
        read(&self.inner.servers).values().map(|server| server.relays.in_flight()).sum()
    }

    /// Stops reloading, closes every session and stops every child, then returns.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    pub(super) fn server(&self, name: &str) -> Result<Arc<Server>, UpstreamError> {
        read(&self.inner.servers)
            .get(name)
            .cloned()
            .ok_or_else(|| UpstreamError::ServerNotFound { name: name.to_owned() })
    }

    fn spawn_supervisor(&self, server: Arc<Server>, first: Option<(u64, Session)>) {
        let handle = self.inner.tasks.spawn(supervise(
            Arc::downgrade(&self.inner) as Weak<dyn CatalogOwner>,
            Arc::clone(&server),
            first,
            self.inner.settings.clone(),
        ));
        server.attach_supervisor(handle);
    }
}

/// Stores a new server and, when a person registers it, their `admin_audit` record (the
/// redacted configuration only) in one transaction.
async fn insert_recorded(
    pool: &sqlx::PgPool,
    config: &UpstreamConfig,
    actor: Option<&Actor>,
) -> Result<Option<store::StoredServer>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let stored = store::insert(&mut tx, config).await?;
    if let (Some(_), Some(actor)) = (&stored, actor) {
        let after = serde_json::to_value(config.redacted()).ok();
        audit_trail::record(&mut tx, actor, "mcp_server.register", &config.name, None, after).await?;
    }
    tx.commit().await?;
    Ok(stored)
}
