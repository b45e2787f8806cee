//! `/admin/permissions`: list, inspect, approve and reject permission requests (admin).

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::approval::queries::{self, ListFilter, Page, PermissionDto};
use crate::approval::review::{self, Decision};
use crate::http::auth::{Admin, UserAtLeast};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::AppState;
use crate::notify;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    agent: Option<String>,
    tool: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

pub async fn list(
    _admin: UserAtLeast<Admin>,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page>> {
    let filter = ListFilter {
        status: query.status,
        agent: query.agent,
        tool: query.tool,
        limit: query.limit,
        cursor: query.cursor,
        from: query.from,
        to: query.to,
    };
    let mut page = queries::list(&state.pool, &filter).await?;
    notify::attach_delivery_state(&state.pool, &mut page.items).await?;
    Ok(Json(page))
}

pub async fn show(
    _admin: UserAtLeast<Admin>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<PermissionDto>> {
    let id = parse_id(&id)?;
    let request = state.store.load(id).await?;
    let dto = request
        .and_then(|s| PermissionDto::from_state(id, &s))
        .ok_or_else(|| ApiError::NotFound(format!("no permission request {id}")))?;
    with_delivery_state(&state, dto).await
}

async fn with_delivery_state(state: &AppState, mut dto: PermissionDto) -> ApiResult<Json<PermissionDto>> {
    notify::attach_delivery_state(&state.pool, std::slice::from_mut(&mut dto)).await?;
    Ok(Json(dto))
}

/// The request's history, as `alexandria events export --request` prints it.
pub async fn events(
    _admin: UserAtLeast<Admin>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<Value>>> {
    let id = parse_id(&id)?;
    let events = crate::event_export::request_events(&state.pool, id).await?;
    if events.is_empty() {
        return Err(ApiError::NotFound(format!("no permission request {id}")));
    }
    Ok(Json(events.iter().map(crate::event_export::export_line).collect()))
}

pub async fn approve(
    admin: UserAtLeast<Admin>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<PermissionDto>> {
    decide(&state, parse_id(&id)?, &admin.name, Decision::Approve).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectBody {
    reason: String,
}

pub async fn reject(
    admin: UserAtLeast<Admin>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RejectBody>,
) -> ApiResult<Json<PermissionDto>> {
    decide(&state, parse_id(&id)?, &admin.name, Decision::Reject { reason: body.reason }).await
}

/// Runs a decision and answers with the state it produced.
async fn decide(
    state: &AppState,
    id: uuid::Uuid,
    reviewer: &str,
    decision: Decision,
) -> ApiResult<Json<PermissionDto>> {
    let window = state.settings.execution_window;
    let decided = review::decide(&state.store, &state.settings.replica_id, id, reviewer, decision, window).await?;
    let dto = PermissionDto::from_state(id, &decided)
        .ok_or_else(|| ApiError::NotFound(format!("no permission request {id}")))?;
    with_delivery_state(state, dto).await
}

/// A path segment as a request id: 400 when it is not a UUID.
fn parse_id(raw: &str) -> ApiResult<uuid::Uuid> {
    uuid::Uuid::parse_str(raw)
        .map_err(|_| ApiError::BadRequest(format!("{raw:?} is not a permission request id (a UUID)")))
}

pub fn router() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/admin/permissions", get(list))
        .route("/admin/permissions/{id}", get(show))
        .route("/admin/permissions/{id}/events", get(events))
        .route("/admin/permissions/{id}/approve", post(approve))
        .route("/admin/permissions/{id}/reject", post(reject))
}
