//! `/admin/permissions`: list, inspect, approve and reject permission requests (admin).

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::approval::queries::{self, ListFilter, Page, PermissionDto};
use crate::approval::relay_record;
use crate::approval::review::{self, Decision};
use crate::http::auth::{Admin, UserAtLeast};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::openapi::Refusals;
use crate::http::AppState;
use crate::notify;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `pending`, `approved`, `rejected`, `expired`, `withdrawn`, `executing` or `executed`.
    status: Option<String>,
    agent: Option<String>,
    tool: Option<String>,
    /// 1 to 500; default 50.
    limit: Option<i64>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
    /// Only requests created at or after this instant.
    from: Option<DateTime<Utc>>,
    /// Only requests created before this instant.
    to: Option<DateTime<Utc>>,
}

/// Newest first, a page at a time.
#[utoipa::path(get, path = "/admin/permissions", tag = "permissions", params(ListQuery),
    responses((status = 200, body = Page), Refusals))]
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

/// One request, with `relayed_requests`: what its upstream asked the client during its
/// call (which server, the method and its params, when, and how it ended — never the
/// client's answer).
#[utoipa::path(get, path = "/admin/permissions/{id}", tag = "permissions", params(("id" = String, Path)),
    responses((status = 200, body = PermissionDto), Refusals))]
pub async fn show(
    _admin: UserAtLeast<Admin>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<PermissionDto>> {
    let id = parse_id(&id)?;
    let request = state.store.load(id).await?;
    let mut dto = request
        .and_then(|s| PermissionDto::from_state(id, &s))
        .ok_or_else(|| ApiError::NotFound(format!("no permission request {id}")))?;
    dto.relayed_requests = Some(relay_record::for_call(&state.pool, id).await?);
    with_delivery_state(&state, dto).await
}

async fn with_delivery_state(state: &AppState, mut dto: PermissionDto) -> ApiResult<Json<PermissionDto>> {
    notify::attach_delivery_state(&state.pool, std::slice::from_mut(&mut dto)).await?;
    Ok(Json(dto))
}

/// The request's history, as `alexandria events export --request` prints it.
#[utoipa::path(get, path = "/admin/permissions/{id}/events", tag = "permissions", params(("id" = String, Path)),
    responses((status = 200, body = Vec<Object>), Refusals))]
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

/// Runbook Step 5.
#[utoipa::path(post, path = "/admin/permissions/{id}/approve", tag = "permissions", params(("id" = String, Path)),
    responses((status = 200, body = PermissionDto), Refusals))]
pub async fn approve(
    admin: UserAtLeast<Admin>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<PermissionDto>> {
    decide(&state, parse_id(&id)?, &admin.name, Decision::Approve).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectBody {
    reason: String,
}

#[utoipa::path(post, path = "/admin/permissions/{id}/reject", tag = "permissions", params(("id" = String, Path)),
    request_body = RejectBody, responses((status = 200, body = PermissionDto), Refusals))]
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

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show))
        .routes(routes!(events))
        .routes(routes!(approve))
        .routes(routes!(reject))
}
