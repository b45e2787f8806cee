//! `GET /admin/audit` (super_admin): the admin audit trail, newest first, a page at a time.
//! `?limit=` (1 to 500, default 50), `?before=<id>` (the previous page's `next_before`),
//! `?target=` and `?action=` to narrow it.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use crate::audit_trail::{self, AuditFilter, AuditPage};
use crate::http::auth::{SuperAdmin, UserAtLeast};
use crate::http::error::ApiResult;
use crate::http::extract::ApiQuery;
use crate::http::AppState;

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

async fn page(
    State(state): State<AppState>,
    _caller: UserAtLeast<SuperAdmin>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<AuditPage>> {
    let filter = AuditFilter { before: query.before, target: query.target, action: query.action };
    Ok(Json(audit_trail::page_with_cursor(&state.pool, &filter, query.limit).await?))
}
