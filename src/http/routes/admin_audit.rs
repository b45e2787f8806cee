//! `GET /admin/audit` (super_admin or auditor): the admin audit trail, newest first, a page at a time.
//! `?limit=` (1 to 500, default 50), `?before=<id>` (the previous page's `next_before`),
//! `?target=` and `?action=` to narrow it.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::audit_trail::{self, AuditFilter, AuditPage};
use crate::http::auth::AuditReader;
use crate::http::error::ApiResult;
use crate::http::extract::ApiQuery;
use crate::http::openapi::Refusals;
use crate::http::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(page))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// 1 to 500; default 50.
    limit: Option<i64>,
    /// The previous page's `next_before`.
    before: Option<i64>,
    target: Option<String>,
    action: Option<String>,
}

#[utoipa::path(get, path = "/admin/audit", tag = "audit", params(PageQuery),
    responses((status = 200, body = AuditPage), Refusals))]
async fn page(
    State(state): State<AppState>,
    _caller: AuditReader,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<AuditPage>> {
    let filter = AuditFilter { before: query.before, target: query.target, action: query.action };
    Ok(Json(audit_trail::page_with_cursor(&state.pool, &filter, query.limit).await?))
}
