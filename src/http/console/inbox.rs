//! The approvals inbox: pending requests oldest first, and the decisions on them. Both
//! decisions go through `approval::review::decide`, the service the JSON API calls.

use alexandria_domain::PermissionRequestError;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::Utc;
use serde::Deserialize;
use uuid::Uuid;

use super::pages::{error_page, failure, render};
use super::request_view::RECENT_DECISIONS;
use super::session::ConsoleUser;
use super::view::{Chrome, InboxItem, InboxList, InboxPage, Notice, Section};
use crate::approval::queries::{self, PermissionDto};
use crate::approval::review::{self, Decision};
use crate::approval::CommandError;
use crate::http::{ApiError, AppState};

/// How many pending requests the inbox shows at once.
const INBOX_SIZE: i64 = 200;

#[derive(Deserialize)]
pub struct InboxQuery {
    /// The request just decided (after the redirect of a decision).
    decided: Option<String>,
    /// Set when the decision was refused because the request was no longer pending.
    already: Option<String>,
}

pub async fn page(
    user: ConsoleUser,
    State(state): State<AppState>,
    query: Result<Query<InboxQuery>, QueryRejection>,
) -> Response {
    // An auditor has no inbox (off the viewer ladder): their console starts at the audit log.
    if user.0.role == crate::auth::Role::Auditor {
        return axum::response::Redirect::to(super::view::Section::AuditLog.href()).into_response();
    }
    let (decided, already) = match query {
        Ok(Query(query)) => (query.decided.and_then(|id| Uuid::parse_str(&id).ok()), query.already.is_some()),
        Err(_) => (None, false),
    };
    let notice = match decided {
        Some(id) => match notice(&state, id, already).await {
            Ok(notice) => notice,
            Err(error) => return failure(error),
        },
        None => None,
    };
    // Read before the list: a change after this position makes the event stream send an
    // event at once, so the page cannot miss one between its render and the stream's
    // start. If the read model was behind, the stream refreshes as soon as it caught up.
    let since = match queries::log_head(&state.pool).await {
        Ok((head, true)) => head,
        Ok((_, false)) => -1,
        Err(error) => return failure(error),
    };
    let list = match list(&state, &user).await {
        Ok(list) => list,
        Err(error) => return failure(error),
    };
    let page = InboxPage {
        chrome: Chrome::new(&user.0, Section::Inbox),
        notice,
        items: list.items,
        can_decide: list.can_decide,
        more: list.more,
        since,
    };
    render(StatusCode::OK, &page)
}

/// The list alone, for the script to swap in when the log says something changed.
pub async fn fragment(user: ConsoleUser, State(state): State<AppState>) -> Response {
    match list(&state, &user).await {
        Ok(list) => render(StatusCode::OK, &list),
        Err(error) => failure(error),
    }
}

async fn list(state: &AppState, user: &ConsoleUser) -> Result<InboxList, ApiError> {
    let (requests, more) = queries::pending_oldest_first(&state.pool, INBOX_SIZE).await?;
    let pairs: Vec<(String, String)> =
        requests.iter().map(|request| (request.agent.clone(), request.tool.clone())).collect();
    let contexts = queries::decision_context(&state.pool, &pairs, RECENT_DECISIONS).await?;
    let catalog = state.upstreams.tools();
    let now = Utc::now();
    let items = requests
        .iter()
        .map(|request| {
            let context = contexts.get(&(request.agent.clone(), request.tool.clone()));
            InboxItem::new(request, &catalog, context, now)
        })
        .collect();
    Ok(InboxList { items, can_decide: user.can_decide(), more })
}

/// What became of a request, from its own history (the read model may lag): who decided
/// it and when, whoever it was.
pub(super) async fn notice(state: &AppState, id: Uuid, already: bool) -> Result<Option<Notice>, ApiError> {
    let Some(request) = state.store.load(id).await? else { return Ok(None) };
    let Some(dto) = PermissionDto::from_state(id, &request) else { return Ok(None) };
    let mut text = format!("{} for {}: ", dto.tool, dto.agent);
    match (&dto.reviewed_by, dto.reviewed_at) {
        (Some(by), Some(at)) => {
            // The decision, not the status: an approved call may already be executing.
            let decision = if dto.reason.is_some() { "rejected" } else { "approved" };
            text.push_str(&format!("{decision} by {by} at {}", at.format("%Y-%m-%d %H:%M:%S UTC")));
            if dto.status != decision {
                text.push_str(&format!(", now {}", dto.status));
            }
        }
        _ => text.push_str(&dto.status),
    }
    if let Some(reason) = &dto.reason {
        text.push_str(&format!(" (reason: {reason})"));
    }
    if already {
        text = format!("Already decided, so your decision was not recorded. {text}.");
    } else {
        text.push('.');
    }
    Ok(Some(Notice { text, warning: already }))
}

/// Where a decision was made, so the person returns there: the inbox (the default) or the
/// request's own page (`from=request`). Only these two: a decision never redirects to a
/// place the form named.
#[derive(Deserialize, Default)]
pub struct DecidedFrom {
    from: Option<String>,
}

impl DecidedFrom {
    fn request_page(&self) -> bool {
        self.from.as_deref() == Some("request")
    }
}

pub async fn approve(
    user: ConsoleUser,
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: Result<Form<DecidedFrom>, FormRejection>,
) -> Response {
    let from = form.map(|Form(from)| from).unwrap_or_default();
    decide(&state, user, &id, Decision::Approve, &from).await
}

#[derive(Deserialize)]
pub struct RejectForm {
    reason: String,
    from: Option<String>,
}

pub async fn reject(
    user: ConsoleUser,
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: Result<Form<RejectForm>, FormRejection>,
) -> Response {
    let Ok(Form(RejectForm { reason, from })) = form else {
        return error_page(StatusCode::UNPROCESSABLE_ENTITY, "A rejection needs a reason: the agent is told it.");
    };
    decide(&state, user, &id, Decision::Reject { reason }, &DecidedFrom { from }).await
}

/// Decides, then shows where the person decided (the inbox or the request's page) with
/// what became of the request (post/redirect/get). A request someone else decided a
/// moment earlier is not an error: the page says who did.
async fn decide(state: &AppState, user: ConsoleUser, id: &str, decision: Decision, from: &DecidedFrom) -> Response {
    let reviewer = match user.at_least(review::REVIEWER_ROLE) {
        Ok(reviewer) => reviewer,
        Err(error) => return failure(error),
    };
    let Ok(id) = Uuid::parse_str(id) else {
        return error_page(StatusCode::BAD_REQUEST, "That is not a permission request id.");
    };
    let window = state.settings.execution_window;
    let already =
        match review::decide(&state.store, &state.settings.replica_id, id, &reviewer.name, decision, window).await {
            Ok(_) => false,
            Err(CommandError::Domain(
                PermissionRequestError::NotPending { .. } | PermissionRequestError::ApprovalWindowClosed { .. },
            )) => true,
            Err(error) => return failure(error),
        };
    let target = match (from.request_page(), already) {
        (true, false) => format!("/requests/{id}?decided=1#notice"),
        (true, true) => format!("/requests/{id}?already=1#notice"),
        (false, false) => format!("/?decided={id}#notice"),
        (false, true) => format!("/?decided={id}&already=1#notice"),
    };
    Redirect::to(&target).into_response()
}
