//! The one place a bearer token becomes a caller. `Principal` accepts a user's access
//! token or an agent token; `UserAtLeast<R>` accepts only users whose role is at least `R`.
//! A route states the least it accepts by the extractor it takes:
//!
//! ```ignore
//! async fn list_agents(caller: UserAtLeast<Admin>, ...)   // admin or super_admin
//! async fn mcp(caller: Principal, ...)                    // any user, or an agent
//! ```
//!
//! Both look at the database on every request (no cache): a deleted user, a revoked
//! session or a changed agent policy takes effect the moment it commits, on every replica.

use std::marker::PhantomData;
use std::ops::Deref;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use super::jwt::{AccessClaims, AgentClaims, Claims, TokenError};
use crate::error::ApiError;
use crate::startup::AppState;

/// What a user may do. Ordered: each role may do everything the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Admin,
    SuperAdmin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
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
    pub fn actor(&self) -> String {
        match self {
            Principal::User(user) => user.actor(),
            Principal::Agent(agent) => format!("agent:{}", agent.name),
        }
    }
}

impl AuthenticatedUser {
    pub fn actor(&self) -> String {
        format!("user:{}", self.name)
    }
}

const AGENT_POLICY_CHANGED: &str = "agent policy changed; mint a new token";

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // Boxed: the database lookup's future would otherwise sit inline in every
        // handler future for the whole request, which for a parked in-band waiter is
        // the whole approval wait.
        Box::pin(async move {
            let token = bearer_token(&parts.headers)?;
            let claims = state.jwt.verify(token).map_err(|error| match error {
                TokenError::Expired => ApiError::Unauthorized("token expired; refresh it or log in again".to_owned()),
                TokenError::Invalid => ApiError::Unauthorized("invalid token".to_owned()),
            })?;
            match claims {
                Claims::Access(claims) => authenticate_user(&state.pool, claims).await.map(Principal::User),
                Claims::Agent(claims) => authenticate_agent(&state.pool, claims).await.map(Principal::Agent),
                Claims::Refresh(_) => Err(ApiError::Unauthorized(
                    "a refresh token is only accepted by POST /auth/refresh; send an access token".to_owned(),
                )),
            }
        })
        .await
    }
}

/// The token of `Authorization: Bearer <token>`.
fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let malformed =
        || ApiError::Unauthorized("malformed Authorization header; send `Authorization: Bearer <token>`".to_owned());
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(ApiError::Unauthorized(
            "missing Authorization header; send `Authorization: Bearer <token>`".to_owned(),
        ));
    };
    if values.next().is_some() {
        return Err(malformed());
    }
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(char::is_whitespace) {
        return Err(malformed());
    }
    Ok(token)
}

async fn authenticate_user(pool: &PgPool, claims: AccessClaims) -> Result<AuthenticatedUser, ApiError> {
    let role: Option<String> = sqlx::query_scalar(
        "SELECT u.role FROM sessions s JOIN users u ON u.name = s.username
         WHERE s.id = $1 AND s.username = $2 AND s.revoked_at IS NULL",
    )
    .bind(claims.sid)
    .bind(&claims.sub)
    .fetch_optional(pool)
    .await?;
    let Some(role) = role else {
        return Err(ApiError::Unauthorized("session ended; log in again".to_owned()));
    };
    let role = Role::try_from(role).map_err(|error| ApiError::Internal(anyhow::anyhow!(error)))?;
    Ok(AuthenticatedUser { name: claims.sub, role, session_id: claims.sid })
}

async fn authenticate_agent(pool: &PgPool, claims: AgentClaims) -> Result<AuthenticatedAgent, ApiError> {
    let current: Option<i64> = sqlx::query_scalar("SELECT permissions_version FROM agents WHERE name = $1")
        .bind(&claims.agent)
        .fetch_optional(pool)
        .await?;
    match current {
        None => Err(ApiError::Unauthorized(format!("agent {:?} no longer exists", claims.agent))),
        Some(version) if version != claims.pv => Err(ApiError::Unauthorized(AGENT_POLICY_CHANGED.to_owned())),
        Some(_) => Ok(AuthenticatedAgent {
            name: claims.agent,
            effective_tools: claims.effective_tools,
            approval_required_tools: claims.approval_required_tools,
            permissions_version: claims.pv,
            token_id: claims.jti,
        }),
    }
}

/// The least role a route accepts; see `UserAtLeast`.
pub trait MinimumRole: Send + Sync {
    const ROLE: Role;
}

/// Any user (role `viewer` or higher).
pub struct Viewer;
/// Role `admin` or higher.
pub struct Admin;
/// Role `super_admin`.
pub struct SuperAdmin;

impl MinimumRole for Viewer {
    const ROLE: Role = Role::Viewer;
}
impl MinimumRole for Admin {
    const ROLE: Role = Role::Admin;
}
impl MinimumRole for SuperAdmin {
    const ROLE: Role = Role::SuperAdmin;
}

/// A user whose role is at least `R`. Agent tokens are refused (403): agents never
/// administer anything.
pub struct UserAtLeast<R: MinimumRole> {
    user: AuthenticatedUser,
    role: PhantomData<R>,
}

impl<R: MinimumRole> UserAtLeast<R> {
    pub fn into_inner(self) -> AuthenticatedUser {
        self.user
    }
}

impl<R: MinimumRole> Deref for UserAtLeast<R> {
    type Target = AuthenticatedUser;

    fn deref(&self) -> &AuthenticatedUser {
        &self.user
    }
}

impl<R: MinimumRole> FromRequestParts<AppState> for UserAtLeast<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match Principal::from_request_parts(parts, state).await? {
            Principal::Agent(_) => {
                Err(ApiError::Forbidden("agent tokens are not accepted here; use a user's access token".to_owned()))
            }
            Principal::User(user) if user.role >= R::ROLE => Ok(UserAtLeast { user, role: PhantomData }),
            Principal::User(user) => {
                Err(ApiError::Forbidden(format!("this needs role {} or higher; you are {}", R::ROLE, user.role)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn roles_are_ordered_from_least_to_most_powerful() {
        assert!(Role::Viewer < Role::Admin && Role::Admin < Role::SuperAdmin);
    }

    #[test]
    fn only_a_single_bearer_header_yields_a_token() {
        assert_eq!(bearer_token(&headers(&["Bearer abc"])).unwrap(), "abc");
        assert_eq!(bearer_token(&headers(&["bearer abc"])).unwrap(), "abc");
        for bad in [&["Basic abc"][..], &["Bearer"], &["Bearer "], &["Bearer a b"], &["abc"], &["Bearer a", "Bearer b"]]
        {
            assert!(bearer_token(&headers(bad)).is_err(), "{bad:?}");
        }
        assert!(bearer_token(&HeaderMap::new()).is_err());
    }
}
