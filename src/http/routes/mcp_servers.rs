//! `/admin/mcp-servers`: registering upstream MCP servers (super_admin) and reading their
//! status (admin). Changes are recorded in the admin audit trail.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::audit_trail;
use crate::http::auth::{Admin, SuperAdmin, UserAtLeast};
use crate::http::error::ApiResult;
use crate::http::extract::ApiJson;
use crate::http::AppState;
use crate::names::Actor;
use crate::upstream::{UpstreamConfig, UpstreamStatus};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/mcp-servers", post(register).get(list))
        .route("/admin/mcp-servers/{name}", get(show).delete(remove))
        .route("/admin/mcp-servers/{name}/refresh", post(refresh))
}

async fn audit(
    state: &AppState,
    actor: &Actor,
    action: &'static str,
    target: &str,
    before: Option<Value>,
    after: Option<Value>,
) -> ApiResult<()> {
    let mut conn = state.pool.acquire().await?;
    audit_trail::record(&mut conn, actor, action, target, before, after).await?;
    Ok(())
}

async fn register(
    admin: UserAtLeast<SuperAdmin>,
    State(state): State<AppState>,
    ApiJson(config): ApiJson<UpstreamConfig>,
) -> ApiResult<(StatusCode, Json<UpstreamStatus>)> {
    let status = state.upstreams.register(config).await?;
    // Only the redacted configuration: header and env values may be credentials.
    let after = serde_json::to_value(&status.config).ok();
    audit(&state, &admin.actor(), "mcp_server.register", &status.name, None, after).await?;
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
    let before = state.upstreams.get(&name)?;
    state.upstreams.remove(&name).await?;
    audit(&state, &admin.actor(), "mcp_server.delete", &name, serde_json::to_value(&before.config).ok(), None).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn refresh(
    _admin: UserAtLeast<Admin>,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<UpstreamStatus>> {
    Ok(Json(state.upstreams.refresh(&name).await?))
}
