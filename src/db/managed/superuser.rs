//! The managed cluster's superuser password and the one rule of its `pg_hba.conf`: every
//! connection, even over the private socket, authenticates with SCRAM.
//!
//! Why a password on a socket only the cluster's account can reach: a process that gets
//! into that directory anyway (root, the cluster's own account, a loosened mode) still
//! cannot connect as superuser, read `generated_secrets` or drop the append-only trigger
//! without the password. The password lives in `pg/superuser-password` (0600, owned by
//! the cluster's account, which the gateway is or, as root, can read); it is never
//! logged, and never put in a command line or in SQL text.

use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use base64::Engine as _;
use rand::RngCore as _;
use secrecy::{ExposeSecret as _, SecretString};

/// In `$ALEXANDRIA_DATA_DIR/pg`, beside the cluster.
pub const PASSWORD_FILE_NAME: &str = "superuser-password";

/// What `pg_hba.conf` says once a cluster made with `trust` (before passwords) is moved
/// over: the server listens on its Unix socket only, so one line covers every connection.
const HBA: &str = "# Written by Alexandria: the managed cluster listens on its Unix socket only,\n\
# and every connection needs the superuser's password (SCRAM).\n\
local all all scram-sha-256\n";

pub fn password_file(pg_root: &Path) -> PathBuf {
    pg_root.join(PASSWORD_FILE_NAME)
}

/// The stored password, or (when `may_create`: a new cluster, or one that does not ask
/// for a password yet) a new one written to a fresh 0600 file owned by `owner` (the
/// cluster's account, when the gateway runs as root and the cluster as `postgres`).
pub fn load_or_create(
    pg_root: &Path,
    owner: Option<&nix::unistd::User>,
    may_create: bool,
) -> anyhow::Result<SecretString> {
    let path = password_file(pg_root);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let password = text.trim_end_matches(['\n', '\r']);
            if password.is_empty() {
                bail!("{} is empty; restore the managed PostgreSQL superuser's password there", path.display());
            }
            Ok(SecretString::from(password.to_owned()))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && !may_create => bail!(
            "{} is missing, and the managed PostgreSQL asks for its superuser's password: restore the \
             file (one line, the password), or reset the password and write it there",
            path.display()
        ),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 24];
            rand::rng().fill_bytes(&mut bytes);
            let password = SecretString::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
            write_private(&path, password.expose_secret(), owner)
                .with_context(|| format!("cannot write the managed PostgreSQL password to {}", path.display()))?;
            Ok(password)
        }
        Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes a fresh 0600 file and renames it into place: never readable by others, not
/// even for a moment, and never half-written (initdb reads its first line).
fn write_private(path: &Path, password: &str, owner: Option<&nix::unistd::User>) -> anyhow::Result<()> {
    let partial = path.with_extension("partial");
    match std::fs::remove_file(&partial) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error.into()),
    }
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&partial)?;
    file.write_all(password.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    if let Some(owner) = owner {
        nix::unistd::chown(&partial, Some(owner.uid), Some(owner.gid))?;
    }
    std::fs::rename(&partial, path)?;
    Ok(())
}

/// Whether any line of the cluster's `pg_hba.conf` lets a connection in without a
/// password (`trust`, which clusters made before passwords have).
pub fn hba_trusts_anyone(data_dir: &Path) -> anyhow::Result<bool> {
    let path = data_dir.join("pg_hba.conf");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text.lines().map(|line| line.split('#').next().unwrap_or("")).any(|line| {
        let mut fields = line.split_whitespace();
        // `local DATABASE USER METHOD` or `host DATABASE USER ADDRESS METHOD`.
        fields.next().is_some() && fields.any(|field| field == "trust")
    }))
}

/// Replaces `pg_hba.conf` with [`HBA`], keeping its owner (the cluster's account); the
/// server reads it on its next reload.
pub fn write_hba(data_dir: &Path) -> anyhow::Result<()> {
    let path = data_dir.join("pg_hba.conf");
    let partial = data_dir.join("pg_hba.conf.partial");
    let owner = std::fs::metadata(data_dir)?;
    let write = || -> std::io::Result<()> {
        let _ = std::fs::remove_file(&partial);
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&partial)?;
        file.write_all(HBA.as_bytes())?;
        file.sync_all()?;
        std::os::unix::fs::chown(&partial, Some(owner.uid()), Some(owner.gid()))?;
        std::fs::rename(&partial, &path)
    };
    write().with_context(|| format!("cannot write {}", path.display()))
}

/// Gives the superuser `password`. It travels as a bound parameter, so it is in no
/// statement text the server could log or show in `pg_stat_activity`.
pub async fn set_password(
    conn: &mut sqlx::PgConnection,
    superuser: &str,
    password: &SecretString,
) -> Result<(), sqlx::Error> {
    use sqlx::Connection as _;
    let mut tx = conn.begin().await?;
    sqlx::query("SET LOCAL password_encryption = 'scram-sha-256'").execute(&mut *tx).await?;
    sqlx::query("SELECT set_config('alexandria.superuser', $1, true), set_config('alexandria.password', $2, true)")
        .bind(superuser)
        .bind(password.expose_secret())
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "DO $$ BEGIN
           EXECUTE format('ALTER ROLE %I PASSWORD %L',
                          current_setting('alexandria.superuser'), current_setting('alexandria.password'));
         END $$",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_is_found_in_any_line_but_not_in_comments() {
        let dir = tempfile::tempdir().unwrap();
        let hba = dir.path().join("pg_hba.conf");
        std::fs::write(
            &hba,
            "# local all all trust\nlocal all all scram-sha-256\nhost all all ::1/128 scram-sha-256\n",
        )
        .unwrap();
        assert!(!hba_trusts_anyone(dir.path()).unwrap());
        std::fs::write(&hba, "local all all trust\n").unwrap();
        assert!(hba_trusts_anyone(dir.path()).unwrap());
        std::fs::write(&hba, "host all all 127.0.0.1/32 trust # loopback\n").unwrap();
        assert!(hba_trusts_anyone(dir.path()).unwrap());
        write_hba(dir.path()).unwrap();
        assert!(!hba_trusts_anyone(dir.path()).unwrap());
    }

    #[test]
    fn the_password_is_made_once_private_and_then_read_back() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        assert!(load_or_create(dir.path(), None, false).is_err(), "an existing cluster's password is not replaced");
        let first = load_or_create(dir.path(), None, true).unwrap();
        let mode = std::fs::metadata(password_file(dir.path())).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(first.expose_secret().len() >= 32);
        let again = load_or_create(dir.path(), None, false).unwrap();
        assert_eq!(first.expose_secret(), again.expose_secret());
    }
}
