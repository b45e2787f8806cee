//! The merged tool catalog agents call through: every server's last known tools under
//! their exposed names (`tool_prefix` applied). It owns the naming rules across servers:
//! which exposed name a new server would clash on, and which server keeps a name when a
//! clash arises anyway (the earlier registered one).

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use rmcp::model::Tool;
use serde::Serialize;

use super::config::UpstreamConfig;
use super::error::UpstreamError;
use super::server::Server;
use super::{read, write};

/// One tool of the merged catalog.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogTool {
    /// The server that offers it.
    pub server: String,
    /// Its name on that server (without the server's `tool_prefix`).
    pub upstream_name: String,
    /// The tool as agents see it: `name` is the downstream name; schemas and annotations
    /// are the upstream's.
    pub tool: Tool,
}

/// Downstream tool name → the tool.
pub type Catalog = BTreeMap<String, CatalogTool>;

/// The current catalog. Each rebuild replaces it whole, so a reader's snapshot is cheap
/// and never changes under it.
pub(super) struct LiveCatalog {
    current: RwLock<Arc<Catalog>>,
}

impl LiveCatalog {
    pub(super) fn new() -> Self {
        LiveCatalog { current: RwLock::new(Arc::new(Catalog::new())) }
    }

    pub(super) fn snapshot(&self) -> Arc<Catalog> {
        Arc::clone(&read(&self.current))
    }

    /// The first tool `config`'s server would expose under a name already in the catalog.
    pub(super) fn first_clash(&self, config: &UpstreamConfig, tools: &[Tool]) -> Option<UpstreamError> {
        let catalog = self.snapshot();
        tools.iter().find_map(|tool| {
            let exposed = config.exposed_tool_name(&tool.name);
            catalog.get(&exposed).map(|existing| UpstreamError::DuplicateTool {
                tool: exposed,
                existing_server: existing.server.clone(),
                new_server: config.name.clone(),
            })
        })
    }

    /// Recomputes the catalog from every server's last known tools. Servers are taken in
    /// registration order, so on a clash the earlier server keeps the name.
    pub(super) fn rebuild(&self, servers: &RwLock<BTreeMap<String, Arc<Server>>>) {
        // Catalog lock first, then servers: rebuilds are serialised and each one reads the
        // latest state, so an older snapshot never overwrites a newer one.
        let mut catalog = write(&self.current);
        let servers = read(servers);
        let mut ordered: Vec<&Arc<Server>> = servers.values().collect();
        ordered.sort_by(|a, b| (a.created_at, &a.config.name).cmp(&(b.created_at, &b.config.name)));
        let mut merged = Catalog::new();
        for server in ordered {
            let tools = Arc::clone(&server.state.borrow().tools);
            for tool in tools.iter() {
                let exposed = server.config.exposed_tool_name(&tool.name);
                match merged.entry(exposed) {
                    Entry::Occupied(kept) => tracing::warn!(
                        tool = %kept.key(), kept_by = %kept.get().server, hidden_from = %server.config.name,
                        "two MCP servers offer the same tool name; the earlier registered one keeps it \
                         (give one of them a tool_prefix)"
                    ),
                    Entry::Vacant(slot) => {
                        let mut downstream = tool.clone();
                        downstream.name = slot.key().clone().into();
                        slot.insert(CatalogTool {
                            server: server.config.name.clone(),
                            upstream_name: tool.name.to_string(),
                            tool: downstream,
                        });
                    }
                }
            }
        }
        *catalog = Arc::new(merged);
    }
}
