//! `GET /admin/audit` (super_admin): the admin audit trail, newest first, a page at a time.
//! `?limit=` (1 to 500, default 50), `?before=<id>` (the previous page's `next_before`),
//! `?target=` and `?action=` to narrow it.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::audit_trail::{self, AuditEntry, AuditFilter};
use crate::http::auth::{SuperAdmin, UserAtLeast};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::ApiQuery;
use crate::http::AppState;

const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 500;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/audit", get(page))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    limit: Option<i64>,
    before: Option<i64>,
    target: Option<String>,
    action: Option<String>,
}

#[derive(Serialize)]
struct AuditPage {
    entries: Vec<AuditEntry>,
    /// Pass as `before` for the next (older) page; `null` on the last page.
    next_before: Option<i64>,
}

async fn page(
    State(state): State<AppState>,
    _caller: UserAtLeast<SuperAdmin>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<AuditPage>> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!("limit must be between 1 and {MAX_PAGE}")));
    }
    let filter = AuditFilter { before: query.before, target: query.target, action: query.action };
    let entries = audit_trail::page(&state.pool, &filter, limit).await?;
    let next_before = if entries.len() as i64 == limit { entries.last().map(|entry| entry.id) } else { None };
    Ok(Json(AuditPage { entries, next_before }))
}
