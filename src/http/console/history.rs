//! The history (`GET /history`): every request, newest first, filtered by status, agent,
//! tool and time range, paged by the admin API's cursor (`approval::queries::list`, the
//! one listing query). Filters are a GET form; a filter the listing refuses shows the
//! form again with the reason, as a 400.

use alexandria_domain::RequestStatus;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;

use super::pages::{failure, percent_encoded, render};
use super::request_view::{timestamp, HistoryFilters, HistoryPage, HistoryRow};
use super::session::ConsoleUser;
use super::view::{Chrome, Section};
use crate::approval::queries::{self, ListFilter, QueryError, DEFAULT_PAGE};
use crate::http::AppState;

/// The form's fields, all as typed: an empty field means "any".
#[derive(Deserialize, Default)]
pub struct HistoryQuery {
    status: Option<String>,
    agent: Option<String>,
    tool: Option<String>,
    from: Option<String>,
    to: Option<String>,
    cursor: Option<String>,
}

pub async fn page(
    user: ConsoleUser,
    State(state): State<AppState>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Response {
    let mut page = HistoryPage {
        chrome: Chrome::new(&user.0, Section::History),
        filters: HistoryFilters::default(),
        statuses: RequestStatus::ALL.iter().map(|status| status.as_str()).collect(),
        error: None,
        rows: Vec::new(),
        next: None,
        paged: false,
        first: String::new(),
    };
    let Ok(Query(query)) = query else {
        page.error = Some("These filters could not be read. Choose them again below.".to_owned());
        return render(StatusCode::BAD_REQUEST, &page);
    };
    let given = |value: &Option<String>| value.as_deref().map(str::trim).unwrap_or_default().to_owned();
    page.filters = HistoryFilters {
        status: given(&query.status),
        agent: given(&query.agent),
        tool: given(&query.tool),
        from: given(&query.from),
        to: given(&query.to),
    };
    page.first = query_string(&page.filters, None);
    let filter = match list_filter(&page.filters, query.cursor.clone()) {
        Ok(filter) => filter,
        Err(message) => {
            page.error = Some(message);
            return render(StatusCode::BAD_REQUEST, &page);
        }
    };
    page.paged = filter.cursor.is_some();
    match queries::list(&state.pool, &filter).await {
        Ok(listed) => {
            page.rows = listed
                .items
                .into_iter()
                .map(|request| HistoryRow {
                    id: request.id.to_string(),
                    created_at: timestamp(request.created_at),
                    agent: request.agent,
                    tool: request.tool,
                    status: request.status,
                    reviewed_by: request.reviewed_by,
                })
                .collect();
            page.next = listed.next_cursor.map(|cursor| query_string(&page.filters, Some(&cursor)));
            render(StatusCode::OK, &page)
        }
        Err(QueryError::InvalidFilter(message)) => {
            page.error = Some(format!("{}.", capitalised(&message)));
            render(StatusCode::BAD_REQUEST, &page)
        }
        Err(error) => failure(error),
    }
}

/// The listing's filter from the form's fields; a time that cannot be read is refused
/// here, everything else by the listing itself (one rule for the API and the console).
fn list_filter(filters: &HistoryFilters, cursor: Option<String>) -> Result<ListFilter, String> {
    let some = |text: &str| (!text.is_empty()).then(|| text.to_owned());
    Ok(ListFilter {
        status: some(&filters.status),
        agent: some(&filters.agent),
        tool: some(&filters.tool),
        limit: Some(DEFAULT_PAGE),
        cursor: cursor.filter(|cursor| !cursor.is_empty()),
        from: instant(&filters.from, "Created from")?,
        to: instant(&filters.to, "Created before")?,
    })
}

/// A time as a `datetime-local` field sends it (`2026-12-01T10:00`, seconds optional,
/// taken as UTC) or as RFC 3339 with its offset.
fn instant(text: &str, field: &str) -> Result<Option<DateTime<Utc>>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(Some(at.with_timezone(&Utc)));
    }
    ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|at| Some(at.and_utc()))
        .ok_or_else(|| format!("{field}: {text:?} is not a time; use the form 2026-12-01T09:30 (UTC)"))
}

/// The query string of a history page with these filters (empty ones left out).
fn query_string(filters: &HistoryFilters, cursor: Option<&str>) -> String {
    let pairs = [
        ("status", filters.status.as_str()),
        ("agent", filters.agent.as_str()),
        ("tool", filters.tool.as_str()),
        ("from", filters.from.as_str()),
        ("to", filters.to.as_str()),
        ("cursor", cursor.unwrap_or_default()),
    ];
    pairs
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| format!("{name}={}", percent_encoded(value)))
        .collect::<Vec<_>>()
        .join("&")
}

fn capitalised(message: &str) -> String {
    let mut chars = message.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_from_the_form_or_rfc3339() {
        let at = instant("2026-12-01T09:30", "f").unwrap().unwrap();
        assert_eq!(at.to_rfc3339(), "2026-12-01T09:30:00+00:00");
        assert_eq!(instant("2026-12-01T09:30:15", "f").unwrap().unwrap().timestamp() - at.timestamp(), 15);
        assert_eq!(instant("2026-12-01T10:30:00+01:00", "f").unwrap(), Some(at));
        assert_eq!(instant("", "f").unwrap(), None);
        assert!(instant("yesterday", "Created from").unwrap_err().starts_with("Created from"));
    }

    #[test]
    fn next_page_links_keep_the_filters_and_encode_them() {
        let filters = HistoryFilters { agent: "a b&c".into(), status: "pending".into(), ..Default::default() };
        assert_eq!(query_string(&filters, Some("xy=")), "status=pending&agent=a%20b%26c&cursor=xy%3D");
        assert_eq!(query_string(&HistoryFilters::default(), None), "");
    }
}
