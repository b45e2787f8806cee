//! The first user. On a first start (no users at all) a user `admin` with role
//! `super_admin` is created, with `ALEXANDRIA_ADMIN_PASSWORD` or else a generated password
//! written to `$ALEXANDRIA_DATA_DIR/admin-password` (mode 0600). The log says where the
//! password is, never what it is.
//!
//! "No users at all", not "no user named admin": an operator who created their own
//! super_admin and deleted `admin` must not see it come back on the next restart.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::json;
use sqlx::PgPool;

use super::{password, Role};
use secrecy::{ExposeSecret, SecretString};

use crate::names::Actor;

pub const ADMIN_USERNAME: &str = "admin";
pub const PASSWORD_FILE_NAME: &str = "admin-password";

pub async fn ensure_admin(
    pool: &PgPool,
    data_dir: &Path,
    configured_password: Option<&SecretString>,
) -> anyhow::Result<()> {
    // The usual case, every start but the first: nothing to do, and no slow hashing.
    if users_exist(pool).await? {
        if configured_password.is_some() {
            tracing::info!("users exist; ALEXANDRIA_ADMIN_PASSWORD is only used on the first start and was ignored");
        }
        return Ok(());
    }
    let (password, generated) = match configured_password {
        Some(configured) => {
            if let Some(problem) = password::policy_violation(configured.expose_secret()) {
                anyhow::bail!("ALEXANDRIA_ADMIN_PASSWORD is not acceptable: {problem}");
            }
            (configured.clone(), false)
        }
        None => (SecretString::from(password::generate()), true),
    };
    // Hashed before the transaction, so no transaction stays open for the slow part.
    let hash = password::hash(password.clone()).await?;
    let mut tx = pool.begin().await?;
    // Replicas starting together all try; the primary key lets one insert, and the others
    // (after waiting for its commit) insert nothing and stop.
    let created: Option<String> = sqlx::query_scalar(
        "INSERT INTO users (name, password_hash, role) SELECT $1, $2, $3
         WHERE NOT EXISTS (SELECT 1 FROM users)
         ON CONFLICT (name) DO NOTHING RETURNING name",
    )
    .bind(ADMIN_USERNAME)
    .bind(hash)
    .bind(Role::SuperAdmin.as_str())
    .fetch_optional(&mut *tx)
    .await
    .context("cannot create the admin user")?;
    if created.is_none() {
        return Ok(());
    }
    crate::audit_trail::record(
        &mut tx,
        &Actor::System("bootstrap"),
        "user.create",
        ADMIN_USERNAME,
        None,
        Some(json!({"username": ADMIN_USERNAME, "role": Role::SuperAdmin})),
    )
    .await?;
    // The file is written before the commit: if writing fails, no user exists whose
    // password nobody knows, and the next start tries again.
    let file = if generated { Some(write_password_file(data_dir, password.expose_secret())?) } else { None };
    tx.commit().await.context("cannot create the admin user")?;
    match file {
        Some(path) => tracing::warn!(
            path = %path.display(),
            "created user admin (super_admin) with a generated password; read it from this file (mode 0600)"
        ),
        None => tracing::info!("created user admin (super_admin) with the password from ALEXANDRIA_ADMIN_PASSWORD"),
    }
    Ok(())
}

async fn users_exist(conn: impl sqlx::PgExecutor<'_>) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users)").fetch_one(conn).await
}

/// Writes the password to a fresh 0600 file and renames it into place, so the file is
/// never readable by others, not even for a moment, and never half-written.
fn write_password_file(data_dir: &Path, password: &str) -> anyhow::Result<PathBuf> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let path = data_dir.join(PASSWORD_FILE_NAME);
    let partial = data_dir.join(format!(".{PASSWORD_FILE_NAME}.partial"));
    match std::fs::remove_file(&partial) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error).with_context(|| format!("cannot remove {}", partial.display())),
    }
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&partial)?;
        file.write_all(password.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&partial, &path)
    };
    write().with_context(|| format!("cannot write the admin password to {}", path.display()))?;
    Ok(path)
}
