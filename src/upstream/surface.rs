//! The upstream registry as the MCP endpoint's [`Surface`]: prompts, resources,
//! completions and logging from every connected server, merged, and each request routed
//! to the server that owns what it names (`registry/surface.rs` says how).

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::registry::{Capability, Connected};
use super::{UpstreamError, UpstreamRegistry};
use crate::mcp::jsonrpc::{INTERNAL_ERROR, INVALID_PARAMS, RESOURCE_NOT_FOUND};
use crate::mcp::{Caller, RpcError, Surface};

#[derive(Clone)]
pub struct UpstreamSurface {
    registry: UpstreamRegistry,
}

impl UpstreamSurface {
    pub fn new(registry: UpstreamRegistry) -> Self {
        Self { registry }
    }

    /// Every item of one kind from every server that declares `capability`; a server
    /// that fails to list is left out (and logged), not the whole answer.
    async fn merged(&self, capability: Capability, method: &str, key: &str) -> Vec<(Connected, Value)> {
        let mut merged = Vec::new();
        for server in self.registry.connected_with(capability) {
            match self.registry.list_all(&server, method, key).await {
                Ok(items) => merged.extend(items.into_iter().map(|item| (server.clone(), item))),
                Err(error) => {
                    tracing::warn!(server = %server.server, %error, "{method} failed; its items are left out")
                }
            }
        }
        merged
    }

    /// The server that owns the downstream prompt `name`, and the prompt's upstream name.
    async fn prompt_owner(&self, name: &str) -> Option<(Connected, String)> {
        for (server, prompt) in self.merged(Capability::Prompts, "prompts/list", "prompts").await {
            let upstream = prompt.get("name").and_then(Value::as_str).unwrap_or_default();
            if server.downstream_name(upstream) == name {
                return Some((server.clone(), upstream.to_owned()));
            }
        }
        None
    }

    /// The server that owns `uri`: the one that lists it, else the one with a template it
    /// fits, else the only server with resources.
    async fn resource_owner(&self, uri: &str) -> Option<Connected> {
        let candidates = self.registry.connected_with(Capability::Resources);
        if candidates.len() <= 1 {
            return candidates.into_iter().next();
        }
        for (server, resource) in self.merged(Capability::Resources, "resources/list", "resources").await {
            if resource.get("uri").and_then(Value::as_str) == Some(uri) {
                return Some(server);
            }
        }
        for (server, template) in
            self.merged(Capability::Resources, "resources/templates/list", "resourceTemplates").await
        {
            let pattern = template.get("uriTemplate").and_then(Value::as_str).unwrap_or_default();
            if crate::mcp::uri_fits_template(uri, pattern) || pattern == uri {
                return Some(server);
            }
        }
        None
    }
}

fn rpc_error(error: UpstreamError) -> RpcError {
    match error {
        UpstreamError::Rpc { code, message, data, .. } => RpcError { code: code.into(), message, data },
        other => {
            tracing::warn!(error = %other, "upstream request failed");
            RpcError { code: INTERNAL_ERROR, message: format!("upstream request failed: {other}"), data: None }
        }
    }
}

fn not_found(uri: &str) -> RpcError {
    RpcError {
        code: RESOURCE_NOT_FOUND,
        message: format!("no connected upstream server offers resource {uri:?}"),
        data: Some(serde_json::json!({"uri": uri})),
    }
}

#[async_trait]
impl Surface for UpstreamSurface {
    async fn prompts(&self) -> Vec<Value> {
        let mut seen = std::collections::BTreeSet::new();
        let mut prompts = Vec::new();
        for (server, mut prompt) in self.merged(Capability::Prompts, "prompts/list", "prompts").await {
            let upstream = prompt.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
            let name = server.downstream_name(&upstream);
            // On a name two servers offer, the earlier registered one keeps it.
            if seen.insert(name.clone()) {
                prompt["name"] = Value::String(name);
                prompts.push(prompt);
            }
        }
        prompts
    }

    async fn get_prompt(&self, name: &str, mut params: Map<String, Value>) -> Result<Value, RpcError> {
        let Some((server, upstream)) = self.prompt_owner(name).await else {
            return Err(RpcError {
                code: INVALID_PARAMS,
                message: format!("no connected upstream server offers prompt {name:?}"),
                data: None,
            });
        };
        params.insert("name".to_owned(), Value::String(upstream));
        self.registry.request(&server, "prompts/get", params).await.map_err(rpc_error)
    }

    async fn resources(&self) -> Vec<Value> {
        let mut seen = std::collections::BTreeSet::new();
        let merged = self.merged(Capability::Resources, "resources/list", "resources").await;
        merged
            .into_iter()
            .map(|(_, resource)| resource)
            .filter(|resource| seen.insert(resource.get("uri").and_then(Value::as_str).unwrap_or_default().to_owned()))
            .collect()
    }

    async fn resource_templates(&self) -> Vec<Value> {
        let merged = self.merged(Capability::Resources, "resources/templates/list", "resourceTemplates").await;
        merged.into_iter().map(|(_, template)| template).collect()
    }

    async fn on_resource(&self, method: &str, uri: &str, params: Map<String, Value>) -> Result<Value, RpcError> {
        let Some(server) = self.resource_owner(uri).await else { return Err(not_found(uri)) };
        self.registry.request(&server, method, params).await.map_err(rpc_error)
    }

    async fn complete_prompt(&self, name: &str, mut params: Map<String, Value>) -> Result<Value, RpcError> {
        let Some((server, upstream)) = self.prompt_owner(name).await else {
            return Err(RpcError {
                code: INVALID_PARAMS,
                message: format!("no connected upstream server offers prompt {name:?}"),
                data: None,
            });
        };
        if let Some(reference) = params.get_mut("ref").and_then(Value::as_object_mut) {
            reference.insert("name".to_owned(), Value::String(upstream));
        }
        self.registry.request(&server, "completion/complete", params).await.map_err(rpc_error)
    }

    async fn complete_resource(&self, uri: &str, params: Map<String, Value>) -> Result<Value, RpcError> {
        let Some(server) = self.resource_owner(uri).await else { return Err(not_found(uri)) };
        self.registry.request(&server, "completion/complete", params).await.map_err(rpc_error)
    }

    async fn set_level(&self, caller: &Caller, params: Map<String, Value>) -> Result<(), RpcError> {
        // The servers serving this caller: those of its tools, and those whose prompts or
        // resources it may use.
        let catalog = self.registry.tools();
        let mut serving: std::collections::BTreeSet<String> = caller
            .effective_tools
            .iter()
            .filter_map(|tool| catalog.get(tool).map(|entry| entry.server.clone()))
            .collect();
        for (server, prompt) in self.merged(Capability::Prompts, "prompts/list", "prompts").await {
            let upstream = prompt.get("name").and_then(Value::as_str).unwrap_or_default();
            if caller.may_get_prompt(&server.downstream_name(upstream)) {
                serving.insert(server.server.clone());
            }
        }
        if !caller.allowed_resources.is_empty() {
            serving.extend(self.registry.connected_with(Capability::Resources).into_iter().map(|s| s.server));
        }
        for server in self.registry.connected_with(Capability::Logging) {
            if serving.contains(&server.server) {
                self.registry.request(&server, "logging/setLevel", params.clone()).await.map_err(rpc_error)?;
            }
        }
        Ok(())
    }
}
