//! The admin audit trail (super_admin): newest first, the filters `GET /admin/audit`
//! offers (action, target), older pages by cursor, through `audit_trail::page_with_cursor`.
//! `before`/`after` are pretty-printed JSON, escaped like everything else.

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;

use super::pages::{error_page, failure, render};
use super::session::ConsoleUser;
use super::view::{Chrome, Section};
use crate::audit_trail::{self, AuditEntry, AuditFilter};
use crate::auth::Role;
use crate::http::AppState;

#[derive(Template)]
#[template(path = "console/audit.html")]
pub struct AuditPage {
    pub chrome: Chrome,
    pub action: String,
    pub target: String,
    pub entries: Vec<AuditRow>,
    /// The link to the next (older) page, with the filters kept.
    pub older: Option<String>,
    /// Whether this is a later page (then "Newest" leads back to the first).
    pub paged: bool,
    pub newest: String,
}

pub struct AuditRow {
    pub id: i64,
    pub at: String,
    pub at_iso: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

impl AuditRow {
    fn new(entry: AuditEntry) -> Self {
        AuditRow {
            id: entry.id,
            at: entry.at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            at_iso: entry.at.to_rfc3339(),
            actor: entry.actor,
            action: entry.action,
            target: entry.target,
            before: entry.before.as_ref().map(pretty),
            after: entry.after.as_ref().map(pretty),
        }
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

#[derive(Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    action: String,
    #[serde(default)]
    target: String,
    before: Option<i64>,
}

/// `None` for a blank filter field: the form sends every field, filled or not.
fn filled(value: &str) -> Option<String> {
    Some(value.trim().to_owned()).filter(|value| !value.is_empty())
}

/// `/audit?...` with the filters that are set, and a cursor.
fn link(action: &Option<String>, target: &Option<String>, before: Option<i64>) -> String {
    // Url's form encoder; the base is never shown.
    let Ok(mut url) = reqwest::Url::parse("http://console/audit") else { return "/audit".to_owned() };
    {
        let mut pairs = url.query_pairs_mut();
        if let Some(action) = action {
            pairs.append_pair("action", action);
        }
        if let Some(target) = target {
            pairs.append_pair("target", target);
        }
        if let Some(before) = before {
            pairs.append_pair("before", &before.to_string());
        }
    }
    match url.query() {
        Some(query) if !query.is_empty() => format!("/audit?{query}"),
        _ => "/audit".to_owned(),
    }
}

pub async fn page(
    user: ConsoleUser,
    State(state): State<AppState>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Response {
    let user = match user.at_least(Role::SuperAdmin) {
        Ok(user) => user,
        Err(refused) => return failure(refused),
    };
    let Ok(Query(query)) = query else {
        return error_page(StatusCode::BAD_REQUEST, "That page of the audit trail does not exist: `before` must be an entry number. Open the audit trail from the menu.");
    };
    let (action, target) = (filled(&query.action), filled(&query.target));
    let filter = AuditFilter { before: query.before, target: target.clone(), action: action.clone() };
    let page = match audit_trail::page_with_cursor(&state.pool, &filter, None).await {
        Ok(page) => page,
        Err(error) => return failure(error),
    };
    let older = page.next_before.map(|before| link(&action, &target, Some(before)));
    let newest = link(&action, &target, None);
    let page = AuditPage {
        chrome: Chrome::new(&user, Section::Audit),
        action: query.action,
        target: query.target,
        entries: page.entries.into_iter().map(AuditRow::new).collect(),
        older,
        paged: query.before.is_some(),
        newest,
    };
    render(StatusCode::OK, &page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_keep_the_filters_and_encode_them() {
        assert_eq!(link(&None, &None, None), "/audit");
        assert_eq!(link(&Some("user.create".into()), &None, Some(7)), "/audit?action=user.create&before=7");
        assert_eq!(link(&None, &Some("a b&c".into()), None), "/audit?target=a+b%26c");
    }
}
