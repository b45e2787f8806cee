use tokio_util::sync::CancellationToken;

use super::Database;
use crate::cli::args::ServeArgs;
use crate::db::SchemaStatus;
use crate::startup::Application;

/// The fewest pooled connections `serve` runs with: one is the shared LISTEN session.
const MIN_REQUEST_POOL: u32 = 2;

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    crate::cli::shutdown::cancel_on_signal(shutdown.clone());
    // ALEXANDRIA_DB_POOL_SIZE bounds every connection the process opens: the pool gets
    // what the leadership locks of the background workers do not hold.
    let locks = crate::startup::leadership_connections();
    let pool_size = args.database.db_pool_size.saturating_sub(locks);
    if pool_size < MIN_REQUEST_POOL {
        anyhow::bail!(
            "ALEXANDRIA_DB_POOL_SIZE must be at least {}: {locks} connections hold the background workers' \
             leadership locks and requests need at least {MIN_REQUEST_POOL}",
            locks + MIN_REQUEST_POOL
        );
    }
    let settings = args.settings();
    let application_name = format!("alexandria {}", settings.replica_id);
    let database = Database::open_with_pool_size(&args.database, pool_size, &application_name).await?;
    let result = async {
        let Some(app) = prepare_schema_and_build(&args, settings, &database, &shutdown).await? else {
            return Ok(()); // shut down while waiting for the schema
        };
        if args.demo {
            let state = app.state();
            let public_url = &state.settings.public_url;
            super::demo::set_up(&state.upstreams, &state.pool, public_url, &args.database.data_dir).await?;
        }
        app.run_until_stopped().await
    }
    .await;
    // Stop the managed database even when the server failed to start.
    database.close().await?;
    result
}

/// Migrates (or, told not to, waits until someone has), then builds the application.
async fn prepare_schema_and_build(
    args: &ServeArgs,
    settings: crate::startup::Settings,
    database: &Database,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<Application>> {
    let pool = &database.pool;
    if args.migrate_on_start {
        crate::db::migrate(pool).await?;
    }
    let status = crate::db::schema_status(pool).await?;
    if !matches!(status, SchemaStatus::Behind { .. }) {
        crate::db::ensure_log_behind_cluster(pool).await?;
    }
    let reason = status.describe();
    match status {
        SchemaStatus::Current => {}
        SchemaStatus::Ahead { .. } => tracing::warn!(reason, "serving on a newer schema"),
        SchemaStatus::Behind { .. } => {
            let reason = reason.unwrap_or_default();
            let Some(tcp) = crate::startup::wait_for_schema(settings.listen, pool, reason, shutdown).await? else {
                return Ok(None);
            };
            crate::db::ensure_log_behind_cluster(pool).await?;
            return Ok(Some(Application::build_on(tcp, settings, pool.clone(), shutdown.clone()).await?));
        }
    }
    Ok(Some(Application::build(settings, pool.clone(), shutdown.clone()).await?))
}
