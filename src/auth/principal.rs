//! The one place a token becomes a caller: [`authenticate`] turns a user's access token or
//! an agent token into a [`Principal`], and [`Principal::user_at_least`] checks a role.
//! The HTTP layer's extractors (`http::auth`) are thin wrappers around these two.
//!
//! Both look at the database on every request (no cache): a deleted user, a revoked
//! session or a changed agent policy takes effect the moment it commits, on every replica.

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use super::jwt::{AccessClaims, AgentClaims, Claims, JwtKeys, TokenError};
use super::policy_cache::{Lookup, PolicyCache};
use super::AuthError;
use crate::names::Actor;

/// What a user may do. Ordered: each role may do everything the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads the evidence — the event log, the admin audit trail, the audit checkpoints —
    /// and nothing else (no requests, decisions or settings). Outside the ladder: ordered
    /// below `viewer` so that no "at least" check admits it; the audit routes name it
    /// ([`Principal::audit_reader`]).
    Auditor,
    Viewer,
    Admin,
    SuperAdmin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Auditor => "auditor",
            Role::Viewer => "viewer",
            Role::Admin => "admin",
            Role::SuperAdmin => "super_admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for Role {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        match value.as_str() {
            "auditor" => Ok(Role::Auditor),
            "viewer" => Ok(Role::Viewer),
            "admin" => Ok(Role::Admin),
            "super_admin" => Ok(Role::SuperAdmin),
            other => Err(format!("unknown role {other:?}")),
        }
    }
}

/// A person, authenticated by an access token of a live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedUser {
    pub name: String,
    /// The role stored now, not the one in the token: a demotion takes effect at once.
    pub role: Role,
    pub session_id: Uuid,
}

/// An agent, authenticated by a token minted at its current policy version. The tool
/// lists are those baked into the token, which equal the stored ones because any change
/// to them bumps the version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedAgent {
    pub name: String,
    pub effective_tools: Vec<String>,
    pub approval_required_tools: Vec<String>,
    pub allowed_prompts: Vec<String>,
    pub allowed_resources: Vec<String>,
    pub permissions_version: i64,
    pub token_id: Uuid,
}

/// Whoever is calling: a user or an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    User(AuthenticatedUser),
    Agent(AuthenticatedAgent),
}

impl Principal {
    /// The actor name used in event metadata and the admin audit trail.
    pub fn actor(&self) -> Actor {
        match self {
            Principal::User(user) => user.actor(),
            Principal::Agent(agent) => Actor::Agent(agent.name.clone()),
        }
    }
}

impl AuthenticatedUser {
    pub fn actor(&self) -> Actor {
        Actor::User(self.name.clone())
    }
}

const AGENT_POLICY_CHANGED: &str = "agent policy changed; mint a new token";

/// The caller a bearer token stands for, checked against the database (an agent's policy
/// version through `policies`, the in-memory cache of it).
pub async fn authenticate(
    pool: &PgPool,
    policies: &PolicyCache,
    keys: &JwtKeys,
    token: &str,
) -> Result<Principal, AuthError> {
    let claims = keys.verify(token).map_err(|error| match error {
        TokenError::Expired => AuthError::Unauthenticated("token expired; refresh it or log in again".to_owned()),
        TokenError::Invalid => AuthError::Unauthenticated("invalid token".to_owned()),
    })?;
    match claims {
        Claims::Access(claims) => authenticate_user(pool, claims).await.map(Principal::User),
        Claims::Agent(claims) => authenticate_agent(pool, policies, claims).await.map(Principal::Agent),
        Claims::Refresh(_) => Err(AuthError::Unauthenticated(
            "a refresh token is only accepted by POST /auth/refresh; send an access token".to_owned(),
        )),
    }
}

impl Principal {
    /// The user, if this is a user whose role is at least `role`. Agent tokens are refused:
    /// agents never administer anything.
    pub fn user_at_least(self, role: Role) -> Result<AuthenticatedUser, AuthError> {
        match self {
            Principal::Agent(_) => {
                Err(AuthError::Forbidden("agent tokens are not accepted here; use a user's access token".to_owned()))
            }
            Principal::User(user) if user.role >= role => Ok(user),
            Principal::User(user) => {
                Err(AuthError::Forbidden(format!("this needs role {role} or higher; you are {}", user.role)))
            }
        }
    }
}

impl Principal {
    /// The user, if they may read the audit evidence (the event log with its seals, the
    /// admin audit trail, the signed checkpoints): an `auditor` or a `super_admin`.
    pub fn audit_reader(self) -> Result<AuthenticatedUser, AuthError> {
        match self {
            Principal::User(user) if user.role == Role::Auditor || user.role >= Role::SuperAdmin => Ok(user),
            Principal::User(user) => Err(AuthError::Forbidden(format!(
                "this needs role auditor or {}; you are {}",
                Role::SuperAdmin,
                user.role
            ))),
            agent => agent.user_at_least(Role::SuperAdmin),
        }
    }
}

async fn authenticate_user(pool: &PgPool, claims: AccessClaims) -> Result<AuthenticatedUser, AuthError> {
    let role: Option<String> = sqlx::query_scalar(
        "SELECT u.role FROM sessions s JOIN users u ON u.name = s.username
         WHERE s.id = $1 AND s.username = $2 AND s.revoked_at IS NULL",
    )
    .bind(claims.sid)
    .bind(&claims.sub)
    .fetch_optional(pool)
    .await?;
    let Some(role) = role else {
        return Err(AuthError::Unauthenticated("session ended; log in again".to_owned()));
    };
    let role = Role::try_from(role).map_err(|error| AuthError::Internal(anyhow::anyhow!(error)))?;
    Ok(AuthenticatedUser { name: claims.sub, role, session_id: claims.sid })
}

async fn authenticate_agent(
    pool: &PgPool,
    policies: &PolicyCache,
    claims: AgentClaims,
) -> Result<AuthenticatedAgent, AuthError> {
    let current = match policies.lookup(&claims.agent) {
        Lookup::Cached(version) if version == claims.pv => Some(version),
        Lookup::Cached(_) => {
            policies.recheck();
            permissions_version(pool, &claims.agent).await?
        }
        Lookup::Miss { epoch } => {
            let current = permissions_version(pool, &claims.agent).await?;
            if let Some(version) = current {
                policies.remember(&claims.agent, version, epoch);
            }
            current
        }
        Lookup::Bypass => permissions_version(pool, &claims.agent).await?,
    };
    match current {
        None => Err(AuthError::Unauthenticated(format!("agent {:?} no longer exists", claims.agent))),
        Some(version) if version != claims.pv => Err(AuthError::Unauthenticated(AGENT_POLICY_CHANGED.to_owned())),
        Some(_) => Ok(AuthenticatedAgent {
            name: claims.agent,
            effective_tools: claims.effective_tools,
            approval_required_tools: claims.approval_required_tools,
            allowed_prompts: claims.allowed_prompts,
            allowed_resources: claims.allowed_resources,
            permissions_version: claims.pv,
            token_id: claims.jti,
        }),
    }
}

async fn permissions_version(pool: &PgPool, agent: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT permissions_version FROM agents WHERE name = $1").bind(agent).fetch_optional(pool).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_from_least_to_most_powerful() {
        assert!(Role::Viewer < Role::Admin && Role::Admin < Role::SuperAdmin);
    }
}
