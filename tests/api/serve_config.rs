//! `alexandria serve` refuses settings it cannot honour, with a message that says why.

use crate::helpers::fresh_database;

#[tokio::test]
async fn serve_refuses_a_pool_size_that_leaves_requests_no_connections() {
    let db = fresh_database().await;
    let data_dir = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_alexandria"))
        .arg("serve")
        .env("DATABASE_URL", db.url())
        .env("ALEXANDRIA_DATA_DIR", data_dir.path())
        .env("ALEXANDRIA_LISTEN", "127.0.0.1:0")
        // Three connections hold the background workers' leadership locks (projector,
        // audit sealer, notifier).
        .env("ALEXANDRIA_DB_POOL_SIZE", "4")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ALEXANDRIA_DB_POOL_SIZE must be at least 5"), "{stderr}");
}

#[tokio::test]
async fn serve_refuses_a_log_restored_from_a_cluster_further_ahead() {
    let db = fresh_database().await;
    // What a pg_dump of a busier cluster leaves: a checkpoint at a transaction id this
    // cluster has not reached. Events appended now would sort before it, unprojected.
    sqlx::query(
        "INSERT INTO projection_checkpoints (name, last_tx_id, last_position) \
         VALUES ('permission_requests', \
                 ((pg_snapshot_xmax(pg_current_snapshot())::text::bigint + 1000000)::text)::xid8, 42) \
         ON CONFLICT (name) DO UPDATE SET last_tx_id = EXCLUDED.last_tx_id, last_position = 42",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_alexandria"))
        .arg("serve")
        .env("DATABASE_URL", db.url())
        .env("ALEXANDRIA_DATA_DIR", data_dir.path())
        .env("ALEXANDRIA_LISTEN", "127.0.0.1:0")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("the database was restored from another cluster"), "{stderr}");
    assert!(stderr.contains("docs/OPERATIONS.md"), "{stderr}");
}
