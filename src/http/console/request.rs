//! A request's page (`GET /requests/{id}`): what was asked, what helps decide it, its
//! history from the log, its notifications' delivery, and the cached outcome. Its facts
//! come from the aggregate (read-your-write after a decision), its events from the
//! service the admin API's `/admin/permissions/{id}/events` reads.

use alexandria_domain::{CallOutcome, PermissionRequest};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::inbox::notice;
use super::pages::{error_page, failure, render};
use super::request_view::{
    timestamp, DeliveryView, Guidance, OutcomeView, RelayedView, RequestPage, TimelineEntry, RECENT_DECISIONS,
};
use super::session::ConsoleUser;
use super::view::{arguments, Chrome, Section};
use crate::approval::queries::{self, PermissionDto};
use crate::approval::relay_record::{self, RelayOutcome, RelayedRequestEntry};
use crate::http::{ApiError, AppState};
use crate::{event_export, notify};

#[derive(Deserialize)]
pub struct RequestQuery {
    /// Set after a decision made on this page (post/redirect/get).
    decided: Option<String>,
    /// Set when that decision was refused because the request was no longer pending.
    already: Option<String>,
}

pub async fn page(
    user: ConsoleUser,
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<RequestQuery>, QueryRejection>,
) -> Response {
    let Ok(id) = Uuid::parse_str(&id) else {
        return error_page(StatusCode::BAD_REQUEST, "That is not a permission request id (a UUID). Check the link.");
    };
    let (decided, already) = match query {
        Ok(Query(query)) => (query.decided.is_some(), query.already.is_some()),
        Err(_) => (false, false),
    };
    match detail(&state, &user, id, decided || already, already).await {
        Ok(Some(page)) => render(StatusCode::OK, &page),
        Ok(None) => error_page(
            StatusCode::NOT_FOUND,
            "There is no permission request with this id. It may belong to another Alexandria installation.",
        ),
        Err(error) => failure(error),
    }
}

async fn detail(
    state: &AppState,
    user: &ConsoleUser,
    id: Uuid,
    show_notice: bool,
    already: bool,
) -> Result<Option<RequestPage>, ApiError> {
    let Some(request) = state.store.load(id).await? else { return Ok(None) };
    let Some(mut dto) = PermissionDto::from_state(id, &request) else { return Ok(None) };
    notify::attach_delivery_state(&state.pool, std::slice::from_mut(&mut dto)).await?;
    let events = event_export::request_events(&state.pool, id).await?;
    let relayed = relay_record::for_call(&state.pool, id).await?;
    let pair = (dto.agent.clone(), dto.tool.clone());
    let contexts = queries::decision_context(&state.pool, std::slice::from_ref(&pair), RECENT_DECISIONS).await?;
    let catalog = state.upstreams.tools();
    let notice = if show_notice { notice(state, id, already).await? } else { None };
    Ok(Some(RequestPage {
        chrome: Chrome::new(&user.0, Section::History),
        notice,
        id: id.to_string(),
        guidance: Guidance::new(catalog.get(&dto.tool), contexts.get(&pair), &dto.arguments),
        arguments: arguments(&dto.arguments),
        created_at: timestamp(dto.created_at),
        expires_at: timestamp(dto.expires_at),
        reviewed_by: dto.reviewed_by.clone(),
        reviewed_at: dto.reviewed_at.map(timestamp),
        reason: dto.reason.clone(),
        executed_at: dto.executed_at.map(timestamp),
        timeline: events
            .iter()
            .map(|event| {
                let meta = |key: &str| event.metadata.get(key).and_then(Value::as_str).unwrap_or("—").to_owned();
                TimelineEntry {
                    position: event.global_position,
                    // A skipped event stays in the log, so in the timeline, but counts for nothing.
                    event_type: if event.skipped {
                        format!("{} (skipped: unreadable)", event.event_type)
                    } else {
                        event.event_type.clone()
                    },
                    actor: meta("actor"),
                    at: timestamp(event.recorded_at),
                    replica: meta("replica"),
                    trace_id: meta("trace_id"),
                }
            })
            .collect(),
        relayed: relayed.into_iter().map(relayed_view).collect(),
        deliveries: deliveries(&dto.notifier_meta),
        outcome: outcome(&request),
        can_decide: user.can_decide(),
        agent: dto.agent,
        tool: dto.tool,
        status: dto.status,
    }))
}

fn relayed_view(entry: RelayedRequestEntry) -> RelayedView {
    let request = entry.request;
    let outcome = match request.outcome {
        RelayOutcome::Answered => "answered".to_owned(),
        RelayOutcome::Refused { code: Some(code) } => format!("refused (code {code})"),
        RelayOutcome::Refused { code: None } => "refused".to_owned(),
        RelayOutcome::NoAnswer { reason } => format!("no answer: {}", reason.describe()),
    };
    RelayedView {
        position: entry.position,
        server: request.server,
        method: request.method,
        params: serde_json::to_string_pretty(&request.params).unwrap_or_default(),
        asked_at: timestamp(request.asked_at),
        outcome,
    }
}

/// The DTO's `notifier_meta.channels` (`{channel: {notice: {attempts, last_error,
/// delivered_at, superseded_at, ...}}}`) as rows.
fn deliveries(meta: &Value) -> Vec<DeliveryView> {
    let Some(channels) = meta.get("channels").and_then(Value::as_object) else { return Vec::new() };
    let mut rows = Vec::new();
    for (channel, notices) in channels {
        let Some(notices) = notices.as_object() else { continue };
        for (notice, delivery) in notices {
            let field = |key: &str| delivery.get(key).filter(|value| !value.is_null());
            let state = if let Some(at) = field("delivered_at").and_then(Value::as_str) {
                format!("delivered {at}")
            } else if field("superseded_at").is_some() {
                "not sent: superseded by a later notice".to_owned()
            } else if let Some(at) = field("next_attempt_at").and_then(Value::as_str) {
                format!("retrying, next attempt {at}")
            } else {
                "waiting to be sent".to_owned()
            };
            rows.push(DeliveryView {
                channel: channel.clone(),
                notice: notice.clone(),
                attempts: field("attempts").and_then(Value::as_i64).unwrap_or(0),
                state,
                last_error: field("last_error").and_then(Value::as_str).map(str::to_owned),
            });
        }
    }
    rows
}

fn outcome(request: &PermissionRequest) -> Option<OutcomeView> {
    let pretty = |value: &Value| serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    Some(match request.outcome()? {
        CallOutcome::Result(result) => OutcomeView::Result(pretty(result)),
        CallOutcome::Error { code, message, data } => {
            OutcomeView::Error { code: *code, message: message.clone(), data: data.as_ref().map(pretty) }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn delivery_rows_say_where_each_notice_stands() {
        let meta = json!({"channels": {
            "webhook": {"pending": {"attempts": 1, "delivered_at": "2026-12-01T10:00:00Z", "last_error": null}},
            "alertmanager": {"pending": {"attempts": 3, "last_error": "HTTP 500", "next_attempt_at": "2026-12-01T10:01:00Z"}},
        }});
        let rows = deliveries(&meta);
        let webhook = rows.iter().find(|row| row.channel == "webhook").unwrap();
        assert_eq!(webhook.state, "delivered 2026-12-01T10:00:00Z");
        assert!(webhook.last_error.is_none());
        let alertmanager = rows.iter().find(|row| row.channel == "alertmanager").unwrap();
        assert_eq!((alertmanager.attempts, alertmanager.last_error.as_deref()), (3, Some("HTTP 500")));
        assert!(alertmanager.state.starts_with("retrying"));
        assert!(deliveries(&json!({"channels": {}})).is_empty());
    }
}
