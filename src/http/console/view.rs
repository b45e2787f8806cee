//! What the console's templates show: page structs (askama, checked at compile time,
//! HTML-escaped) and the inbox's view of a permission request. Everything an agent
//! controls (names, arguments, reasons) reaches the page only through escaping
//! interpolation; no template marks a value `safe`.

use std::collections::BTreeMap;

use askama::Template;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::request_view::Guidance;
use crate::approval::queries::{DecisionContext, PermissionDto};
use crate::auth::{AuthenticatedUser, Role};
use crate::upstream::Catalog;

/// The console's sections, in the order the navigation shows them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Section {
    Inbox,
    History,
    Agents,
    Servers,
    Settings,
    Users,
    Audit,
    Projections,
    /// The sealed logs, their signed checkpoints and how to verify them: auditors' and
    /// super_admins' (the API's audit readers).
    AuditLog,
    /// The signed-in person's own account (linked from their name, not in the sections).
    Account,
}

impl Section {
    const ALL: [Section; 9] = [
        Section::Inbox,
        Section::History,
        Section::Agents,
        Section::Servers,
        Section::Settings,
        Section::Users,
        Section::Audit,
        Section::Projections,
        Section::AuditLog,
    ];

    pub fn href(self) -> &'static str {
        match self {
            Section::Inbox => "/",
            Section::History => "/history",
            Section::Agents => "/agents",
            Section::Servers => "/servers",
            Section::Settings => "/settings/notifications",
            Section::Users => "/users",
            Section::Audit => "/audit",
            Section::Projections => "/projections",
            Section::AuditLog => "/audit-log",
            Section::Account => "/account/password",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Section::Inbox => "Approvals",
            Section::History => "History",
            Section::Agents => "Agents",
            Section::Servers => "MCP servers",
            Section::Settings => "Settings",
            Section::Users => "Users",
            Section::Audit => "Audit trail",
            Section::Projections => "Projections",
            Section::AuditLog => "Audit log",
            Section::Account => "Your account",
        }
    }

    /// Whether `role` may open the section, as in the JSON API. A viewer reads what
    /// deciding is about; what only managing needs (settings, users, the admin audit
    /// trail) is super_admin's. An auditor is off that ladder: the audit log and their own
    /// account, nothing else.
    pub fn open_to(self, role: Role) -> bool {
        match self {
            Section::Settings | Section::Users | Section::Audit => role >= Role::SuperAdmin,
            Section::AuditLog => role == Role::Auditor || role >= Role::SuperAdmin,
            Section::Account => true,
            _ => role >= Role::Viewer,
        }
    }
}

/// Whether an auditor may open `path`: their sections (under their href), the landing
/// page (which sends them to the audit log) and logging out. Everything else of the
/// console is the viewer ladder's, which the JSON API refuses auditors too.
pub fn auditor_may_open(path: &str) -> bool {
    path == "/"
        || path == "/logout"
        || Section::ALL.into_iter().chain([Section::Account]).filter(|section| section.open_to(Role::Auditor)).any(
            |section| {
                let href = section.href();
                path == href || path.strip_prefix(href).is_some_and(|rest| rest.starts_with('/'))
            },
        )
}

/// What every signed-in page shows around its content: who is signed in, and the
/// sections they may open (a section they may not open is not linked at all).
pub struct Chrome {
    pub user_name: String,
    pub role: Role,
    pub current: Section,
}

/// One link of the navigation.
pub struct NavLink {
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

impl Chrome {
    pub fn new(user: &AuthenticatedUser, current: Section) -> Self {
        Chrome { user_name: user.name.clone(), role: user.role, current }
    }

    pub fn links(&self) -> Vec<NavLink> {
        Section::ALL
            .into_iter()
            .filter(|section| section.open_to(self.role))
            .map(|section| NavLink { href: section.href(), label: section.label(), current: section == self.current })
            .collect()
    }
}

#[derive(Template)]
#[template(path = "console/login.html")]
pub struct LoginPage {
    pub message: Option<String>,
    pub username: String,
    /// The console page to open after logging in (a local path; empty: the inbox).
    pub next: String,
}

impl LoginPage {
    pub fn new(message: Option<String>, username: String) -> Self {
        LoginPage { message, username, next: String::new() }
    }

    pub fn returning_to(mut self, next: Option<&str>) -> Self {
        self.next = next.unwrap_or_default().to_owned();
        self
    }
}

#[derive(Template)]
#[template(path = "console/error.html")]
pub struct ErrorPage {
    pub title: String,
    pub message: String,
}

/// A message at the top of the inbox about the request just decided.
pub struct Notice {
    pub text: String,
    /// Someone else decided first, or the request could no longer be decided.
    pub warning: bool,
}

#[derive(Template)]
#[template(path = "console/inbox.html")]
pub struct InboxPage {
    pub chrome: Chrome,
    pub notice: Option<Notice>,
    // The list's fields, shared with `InboxList` (the page includes the list's template).
    pub items: Vec<InboxItem>,
    pub can_decide: bool,
    pub more: bool,
    /// The log position the list reflects; the event stream starts from it.
    pub since: i64,
}

/// The list alone: what `GET /console/inbox` answers for the script to swap in.
#[derive(Template)]
#[template(path = "console/inbox_list.html")]
pub struct InboxList {
    pub items: Vec<InboxItem>,
    pub can_decide: bool,
    pub more: bool,
}

/// One pending request as the inbox shows it.
pub struct InboxItem {
    pub id: String,
    pub agent: String,
    pub tool: String,
    /// The upstream server offering the tool now (`None`: no connected server has it).
    pub server: Option<String>,
    pub arguments: Vec<ArgumentView>,
    pub created_at: String,
    pub expires_at: String,
    pub waited: String,
    pub expires_in: String,
    pub guidance: Guidance,
}

/// One argument, pretty-printed; a long one is folded behind its first line.
pub struct ArgumentView {
    pub name: String,
    pub value: String,
    pub folded: bool,
    pub preview: String,
}

/// Values longer than this, or of more lines, are folded.
const FOLD_CHARS: usize = 160;
const FOLD_LINES: usize = 6;
const PREVIEW_CHARS: usize = 60;

impl InboxItem {
    pub fn new(
        request: &PermissionDto,
        catalog: &Catalog,
        context: Option<&DecisionContext>,
        now: DateTime<Utc>,
    ) -> Self {
        let tool = catalog.get(&request.tool);
        InboxItem {
            id: request.id.to_string(),
            agent: request.agent.clone(),
            tool: request.tool.clone(),
            server: tool.map(|tool| tool.server.clone()),
            arguments: arguments(&request.arguments),
            created_at: request.created_at.to_rfc3339(),
            expires_at: request.expires_at.to_rfc3339(),
            waited: human_duration(now - request.created_at),
            expires_in: if request.expires_at > now {
                format!("in {}", human_duration(request.expires_at - now))
            } else {
                "expired".to_owned()
            },
            guidance: Guidance::new(tool, context, &request.arguments),
        }
    }
}

pub fn arguments(arguments: &Value) -> Vec<ArgumentView> {
    match arguments {
        Value::Object(map) => {
            let sorted: BTreeMap<&String, &Value> = map.iter().collect();
            sorted.into_iter().map(|(name, value)| argument(name, value)).collect()
        }
        other => vec![argument("", other)],
    }
}

fn argument(name: &str, value: &Value) -> ArgumentView {
    let value = match value {
        // A string is shown as its text (newlines and all), not as a JSON literal.
        Value::String(text) => text.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_else(|_| other.to_string()),
    };
    let folded = value.chars().count() > FOLD_CHARS || value.lines().count() > FOLD_LINES;
    let first_line = value.lines().next().unwrap_or_default();
    let mut preview: String = first_line.chars().take(PREVIEW_CHARS).collect();
    if preview.len() < value.len() {
        preview.push('…');
    }
    ArgumentView { name: name.to_owned(), value, folded, preview }
}

/// `3d 4h`, `2h 05m`, `4m 09s`, `12s`: the two largest units.
pub fn human_duration(duration: chrono::Duration) -> String {
    let secs = duration.num_seconds().max(0);
    let (days, hours, minutes, seconds) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {minutes:02}m")
    } else if minutes > 0 {
        format!("{minutes}m {seconds:02}s")
    } else {
        format!("{seconds}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_auditor_opens_the_audit_log_and_their_account_and_nothing_of_the_ladder() {
        for path in ["/", "/logout", "/audit-log", "/audit-log/events.jsonl", "/account/password"] {
            assert!(auditor_may_open(path), "{path}");
        }
        for path in ["/history", "/requests/x", "/agents", "/console/inbox", "/console/events", "/audit", "/audit-logs"]
        {
            assert!(!auditor_may_open(path), "{path}");
        }
    }

    #[test]
    fn durations_show_their_two_largest_units() {
        assert_eq!(human_duration(chrono::Duration::seconds(12)), "12s");
        assert_eq!(human_duration(chrono::Duration::seconds(249)), "4m 09s");
        assert_eq!(human_duration(chrono::Duration::seconds(7500)), "2h 05m");
        assert_eq!(human_duration(chrono::Duration::seconds(3 * 86_400 + 4 * 3600 + 5)), "3d 4h");
        assert_eq!(human_duration(chrono::Duration::seconds(-5)), "0s");
    }

    #[test]
    fn long_arguments_are_folded_and_short_ones_not() {
        let views = arguments(&json!({"path": "/tmp/a", "content": "x".repeat(500), "n": {"a": [1, 2]}}));
        let by_name = |name: &str| views.iter().find(|v| v.name == name).unwrap();
        assert!(!by_name("path").folded);
        assert_eq!(by_name("path").value, "/tmp/a");
        assert!(by_name("content").folded);
        assert!(by_name("content").preview.ends_with('…'));
        assert!(by_name("n").value.contains('\n'), "pretty-printed: {}", by_name("n").value);
    }

    #[test]
    fn markup_in_arguments_is_escaped_on_the_page() {
        let list = InboxList {
            items: vec![InboxItem {
                id: "1".into(),
                agent: "a".into(),
                tool: "t".into(),
                server: None,
                arguments: arguments(&json!({"content": "<img src=x onerror=alert(1)>"})),
                created_at: String::new(),
                expires_at: String::new(),
                waited: String::new(),
                expires_in: String::new(),
                guidance: Guidance::default(),
            }],
            can_decide: true,
            more: false,
        };
        let html = list.render().unwrap();
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&#60;img src=x onerror=alert(1)&#62;") || html.contains("&lt;img"), "{html}");
    }
}
