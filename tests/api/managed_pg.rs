//! `serve` without DATABASE_URL runs its own PostgreSQL from the machine's binaries.

use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::helpers::eventually;

/// A gateway with its managed PostgreSQL. Dropped (a failed test), it is asked to stop,
/// so the cluster stops with it instead of outliving the test; killed if it will not.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        if !matches!(self.0.try_wait(), Ok(None)) {
            return;
        }
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while matches!(self.0.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
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

/// A superuser session on the managed cluster, with the stored password or none.
async fn connect(data_dir: &std::path::Path, with_password: bool) -> Result<sqlx::PgConnection, sqlx::Error> {
    use sqlx::Connection;
    let root = std::fs::canonicalize(data_dir).unwrap().join("pg");
    let mut options =
        sqlx::postgres::PgConnectOptions::new().socket(root.join("run")).username("postgres").database("alexandria");
    if with_password {
        let password = std::fs::read_to_string(root.join("superuser-password")).expect("the password file");
        options = options.password(password.trim());
    }
    sqlx::PgConnection::connect_with(&options).await
}

async fn cluster_identity(data_dir: &std::path::Path) -> i64 {
    let mut conn = connect(data_dir, true).await.unwrap();
    sqlx::query_scalar("SELECT system_identifier FROM pg_control_system()").fetch_one(&mut conn).await.unwrap()
}

/// The socket asks for the password; the stored one works.
async fn assert_password_required(data_dir: &std::path::Path) {
    let refused = connect(data_dir, false).await.expect_err("a superuser connection without a password");
    assert!(refused.to_string().contains("password"), "{refused}");
    cluster_identity(data_dir).await;
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
    assert_password_required(&data_dir).await;
    stop(server);
    assert!(!data_dir.join("pg/data/postmaster.pid").exists(), "the managed PostgreSQL stops with the server");

    let port = free_port();
    let server = start(&data_dir, port);
    wait_ready(port).await;
    assert_eq!(cluster_identity(&data_dir).await, first_identity, "the second start reuses the cluster");
    stop(server);
}

/// A cluster made by a version before passwords (`initdb -A trust`) is moved over on
/// start: the superuser gets the stored password and `pg_hba.conf` asks for it.
#[tokio::test]
async fn a_managed_cluster_made_with_trust_auth_is_moved_to_passwords() {
    let Some(bin) = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .max()
    else {
        crate::helpers::announce_skip("a_managed_cluster_made_with_trust_auth", "no PostgreSQL binaries");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data_dir = dir.path().join("data");
    let pg = data_dir.join("pg");
    std::fs::create_dir_all(&pg).unwrap();
    let mut initdb = Command::new(bin.join("initdb"));
    if nix::unistd::Uid::effective().is_root() {
        let postgres = nix::unistd::User::from_name("postgres").unwrap().expect("the postgres account");
        nix::unistd::chown(&pg, Some(postgres.uid), Some(postgres.gid)).unwrap();
        initdb = Command::new("runuser");
        initdb.args(["-u", "postgres", "--"]).arg(bin.join("initdb"));
    }
    let made = initdb
        .arg("-D")
        .arg(pg.join("data"))
        .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(made.success(), "initdb -A trust");

    let port = free_port();
    let server = start(&data_dir, port);
    wait_ready(port).await;
    assert_password_required(&data_dir).await;
    let hba = std::fs::read_to_string(pg.join("data/pg_hba.conf")).unwrap();
    assert!(!hba.lines().any(|line| !line.starts_with('#') && line.contains("trust")), "{hba}");
    stop(server);

    // And the next start simply uses it.
    let port = free_port();
    let server = start(&data_dir, port);
    wait_ready(port).await;
    assert_password_required(&data_dir).await;
    stop(server);
}
