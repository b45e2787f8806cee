//! `/admin/mcp-servers`: registering upstream MCP servers (super_admin) and reading their
//! status (admin). Changes are recorded in the admin audit trail (`admin::mcp_servers`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::admin::mcp_servers;
use crate::http::auth::{Admin, SuperAdmin, UserAtLeast};
use crate::http::error::ApiResult;
use crate::http::extract::ApiJson;
use crate::http::AppState;
use crate::upstream::{UpstreamConfig, UpstreamStatus};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/mcp-servers", post(register).get(list))
        .route("/admin/mcp-servers/{name}", get(show).delete(remove))
        .route("/admin/mcp-servers/{name}/refresh", post(refresh))
}

async fn register(
    admin: UserAtLeast<SuperAdmin>,
    State(state): State<AppState>,
    ApiJson(config): ApiJson<UpstreamConfig>,
) -> ApiResult<(StatusCode, Json<UpstreamStatus>)> {
    let status = mcp_servers::register(&state.upstreams, &admin.actor(), config).await?;
    Ok((StatusCode::CREATED, Json(status)))
}

async fn list(_admin: UserAtLeast<Admin>, State(state): State<AppState>) -> Json<Value> {
    Json(json!({"servers": state.upstreams.list()}))
}

async fn show(
    _admin: UserAtLeast<Admin>,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<UpstreamStatus>> {
    Ok(Json(state.upstreams.get(&name)?))
}

async fn remove(
    admin: UserAtLeast<SuperAdmin>,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    mcp_servers::remove(&state.upstreams, &admin.actor(), &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn refresh(
    _admin: UserAtLeast<Admin>,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<UpstreamStatus>> {
    Ok(Json(state.upstreams.refresh(&name).await?))
}
