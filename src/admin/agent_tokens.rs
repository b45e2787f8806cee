//! Minting an agent's token (`POST /v1/agent-token` and the console): the agent's current
//! policy and `permissions_version` baked into a one-hour token, and an `admin_audit` row
//! saying who minted it. Any later policy change makes the token useless.

use chrono::Utc;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::agents::{self, AgentError};
use crate::auth::jwt::{AgentClaims, Claims, JwtKeys, AGENT_TOKEN_TTL};
use crate::auth::{AuthenticatedUser, Role};
use crate::names::ToolName;

/// The least role that may mint an agent token.
pub const MINTER_ROLE: Role = Role::Admin;

/// A freshly minted token: shown to its minter once, stored nowhere.
#[derive(Debug)]
pub struct MintedToken {
    pub token: String,
    pub agent: String,
    pub effective_tools: Vec<ToolName>,
    pub permissions_version: i64,
    pub expires_in_secs: u64,
}

/// Mints a token for the agent named `agent` on behalf of `minter` (whose role the caller
/// has checked against [`MINTER_ROLE`]).
pub async fn mint(
    pool: &PgPool,
    keys: &JwtKeys,
    minter: &AuthenticatedUser,
    agent: &str,
) -> Result<MintedToken, AgentError> {
    let agent = agents::get(pool, &agents::existing_name(agent)?).await?;
    let now = Utc::now();
    let expires_at = now + AGENT_TOKEN_TTL;
    let token_id = Uuid::new_v4();
    // Until upstream servers are consulted, the tools an agent can use are the ones it
    // is allowed.
    let effective_tools = agent.allowed_tools.clone();
    let claims = Claims::Agent(AgentClaims {
        sub: format!("agent:{}", agent.name),
        agent: agent.name.clone(),
        effective_tools: ToolName::strings(&effective_tools),
        approval_required_tools: ToolName::strings(&agent.approval_required_tools),
        allowed_prompts: agent.allowed_prompts.clone(),
        allowed_resources: agent.allowed_resources.clone(),
        pv: agent.permissions_version,
        iat: now.timestamp(),
        exp: expires_at.timestamp(),
        jti: token_id,
        minted_by: minter.name.clone(),
    });
    let token = keys.sign(&claims).map_err(AgentError::Signing)?;
    agents::record_token_minted(
        pool,
        &minter.actor(),
        &agent.name,
        json!({"jti": token_id, "permissions_version": agent.permissions_version, "expires_at": expires_at}),
    )
    .await?;
    Ok(MintedToken {
        token,
        agent: agent.name,
        effective_tools,
        permissions_version: agent.permissions_version,
        expires_in_secs: AGENT_TOKEN_TTL.as_secs(),
    })
}
