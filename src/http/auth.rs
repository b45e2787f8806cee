//! The extractors that say who may call a route. `Principal` accepts a user's access token
//! or an agent token; `UserAtLeast<R>` accepts only users whose role is at least `R`. A
//! route states the least it accepts by the extractor it takes:
//!
//! ```ignore
//! async fn list_agents(caller: UserAtLeast<Admin>, ...)   // admin or super_admin
//! async fn mcp(caller: Principal, ...)                    // any user, or an agent
//! ```
//!
//! What a token means is decided in `crate::auth`; this module only reads the header and
//! states the route's requirement.

use std::marker::PhantomData;
use std::ops::Deref;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;

use super::error::ApiError;
use super::AppState;
use crate::auth::{authenticate, AuthenticatedUser, Principal, Role};

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // Boxed: the database lookup's future would otherwise sit inline in every
        // handler future for the whole request, which for a parked in-band waiter is
        // the whole approval wait.
        Box::pin(async move {
            let token = bearer_token(&parts.headers)?;
            Ok(authenticate(&state.pool, &state.policy_cache, &state.jwt, token).await?)
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

/// The least role a route accepts; see [`UserAtLeast`].
pub trait MinimumRole: Send + Sync {
    const ROLE: Role;
}

/// Any user, whatever the role (`auditor` included): their own session and password.
pub struct AnyUser;
/// Any user of the ladder (role `viewer` or higher; not an `auditor`).
pub struct Viewer;
/// Role `admin` or higher.
pub struct Admin;
/// Role `super_admin`.
pub struct SuperAdmin;

impl MinimumRole for AnyUser {
    const ROLE: Role = Role::Auditor;
}
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

/// A user who may read the audit evidence: an `auditor` or a `super_admin`
/// ([`Principal::audit_reader`]).
pub struct AuditReader(pub AuthenticatedUser);

impl FromRequestParts<AppState> for AuditReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(AuditReader(Principal::from_request_parts(parts, state).await?.audit_reader()?))
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
