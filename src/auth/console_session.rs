//! Console sessions: a login through the console's form is a row in `sessions` (so every
//! way of ending a session ends it) holding the SHA-256 of a random secret. The browser
//! keeps `<session id>.<secret>` in a cookie; the HTTP layer sets and reads the cookie,
//! this module decides what its value means.
//!
//! A console session lasts while it is used at least once every `REFRESH_TOKEN_TTL` (the
//! same idle limit as a token session); every authenticated request records the activity.

use base64::Engine;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use super::jwt::REFRESH_TOKEN_TTL;
use super::sessions::{self, revoke_session};
use super::{AuthError, AuthenticatedUser, Role};

const SESSION_ENDED: &str = "session ended; log in again";
/// How often a console session's activity is written down.
const ACTIVITY_STAMP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// The value of a console session's cookie: `<session id>.<secret>`. Secret: `Debug` is
/// redacted, and it is never logged.
pub struct ConsoleCredential {
    pub session_id: Uuid,
    secret: SecretString,
}

impl ConsoleCredential {
    /// Parses a cookie value; `None` when it cannot be one this module issued.
    pub fn parse(value: &str) -> Option<Self> {
        let (id, secret) = value.split_once('.')?;
        let session_id = Uuid::parse_str(id).ok()?;
        let well_formed =
            secret.len() == 43 && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then(|| ConsoleCredential { session_id, secret: SecretString::from(secret) })
    }

    /// What the cookie carries.
    pub fn cookie_value(&self) -> String {
        format!("{}.{}", self.session_id, self.secret.expose_secret())
    }

    fn secret_hash(&self) -> Vec<u8> {
        Sha256::digest(self.secret.expose_secret().as_bytes()).to_vec()
    }
}

/// Starts a console session for a user whose password was just checked
/// (`login::check_password`).
pub async fn start(pool: &PgPool, username: &str) -> Result<ConsoleCredential, AuthError> {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = SecretString::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
    let mut tx = pool.begin().await?;
    let session_id = sessions::open(&mut tx, username).await?;
    let credential = ConsoleCredential { session_id, secret };
    sqlx::query("UPDATE sessions SET console_secret_hash = $2 WHERE id = $1")
        .bind(session_id)
        .bind(credential.secret_hash())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(credential)
}

/// The user a cookie stands for, with the role stored now; records the activity. Refused
/// when the session is unknown, revoked, idle too long, or the secret does not match.
pub async fn authenticate(pool: &PgPool, credential: &ConsoleCredential) -> Result<AuthenticatedUser, AuthError> {
    // One statement: the check, and the activity stamp at most once a minute (the idle
    // limit is a week; stamping every request would make each page view a write).
    // Comparing SHA-256 digests of a 256-bit secret in SQL leaks nothing a timing attack
    // could use.
    let row: Option<(String, String)> = sqlx::query_as(
        "WITH live AS (
           SELECT s.id, s.username, u.role, s.last_refreshed_at FROM sessions s JOIN users u ON u.name = s.username
           WHERE s.id = $1 AND s.console_secret_hash = $2
             AND s.revoked_at IS NULL AND s.last_refreshed_at >= now() - make_interval(secs => $3)
         ), stamped AS (
           UPDATE sessions s SET last_refreshed_at = now() FROM live
           WHERE s.id = live.id AND live.last_refreshed_at < now() - make_interval(secs => $4)
         )
         SELECT username, role FROM live",
    )
    .bind(credential.session_id)
    .bind(credential.secret_hash())
    .bind(REFRESH_TOKEN_TTL.as_secs_f64())
    .bind(ACTIVITY_STAMP_INTERVAL.as_secs_f64())
    .fetch_optional(pool)
    .await?;
    let Some((name, role)) = row else {
        return Err(AuthError::Unauthenticated(SESSION_ENDED.to_owned()));
    };
    let role = Role::try_from(role).map_err(|error| AuthError::Internal(anyhow::anyhow!(error)))?;
    Ok(AuthenticatedUser { name, role, session_id: credential.session_id })
}

/// Signs out: the session is revoked, whoever holds the cookie.
pub async fn end(pool: &PgPool, session_id: Uuid) -> Result<(), AuthError> {
    let mut conn = pool.acquire().await?;
    revoke_session(&mut conn, session_id, "logout").await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_value_parses_back_to_its_credential() {
        let credential = ConsoleCredential {
            session_id: Uuid::new_v4(),
            secret: SecretString::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 32])),
        };
        let parsed = ConsoleCredential::parse(&credential.cookie_value()).expect("parses");
        assert_eq!(parsed.session_id, credential.session_id);
        assert_eq!(parsed.secret_hash(), credential.secret_hash());
    }

    #[test]
    fn malformed_cookie_values_are_refused() {
        let id = Uuid::new_v4();
        for bad in
            ["", "x", &format!("{id}"), &format!("{id}."), &format!("{id}.short"), &format!("nope.{}", "a".repeat(43))]
        {
            assert!(ConsoleCredential::parse(bad).is_none(), "{bad:?}");
        }
        assert!(ConsoleCredential::parse(&format!("{id}.{}", "a".repeat(43))).is_some());
    }
}
