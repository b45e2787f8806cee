//! Agents and their tokens. Reading policy needs admin, changing it super_admin:
//! `POST /admin/agents`, `GET /admin/agents`, `GET /admin/agents/{name}`,
//! `PUT /admin/agents/{name}/allowed-tools`, `PUT /admin/agents/{name}/approval-required-tools`,
//! `PUT /admin/agents/{name}/allowed-prompts`, `PUT /admin/agents/{name}/allowed-resources`,
//! `DELETE /admin/agents/{name}`; and `POST /v1/agent-token` (admin) mints a token.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::admin::agent_tokens;
use crate::admin::agents::{self, Agent, NewAgent, SurfaceList, ToolList};
use crate::http::auth::{Admin, SuperAdmin, UserAtLeast};
use crate::http::error::ApiResult;
use crate::http::extract::ApiJson;
use crate::http::openapi::Refusals;
use crate::http::AppState;
use crate::names::ToolName;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(show, delete))
        .routes(routes!(set_allowed_tools))
        .routes(routes!(set_approval_required_tools))
        .routes(routes!(set_allowed_prompts))
        .routes(routes!(set_allowed_resources))
        .routes(routes!(mint_token))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateAgent {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    allowed_tools: Vec<String>,
    #[serde(default)]
    approval_required_tools: Vec<String>,
    /// Prompts it may list and get (default none).
    #[serde(default)]
    allowed_prompts: Vec<String>,
    /// Resource URI patterns (`*`: any run of characters) it may list, read and
    /// subscribe to (default none).
    #[serde(default)]
    allowed_resources: Vec<String>,
}

#[utoipa::path(post, path = "/admin/agents", tag = "agents", request_body = CreateAgent,
    responses((status = 201, description = "Created", body = Agent), Refusals))]
async fn create(
    State(state): State<AppState>,
    caller: UserAtLeast<SuperAdmin>,
    ApiJson(request): ApiJson<CreateAgent>,
) -> ApiResult<(StatusCode, Json<Agent>)> {
    let new = NewAgent {
        name: request.name,
        description: request.description,
        allowed_tools: request.allowed_tools,
        approval_required_tools: request.approval_required_tools,
        allowed_prompts: request.allowed_prompts,
        allowed_resources: request.allowed_resources,
    };
    Ok((StatusCode::CREATED, Json(agents::create(&state.pool, &caller.actor(), new).await?)))
}

#[derive(Serialize, ToSchema)]
struct AgentList {
    agents: Vec<Agent>,
}

#[utoipa::path(get, path = "/admin/agents", tag = "agents", responses((status = 200, body = AgentList), Refusals))]
async fn list(State(state): State<AppState>, _caller: UserAtLeast<Admin>) -> ApiResult<Json<AgentList>> {
    Ok(Json(AgentList { agents: agents::list(&state.pool).await? }))
}

#[utoipa::path(get, path = "/admin/agents/{name}", tag = "agents", params(("name" = String, Path)),
    responses((status = 200, body = Agent), Refusals))]
async fn show(
    State(state): State<AppState>,
    _caller: UserAtLeast<Admin>,
    Path(name): Path<String>,
) -> ApiResult<Json<Agent>> {
    Ok(Json(agents::get(&state.pool, &agents::existing_name(&name)?).await?))
}

/// `{"tools": [...]}`: the whole new list.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ToolListBody {
    tools: Vec<String>,
}

#[utoipa::path(put, path = "/admin/agents/{name}/allowed-tools", tag = "agents", request_body = ToolListBody,
    params(("name" = String, Path)), responses((status = 200, body = Agent), Refusals))]
async fn set_allowed_tools(
    State(state): State<AppState>,
    caller: UserAtLeast<SuperAdmin>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<ToolListBody>,
) -> ApiResult<Json<Agent>> {
    let agent =
        agents::set_tools(&state.pool, &caller.actor(), &agents::existing_name(&name)?, ToolList::Allowed, body.tools)
            .await?;
    state.policy_cache.forget(&agent.name);
    Ok(Json(agent))
}

/// Runbook Step 2.
#[utoipa::path(put, path = "/admin/agents/{name}/approval-required-tools", tag = "agents",
    request_body = ToolListBody, params(("name" = String, Path)), responses((status = 200, body = Agent), Refusals))]
async fn set_approval_required_tools(
    State(state): State<AppState>,
    caller: UserAtLeast<SuperAdmin>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<ToolListBody>,
) -> ApiResult<Json<Agent>> {
    let agent = agents::set_tools(
        &state.pool,
        &caller.actor(),
        &agents::existing_name(&name)?,
        ToolList::ApprovalRequired,
        body.tools,
    )
    .await?;
    state.policy_cache.forget(&agent.name);
    Ok(Json(agent))
}

/// `{"prompts": [...]}`: the whole new list of prompt names.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PromptListBody {
    prompts: Vec<String>,
}

/// `{"resources": [...]}`: the whole new list of resource URI patterns.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ResourceListBody {
    resources: Vec<String>,
}

#[utoipa::path(put, path = "/admin/agents/{name}/allowed-prompts", tag = "agents", request_body = PromptListBody,
    params(("name" = String, Path)), responses((status = 200, body = Agent), Refusals))]
async fn set_allowed_prompts(
    State(state): State<AppState>,
    caller: UserAtLeast<SuperAdmin>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<PromptListBody>,
) -> ApiResult<Json<Agent>> {
    let name = agents::existing_name(&name)?;
    let agent =
        agents::set_surface_list(&state.pool, &caller.actor(), &name, SurfaceList::Prompts, body.prompts).await?;
    state.policy_cache.forget(&agent.name);
    Ok(Json(agent))
}

#[utoipa::path(put, path = "/admin/agents/{name}/allowed-resources", tag = "agents", request_body = ResourceListBody,
    params(("name" = String, Path)), responses((status = 200, body = Agent), Refusals))]
async fn set_allowed_resources(
    State(state): State<AppState>,
    caller: UserAtLeast<SuperAdmin>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<ResourceListBody>,
) -> ApiResult<Json<Agent>> {
    let name = agents::existing_name(&name)?;
    let list = SurfaceList::Resources;
    let agent = agents::set_surface_list(&state.pool, &caller.actor(), &name, list, body.resources).await?;
    state.policy_cache.forget(&agent.name);
    Ok(Json(agent))
}

#[utoipa::path(delete, path = "/admin/agents/{name}", tag = "agents", params(("name" = String, Path)),
    responses((status = 204, description = "Deleted"), Refusals))]
async fn delete(
    State(state): State<AppState>,
    caller: UserAtLeast<SuperAdmin>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    agents::delete(&state.pool, &caller.actor(), &agents::existing_name(&name)?).await?;
    state.policy_cache.forget(&name);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MintTokenRequest {
    agent: String,
}

/// Runbook Step 3: exactly these four fields.
#[derive(Serialize, ToSchema)]
struct MintTokenResponse {
    token: String,
    agent: String,
    effective_tools: Vec<ToolName>,
    expires_in: u64,
}

/// Bakes the agent's current policy and `permissions_version` into a 1-hour token
/// (`admin::agent_tokens::mint`). Any later policy change makes the token useless: the
/// caller must mint again.
#[utoipa::path(post, path = "/v1/agent-token", tag = "agents", request_body = MintTokenRequest,
    responses((status = 200, body = MintTokenResponse), Refusals))]
async fn mint_token(
    State(state): State<AppState>,
    caller: UserAtLeast<Admin>,
    ApiJson(request): ApiJson<MintTokenRequest>,
) -> ApiResult<Json<MintTokenResponse>> {
    let minted = agent_tokens::mint(&state.pool, &state.jwt, &caller, &request.agent).await?;
    Ok(Json(MintTokenResponse {
        token: minted.token,
        agent: minted.agent,
        effective_tools: minted.effective_tools,
        expires_in: minted.expires_in_secs,
    }))
}
