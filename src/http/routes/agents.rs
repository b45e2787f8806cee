//! Agents and their tokens. Reading policy needs admin, changing it super_admin:
//! `POST /admin/agents`, `GET /admin/agents`, `GET /admin/agents/{name}`,
//! `PUT /admin/agents/{name}/allowed-tools`, `PUT /admin/agents/{name}/approval-required-tools`,
//! `DELETE /admin/agents/{name}`; and `POST /v1/agent-token` (admin) mints a token.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::admin::agent_tokens;
use crate::admin::agents::{self, Agent, NewAgent, ToolList};
use crate::http::auth::{Admin, SuperAdmin, UserAtLeast};
use crate::http::error::ApiResult;
use crate::http::extract::ApiJson;
use crate::http::AppState;
use crate::names::ToolName;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/agents", post(create).get(list))
        .route("/admin/agents/{name}", get(show).delete(delete))
        .route("/admin/agents/{name}/allowed-tools", put(set_allowed_tools))
        .route("/admin/agents/{name}/approval-required-tools", put(set_approval_required_tools))
        .route("/v1/agent-token", post(mint_token))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateAgent {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    allowed_tools: Vec<String>,
    #[serde(default)]
    approval_required_tools: Vec<String>,
}

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
    };
    Ok((StatusCode::CREATED, Json(agents::create(&state.pool, &caller.actor(), new).await?)))
}

#[derive(Serialize)]
struct AgentList {
    agents: Vec<Agent>,
}

async fn list(State(state): State<AppState>, _caller: UserAtLeast<Admin>) -> ApiResult<Json<AgentList>> {
    Ok(Json(AgentList { agents: agents::list(&state.pool).await? }))
}

async fn show(
    State(state): State<AppState>,
    _caller: UserAtLeast<Admin>,
    Path(name): Path<String>,
) -> ApiResult<Json<Agent>> {
    Ok(Json(agents::get(&state.pool, &agents::existing_name(&name)?).await?))
}

/// `{"tools": [...]}`: the whole new list.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolListBody {
    tools: Vec<String>,
}

async fn set_allowed_tools(
    State(state): State<AppState>,
    caller: UserAtLeast<SuperAdmin>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<ToolListBody>,
) -> ApiResult<Json<Agent>> {
    Ok(Json(
        agents::set_tools(&state.pool, &caller.actor(), &agents::existing_name(&name)?, ToolList::Allowed, body.tools)
            .await?,
    ))
}

/// Runbook Step 2.
async fn set_approval_required_tools(
    State(state): State<AppState>,
    caller: UserAtLeast<SuperAdmin>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<ToolListBody>,
) -> ApiResult<Json<Agent>> {
    Ok(Json(
        agents::set_tools(
            &state.pool,
            &caller.actor(),
            &agents::existing_name(&name)?,
            ToolList::ApprovalRequired,
            body.tools,
        )
        .await?,
    ))
}

async fn delete(
    State(state): State<AppState>,
    caller: UserAtLeast<SuperAdmin>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    agents::delete(&state.pool, &caller.actor(), &agents::existing_name(&name)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MintTokenRequest {
    agent: String,
}

/// Runbook Step 3: exactly these four fields.
#[derive(Serialize)]
struct MintTokenResponse {
    token: String,
    agent: String,
    effective_tools: Vec<ToolName>,
    expires_in: u64,
}

/// Bakes the agent's current policy and `permissions_version` into a 1-hour token
/// (`admin::agent_tokens::mint`). Any later policy change makes the token useless: the
/// caller must mint again.
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
