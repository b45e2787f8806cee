//! Permission requests as the admin API shows them: the DTO, listing from the read
//! model, history from the log.

use std::collections::HashMap;

use alexandria_domain::{PermissionRequest, RequestStatus};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{PgPool, Row};
use uuid::Uuid;

/// Why a listing was refused.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A filter, limit or cursor the client sent is not valid.
    #[error("{0}")]
    InvalidFilter(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The permission request DTO (runbook Step 5 and the admin API).
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct PermissionDto {
    pub id: Uuid,
    pub request_type: String,
    pub agent: String,
    pub tool: String,
    pub arguments: Value,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
    pub executed_at: Option<DateTime<Utc>>,
    pub has_result: bool,
    /// `{"reason"?, "channels": {"<channel>": {"pending"|"reviewed": {attempts,
    /// last_error, delivered_at, ...}}}}`: notification delivery state per channel and
    /// notice (filled by `notify::attach_delivery_state`); the reject reason is repeated here
    /// because the runbook's agents read it from `notifier_meta`.
    pub notifier_meta: Value,
    /// Only in a single request's detail (`GET /admin/permissions/{id}`): the requests
    /// its upstream asked the client during its call (sampling, elicitation), with how
    /// each ended, never the client's answer (`approval::relay_record`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relayed_requests: Option<Vec<crate::approval::relay_record::RelayedRequestEntry>>,
}

fn notifier_meta(reason: Option<&str>) -> Value {
    let mut meta = serde_json::json!({"channels": {}});
    if let Some(reason) = reason {
        meta["reason"] = Value::from(reason);
    }
    meta
}

impl PermissionDto {
    /// From the aggregate itself: read-your-write for the caller who just decided.
    pub fn from_state(id: Uuid, state: &PermissionRequest) -> Option<Self> {
        let details = state.details()?;
        Some(PermissionDto {
            id,
            request_type: details.request_type.clone(),
            agent: details.agent.clone(),
            tool: details.tool.clone(),
            arguments: details.arguments.clone(),
            status: state.status().unwrap_or(RequestStatus::Pending).as_str().to_owned(),
            created_at: details.created_at,
            expires_at: details.expires_at,
            reviewed_by: state.review().map(|review| review.by.clone()),
            reviewed_at: state.review().map(|review| review.at),
            reason: state.reason().map(str::to_owned),
            executed_at: state.claim().map(|claim| claim.at),
            has_result: state.outcome().is_some(),
            notifier_meta: notifier_meta(state.reason()),
            relayed_requests: None,
        })
    }

    fn from_row(row: &sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        let reason: Option<String> = row.try_get("reason")?;
        Ok(PermissionDto {
            id: row.try_get("id")?,
            request_type: row.try_get("request_type")?,
            agent: row.try_get("agent")?,
            tool: row.try_get("tool")?,
            arguments: row.try_get("arguments")?,
            status: row.try_get("status")?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
            reviewed_by: row.try_get("reviewed_by")?,
            reviewed_at: row.try_get("reviewed_at")?,
            notifier_meta: notifier_meta(reason.as_deref()),
            reason,
            executed_at: row.try_get("executed_at")?,
            has_result: row.try_get::<Option<DateTime<Utc>>, _>("result_cached_at")?.is_some(),
            relayed_requests: None,
        })
    }
}

pub const DEFAULT_PAGE: i64 = 50;
pub const MAX_PAGE: i64 = 500;

#[derive(Debug, Default, Clone)]
pub struct ListFilter {
    pub status: Option<String>,
    pub agent: Option<String>,
    pub tool: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    /// Only requests created at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Only requests created before this instant.
    pub to: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page {
    pub items: Vec<PermissionDto>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Cursor: the last item's `(created_at, id)`, opaque to clients.
fn encode_cursor(created_at: DateTime<Utc>, id: Uuid) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}|{id}", created_at.to_rfc3339()))
}

fn decode_cursor(cursor: &str) -> Result<(DateTime<Utc>, Uuid), QueryError> {
    let bad = || QueryError::InvalidFilter("cursor is not one this API returned".to_owned());
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (at, id) = raw.split_once('|').ok_or_else(bad)?;
    let at = DateTime::parse_from_rfc3339(at).map_err(|_| bad())?.with_timezone(&Utc);
    Ok((at, Uuid::parse_str(id).map_err(|_| bad())?))
}

/// Newest first, from the read model.
pub async fn list(pool: &PgPool, filter: &ListFilter) -> Result<Page, QueryError> {
    if let Some(status) = &filter.status {
        if RequestStatus::parse(status).is_none() {
            let known: Vec<&str> = RequestStatus::ALL.iter().map(|s| s.as_str()).collect();
            return Err(QueryError::InvalidFilter(format!(
                "unknown status {status:?}; use one of {}",
                known.join(", ")
            )));
        }
    }
    let limit = filter.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(QueryError::InvalidFilter(format!("limit must be between 1 and {MAX_PAGE}")));
    }
    if let (Some(from), Some(to)) = (filter.from, filter.to) {
        if from >= to {
            return Err(QueryError::InvalidFilter(
                "the time range ends before it begins (from must be before to)".to_owned(),
            ));
        }
    }
    let cursor = filter.cursor.as_deref().map(decode_cursor).transpose()?;
    let rows = sqlx::query(
        "SELECT * FROM permission_requests \
         WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR agent = $2) \
           AND ($3::text IS NULL OR tool = $3) \
           AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5)) \
           AND ($7::timestamptz IS NULL OR created_at >= $7) AND ($8::timestamptz IS NULL OR created_at < $8) \
         ORDER BY created_at DESC, id DESC LIMIT $6",
    )
    .bind(&filter.status)
    .bind(&filter.agent)
    .bind(&filter.tool)
    .bind(cursor.map(|c| c.0))
    .bind(cursor.map(|c| c.1))
    .bind(limit + 1)
    .bind(filter.from)
    .bind(filter.to)
    .fetch_all(pool)
    .await?;
    let mut items = rows.iter().map(PermissionDto::from_row).collect::<Result<Vec<_>, _>>()?;
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|last| encode_cursor(last.created_at, last.id))
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

/// Pending requests, oldest first (the console's inbox: the longest wait comes first).
/// At most `limit`; the second value says whether there are more.
pub async fn pending_oldest_first(pool: &PgPool, limit: i64) -> Result<(Vec<PermissionDto>, bool), QueryError> {
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(QueryError::InvalidFilter(format!("limit must be between 1 and {MAX_PAGE}")));
    }
    let rows =
        sqlx::query("SELECT * FROM permission_requests WHERE status = 'pending' ORDER BY created_at, id LIMIT $1")
            .bind(limit + 1)
            .fetch_all(pool)
            .await?;
    let mut items = rows.iter().map(PermissionDto::from_row).collect::<Result<Vec<_>, _>>()?;
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    Ok((items, more))
}

/// A person's decision on an earlier request, as the inbox recalls it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct PastDecision {
    pub by: String,
    pub at: DateTime<Utc>,
    /// Set when the request was rejected (a rejection always has a reason).
    pub reason: Option<String>,
}

impl PastDecision {
    pub fn approved(&self) -> bool {
        self.reason.is_none()
    }
}

/// What an agent's earlier calls of a tool tell the person deciding on a new one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DecisionContext {
    /// The latest decisions, newest first.
    pub recent: Vec<PastDecision>,
    /// The arguments of the last approved request.
    pub last_approved_arguments: Option<Value>,
}

/// For each (agent, tool) pair: its `per_pair` latest decisions and the arguments it was
/// last approved with. One query for all the pairs of an inbox page, each pair answered
/// from the `(agent, tool, reviewed_at)` index, so a page costs the same however many
/// requests it shows.
pub async fn decision_context(
    pool: &PgPool,
    pairs: &[(String, String)],
    per_pair: i64,
) -> Result<HashMap<(String, String), DecisionContext>, QueryError> {
    let mut pairs: Vec<&(String, String)> = pairs.iter().collect();
    pairs.sort();
    pairs.dedup();
    if pairs.is_empty() {
        return Ok(HashMap::new());
    }
    let agents: Vec<&str> = pairs.iter().map(|(agent, _)| agent.as_str()).collect();
    let tools: Vec<&str> = pairs.iter().map(|(_, tool)| tool.as_str()).collect();
    let rows: Vec<DecisionContextRow> = sqlx::query_as(
        "SELECT p.agent, p.tool, \
           (SELECT coalesce(json_agg(json_build_object('by', d.reviewed_by, 'at', d.reviewed_at, 'reason', d.reason) \
                                     ORDER BY d.reviewed_at DESC), '[]'::json) \
              FROM (SELECT reviewed_by, reviewed_at, reason FROM permission_requests r \
                     WHERE r.agent = p.agent AND r.tool = p.tool AND r.reviewed_at IS NOT NULL \
                     ORDER BY r.reviewed_at DESC LIMIT $3) d), \
           (SELECT r.arguments FROM permission_requests r \
             WHERE r.agent = p.agent AND r.tool = p.tool AND r.reviewed_at IS NOT NULL AND r.reason IS NULL \
             ORDER BY r.reviewed_at DESC LIMIT 1) \
         FROM unnest($1::text[], $2::text[]) AS p(agent, tool)",
    )
    .bind(&agents)
    .bind(&tools)
    .bind(per_pair)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(agent, tool, Json(recent), last_approved_arguments)| {
            ((agent, tool), DecisionContext { recent, last_approved_arguments })
        })
        .collect())
}

/// Agent, tool, its latest decisions, the arguments of its last approved call.
type DecisionContextRow = (String, String, Json<Vec<PastDecision>>, Option<Value>);

/// Where the log is, for a live view of the read model: the newest event's
/// `global_position`, and whether the `permission_requests` read model has applied every
/// event appended so far. A NOTIFY arrives when an event commits, a moment before the
/// projector has applied it; a view that re-reads the read model waits for `caught_up`.
pub async fn log_head(pool: &PgPool) -> Result<(i64, bool), sqlx::Error> {
    use alexandria_projections::{PermissionRequestsProjection, Projection};
    sqlx::query_as(
        "SELECT (SELECT coalesce(max(global_position), 0) FROM events),
                NOT EXISTS (SELECT 1 FROM events e JOIN projection_checkpoints c ON c.name = $1
                            WHERE (e.tx_id, e.global_position) > (c.last_tx_id, c.last_position))",
    )
    .bind(PermissionRequestsProjection.name())
    .fetch_one(pool)
    .await
}
