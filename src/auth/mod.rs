//! Who may do what.
//!
//! - People are `users` with a role (`viewer < admin < super_admin`) and an argon2id
//!   password hash. Logging in starts a session: a 15-minute access token and a refresh
//!   token that is rotated on every use (`sessions`).
//! - Agents are `agents` rows with a tool policy and a `permissions_version`; an admin
//!   mints them 1-hour tokens carrying that version (`routes::agents`).
//! - Every token is an HS256 JWT with a `typ` claim (`jwt`); `principal` turns a bearer
//!   token into the caller, checking the database on every request (the HTTP layer's
//!   extractors, `http::auth`, wrap it).
//! - `login` checks a password (throttled, same work for unknown users): the one rule
//!   behind `POST /auth/login` and the console's login form.
//! - `console_session`: the console's cookie sessions, rows of the same `sessions` table.
//! - Failed logins are throttled in the database (`throttle`); the first user is created
//!   on first start (`bootstrap`).
//!
//! docs/AUTH.md describes the model for operators.

pub mod bootstrap;
pub mod console_session;
pub mod jwt;
pub mod login;
pub mod password;
pub mod policy_cache;
pub mod principal;
pub mod sessions;
pub mod throttle;

pub use jwt::JwtKeys;

/// Why a caller was not let in.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credentials, bad ones, or ones that no longer count (expired, revoked, a
    /// changed agent policy); the message says which and what to do.
    #[error("{0}")]
    Unauthenticated(String),
    /// Authenticated, but not allowed to do this.
    #[error("{0}")]
    Forbidden(String),
    #[error("too many failed logins; try again later")]
    Throttled { retry_after_secs: u64 },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}
pub use principal::{authenticate, AuthenticatedAgent, AuthenticatedUser, Principal, Role};
