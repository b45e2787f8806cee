//! The `alexandria` command line: the server and the operator and auditor commands.

pub mod args;
pub mod demo;
mod events;
pub mod process;
mod projections;
mod reset_password;
mod serve;
pub mod shutdown;
pub mod telemetry;
pub mod verify;

use clap::{Parser, Subcommand};
use sqlx::PgPool;

use crate::cli::args::{DatabaseArgs, ServeArgs};
use crate::db::managed::ManagedPostgres;

#[derive(Debug, Parser)]
#[command(name = "alexandria", version, about = "MCP gateway with per-call human approval")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server, the projector and the background workers.
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate(DatabaseArgs),
    /// Inspect or rebuild read models.
    #[command(subcommand)]
    Projections(projections::ProjectionsCommand),
    /// Export or replay the event log, or skip past an event nobody can read.
    #[command(subcommand)]
    Events(events::EventsCommand),
    /// Replace the generated JWT signing secret stored in the database (used when
    /// ALEXANDRIA_JWT_SECRET is unset). Restart every replica afterwards; every session and
    /// agent token ends.
    RotateJwtSecret(DatabaseArgs),
    /// Set a user's password to the line given on standard input, end their sessions and
    /// lift a login lock on their name: the way back in when no super_admin can log in.
    ResetPassword(reset_password::ResetPasswordArgs),
    /// The audit chain's signing key.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print the public key checkpoints are signed with (hex), generating the key file
    /// if there is none yet. Give it to auditors.
    PublicKey {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        key: verify::AuditKeyArgs,
    },
    /// Seal everything settled now, both chains (what a serving replica's sealer does
    /// continuously), e.g. on a database no gateway serves, before an export. Safe while
    /// `serve` runs: sealers take turns.
    Seal {
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

/// `alexandria migrate`: safe beside running replicas and other `migrate` runs (sqlx holds
/// a PostgreSQL advisory lock while it applies migrations).
async fn migrate_and_report(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    let before = crate::db::schema_status(pool).await?;
    crate::db::migrate(pool).await?;
    match before {
        crate::db::SchemaStatus::Behind { missing } => {
            for migration in &missing {
                eprintln!("pending: {} ({})", migration.version, migration.description);
            }
            // Under the lock, this run or one beside it applied them.
            eprintln!(
                "migrations applied: the schema is current ({} were pending when this run started)",
                missing.len()
            );
        }
        status @ crate::db::SchemaStatus::Ahead { .. } => {
            eprintln!("nothing to apply: {}", status.describe().unwrap_or_default());
        }
        crate::db::SchemaStatus::Current => eprintln!("nothing to apply: the schema is current"),
    }
    Ok(())
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Migrate(args) => {
            let database = Database::open(&args).await?;
            let result = migrate_and_report(&database.pool).await;
            database.close().await?;
            result
        }
        Command::Projections(command) => projections::run(command).await,
        Command::Events(command) => events::run(command).await,
        Command::Audit(AuditCommand::PublicKey { database, key }) => verify::print_public_key(&database, &key),
        Command::Audit(AuditCommand::Seal { database }) => {
            let db = Database::open(&database).await?;
            let result = async {
                crate::db::migrate(&db.pool).await?;
                verify::seal_now(&db.pool).await
            }
            .await;
            db.close().await?;
            result
        }
        Command::ResetPassword(args) => reset_password::run(args).await,
        Command::RotateJwtSecret(args) => {
            let database = Database::open(&args).await?;
            let result = async {
                crate::db::migrate(&database.pool).await?;
                crate::auth::jwt::rotate_stored_secret(&database.pool).await
            }
            .await;
            database.close().await?;
            result?;
            eprintln!("JWT secret rotated and every session ended; restart every replica, then log in again and re-mint agent tokens");
            if std::env::var_os("ALEXANDRIA_JWT_SECRET").is_some() {
                eprintln!(
                    "note: ALEXANDRIA_JWT_SECRET is set here; replicas configured with it sign with it, not with the \
                     stored secret: set a new value on every replica and restart them"
                );
            }
            Ok(())
        }
    }
}

/// An open database: a pool, plus the managed PostgreSQL if this process started one.
pub struct Database {
    pub pool: PgPool,
    managed: Option<ManagedPostgres>,
}

impl Database {
    pub async fn open(args: &DatabaseArgs) -> anyhow::Result<Self> {
        Self::open_with_pool_size(args, args.db_pool_size, "alexandria").await
    }

    /// `application_name` names this process's sessions in `pg_stat_activity` (and so
    /// which replica leads each worker).
    pub async fn open_with_pool_size(
        args: &DatabaseArgs,
        pool_size: u32,
        application_name: &str,
    ) -> anyhow::Result<Self> {
        let (options, managed) = match &args.database_url {
            Some(url) => (crate::db::parse_url(url)?, None),
            None => {
                let managed = ManagedPostgres::start(&args.data_dir).await?;
                (managed.connect_options(), Some(managed))
            }
        };
        let pool = crate::db::connect(options.application_name(application_name), pool_size).await?;
        Ok(Database { pool, managed })
    }

    /// Closes the pool and stops the managed PostgreSQL if this process started it.
    pub async fn close(self) -> anyhow::Result<()> {
        self.pool.close().await;
        if let Some(managed) = self.managed {
            managed.stop().await?;
        }
        Ok(())
    }
}
