//! The managed local PostgreSQL: when no `DATABASE_URL` is given, Alexandria runs a
//! private cluster from the machine's own PostgreSQL binaries.
//!
//! Data lives in `$ALEXANDRIA_DATA_DIR/pg/data` and survives restarts. The server listens
//! on a Unix socket in `$ALEXANDRIA_DATA_DIR/pg/run` only (no TCP at all, so it cannot
//! clash with another PostgreSQL's port and nothing off the machine can reach it).
//! PostgreSQL refuses to run as root, so as root its processes run as `postgres`.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context};
use sqlx::postgres::PgConnectOptions;
use tokio::process::Command;

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
    run_as: Option<String>,
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
        let pg = ManagedPostgres {
            bin_dir,
            data_dir: root.join("data"),
            socket_dir: root.join("run"),
            log_file: root.join("postgres.log"),
            run_as: is_root().then(|| SUPERUSER.to_owned()),
            started_here: false,
        };
        std::fs::create_dir_all(&pg.socket_dir)?;
        if let Some(user) = &pg.run_as {
            pg.hand_over_to(user, &root)?;
        }
        if !pg.data_dir.join("PG_VERSION").is_file() {
            tracing::info!(data_dir = %pg.data_dir.display(), "initialising the managed PostgreSQL cluster");
            pg.run_tool(
                "initdb",
                &[
                    "-D".as_ref(),
                    pg.data_dir.as_os_str(),
                    "-U".as_ref(),
                    SUPERUSER.as_ref(),
                    "-A".as_ref(),
                    "trust".as_ref(),
                    "-E".as_ref(),
                    "UTF8".as_ref(),
                ],
            )
            .await?;
        }
        let mut pg = pg;
        if pg.is_running().await {
            tracing::info!("reusing the managed PostgreSQL that is already running");
        } else {
            let options =
                format!("-c listen_addresses='' -k {} -c unix_socket_permissions=0700", pg.socket_dir.display());
            pg.run_tool(
                "pg_ctl",
                &[
                    "-D".as_ref(),
                    pg.data_dir.as_os_str(),
                    "-l".as_ref(),
                    pg.log_file.as_os_str(),
                    "-w".as_ref(),
                    "-t".as_ref(),
                    "60".as_ref(),
                    "-o".as_ref(),
                    options.as_ref(),
                    "start".as_ref(),
                ],
            )
            .await
            .with_context(|| format!("the managed PostgreSQL did not start; see {}", pg.log_file.display()))?;
            pg.started_here = true;
            tracing::info!(socket_dir = %pg.socket_dir.display(), "managed PostgreSQL started");
        }
        pg.ensure_database().await?;
        Ok(pg)
    }

    /// Gives the PostgreSQL directories to `user` and checks it can reach them.
    fn hand_over_to(&self, user: &str, root: &Path) -> anyhow::Result<()> {
        let Some(account) = nix::unistd::User::from_name(user)? else {
            bail!("running as root, the managed PostgreSQL needs the `{user}` account (it comes with the postgresql package)");
        };
        for dir in [root, &self.socket_dir] {
            nix::unistd::chown(dir, Some(account.uid), Some(account.gid))?;
        }
        if self.data_dir.exists() {
            nix::unistd::chown(&self.data_dir, Some(account.uid), Some(account.gid))?;
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
        PgConnectOptions::new().socket(&self.socket_dir).port(SOCKET_PORT).username(SUPERUSER).database(database)
    }

    /// Connection options for Alexandria's database in the managed cluster.
    pub fn connect_options(&self) -> PgConnectOptions {
        self.options_for(DATABASE_NAME)
    }

    async fn ensure_database(&self) -> anyhow::Result<()> {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect_with(&self.options_for("postgres"))
            .await
            .context("cannot connect to the managed PostgreSQL")?;
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
