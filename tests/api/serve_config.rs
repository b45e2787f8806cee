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
