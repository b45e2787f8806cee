//! `serve` without DATABASE_URL runs its own PostgreSQL from the machine's binaries.

use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::helpers::eventually;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start(data_dir: &std::path::Path, port: u16) -> Server {
    Server(
        Command::new(env!("CARGO_BIN_EXE_alexandria"))
            .arg("serve")
            .env_remove("DATABASE_URL")
            .env("ALEXANDRIA_DATA_DIR", data_dir)
            .env("ALEXANDRIA_LISTEN", format!("127.0.0.1:{port}"))
            .env("ALEXANDRIA_ADMIN_PASSWORD", "managed-pg-test-password")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

async fn wait_ready(port: u16) {
    let client = reqwest::Client::new();
    eventually(Duration::from_secs(60), "/readyz to answer 200", || {
        let client = client.clone();
        async move {
            matches!(
                client.get(format!("http://127.0.0.1:{port}/readyz")).send().await,
                Ok(r) if r.status() == 200
            )
        }
    })
    .await;
}

fn stop(mut server: Server) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(server.0.id() as i32), nix::sys::signal::Signal::SIGTERM)
        .unwrap();
    let status = server.0.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
}

async fn cluster_identity(data_dir: &std::path::Path) -> i64 {
    use sqlx::Connection;
    let socket = std::fs::canonicalize(data_dir).unwrap().join("pg/run");
    let options = sqlx::postgres::PgConnectOptions::new().socket(socket).username("postgres").database("alexandria");
    let mut conn = sqlx::PgConnection::connect_with(&options).await.unwrap();
    sqlx::query_scalar("SELECT system_identifier FROM pg_control_system()").fetch_one(&mut conn).await.unwrap()
}

#[tokio::test]
async fn serve_without_database_url_runs_a_managed_postgres_and_reuses_its_data() {
    let dir = tempfile::tempdir().unwrap();
    // As root, PostgreSQL runs as `postgres`, which must be able to enter the directory.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data_dir = dir.path().join("data");

    let port = free_port();
    let server = start(&data_dir, port);
    wait_ready(port).await;
    assert!(data_dir.join("pg/data/PG_VERSION").is_file());
    let first_identity = cluster_identity(&data_dir).await;
    stop(server);
    assert!(!data_dir.join("pg/data/postmaster.pid").exists(), "the managed PostgreSQL stops with the server");

    let port = free_port();
    let server = start(&data_dir, port);
    wait_ready(port).await;
    assert_eq!(cluster_identity(&data_dir).await, first_identity, "the second start reuses the cluster");
    stop(server);
}
