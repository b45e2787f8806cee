//! Login sessions: the access/refresh token pair, refresh-token rotation with reuse
//! detection, and revocation.
//!
//! A session is one login. Each refresh uses up the presented refresh token and issues the
//! next one in the same family. Presenting a used token again means two parties hold the
//! family (a stolen token, or a client replaying one): the whole session is revoked, which
//! also ends its access tokens, since the principal extractor checks the session.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::jwt::{AccessClaims, Claims, JwtKeys, RefreshClaims, TokenError, ACCESS_TOKEN_TTL, REFRESH_TOKEN_TTL};
use super::AuthError;
use super::Role;

/// The body of a successful login or refresh: exactly the runbook's Step 1 shape.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    #[schema(value_type = String, example = "Bearer")]
    pub token_type: &'static str,
    pub expires_in: u64,
}

const SESSION_ENDED: &str = "session ended; log in again";

/// Starts a session for a user whose password was just checked.
pub async fn start(pool: &PgPool, keys: &JwtKeys, username: &str, role: Role) -> Result<TokenResponse, AuthError> {
    let mut tx = pool.begin().await?;
    let session_id = open(&mut tx, username).await?;
    let tokens = issue_pair(&mut tx, keys, username, role, session_id).await?;
    tx.commit().await?;
    Ok(tokens)
}

/// Inserts a new session row for `username` (a login of any kind: API tokens or the
/// console's cookie) and returns its id.
pub(super) async fn open(conn: &mut PgConnection, username: &str) -> Result<Uuid, sqlx::Error> {
    // Sessions nobody can use any more (revoked, or idle past the refresh lifetime) go
    // when their user next logs in, so the table does not grow without bound.
    sqlx::query(
        "DELETE FROM sessions WHERE username = $1
         AND (revoked_at IS NOT NULL OR last_refreshed_at < now() - make_interval(secs => $2))",
    )
    .bind(username)
    .bind(REFRESH_TOKEN_TTL.as_secs_f64())
    .execute(&mut *conn)
    .await?;
    let session_id = Uuid::new_v4();
    sqlx::query("INSERT INTO sessions (id, username) VALUES ($1, $2)")
        .bind(session_id)
        .bind(username)
        .execute(&mut *conn)
        .await?;
    Ok(session_id)
}

/// Exchanges a refresh token for a new pair, or detects its reuse and revokes the session.
pub async fn refresh(pool: &PgPool, keys: &JwtKeys, refresh_token: &str) -> Result<TokenResponse, AuthError> {
    let claims: RefreshClaims = match keys.verify(refresh_token) {
        Ok(Claims::Refresh(claims)) => claims,
        Ok(_) => return Err(AuthError::Unauthenticated("that is not a refresh token".to_owned())),
        Err(TokenError::Expired) => {
            return Err(AuthError::Unauthenticated("refresh token expired; log in again".to_owned()))
        }
        Err(TokenError::Invalid) => return Err(AuthError::Unauthenticated("invalid refresh token".to_owned())),
    };
    let mut tx = pool.begin().await?;
    // Locking the session row makes refreshes of one family take turns: of two racing
    // uses of the same token, exactly one rotates it and the other is seen as reuse.
    let session: Option<(String, Option<DateTime<Utc>>, String)> = sqlx::query_as(
        "SELECT s.username, s.revoked_at, u.role FROM sessions s JOIN users u ON u.name = s.username
         WHERE s.id = $1 FOR UPDATE OF s",
    )
    .bind(claims.sid)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((username, None, role)) = session else {
        return Err(AuthError::Unauthenticated(SESSION_ENDED.to_owned()));
    };
    let used_at: Option<Option<DateTime<Utc>>> =
        sqlx::query_scalar("SELECT used_at FROM refresh_tokens WHERE id = $1 AND session_id = $2")
            .bind(claims.jti)
            .bind(claims.sid)
            .fetch_optional(&mut *tx)
            .await?;
    match used_at {
        None => Err(AuthError::Unauthenticated("invalid refresh token".to_owned())),
        Some(Some(_)) => {
            revoke_session(&mut tx, claims.sid, "refresh token reused").await?;
            tx.commit().await?;
            tracing::warn!(user = %username, session = %claims.sid, "a used refresh token was presented again; session revoked");
            Err(AuthError::Unauthenticated(
                "this refresh token was already used; the session has been revoked, log in again".to_owned(),
            ))
        }
        Some(None) => {
            sqlx::query("UPDATE refresh_tokens SET used_at = now() WHERE id = $1")
                .bind(claims.jti)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE sessions SET last_refreshed_at = now() WHERE id = $1")
                .bind(claims.sid)
                .execute(&mut *tx)
                .await?;
            let role = Role::try_from(role).map_err(|error| AuthError::Internal(anyhow::anyhow!(error)))?;
            let tokens = issue_pair(&mut tx, keys, &username, role, claims.sid).await?;
            tx.commit().await?;
            Ok(tokens)
        }
    }
}

/// Ends one session (logout). Its refresh and access tokens stop working at once.
pub async fn revoke_session(conn: &mut PgConnection, session_id: Uuid, reason: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sessions SET revoked_at = now(), revoked_reason = $2 WHERE id = $1 AND revoked_at IS NULL")
        .bind(session_id)
        .bind(reason)
        .execute(conn)
        .await?;
    Ok(())
}

/// Ends every session of `username` except `keep` (the caller's own, when a user changes
/// their own password). Returns how many were ended.
pub async fn revoke_user_sessions(
    conn: &mut PgConnection,
    username: &str,
    keep: Option<Uuid>,
    reason: &str,
) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = $3
         WHERE username = $1 AND revoked_at IS NULL AND ($2::uuid IS NULL OR id <> $2)",
    )
    .bind(username)
    .bind(keep)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(result.rows_affected())
}

async fn issue_pair(
    conn: &mut PgConnection,
    keys: &JwtKeys,
    username: &str,
    role: Role,
    session_id: Uuid,
) -> Result<TokenResponse, AuthError> {
    let now = Utc::now();
    let refresh_id = Uuid::new_v4();
    let refresh_expires = now + REFRESH_TOKEN_TTL;
    sqlx::query("INSERT INTO refresh_tokens (id, session_id, issued_at, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(refresh_id)
        .bind(session_id)
        .bind(now)
        .bind(refresh_expires)
        .execute(conn)
        .await?;
    let access = Claims::Access(AccessClaims {
        sub: username.to_owned(),
        role,
        sid: session_id,
        iat: now.timestamp(),
        exp: (now + ACCESS_TOKEN_TTL).timestamp(),
        jti: Uuid::new_v4(),
    });
    let refresh = Claims::Refresh(RefreshClaims {
        sub: username.to_owned(),
        sid: session_id,
        iat: now.timestamp(),
        exp: refresh_expires.timestamp(),
        jti: refresh_id,
    });
    Ok(TokenResponse {
        access_token: keys.sign(&access)?,
        refresh_token: keys.sign(&refresh)?,
        token_type: "Bearer",
        expires_in: ACCESS_TOKEN_TTL.as_secs(),
    })
}
