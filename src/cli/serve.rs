use tokio_util::sync::CancellationToken;

use super::Database;
use crate::config::ServeArgs;
use crate::startup::{Application, Settings};

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    crate::shutdown::cancel_on_signal(shutdown.clone());
    let database = Database::open(&args.database).await?;
    let result = async {
        crate::db::migrate(&database.pool).await?;
        let app = Application::build(Settings::from_args(&args), database.pool.clone(), shutdown.clone()).await?;
        if args.demo {
            crate::demo::set_up(app.state(), &args.database.data_dir).await?;
        }
        app.run_until_stopped().await
    }
    .await;
    // Stop the managed database even when the server failed to start.
    database.close().await?;
    result
}
