//! PostgreSQL restarted under the gateway: it keeps answering what needs no database,
//! `/readyz` says it is not ready while the database is gone, and afterwards it serves
//! again with nothing lost or doubled in the log. Runs its own throwaway cluster (the
//! shared one serves every other test), which needs root to start PostgreSQL as the
//! `postgres` user; elsewhere the test is skipped loudly (a failure under CI).

use std::path::PathBuf;
use std::process::Command;
use std::str::FromStr;
use std::time::Duration;

use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::auth_helpers::*;
use crate::gateway_helpers::*;
use crate::helpers::{announce_skip, eventually, spawn_app_on, under_ci, TestDatabase};

struct PrivateCluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl PrivateCluster {
    fn pg_ctl(&self, args: &[&str]) {
        let data = self.data.display().to_string();
        let socket = self.data.parent().expect("a parent").display().to_string();
        let options = format!("-c listen_addresses=127.0.0.1 -p {} -k {socket} -c fsync=off", self.port);
        let log = format!("{socket}/log");
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(self.bin.join("pg_ctl"));
        command.args(["-D", &data, "-l", &log, "-w", "-o", &options]).args(args);
        let status = command.status().expect("run pg_ctl");
        assert!(status.success(), "pg_ctl {args:?} failed (see {log})");
    }

    fn start() -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
            .filter(|bin| bin.join("initdb").exists())
            .max()?;
        if !nix::unistd::Uid::effective().is_root() {
            return None;
        }
        let dir = tempfile::tempdir().ok()?;
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).ok()?;
        let postgres = nix::unistd::User::from_name("postgres").ok()??;
        nix::unistd::chown(dir.path(), Some(postgres.uid), Some(postgres.gid)).ok()?;
        let data = dir.path().join("data");
        let initdb = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join("initdb"))
            .args(["-D", &data.display().to_string(), "-U", "postgres", "-A", "trust", "--no-sync"])
            .stdout(std::process::Stdio::null())
            .status()
            .ok()?;
        assert!(initdb.success(), "initdb failed");
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let cluster = PrivateCluster { bin, data, port, _dir: dir };
        cluster.pg_ctl(&["start"]);
        Some(cluster)
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let data = self.data.display().to_string();
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &data, "-m", "immediate", "stop"])
            .status();
    }
}

async fn ready(app: &crate::helpers::TestApp) -> u16 {
    app.client.get(app.url("/readyz")).send().await.map(|r| r.status().as_u16()).unwrap_or(0)
}

#[tokio::test]
async fn the_gateway_rides_out_a_database_restart_and_loses_or_doubles_nothing() {
    let Some(cluster) = PrivateCluster::start() else {
        assert!(!under_ci(), "CI=true but no PostgreSQL cluster could be started for this test (needs root)");
        announce_skip("the_gateway_rides_out_a_database_restart", "needs root and PostgreSQL's binaries");
        return;
    };
    let options = PgConnectOptions::from_str(&cluster.url()).unwrap();
    let pool = PgPoolOptions::new().max_connections(10).connect_with(options.clone()).await.expect("connect");
    alexandria::db::migrate(&pool).await.expect("migrate");
    let db = TestDatabase { name: "postgres".into(), options, pool };
    let app = spawn_app_on(db, settings_with_wait(Duration::from_millis(300))).await;
    let admin = admin_session(&app).await;
    let fs = register_fs(&app, &admin, "fs", None).await;
    let token = agent_token(&app, &admin, "survivor", &["write_file"], &["write_file"]).await;
    let arguments = json!({"path": "/restart.txt", "content": "after"});
    let first = call(&app, "survivor", &token, Some("k-restart"), 1, "write_file", arguments.clone()).await;
    let id = Uuid::parse_str(first["result"]["request_id"].as_str().expect("pending")).unwrap();
    assert_eq!(ready(&app).await, 200);

    cluster.pg_ctl(&["-m", "fast", "stop"]);
    eventually(Duration::from_secs(20), "/readyz says the database is gone", || async { ready(&app).await == 503 })
        .await;
    let alive = app.client.get(app.url("/healthz")).send().await.expect("healthz");
    assert_eq!(alive.status(), 200, "the process still answers");
    cluster.pg_ctl(&["start"]);
    eventually(Duration::from_secs(30), "/readyz is ready again", || async { ready(&app).await == 200 }).await;

    // Serving again: sessions, decisions, the gate and the listener all came back.
    let admin = admin_session(&app).await;
    approve_ok(&app, &admin, id).await;
    let done = call(&app, "survivor", &token, Some("k-restart"), 2, "write_file", arguments).await;
    assert_eq!(done["result"]["isError"], false, "{done}");
    assert_eq!(event_types(&app.db.pool, id).await, ["Created", "Approved", "Executed", "ResultCached"]);
    assert_eq!(fs.calls(), ["write_file"], "executed once");
    eventually(Duration::from_secs(20), "the read model caught up", || async {
        let status: Option<String> = sqlx::query_scalar("SELECT status FROM permission_requests WHERE id = $1")
            .bind(id)
            .fetch_optional(&app.db.pool)
            .await
            .unwrap_or(None);
        status.as_deref() == Some("executed")
    })
    .await;
}
