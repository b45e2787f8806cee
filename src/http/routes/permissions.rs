//! `/admin/permissions`: list, inspect, approve and reject permission requests (admin).

use alexandria_domain::{PermissionRequestCommand, PermissionRequestError};
use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

use crate::approval::queries::{self, ListFilter, Page, PermissionDto};
use crate::approval::store::CommandError;
use crate::http::auth::{Admin, UserAtLeast};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::AppState;
use crate::names::Actor;
use crate::notify;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    agent: Option<String>,
    tool: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
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
    let request = state.store.load(id).await.map_err(command_error)?;
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
    let mut conn = state.pool.acquire().await?;
    let events = alexandria_projections::log::read_global_batch(&mut conn, Some(&id.to_string()), 0, 10_000).await?;
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
    let id = parse_id(&id)?;
    decide(
        &state,
        id,
        &admin.actor(),
        PermissionRequestCommand::Approve { by: admin.name.clone(), at: chrono::Utc::now() },
    )
    .await
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
    let id = parse_id(&id)?;
    let command =
        PermissionRequestCommand::Reject { by: admin.name.clone(), at: chrono::Utc::now(), reason: body.reason };
    decide(&state, id, &admin.actor(), command).await
}

/// Runs a decision and answers with the state it produced (read-your-write: the read
/// model may not have caught up yet).
async fn decide(
    state: &AppState,
    id: uuid::Uuid,
    actor: &Actor,
    command: PermissionRequestCommand,
) -> ApiResult<Json<PermissionDto>> {
    let metadata = alexandria_domain::EventMetadata::new(
        actor.to_string(),
        &state.settings.replica_id,
        uuid::Uuid::new_v4().to_string(),
    );
    let applied = state.store.execute(id, command, &metadata).await.map_err(command_error)?;
    let dto = PermissionDto::from_state(id, &applied.state)
        .ok_or_else(|| ApiError::NotFound(format!("no permission request {id}")))?;
    with_delivery_state(state, dto).await
}

/// A path segment as a request id: 400 when it is not a UUID.
fn parse_id(raw: &str) -> ApiResult<uuid::Uuid> {
    uuid::Uuid::parse_str(raw)
        .map_err(|_| ApiError::BadRequest(format!("{raw:?} is not a permission request id (a UUID)")))
}

fn command_error(error: CommandError) -> ApiError {
    use PermissionRequestError as E;
    match error {
        CommandError::Domain(E::NotFound) => ApiError::NotFound("no such permission request".to_owned()),
        CommandError::Domain(error @ (E::NotPending { .. } | E::ApprovalWindowClosed { .. })) => {
            ApiError::Conflict(error.to_string())
        }
        CommandError::Domain(error @ (E::InvalidReason | E::Empty(_))) => ApiError::Unprocessable(error.to_string()),
        CommandError::Domain(error) => ApiError::Conflict(error.to_string()),
        CommandError::Conflict => ApiError::Conflict(CommandError::Conflict.to_string()),
        CommandError::Store(message) => ApiError::Internal(anyhow::anyhow!(message)),
    }
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
