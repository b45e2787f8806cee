//! The MCP servers pages' askama structs. What they show of a configuration is the API's
//! redacted view (`RedactedConfig`): names of env entries and headers, never their values.

use askama::Template;
use rmcp::model::Tool;
use serde::Deserialize;

use super::view::{human_duration, Chrome, Notice};
use crate::upstream::{ConnectionStatus, UpstreamStatus};

#[derive(Template)]
#[template(path = "console/servers.html")]
pub struct ServersPage {
    pub chrome: Chrome,
    pub notice: Option<Notice>,
    pub servers: Vec<ServerRow>,
    pub can_manage: bool,
    /// The register forms' values, kept when one was refused (secrets dropped).
    pub form: RegisterForm,
    /// Why the stdio or the Streamable HTTP form was refused.
    pub stdio_error: Option<String>,
    pub http_error: Option<String>,
}

/// Both register forms' fields; `transport` says which form was sent.
#[derive(Deserialize, Default)]
pub struct RegisterForm {
    #[serde(default)]
    pub transport: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub tool_prefix: String,
    #[serde(default)]
    pub command: String,
    /// One argument per line.
    #[serde(default)]
    pub args: String,
    /// `NAME=value` per line.
    #[serde(default)]
    pub env: String,
    #[serde(default)]
    pub cwd: String,
    #[serde(default)]
    pub run_as: String,
    #[serde(default)]
    pub url: String,
    /// `Name: value` per line.
    #[serde(default)]
    pub headers: String,
}

impl RegisterForm {
    /// The form to show again after a refusal: env and header values may be credentials,
    /// and the console never renders what the API hides, so they are typed again.
    pub fn without_secrets(self) -> Self {
        RegisterForm { env: String::new(), headers: String::new(), ..self }
    }

    /// Whether the stdio form is the one that was sent (the default).
    pub fn is_stdio(&self) -> bool {
        self.transport != "streamable_http"
    }
}

/// One server in the list.
pub struct ServerRow {
    pub name: String,
    pub transport: &'static str,
    pub status: String,
    pub connected: bool,
    pub since: String,
    pub last_error: Option<String>,
    pub tools: usize,
}

impl ServerRow {
    pub fn new(server: &UpstreamStatus) -> Self {
        ServerRow {
            name: server.name.clone(),
            transport: server.config.transport.as_str(),
            status: server.status.to_string(),
            connected: server.status == ConnectionStatus::Connected,
            since: since(server),
            last_error: server.last_error.clone(),
            tools: server.tools.len(),
        }
    }
}

fn since(server: &UpstreamStatus) -> String {
    format!("for {}", human_duration(chrono::Utc::now() - server.since))
}

#[derive(Template)]
#[template(path = "console/server.html")]
pub struct ServerPage {
    pub chrome: Chrome,
    pub notice: Option<Notice>,
    pub server: ServerView,
    pub tools: Vec<ToolView>,
    pub can_refresh: bool,
    pub can_manage: bool,
}

/// One server: its status and its redacted configuration.
pub struct ServerView {
    pub row: ServerRow,
    pub command: Option<String>,
    pub args: Vec<String>,
    pub env_names: Vec<String>,
    pub cwd: Option<String>,
    pub run_as: Option<String>,
    pub url: Option<String>,
    pub header_names: Vec<String>,
    pub tool_prefix: Option<String>,
    pub registered_at: String,
}

impl ServerView {
    pub fn new(server: &UpstreamStatus) -> Self {
        let config = &server.config;
        ServerView {
            row: ServerRow::new(server),
            command: config.command.clone(),
            args: config.args.clone(),
            env_names: config.env_names.clone(),
            cwd: config.cwd.clone(),
            run_as: config.run_as.clone(),
            url: config.url.clone(),
            header_names: config.header_names.clone(),
            tool_prefix: config.tool_prefix.clone(),
            registered_at: server.created_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        }
    }
}

/// One tool as agents see it, with the hints its server declares as badges.
pub struct ToolView {
    pub name: String,
    pub title: Option<String>,
    pub description: String,
    pub badges: Vec<Badge>,
}

/// An MCP annotation the server set to true (a hint it does not set is not guessed).
pub struct Badge {
    pub label: &'static str,
    /// The CSS class: `caution` for what may do harm, `calm` for what may not.
    pub class: &'static str,
}

impl ToolView {
    pub fn new(tool: &Tool) -> Self {
        let mut badges = Vec::new();
        if let Some(hints) = &tool.annotations {
            let set = |hint: Option<bool>| hint == Some(true);
            if set(hints.destructive_hint) {
                badges.push(Badge { label: "destructive", class: "caution" });
            }
            if set(hints.read_only_hint) {
                badges.push(Badge { label: "read-only", class: "calm" });
            }
            if set(hints.idempotent_hint) {
                badges.push(Badge { label: "idempotent", class: "calm" });
            }
            if set(hints.open_world_hint) {
                badges.push(Badge { label: "open-world", class: "caution" });
            }
        }
        let title = tool.title.clone().or_else(|| tool.annotations.as_ref().and_then(|hints| hints.title.clone()));
        ToolView {
            name: tool.name.to_string(),
            title,
            description: tool.description.as_deref().unwrap_or_default().to_owned(),
            badges,
        }
    }
}
