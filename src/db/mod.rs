//! Connecting to PostgreSQL and applying migrations; `managed` runs a private PostgreSQL
//! when no `DATABASE_URL` is given.

pub mod managed;
mod schema;

pub use schema::{ensure_log_behind_cluster, schema_status, MissingMigration, SchemaStatus};

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// This build's migrations. `ignore_missing`: a database a newer version has migrated
/// further still migrates (nothing to do) and serves, so an older replica can restart in
/// the middle of a rolling upgrade (see [`SchemaStatus::Ahead`]).
pub static MIGRATOR: sqlx::migrate::Migrator = {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.ignore_missing = true;
    migrator
};

pub const DEFAULT_POOL_SIZE: u32 = 16;

pub async fn connect(options: PgConnectOptions, max_connections: u32) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .context("cannot connect to PostgreSQL")
}

pub fn parse_url(url: &str) -> anyhow::Result<PgConnectOptions> {
    // The URL may hold a password: never echo it back.
    PgConnectOptions::from_str(url).map_err(|_| anyhow::anyhow!("DATABASE_URL is not a valid PostgreSQL URL"))
}

pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR.run(pool).await.context("cannot apply database migrations")
}
