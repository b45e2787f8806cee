//! `/admin/mcp-servers`: registering upstream MCP servers (super_admin) and reading their
//! status (admin). Changes are recorded in the admin audit trail (`admin::mcp_servers`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::admin::mcp_servers;
use crate::http::auth::{Admin, SuperAdmin, UserAtLeast};
use crate::http::error::ApiResult;
use crate::http::extract::ApiJson;
use crate::http::openapi::Refusals;
use crate::http::AppState;
use crate::upstream::{UpstreamConfig, UpstreamStatus};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(register, list)).routes(routes!(show, remove)).routes(routes!(refresh))
}

/// Registers and connects a server; its tools are listed once it answers.
#[utoipa::path(post, path = "/admin/mcp-servers", tag = "mcp-servers", request_body = UpstreamConfig,
    responses((status = 201, description = "Registered", body = UpstreamStatus), Refusals))]
async fn register(
    admin: UserAtLeast<SuperAdmin>,
    State(state): State<AppState>,
    ApiJson(config): ApiJson<UpstreamConfig>,
) -> ApiResult<(StatusCode, Json<UpstreamStatus>)> {
    let status = mcp_servers::register(&state.upstreams, &admin.actor(), config).await?;
    Ok((StatusCode::CREATED, Json(status)))
}

#[derive(Serialize, ToSchema)]
struct ServerList {
    servers: Vec<UpstreamStatus>,
}

#[utoipa::path(get, path = "/admin/mcp-servers", tag = "mcp-servers",
    responses((status = 200, body = ServerList), Refusals))]
async fn list(_admin: UserAtLeast<Admin>, State(state): State<AppState>) -> Json<ServerList> {
    Json(ServerList { servers: state.upstreams.list() })
}

#[utoipa::path(get, path = "/admin/mcp-servers/{name}", tag = "mcp-servers", params(("name" = String, Path)),
    responses((status = 200, body = UpstreamStatus), Refusals))]
async fn show(
    _admin: UserAtLeast<Admin>,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<UpstreamStatus>> {
    Ok(Json(state.upstreams.get(&name)?))
}

#[utoipa::path(delete, path = "/admin/mcp-servers/{name}", tag = "mcp-servers", params(("name" = String, Path)),
    responses((status = 204, description = "Removed"), Refusals))]
async fn remove(
    admin: UserAtLeast<SuperAdmin>,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    mcp_servers::remove(&state.upstreams, &admin.actor(), &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Reconnects now and lists the server's tools again. 503 when the server cannot be reached.
#[utoipa::path(post, path = "/admin/mcp-servers/{name}/refresh", tag = "mcp-servers",
    params(("name" = String, Path)),
    responses((status = 200, body = UpstreamStatus), Refusals,
        (status = 503, description = "The server cannot be reached now", body = crate::http::error::ErrorBody)))]
async fn refresh(
    _admin: UserAtLeast<Admin>,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<UpstreamStatus>> {
    Ok(Json(state.upstreams.refresh(&name).await?))
}
