//! Who may do what.
//!
//! - People are `users` with a role (`viewer < admin < super_admin`) and an argon2id
//!   password hash. Logging in starts a session: a 15-minute access token and a refresh
//!   token that is rotated on every use (`sessions`).
//! - Agents are `agents` rows with a tool policy and a `permissions_version`; an admin
//!   mints them 1-hour tokens carrying that version (`routes::agents`).
//! - Every token is an HS256 JWT with a `typ` claim (`jwt`); `principal` turns a bearer
//!   token into the caller, checking the database on every request.
//! - Failed logins are throttled in the database (`throttle`); the first user is created
//!   on first start (`bootstrap`).
//!
//! docs/AUTH.md describes the model for operators.

pub mod bootstrap;
pub mod jwt;
pub mod password;
pub mod principal;
pub mod sessions;
pub mod throttle;

pub use jwt::JwtKeys;
pub use principal::{
    Admin, AuthenticatedAgent, AuthenticatedUser, MinimumRole, Principal, Role, SuperAdmin, UserAtLeast, Viewer,
};
