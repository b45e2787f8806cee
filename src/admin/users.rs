//! Users: create, list, change role, reset or change a password, delete. Every change
//! appends an `admin_audit` row in its transaction. There is always at least one
//! super_admin: removing or demoting the last one is refused.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::{PgConnection, PgPool};

use crate::audit_trail;
use crate::auth::login::verify_password;
use crate::auth::throttle::{self, LoginThrottlePolicy};
use crate::auth::{password, sessions, AuthError, Role};
use crate::names::{check_principal_name, Actor, UserName};
use secrecy::{ExposeSecret, SecretString};

/// The user DTO. Never carries the password hash.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct User {
    #[sqlx(rename = "name")]
    pub username: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const USER_COLUMNS: &str = "name, role, created_at, updated_at";

/// Why a user change or lookup was refused.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// Every problem with the input, joined.
    #[error("{0}")]
    Invalid(String),
    #[error("no user named {0:?}")]
    NotFound(String),
    #[error("a user named {0:?} already exists")]
    AlreadyExists(String),
    /// The change would leave no super_admin.
    #[error("cannot {action} {user:?}: they are the last super_admin; make another user super_admin first")]
    LastSuperAdmin { action: &'static str, user: String },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// Users changing their own password gave a wrong current one.
    #[error("current_password is incorrect")]
    WrongCurrentPassword,
    /// The password check refused (throttled after failures) or failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Hashing failed, or a stored role is unreadable.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

type Result<T, E = UserError> = std::result::Result<T, E>;

fn not_found(name: &UserName) -> UserError {
    UserError::NotFound(name.to_string())
}

/// A user name from a path: one that breaks the naming rule names no user, so it is not
/// found rather than invalid.
pub fn existing_name(raw: &str) -> Result<UserName> {
    UserName::parse(raw).map_err(|_| UserError::NotFound(raw.to_owned()))
}

/// Why a password is being set, as the audit trail names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordChange {
    /// A super_admin set another user's password.
    Reset,
    /// Users changed their own (knowing the current one).
    ChangedByOwner,
}

impl PasswordChange {
    fn audit_action(self) -> &'static str {
        match self {
            PasswordChange::Reset => "user.password.reset",
            PasswordChange::ChangedByOwner => "user.password.change",
        }
    }
}

pub async fn create(
    pool: &PgPool,
    actor: &Actor,
    username: &str,
    new_password: SecretString,
    role: Role,
) -> Result<User> {
    let problems: Vec<String> =
        [check_principal_name("user", username).err(), password::policy_violation(new_password.expose_secret())]
            .into_iter()
            .flatten()
            .collect();
    if !problems.is_empty() {
        return Err(UserError::Invalid(problems.join("; ")));
    }
    let hash = password::hash(new_password).await?;
    let mut tx = pool.begin().await?;
    let created: Option<User> = sqlx::query_as(&format!(
        "INSERT INTO users (name, password_hash, role) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO NOTHING RETURNING {USER_COLUMNS}"
    ))
    .bind(username)
    .bind(hash)
    .bind(role.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(created) = created else {
        return Err(UserError::AlreadyExists(username.to_owned()));
    };
    audit_trail::record(
        &mut tx,
        actor,
        "user.create",
        username,
        None,
        Some(json!({"username": username, "role": role})),
    )
    .await?;
    tx.commit().await?;
    Ok(created)
}

pub async fn list(pool: &PgPool) -> Result<Vec<User>> {
    Ok(sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY name")).fetch_all(pool).await?)
}

async fn lock(conn: &mut PgConnection, name: &UserName) -> Result<User> {
    sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE name = $1 FOR UPDATE"))
        .bind(name.as_str())
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| not_found(name))
}

/// Locks every super_admin row, in name order. Done first by any change that could take
/// away a super_admin, so two super_admins demoting each other at once take turns (in the
/// same lock order, so they cannot deadlock) and the second sees that one is left.
async fn lock_super_admins(conn: &mut PgConnection) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar("SELECT name FROM users WHERE role = 'super_admin' ORDER BY name FOR UPDATE")
        .fetch_all(conn)
        .await?)
}

fn last_super_admin(user: &User, super_admins: &[String], action: &'static str) -> Result<()> {
    if user.role == Role::SuperAdmin && super_admins.len() <= 1 {
        return Err(UserError::LastSuperAdmin { action, user: user.username.clone() });
    }
    Ok(())
}

pub async fn set_role(pool: &PgPool, actor: &Actor, name: &UserName, role: Role) -> Result<User> {
    let mut tx = pool.begin().await?;
    let super_admins = lock_super_admins(&mut tx).await?;
    let before = lock(&mut tx, name).await?;
    if role != Role::SuperAdmin {
        last_super_admin(&before, &super_admins, "demote")?;
    }
    let after: User = sqlx::query_as(&format!(
        "UPDATE users SET role = $2, updated_at = now() WHERE name = $1 RETURNING {USER_COLUMNS}"
    ))
    .bind(name.as_str())
    .bind(role.as_str())
    .fetch_one(&mut *tx)
    .await?;
    audit_trail::record(
        &mut tx,
        actor,
        "user.role.set",
        name.as_str(),
        Some(json!({"role": before.role})),
        Some(json!({"role": after.role})),
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

pub async fn delete(pool: &PgPool, actor: &Actor, name: &UserName) -> Result<()> {
    let mut tx = pool.begin().await?;
    let super_admins = lock_super_admins(&mut tx).await?;
    let before = lock(&mut tx, name).await?;
    last_super_admin(&before, &super_admins, "delete")?;
    // Sessions and refresh tokens go with the user (ON DELETE CASCADE).
    sqlx::query("DELETE FROM users WHERE name = $1").bind(name.as_str()).execute(&mut *tx).await?;
    audit_trail::record(
        &mut tx,
        actor,
        "user.delete",
        name.as_str(),
        Some(json!({"username": before.username, "role": before.role})),
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// What setting a password did besides storing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordSet {
    pub sessions_ended: u64,
    /// A reset lifted a login lock on the user's name.
    pub login_lock_lifted: bool,
}

/// Sets a new password and ends the user's sessions, except `keep_session` (the caller's
/// own, when users change their own password). A reset also forgets the failed logins
/// counted against the name and lifts its lock: guesses at the old password say nothing
/// about the new one, and whoever reset it expects the user to log in now. The counts
/// against client addresses stay.
pub async fn set_password(
    pool: &PgPool,
    actor: &Actor,
    change: PasswordChange,
    name: &UserName,
    new_password: SecretString,
    keep_session: Option<uuid::Uuid>,
) -> Result<PasswordSet> {
    if let Some(problem) = password::policy_violation(new_password.expose_secret()) {
        return Err(UserError::Invalid(problem));
    }
    let hash = password::hash(new_password).await?;
    let mut tx = pool.begin().await?;
    lock(&mut tx, name).await?;
    sqlx::query("UPDATE users SET password_hash = $2, updated_at = now() WHERE name = $1")
        .bind(name.as_str())
        .bind(hash)
        .execute(&mut *tx)
        .await?;
    let ended = sessions::revoke_user_sessions(&mut tx, name.as_str(), keep_session, "password changed").await?;
    let login_lock_lifted = match change {
        PasswordChange::Reset => throttle::forget_username(&mut tx, name.as_str()).await?,
        PasswordChange::ChangedByOwner => false,
    };
    let mut after = json!({"sessions_revoked": ended});
    if login_lock_lifted {
        after["login_lock_lifted"] = json!(true);
    }
    audit_trail::record(&mut tx, actor, change.audit_action(), name.as_str(), None, Some(after)).await?;
    tx.commit().await?;
    Ok(PasswordSet { sessions_ended: ended, login_lock_lifted })
}

/// Users changing their own password (`PUT /auth/password`, the console's account page).
/// The new one must meet the policy (checked first, so a weak choice costs no guess); the
/// current one must be right, with wrong guesses counted by the login throttle, so a
/// stolen session alone cannot take the account over. Ends every session of the user's
/// except `keep_session`.
pub struct OwnPasswordChange<'a> {
    pub name: &'a str,
    pub current_password: SecretString,
    pub new_password: SecretString,
    pub keep_session: Option<uuid::Uuid>,
    pub address: Option<std::net::IpAddr>,
}

pub async fn change_own_password(
    pool: &PgPool,
    throttle: &LoginThrottlePolicy,
    change: OwnPasswordChange<'_>,
) -> Result<()> {
    if let Some(problem) = password::policy_violation(change.new_password.expose_secret()) {
        return Err(UserError::Invalid(format!("new_password: {problem}")));
    }
    if verify_password(pool, throttle, change.name, change.current_password, change.address).await?.is_none() {
        return Err(UserError::WrongCurrentPassword);
    }
    let name = existing_name(change.name)?;
    let actor = Actor::User(name.to_string());
    set_password(pool, &actor, PasswordChange::ChangedByOwner, &name, change.new_password, change.keep_session)
        .await
        .map(|_| ())
}
