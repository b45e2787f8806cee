//! Prompts, resources, completions and logging for one caller: the caller's policy (its
//! allowed prompts and resource URI patterns, fail closed), then the upstreams (a
//! [`Surface`]). A prompt or resource outside the policy is neither listed nor served:
//! asking for it is the same error as asking for one that does not exist.

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use super::exchange::Caller;
use super::jsonrpc::{Era, Responder, SurfaceMethod, INVALID_PARAMS, RESOURCE_NOT_FOUND};

/// A JSON-RPC error to send back as is.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

/// The upstreams' prompts, resources, completions and logging.
#[async_trait]
pub trait Surface: Send + Sync {
    /// Every prompt of every server, under downstream names.
    async fn prompts(&self) -> Vec<Value>;
    /// `prompts/get` of the downstream prompt `name` (params as the client sent them).
    async fn get_prompt(&self, name: &str, params: Map<String, Value>) -> Result<Value, RpcError>;
    async fn resources(&self) -> Vec<Value>;
    async fn resource_templates(&self) -> Vec<Value>;
    /// `resources/read`, `resources/subscribe` or `resources/unsubscribe` of `uri`,
    /// sent to the server that owns it.
    async fn on_resource(&self, method: &str, uri: &str, params: Map<String, Value>) -> Result<Value, RpcError>;
    async fn complete_prompt(&self, name: &str, params: Map<String, Value>) -> Result<Value, RpcError>;
    async fn complete_resource(&self, uri: &str, params: Map<String, Value>) -> Result<Value, RpcError>;
    /// `logging/setLevel` on every upstream serving `caller`.
    async fn set_level(&self, caller: &Caller, params: Map<String, Value>) -> Result<(), RpcError>;
}

/// Whether `text` matches `pattern`, where `*` stands for any run of characters
/// (including none) and everything else for itself.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else { return rest.is_empty() };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Whether `uri` fits an RFC 6570 template read simply: each `{expression}` stands for a
/// non-empty run of characters.
pub fn uri_fits_template(uri: &str, template: &str) -> bool {
    let mut pattern = String::with_capacity(template.len());
    let mut in_expression = false;
    for c in template.chars() {
        match c {
            '{' if !in_expression => in_expression = true,
            '}' if in_expression => {
                in_expression = false;
                pattern.push('*');
            }
            '*' if !in_expression => return false,
            _ if in_expression => {}
            _ => pattern.push(c),
        }
    }
    !in_expression && glob_matches(&pattern, uri)
}

fn invalid(message: impl Into<String>) -> RpcError {
    RpcError { code: INVALID_PARAMS, message: message.into(), data: None }
}

fn string_param<'a>(params: &'a Map<String, Value>, name: &str, method: SurfaceMethod) -> Result<&'a str, RpcError> {
    params
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{} needs params.{name} (a string)", method.name())))
}

fn hidden_prompt(name: &str, caller: &Caller) -> RpcError {
    invalid(format!("prompt {name:?} is not available to agent {:?}", caller.agent))
}

fn hidden_resource(uri: &str) -> RpcError {
    RpcError {
        code: RESOURCE_NOT_FOUND,
        message: format!("resource {uri:?} not found"),
        data: Some(json!({"uri": uri})),
    }
}

/// Answers one surface request for `caller`.
pub(super) async fn handle(
    surface: &dyn Surface,
    caller: &Caller,
    method: SurfaceMethod,
    params: Map<String, Value>,
    responder: &Responder,
) -> Value {
    match answer(surface, caller, method, params).await {
        Ok(mut result) => {
            if responder.era == Era::Modern
                && matches!(
                    method,
                    SurfaceMethod::ListPrompts | SurfaceMethod::ListResources | SurfaceMethod::ListResourceTemplates
                )
            {
                result["ttlMs"] = json!(0);
                result["cacheScope"] = json!("private");
            }
            responder.result(result)
        }
        Err(error) => responder.error(error.code, error.message, error.data),
    }
}

async fn answer(
    surface: &dyn Surface,
    caller: &Caller,
    method: SurfaceMethod,
    params: Map<String, Value>,
) -> Result<Value, RpcError> {
    match method {
        SurfaceMethod::ListPrompts => {
            let prompts: Vec<Value> = surface
                .prompts()
                .await
                .into_iter()
                .filter(|prompt| caller.may_get_prompt(prompt.get("name").and_then(Value::as_str).unwrap_or_default()))
                .collect();
            Ok(json!({"prompts": prompts}))
        }
        SurfaceMethod::GetPrompt => {
            let name = string_param(&params, "name", method)?.to_owned();
            if !caller.may_get_prompt(&name) {
                return Err(hidden_prompt(&name, caller));
            }
            surface.get_prompt(&name, params).await
        }
        SurfaceMethod::ListResources => {
            let resources: Vec<Value> = surface
                .resources()
                .await
                .into_iter()
                .filter(|resource| {
                    caller.may_use_resource(resource.get("uri").and_then(Value::as_str).unwrap_or_default())
                })
                .collect();
            Ok(json!({"resources": resources}))
        }
        SurfaceMethod::ListResourceTemplates => {
            let templates: Vec<Value> = surface
                .resource_templates()
                .await
                .into_iter()
                .filter(|template| {
                    caller.may_use_resource(template.get("uriTemplate").and_then(Value::as_str).unwrap_or_default())
                })
                .collect();
            Ok(json!({"resourceTemplates": templates}))
        }
        SurfaceMethod::ReadResource | SurfaceMethod::Subscribe | SurfaceMethod::Unsubscribe => {
            let uri = string_param(&params, "uri", method)?.to_owned();
            if !caller.may_use_resource(&uri) {
                return Err(hidden_resource(&uri));
            }
            surface.on_resource(method.name(), &uri, params).await
        }
        SurfaceMethod::Complete => {
            let reference = params.get("ref").cloned().unwrap_or(Value::Null);
            match reference.get("type").and_then(Value::as_str) {
                Some("ref/prompt") => {
                    let name = reference.get("name").and_then(Value::as_str).ok_or_else(|| {
                        invalid("completion/complete needs params.ref.name (a string) for a ref/prompt")
                    })?;
                    if !caller.may_get_prompt(name) {
                        return Err(hidden_prompt(name, caller));
                    }
                    surface.complete_prompt(name, params.clone()).await
                }
                Some("ref/resource") => {
                    let uri = reference.get("uri").and_then(Value::as_str).ok_or_else(|| {
                        invalid("completion/complete needs params.ref.uri (a string) for a ref/resource")
                    })?;
                    if !caller.may_use_resource(uri) {
                        return Err(hidden_resource(uri));
                    }
                    surface.complete_resource(uri, params.clone()).await
                }
                _ => Err(invalid("completion/complete needs params.ref of type ref/prompt or ref/resource")),
            }
        }
        SurfaceMethod::SetLevel => {
            const LEVELS: [&str; 8] = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"];
            let level = string_param(&params, "level", method)?;
            if !LEVELS.contains(&level) {
                return Err(invalid(format!("params.level must be one of {}", LEVELS.join(", "))));
            }
            surface.set_level(caller, params).await.map(|()| json!({}))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_any_run_of_characters_at_each_star() {
        for (pattern, text, matches) in [
            ("*", "", true),
            ("*", "test://anything", true),
            ("test://static-text", "test://static-text", true),
            ("test://static-text", "test://static-text2", false),
            ("test://*", "test://a/b", true),
            ("test://*", "file:///etc/passwd", false),
            ("test://*/data", "test://template/123/data", true),
            ("test://*/data", "test://template/123/data/x", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "acb", false),
            ("ab*ba", "aba", false),
        ] {
            assert_eq!(glob_matches(pattern, text), matches, "{pattern:?} ~ {text:?}");
        }
    }

    #[test]
    fn uris_fit_templates_by_their_literal_parts() {
        assert!(uri_fits_template("test://template/123/data", "test://template/{id}/data"));
        assert!(!uri_fits_template("test://template//x", "test://template/{id}/data"));
        assert!(!uri_fits_template("test://other/1/data", "test://template/{id}/data"));
        assert!(!uri_fits_template("test://template/1/data", "test://template/{id/data"));
    }
}
