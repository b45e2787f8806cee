//! What the console shows to help a person decide (the tool's hints and description,
//! earlier decisions on the same agent and tool, what changed since the last approved
//! call), and the page structs of a request's detail page and of the history.

use askama::Template;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::view::{ArgumentView, Chrome, Notice};
use crate::approval::argument_diff::{self, ArgumentChange};
use crate::approval::queries::DecisionContext;
use crate::upstream::CatalogTool;

/// How many earlier decisions on the same agent and tool the inbox recalls.
pub const RECENT_DECISIONS: i64 = 3;

/// One of the tool's MCP annotations, as a badge. `tone` is a CSS class: `caution` for
/// what deserves a second look, `calm` for what makes a call harmless.
pub struct Badge {
    pub label: &'static str,
    pub tone: &'static str,
    pub title: &'static str,
}

/// An earlier decision on the same agent and tool.
pub struct DecisionView {
    pub by: String,
    pub approved: bool,
    pub at: String,
    pub reason: Option<String>,
}

/// What the person deciding on a request is told besides the request itself.
#[derive(Default)]
pub struct Guidance {
    /// `None`: no connected server offers the tool, so nothing is known of it.
    pub badges: Option<Vec<Badge>>,
    pub description: Option<String>,
    pub recent: Vec<DecisionView>,
    /// `None`: this agent's calls of the tool were never approved; empty: the same
    /// arguments as the last approved call.
    pub changes: Option<Vec<ArgumentChange>>,
}

impl Guidance {
    pub fn new(tool: Option<&CatalogTool>, context: Option<&DecisionContext>, arguments: &Value) -> Self {
        let context = context.cloned().unwrap_or_default();
        Guidance {
            badges: tool.map(badges),
            description: tool.and_then(|tool| tool.tool.description.as_deref().map(str::to_owned)),
            recent: context
                .recent
                .iter()
                .map(|decision| DecisionView {
                    by: decision.by.clone(),
                    approved: decision.approved(),
                    at: timestamp(decision.at),
                    reason: decision.reason.clone(),
                })
                .collect(),
            changes: context.last_approved_arguments.map(|earlier| argument_diff::diff(&earlier, arguments)),
        }
    }
}

/// The badges of what a tool declares about itself. The hints are the server's claims,
/// not guarantees; a tool that declares nothing says so, since MCP's defaults for a
/// silent tool are the cautious ones (may write, may destroy, talks to the world).
fn badges(tool: &CatalogTool) -> Vec<Badge> {
    let Some(hints) = &tool.tool.annotations else {
        return vec![Badge {
            label: "no hints",
            tone: "caution",
            title: "the tool declares nothing about its effects",
        }];
    };
    let mut badges = Vec::new();
    if hints.read_only_hint == Some(true) {
        badges.push(Badge { label: "read-only", tone: "calm", title: "declares it changes nothing (readOnlyHint)" });
    } else if hints.destructive_hint != Some(false) {
        badges.push(Badge {
            label: "destructive",
            tone: "caution",
            title: "may delete or overwrite (destructiveHint, true unless declared false)",
        });
    } else {
        badges.push(Badge { label: "additive", tone: "calm", title: "writes, but declares it destroys nothing" });
    }
    if hints.idempotent_hint == Some(true) && hints.read_only_hint != Some(true) {
        badges.push(Badge {
            label: "idempotent",
            tone: "calm",
            title: "repeating the call changes nothing more (idempotentHint)",
        });
    }
    if hints.open_world_hint != Some(false) {
        badges.push(Badge {
            label: "open world",
            tone: "caution",
            title: "may reach systems outside this server (openWorldHint, true unless declared false)",
        });
    } else {
        badges.push(Badge {
            label: "closed world",
            tone: "calm",
            title: "declares it stays within its server (openWorldHint)",
        });
    }
    badges
}

/// A UTC instant as the console prints it.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// One event of a request's history, from the log.
pub struct TimelineEntry {
    pub position: i64,
    pub event_type: String,
    pub actor: String,
    pub at: String,
    pub replica: String,
    pub trace_id: String,
}

/// A request the call's upstream asked the client (`approval::relay_record`).
pub struct RelayedView {
    pub position: i64,
    pub server: String,
    pub method: String,
    pub params: String,
    pub asked_at: String,
    pub outcome: String,
}

/// A notification's delivery on one channel.
pub struct DeliveryView {
    pub channel: String,
    /// `pending` (the request waits) or `reviewed` (its outcome).
    pub notice: String,
    pub attempts: i64,
    pub state: String,
    pub last_error: Option<String>,
}

/// The executed call's cached outcome.
pub enum OutcomeView {
    Result(String),
    Error { code: i64, message: String, data: Option<String> },
}

#[derive(Template)]
#[template(path = "console/request.html")]
pub struct RequestPage {
    pub chrome: Chrome,
    pub notice: Option<Notice>,
    pub id: String,
    pub agent: String,
    pub tool: String,
    pub status: String,
    pub arguments: Vec<ArgumentView>,
    pub created_at: String,
    pub expires_at: String,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<String>,
    pub reason: Option<String>,
    pub executed_at: Option<String>,
    pub guidance: Guidance,
    pub timeline: Vec<TimelineEntry>,
    pub relayed: Vec<RelayedView>,
    pub deliveries: Vec<DeliveryView>,
    pub outcome: Option<OutcomeView>,
    pub can_decide: bool,
}

/// The history's filters as the person typed them (shown again in the form).
#[derive(Default)]
pub struct HistoryFilters {
    pub status: String,
    pub agent: String,
    pub tool: String,
    pub from: String,
    pub to: String,
}

/// One request in the history.
pub struct HistoryRow {
    pub id: String,
    pub agent: String,
    pub tool: String,
    pub status: String,
    pub created_at: String,
    pub reviewed_by: Option<String>,
}

#[derive(Template)]
#[template(path = "console/history.html")]
pub struct HistoryPage {
    pub chrome: Chrome,
    pub filters: HistoryFilters,
    pub statuses: Vec<&'static str>,
    /// Why the filters were refused (the page answers 400 then, with no rows).
    pub error: Option<String>,
    pub rows: Vec<HistoryRow>,
    /// The query string of the next (older) page, when there is one.
    pub next: Option<String>,
    /// Whether this is a later page (so "first page" is offered).
    pub paged: bool,
    /// The query string of the first page with the same filters.
    pub first: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::{Tool, ToolAnnotations};
    use serde_json::json;
    use std::sync::Arc;

    fn catalog_tool(annotations: Option<ToolAnnotations>) -> CatalogTool {
        let mut tool = Tool::new("write_file", "Write a file", Arc::new(serde_json::Map::new()));
        tool.annotations = annotations;
        CatalogTool { server: "fs".into(), upstream_name: "write_file".into(), tool }
    }

    fn labels(tool: &CatalogTool) -> Vec<&'static str> {
        badges(tool).iter().map(|badge| badge.label).collect()
    }

    #[test]
    fn badges_follow_the_declared_hints_and_mcp_defaults() {
        let mut hints = ToolAnnotations::new();
        hints.read_only_hint = Some(false);
        hints.destructive_hint = Some(true);
        hints.idempotent_hint = Some(true);
        hints.open_world_hint = Some(false);
        assert_eq!(labels(&catalog_tool(Some(hints))), ["destructive", "idempotent", "closed world"]);
        let mut hints = ToolAnnotations::new();
        hints.read_only_hint = Some(true);
        assert_eq!(labels(&catalog_tool(Some(hints))), ["read-only", "open world"]);
        assert_eq!(labels(&catalog_tool(None)), ["no hints"]);
    }

    #[test]
    fn guidance_without_an_approved_call_has_no_diff() {
        let tool = catalog_tool(None);
        let guidance = Guidance::new(Some(&tool), None, &json!({"a": 1}));
        assert!(guidance.changes.is_none());
        assert_eq!(guidance.description.as_deref(), Some("Write a file"));
        let context = DecisionContext { recent: Vec::new(), last_approved_arguments: Some(json!({"a": 2})) };
        let guidance = Guidance::new(None, Some(&context), &json!({"a": 1}));
        assert_eq!(guidance.changes, Some(vec![ArgumentChange::Changed("a".into())]));
        assert!(guidance.badges.is_none());
    }
}
