//! The auditor's reads (role `auditor` or `super_admin`): the event log and the admin
//! audit trail as sealed JSON lines, and the signed checkpoints. docs/AUDIT.md.
//!
//! - `GET /admin/events?since=`: the event log, one JSON line per event in chain order,
//!   with `hash`/`prev_hash` (the lines of `alexandria events export`), streamed.
//! - `GET /admin/audit/export?since=`: the admin audit trail's chain, the same way.
//! - `GET /admin/audit/checkpoints?chain=&after=&limit=`: signed checkpoints, oldest first.

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::audit::export::{open_stream, ExportFilter, StreamedChain};
use crate::audit::{checkpoints, Checkpoint, ADMIN_AUDIT_CHAIN, EVENTS_CHAIN};
use crate::http::auth::AuditReader;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::ApiQuery;
use crate::http::openapi::Refusals;
use crate::http::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(events)).routes(routes!(admin_trail)).routes(routes!(list_checkpoints))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct SinceQuery {
    /// Continue after this line (an event's `position`, an admin audit row's `id`) in
    /// chain order; 0 or absent: from the start.
    #[param(minimum = 0)]
    since: Option<i64>,
}

const NDJSON: &str = "application/x-ndjson";

/// A chain's sealed JSON lines from after `since`, streamed (the API's and the console's
/// downloads).
pub(crate) async fn stream_chain(state: &AppState, chain: StreamedChain, since: Option<i64>) -> ApiResult<Response> {
    let filter = ExportFilter { since: since.unwrap_or(0), ..ExportFilter::default() };
    let receiver = open_stream(&state.pool, chain, filter).await?;
    let chunks = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    let body = Body::from_stream(chunks.map(|chunk| chunk.map(axum::body::Bytes::from)));
    Ok(([(header::CONTENT_TYPE, NDJSON)], body).into_response())
}

#[utoipa::path(get, path = "/admin/events", tag = "audit", params(SinceQuery),
    responses((status = 200, description = "JSON lines in chain order, each with `hash` and `prev_hash` once sealed \
        (docs/AUDIT.md)", body = String, content_type = "application/x-ndjson"), Refusals))]
async fn events(
    State(state): State<AppState>,
    _caller: AuditReader,
    ApiQuery(query): ApiQuery<SinceQuery>,
) -> ApiResult<Response> {
    stream_chain(&state, StreamedChain::Events, query.since).await
}

#[utoipa::path(get, path = "/admin/audit/export", tag = "audit", params(SinceQuery),
    responses((status = 200, description = "The admin audit trail's chain: JSON lines in chain order, with `hash` and \
        `prev_hash` once sealed", body = String, content_type = "application/x-ndjson"), Refusals))]
async fn admin_trail(
    State(state): State<AppState>,
    _caller: AuditReader,
    ApiQuery(query): ApiQuery<SinceQuery>,
) -> ApiResult<Response> {
    stream_chain(&state, StreamedChain::AdminAudit, query.since).await
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct CheckpointQuery {
    /// `events` (default) or `admin_audit`.
    chain: Option<String>,
    /// Only checkpoints after this seal number.
    #[param(minimum = 0)]
    after: Option<i64>,
    /// 1 to 1000; default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
struct CheckpointList {
    checkpoints: Vec<Checkpoint>,
}

#[utoipa::path(get, path = "/admin/audit/checkpoints", tag = "audit", params(CheckpointQuery),
    responses((status = 200, body = CheckpointList), Refusals))]
async fn list_checkpoints(
    State(state): State<AppState>,
    _caller: AuditReader,
    ApiQuery(query): ApiQuery<CheckpointQuery>,
) -> ApiResult<Json<CheckpointList>> {
    let chain = match query.chain.as_deref() {
        None | Some(EVENTS_CHAIN) => EVENTS_CHAIN,
        Some(ADMIN_AUDIT_CHAIN) => ADMIN_AUDIT_CHAIN,
        Some(other) => return Err(ApiError::BadRequest(format!("unknown chain {other:?}: `events` or `admin_audit`"))),
    };
    let after = query.after.unwrap_or(0);
    let limit = query.limit.unwrap_or(100);
    if after < 0 || !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest("`after` is 0 or more and `limit` 1 to 1000".to_owned()));
    }
    Ok(Json(CheckpointList { checkpoints: checkpoints::list(&state.pool, chain, after, limit).await? }))
}
