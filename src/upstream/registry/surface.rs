//! The rest of an upstream's MCP surface, beside tools: prompts, resources, completions
//! and logging. Nothing of it is cached: a listing asks every connected server that
//! declares the capability (in registration order, every page), and a request is routed
//! to the server that owns its prompt or resource, found the same way. Prompt names get
//! the server's `tool_prefix`, like tools; resource URIs are the servers' own (a URI
//! already names its scheme and authority), and on a URI two servers offer, the earlier
//! registered one answers.

use rmcp::model::{ClientRequest, CustomRequest, ServerCapabilities, ServerResult};
use rmcp::service::ServiceError;
use rmcp::{Peer, RoleClient};
use serde_json::{Map, Value};

use super::super::connection;
use super::super::error::UpstreamError;
use super::super::server::InFlight;
use super::UpstreamRegistry;

/// Which capability of a server a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    Prompts,
    Resources,
    Completions,
    Logging,
}

impl Capability {
    fn declared_by(self, capabilities: &ServerCapabilities) -> bool {
        match self {
            Capability::Prompts => capabilities.prompts.is_some(),
            Capability::Resources => capabilities.resources.is_some(),
            Capability::Completions => capabilities.completions.is_some(),
            Capability::Logging => capabilities.logging.is_some(),
        }
    }
}

/// A connected server that declares a capability: its name, prefix and session.
#[derive(Clone)]
pub struct Connected {
    pub server: String,
    pub prefix: Option<String>,
    peer: Peer<RoleClient>,
}

impl Connected {
    /// The upstream name of a downstream prompt name, if this server could own it.
    pub fn upstream_name<'a>(&self, downstream: &'a str) -> Option<&'a str> {
        match &self.prefix {
            Some(prefix) => downstream.strip_prefix(prefix.as_str()),
            None => Some(downstream),
        }
    }

    pub fn downstream_name(&self, upstream: &str) -> String {
        format!("{}{upstream}", self.prefix.as_deref().unwrap_or(""))
    }
}

impl UpstreamRegistry {
    /// The connected servers that declare `capability`, in registration order.
    pub fn connected_with(&self, capability: Capability) -> Vec<Connected> {
        let servers = super::read(&self.inner.servers);
        let mut found: Vec<(chrono::DateTime<chrono::Utc>, Connected)> = servers
            .values()
            .filter_map(|server| {
                let peer = server.state.borrow().peer.clone()?;
                let declared = peer.peer_info().is_some_and(|info| capability.declared_by(&info.capabilities));
                declared.then(|| {
                    let connected = Connected {
                        server: server.config.name.clone(),
                        prefix: server.config.tool_prefix.clone(),
                        peer,
                    };
                    (server.created_at, connected)
                })
            })
            .collect();
        found.sort_by(|a, b| (a.0, &a.1.server).cmp(&(b.0, &b.1.server)));
        found.into_iter().map(|(_, connected)| connected).collect()
    }

    /// Sends one request as the client sent it (`params` passed through) to `to`, within
    /// the per-call timeout; the result as the server gave it.
    pub async fn request(
        &self,
        to: &Connected,
        method: &str,
        params: Map<String, Value>,
    ) -> Result<Value, UpstreamError> {
        let server = self.server(&to.server)?;
        let _in_flight = InFlight::enter(&server);
        let request = ClientRequest::CustomRequest(CustomRequest::new(method, Some(Value::Object(params))));
        let timeout = self.inner.settings.call_timeout;
        let answer = tokio::time::timeout(timeout, to.peer.send_request(request)).await.map_err(|_| {
            UpstreamError::Timeout { server: to.server.clone(), tool: method.to_owned(), after: timeout }
        })?;
        match answer {
            Ok(result) => result_value(&to.server, result),
            Err(ServiceError::McpError(error)) => Err(UpstreamError::Rpc {
                server: to.server.clone(),
                code: error.code.0,
                message: error.message.into_owned(),
                data: error.data,
            }),
            Err(error) => {
                server.suspect.notify_one();
                Err(UpstreamError::Transport { server: to.server.clone(), message: connection::error_chain(&error) })
            }
        }
    }

    /// Every item of a paginated list (`key` in each page: `prompts`, `resources`,
    /// `resourceTemplates`) of one server, following `nextCursor`.
    pub async fn list_all(&self, from: &Connected, method: &str, key: &str) -> Result<Vec<Value>, UpstreamError> {
        let mut items = Vec::new();
        let mut cursor: Option<Value> = None;
        // A bound on pages, so a server that always answers with a cursor cannot loop us.
        for _ in 0..MAX_PAGES {
            let mut params = Map::new();
            if let Some(cursor) = cursor.take() {
                params.insert("cursor".to_owned(), cursor);
            }
            let page = self.request(from, method, params).await?;
            if let Some(Value::Array(page_items)) = page.get(key) {
                items.extend(page_items.iter().cloned());
            }
            match page.get("nextCursor") {
                Some(next @ Value::String(_)) => cursor = Some(next.clone()),
                _ => return Ok(items),
            }
        }
        Ok(items)
    }
}

const MAX_PAGES: usize = 100;

fn result_value(server: &str, result: ServerResult) -> Result<Value, UpstreamError> {
    serde_json::to_value(result).map_err(|error| UpstreamError::Transport {
        server: server.to_owned(),
        message: format!("cannot encode the result: {error}"),
    })
}
