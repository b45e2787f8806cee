//! The password check of a login, shared by every front end (`POST /auth/login` and the
//! console's login form): throttling, the credentials, argon2 verification (against a
//! dummy hash for unknown users, so both cases take the same time), and recording the
//! failure or success. What a successful check starts (a token pair, a console session)
//! is the caller's business.

use std::net::IpAddr;

use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;

use super::throttle::{self, LoginThrottlePolicy, Subjects};
use super::{password, AuthError, Role};
use crate::names::is_principal_name;

/// One answer for an unknown user and a wrong password: no hint which it was.
pub const LOGIN_FAILED: &str = "invalid username or password";

/// The user's role when `password` is theirs. A locked subject is refused with
/// `Throttled` before the password is looked at; a wrong password or unknown user is
/// `Unauthenticated(LOGIN_FAILED)` and counts against the throttle.
pub async fn check_password(
    pool: &PgPool,
    policy: &LoginThrottlePolicy,
    username: &str,
    password: SecretString,
    address: Option<IpAddr>,
) -> Result<Role, AuthError> {
    verify_password(pool, policy, username, password, address)
        .await?
        .ok_or_else(|| AuthError::Unauthenticated(LOGIN_FAILED.to_owned()))
}

/// The rule behind [`check_password`], for callers that answer a wrong password in their
/// own words (a user confirming their current password): `Some(role)` when `password` is
/// the user's, `None` when it is not (the failure is counted), `Throttled` while locked.
pub async fn verify_password(
    pool: &PgPool,
    policy: &LoginThrottlePolicy,
    username: &str,
    password: SecretString,
    address: Option<IpAddr>,
) -> Result<Option<Role>, AuthError> {
    let subjects = Subjects::new(username, address);
    // Counted before the password is looked at: concurrent guesses cannot outrun the limit.
    throttle::reserve(pool, policy, &subjects).await?;
    // A name no user can have (too long, a NUL, ...) is not looked up: it is simply wrong.
    let stored = if password.expose_secret().len() > password::MAX_PASSWORD_BYTES || !is_principal_name(username) {
        None
    } else {
        credentials(pool, username).await?
    };
    let (stored_hash, role) = match stored {
        Some((hash, role)) => (Some(hash), Some(role)),
        None => (None, None),
    };
    // Too long a password is checked (and fails) against the dummy hash: same work, same
    // answer, no unbounded hashing for an unauthenticated caller.
    let candidate = if stored_hash.is_some() { password } else { SecretString::from("") };
    // Bounded: a flood of logins waits for a slot briefly, then is refused, instead of
    // taking 19 MiB and a thread each. Its reserved attempt stays counted.
    let Some(_slot) = password::hashing_slot().await else {
        return Err(AuthError::Throttled { retry_after_secs: 1 });
    };
    let password_matches = password::verify(candidate, stored_hash).await?;
    match role {
        Some(role) if password_matches => {
            throttle::settle_success(pool, &subjects).await?;
            Ok(Some(role))
        }
        _ => {
            throttle::settle_failure(pool, policy, &subjects).await?;
            Ok(None)
        }
    }
}

/// A login request that could not even be read (malformed, or text PostgreSQL cannot
/// store) still counts as a failed attempt from its address: guessing must not get free
/// tries by sending junk.
pub async fn record_unreadable_attempt(
    pool: &PgPool,
    policy: &LoginThrottlePolicy,
    address: Option<IpAddr>,
) -> Result<(), AuthError> {
    throttle::record_failure(pool, policy, &Subjects::new("", address)).await?;
    Ok(())
}

/// A user's stored password hash and role; `None` for no such user.
pub async fn credentials(pool: &PgPool, username: &str) -> Result<Option<(String, Role)>, AuthError> {
    let row: Option<(String, String)> = sqlx::query_as("SELECT password_hash, role FROM users WHERE name = $1")
        .bind(username)
        .fetch_optional(pool)
        .await?;
    row.map(|(hash, role)| Role::try_from(role).map(|role| (hash, role)))
        .transpose()
        .map_err(|error| AuthError::Internal(anyhow::anyhow!(error)))
}
