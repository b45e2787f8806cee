//! The managed local PostgreSQL: when no `DATABASE_URL` is given, Alexandria runs a
//! private cluster from the machine's own PostgreSQL binaries.
//!
//! Data lives in `$ALEXANDRIA_DATA_DIR/pg/data` and survives restarts. The server listens
//! on a Unix socket in `$ALEXANDRIA_DATA_DIR/pg/run` only (no TCP at all, so it cannot
//! clash with another PostgreSQL's port and nothing off the machine can reach it).
//! PostgreSQL refuses to run as root, so as root its processes run as `postgres`.
//!
//! `pg/` and its socket directory are 0700, owned by the cluster's account (the gateway's
//! user, or `postgres` under a root gateway): no other account, such as a stdio upstream
//! with its own `run_as` user, can even reach the socket. And the socket asks for the
//! superuser's password (SCRAM), kept in `pg/superuser-password` (see `superuser`); a
//! cluster made with `trust` by an earlier version is moved over on start.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context};
use secrecy::{ExposeSecret as _, SecretString};
use sqlx::postgres::PgConnectOptions;
use tokio::process::Command;

mod superuser;
pub use superuser::PASSWORD_FILE_NAME;

const DATABASE_NAME: &str = "alexandria";
const SUPERUSER: &str = "postgres";
/// The socket file is `.s.PGSQL.<port>`; with no TCP listener the port only names it.
const SOCKET_PORT: u16 = 5432;

#[derive(Debug)]
pub struct ManagedPostgres {
    bin_dir: PathBuf,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    log_file: PathBuf,
    /// The account PostgreSQL runs as when the gateway is root (`postgres`).
    run_as: Option<String>,
    /// The superuser's password (its `Debug` is redacted).
    password: SecretString,
    /// Whether this process started the server (and so should stop it).
    started_here: bool,
}

/// Finds `initdb` and `pg_ctl`: the newest `/usr/lib/postgresql/<v>/bin`, else PATH.
fn find_bin_dir() -> anyhow::Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
                return Ok(dir);
            }
        }
    }
    bail!(
        "DATABASE_URL is not set and no PostgreSQL server binaries (initdb, pg_ctl) were found \
         under /usr/lib/postgresql/*/bin or on PATH. Install them (Debian/Ubuntu: \
         `apt-get install postgresql`) or point DATABASE_URL at a running PostgreSQL."
    )
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

impl ManagedPostgres {
    /// Initialises the cluster on first use and starts it unless it is already running.
    pub async fn start(alexandria_data_dir: &Path) -> anyhow::Result<Self> {
        let bin_dir = find_bin_dir()?;
        std::fs::create_dir_all(alexandria_data_dir)
            .with_context(|| format!("cannot create {}", alexandria_data_dir.display()))?;
        let root = std::fs::canonicalize(alexandria_data_dir)?.join("pg");
        let socket_dir = root.join("run");
        std::fs::create_dir_all(&socket_dir)?;
        // Only the cluster's account enters these (the mode survives the chown below);
        // directories made by an earlier version were 0755.
        for dir in [&root, &socket_dir] {
            std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .with_context(|| format!("cannot restrict {}", dir.display()))?;
        }
        let account = if is_root() { Some(hand_over_to(SUPERUSER, &root)?) } else { None };
        let data_dir = root.join("data");
        let initialised = data_dir.join("PG_VERSION").is_file();
        let trusts = initialised && superuser::hba_trusts_anyone(&data_dir)?;
        // A new password only for a new cluster or one that does not ask for it yet.
        let may_create = !initialised || trusts;
        let password = superuser::load_or_create(&root, account.as_ref(), may_create)?;
        let mut pg = ManagedPostgres {
            bin_dir,
            data_dir,
            socket_dir,
            log_file: root.join("postgres.log"),
            run_as: account.map(|account| account.name),
            password,
            started_here: false,
        };
        if !initialised {
            tracing::info!(data_dir = %pg.data_dir.display(), "initialising the managed PostgreSQL cluster");
            let password_file = superuser::password_file(&root);
            pg.run_tool(
                "initdb",
                &[
                    "-D".as_ref(),
                    pg.data_dir.as_os_str(),
                    "-U".as_ref(),
                    SUPERUSER.as_ref(),
                    "--auth=scram-sha-256".as_ref(),
                    "--pwfile".as_ref(),
                    password_file.as_os_str(),
                    "-E".as_ref(),
                    "UTF8".as_ref(),
                ],
            )
            .await?;
        }
        if pg.is_running().await {
            tracing::info!("reusing the managed PostgreSQL that is already running");
        } else {
            pg.start_server().await?;
        }
        if trusts {
            pg.require_password().await?;
        }
        pg.ensure_database().await?;
        Ok(pg)
    }

    async fn start_server(&mut self) -> anyhow::Result<()> {
        let options =
            format!("-c listen_addresses='' -k {} -c unix_socket_permissions=0700", self.socket_dir.display());
        self.run_tool(
            "pg_ctl",
            &[
                "-D".as_ref(),
                self.data_dir.as_os_str(),
                "-l".as_ref(),
                self.log_file.as_os_str(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
                "-o".as_ref(),
                options.as_ref(),
                "start".as_ref(),
            ],
        )
        .await
        .with_context(|| format!("the managed PostgreSQL did not start; see {}", self.log_file.display()))?;
        self.started_here = true;
        tracing::info!(socket_dir = %self.socket_dir.display(), "managed PostgreSQL started");
        Ok(())
    }

    /// Moves a cluster made with `trust` (by a version before passwords) over to SCRAM:
    /// sets the stored password on the superuser while `trust` still lets us in, then
    /// rewrites `pg_hba.conf` and reloads. Safe to repeat if interrupted: the password
    /// file is written first and `trust` stays until the password is set.
    async fn require_password(&self) -> anyhow::Result<()> {
        use sqlx::Connection;
        tracing::info!("the managed PostgreSQL let local connections in without a password; requiring it now");
        let mut conn = sqlx::PgConnection::connect_with(&self.options_for("postgres"))
            .await
            .context("cannot connect to the managed PostgreSQL to set its superuser's password")?;
        superuser::set_password(&mut conn, SUPERUSER, &self.password)
            .await
            .context("cannot set the managed PostgreSQL superuser's password")?;
        superuser::write_hba(&self.data_dir)?;
        sqlx::query("SELECT pg_reload_conf()").execute(&mut conn).await.context("cannot reload pg_hba.conf")?;
        conn.close().await.ok();
        Ok(())
    }

    async fn run_tool(&self, tool: &str, args: &[&std::ffi::OsStr]) -> anyhow::Result<()> {
        let program = self.bin_dir.join(tool);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.arg("-u").arg(user).arg("--").arg(&program);
                c
            }
            None => Command::new(&program),
        };
        command.args(args).stdin(Stdio::null()).kill_on_drop(true);
        let output = command.output().await.with_context(|| format!("cannot run {}", program.display()))?;
        if !output.status.success() {
            bail!("{tool} failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr).trim());
        }
        Ok(())
    }

    async fn is_running(&self) -> bool {
        self.run_tool("pg_ctl", &["-D".as_ref(), self.data_dir.as_os_str(), "status".as_ref()]).await.is_ok()
    }

    fn options_for(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(&self.socket_dir)
            .port(SOCKET_PORT)
            .username(SUPERUSER)
            .password(self.password.expose_secret())
            .database(database)
    }

    /// Connection options for Alexandria's database in the managed cluster.
    pub fn connect_options(&self) -> PgConnectOptions {
        self.options_for(DATABASE_NAME)
    }

    async fn ensure_database(&self) -> anyhow::Result<()> {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect_with(&self.options_for("postgres"))
            .await
            .context("cannot connect to the managed PostgreSQL (its superuser password is in pg/superuser-password)")?;
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(DATABASE_NAME)
            .fetch_one(&mut conn)
            .await?;
        if !exists {
            sqlx::query(&format!("CREATE DATABASE {DATABASE_NAME}")).execute(&mut conn).await?;
        }
        conn.close().await.ok();
        Ok(())
    }

    /// Stops the server if this process started it.
    pub async fn stop(self) -> anyhow::Result<()> {
        if !self.started_here {
            return Ok(());
        }
        tracing::info!("stopping the managed PostgreSQL");
        self.run_tool(
            "pg_ctl",
            &["-D".as_ref(), self.data_dir.as_os_str(), "-m".as_ref(), "fast".as_ref(), "-w".as_ref(), "stop".as_ref()],
        )
        .await
    }
}

/// Gives the PostgreSQL directories to `user` and checks it can reach them; returns the
/// account.
fn hand_over_to(user: &str, root: &Path) -> anyhow::Result<nix::unistd::User> {
    let Some(account) = nix::unistd::User::from_name(user)? else {
        bail!(
            "running as root, the managed PostgreSQL needs the `{user}` account (it comes with the postgresql package)"
        );
    };
    for dir in [root.to_path_buf(), root.join("run"), root.join("data")] {
        if dir.exists() {
            nix::unistd::chown(&dir, Some(account.uid), Some(account.gid))?;
        }
    }
    // Every ancestor must be traversable by `user`, or PostgreSQL cannot open its
    // own directory. Say so plainly rather than loosening someone's permissions.
    use std::os::unix::fs::PermissionsExt;
    for ancestor in root.ancestors().skip(1) {
        let mode = std::fs::metadata(ancestor)?.permissions().mode();
        if mode & 0o001 == 0 {
            bail!(
                "the managed PostgreSQL runs as `{user}`, which cannot enter {} (mode {:o}); \
                 choose an ALEXANDRIA_DATA_DIR under a directory others can traverse, or `chmod o+x` it",
                ancestor.display(),
                mode & 0o777
            );
        }
    }
    Ok(account)
}
