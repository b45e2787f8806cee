//! The agents pages' askama structs, and the tool picker: the catalog's tools grouped by
//! server, each with an "allowed" and an "approval required" box, plus free text for tools
//! no connected server offers now (a policy may name a tool before its server is
//! registered; the service's rule is only that a tool name is well-formed).

use std::collections::BTreeMap;

use askama::Template;
use serde::Deserialize;

use super::view::{Chrome, Notice};
use crate::admin::agents::Agent;
use crate::names::ToolName;
use crate::upstream::Catalog;

#[derive(Template)]
#[template(path = "console/agents.html")]
pub struct AgentsPage {
    pub chrome: Chrome,
    pub notice: Option<Notice>,
    pub agents: Vec<AgentRow>,
    pub can_manage: bool,
    /// The create form's values (kept when it was refused).
    pub form: NewAgentForm,
    /// Why the create form was refused: the service's message.
    pub error: Option<String>,
}

/// The create form.
#[derive(Deserialize, Default)]
pub struct NewAgentForm {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// One agent in the list.
pub struct AgentRow {
    pub name: String,
    pub allowed: Vec<String>,
    pub approval: Vec<String>,
    pub permissions_version: i64,
}

impl AgentRow {
    pub fn new(agent: &Agent) -> Self {
        AgentRow {
            name: agent.name.clone(),
            allowed: ToolName::strings(&agent.allowed_tools),
            approval: ToolName::strings(&agent.approval_required_tools),
            permissions_version: agent.permissions_version,
        }
    }
}

#[derive(Template)]
#[template(path = "console/agent.html")]
pub struct AgentPage {
    pub chrome: Chrome,
    pub notice: Option<Notice>,
    pub agent: AgentView,
    pub can_manage: bool,
    pub can_mint: bool,
    pub groups: Vec<PickerGroup>,
    /// Ticked tools no connected server offers, for the free-text fields.
    pub allowed_other: String,
    pub approval_other: String,
    /// Why the tool lists were not saved: the service's message.
    pub error: Option<String>,
}

/// One agent as stored.
pub struct AgentView {
    pub name: String,
    pub description: String,
    pub allowed: Vec<String>,
    pub approval: Vec<String>,
    pub prompts: Vec<String>,
    pub resources: Vec<String>,
    pub permissions_version: i64,
    pub created_at: String,
    pub updated_at: String,
}

const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S UTC";

impl AgentView {
    pub fn new(agent: &Agent) -> Self {
        AgentView {
            name: agent.name.clone(),
            description: agent.description.clone(),
            allowed: ToolName::strings(&agent.allowed_tools),
            approval: ToolName::strings(&agent.approval_required_tools),
            prompts: agent.allowed_prompts.clone(),
            resources: agent.allowed_resources.clone(),
            permissions_version: agent.permissions_version,
            created_at: agent.created_at.format(TIME_FORMAT).to_string(),
            updated_at: agent.updated_at.format(TIME_FORMAT).to_string(),
        }
    }
}

/// One server's tools in the picker.
pub struct PickerGroup {
    pub server: String,
    pub tools: Vec<PickerTool>,
}

pub struct PickerTool {
    pub name: String,
    pub description: String,
    pub allowed: bool,
    pub approval: bool,
}

/// The picker's groups for the ticked lists, and what of them no server offers (as text,
/// one per line).
pub fn picker(catalog: &Catalog, allowed: &[String], approval: &[String]) -> (Vec<PickerGroup>, String, String) {
    let mut by_server: BTreeMap<&str, Vec<PickerTool>> = BTreeMap::new();
    for (name, tool) in catalog {
        by_server.entry(tool.server.as_str()).or_default().push(PickerTool {
            name: name.clone(),
            description: tool.tool.description.as_deref().unwrap_or_default().to_owned(),
            allowed: allowed.contains(name),
            approval: approval.contains(name),
        });
    }
    let groups =
        by_server.into_iter().map(|(server, tools)| PickerGroup { server: server.to_owned(), tools }).collect();
    let other = |list: &[String]| {
        let mut seen: Vec<&str> = Vec::new();
        for name in list.iter().filter(|name| !catalog.contains_key(name.as_str())) {
            if !seen.contains(&name.as_str()) {
                seen.push(name);
            }
        }
        seen.join("\n")
    };
    (groups, other(allowed), other(approval))
}

/// The response to minting a token: the only time the token is shown.
#[derive(Template)]
#[template(path = "console/agent_token.html")]
pub struct AgentTokenPage {
    pub chrome: Chrome,
    pub agent: String,
    pub token: String,
    pub effective_tools: Vec<String>,
    pub permissions_version: i64,
    pub expires_in: String,
}
