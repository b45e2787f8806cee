//! A hostile stdio upstream against the gateway that started it (tests/peers/prying_server.py):
//! as the gateway's own user it must still get none of the gateway's secrets from its
//! environment; as another user (`run_as`) it must not reach the gateway's files nor the
//! managed PostgreSQL, whose socket wants a password anyway. The tool works throughout.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::gateway_crash::{login, post_json, spawn_gateway, start_gateway_as, GatewayProcess};
use crate::helpers::{announce_skip, eventually, fresh_database, under_ci, TEST_ADMIN_PASSWORD};
use crate::peers::repo;

/// `nobody`: when the tests run as root (which may read any process), the gateway runs as
/// this unprivileged user, and so does its upstream, as in a real deployment.
const UNPRIVILEGED: u32 = 65534;

#[tokio::test]
async fn a_stdio_upstream_cannot_read_the_gateways_environment_or_data_directory() {
    let db = fresh_database().await;
    let data_dir = tempfile::tempdir().unwrap();
    let as_root = nix::unistd::Uid::effective().is_root();
    let uid = as_root.then_some(UNPRIVILEGED);
    if let Some(uid) = uid {
        nix::unistd::chown(data_dir.path(), Some(uid.into()), Some(uid.into())).expect("chown the data dir");
    }
    let gateway = start_gateway_as(&db, data_dir.path(), "isolated", uid).await;
    let client = reqwest::Client::new();
    let admin = login(&client, &gateway.base).await;
    let script = readable_copy_of_the_prying_server(data_dir.path());

    // Not root (nor holding CAP_SETUID): it cannot start a server as another user, and
    // says so at registration instead of storing a server that never connects.
    let other_user = json!({"name": "prying-as", "transport": "stdio", "command": "python3", "args": [&script],
                            "run_as": "nobody"});
    let (status, body) =
        post_json(&client, format!("{}/admin/mcp-servers", gateway.base), Some(&admin), &other_user).await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("privilege to change user"), "{body}");
    assert!(!message.contains("cannot connect"), "refused before anything was started: {body}");

    let server = json!({"name": "prying", "transport": "stdio", "command": "python3", "args": [script]});
    let found = register_and_pry(&client, &gateway.base, &admin, &server).await;
    let shown = found.to_string();
    assert!(found.get("parent_environ").is_none(), "the gateway's environment was readable: {shown}");
    assert!(found["parent_environ_error"].as_str().is_some_and(|e| e.contains("Permission")), "{shown}");
    assert!(!shown.contains(TEST_ADMIN_PASSWORD) && !shown.contains("DATABASE_URL"), "{shown}");
    assert!(!shown.contains("ALEXANDRIA_"), "no gateway setting reached the child: {shown}");
    assert_eq!(found["cwd"], "/", "{shown}");
    assert!(!shown.contains("admin-password"), "{shown}");
}

/// With no `DATABASE_URL`, the gateway (root) runs its managed PostgreSQL as `postgres`;
/// the prying server runs as `nobody` and is told where the data directory is.
#[tokio::test]
async fn with_the_managed_postgres_a_stdio_upstream_reaches_neither_the_database_nor_the_admin_password() {
    let Some(pg_bin) = root_with_postgres("managed_postgres_isolation") else { return };
    let dir = tempfile::tempdir().unwrap();
    // `postgres` and `nobody` must be able to enter it (the script is in it).
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data_dir = dir.path().join("data");
    let script = readable_copy_of_the_prying_server(dir.path());
    let gateway = ManagedGateway { process: spawn_gateway(&data_dir, "managed", None, &[]).await, data_dir, pg_bin };
    let data_dir = &gateway.data_dir;
    let admin_password = std::fs::read_to_string(data_dir.join("admin-password")).expect("the generated password");
    let client = reqwest::Client::new();
    let (status, body) = post_json(
        &client,
        format!("{}/auth/login", gateway.process.base),
        None,
        &json!({"username": "admin", "password": admin_password}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let admin = body["access_token"].as_str().expect("a token").to_owned();

    let server = json!({"name": "prying", "transport": "stdio", "command": "python3", "run_as": "nobody",
                        "args": [script, "--data-dir", data_dir]});
    let found = register_and_pry(&client, &gateway.process.base, &admin, &server).await;
    let shown = found.to_string();
    assert_eq!(found["uid"], UNPRIVILEGED, "{shown}");
    let denied = |value: &Value| value["error"].as_str().is_some_and(|e| e.contains("Permission"));
    assert!(denied(&found["socket_dir"]), "the socket directory was open: {shown}");
    assert!(denied(&found["database"]), "the database socket was reachable: {shown}");
    let files = &found["files"];
    assert!(denied(&files[data_dir.join("admin-password").display().to_string()]), "{shown}");
    assert!(denied(&files[data_dir.join("pg/superuser-password").display().to_string()]), "{shown}");

    // The cluster: a socket directory only its account enters, a password file only it
    // reads, and even a process that does enter (root here) gets nowhere without it.
    let mode = |path: PathBuf| std::fs::metadata(path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(data_dir.join("pg/run")), 0o700);
    assert_eq!(mode(data_dir.join("pg/superuser-password")), 0o600);
    let refused = superuser_connection(data_dir, None).await.expect_err("a connection without a password");
    assert!(refused.to_string().contains("password"), "{refused}");
    let stored_password = std::fs::read_to_string(data_dir.join("pg/superuser-password")).unwrap();
    let mut conn = superuser_connection(data_dir, Some(stored_password.trim())).await.expect("the stored password");
    let jwt_secret: String =
        sqlx::query_scalar("SELECT value FROM generated_secrets").fetch_one(&mut conn).await.expect("the JWT secret");
    for secret in [admin_password.trim(), stored_password.trim(), &jwt_secret] {
        assert!(!shown.contains(secret), "a secret reached the upstream: {shown}");
    }
}

/// `run_as` on a gateway running as root (the tests' user in CI): the child is that user,
/// with only its own group, and cannot read a 0600 file of the gateway's; an account the
/// host does not have is refused at registration.
#[tokio::test]
async fn a_stdio_upstream_with_run_as_runs_as_that_user_and_cannot_read_the_gateways_files() {
    if !nix::unistd::Uid::effective().is_root() {
        assert!(!under_ci(), "CI=true but the tests do not run as root, which run_as needs");
        announce_skip("a_stdio_upstream_with_run_as_runs_as_that_user", "needs root");
        return;
    }
    let db = fresh_database().await;
    let data_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(data_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = readable_copy_of_the_prying_server(data_dir.path());
    let secret_file = data_dir.path().join("gateway-only");
    let secret = format!("gateway-only-{}", uuid::Uuid::new_v4());
    std::fs::write(&secret_file, &secret).unwrap();
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let gateway = start_gateway_as(&db, data_dir.path(), "runs-as", None).await;
    let client = reqwest::Client::new();
    let admin = login(&client, &gateway.base).await;

    let unknown = json!({"name": "prying", "transport": "stdio", "command": "python3", "args": [&script],
                         "run_as": "no-such-account-here"});
    let (status, body) =
        post_json(&client, format!("{}/admin/mcp-servers", gateway.base), Some(&admin), &unknown).await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("no account named \"no-such-account-here\""), "{body}");
    assert!(!message.contains("cannot connect"), "refused before anything was started: {body}");

    let server = json!({"name": "prying", "transport": "stdio", "command": "python3", "run_as": "nobody",
                        "args": [script, "--read", secret_file]});
    let found = register_and_pry(&client, &gateway.base, &admin, &server).await;
    let shown = found.to_string();
    let nobody = nix::unistd::User::from_name("nobody").unwrap().expect("the nobody account");
    assert_eq!((&found["uid"], &found["gid"]), (&json!(UNPRIVILEGED), &json!(nobody.gid.as_raw())), "{shown}");
    assert_eq!(found["groups"], json!([]), "no supplementary group of the gateway's: {shown}");
    assert_eq!(found["home"], json!(nobody.dir), "HOME is the account's: {shown}");
    let read = &found["files"][secret_file.display().to_string()];
    assert!(read["error"].as_str().is_some_and(|e| e.contains("Permission")), "{shown}");
    assert!(!shown.contains(&secret), "{shown}");
    assert!(found["parent_environ_error"].as_str().is_some_and(|e| e.contains("Permission")), "{shown}");

    let listed = client
        .get(format!("{}/admin/mcp-servers/prying", gateway.base))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("GET the server");
    let listed: Value = listed.json().await.expect("the server DTO");
    assert_eq!(listed["run_as"], "nobody", "{listed}");
}

/// A copy of the prying server any user may read (the checkout may be private).
fn readable_copy_of_the_prying_server(dir: &Path) -> PathBuf {
    let script = dir.join("prying_server.py");
    std::fs::copy(repo().join("tests/peers/prying_server.py"), &script).expect("copy the prying server");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    script
}

/// Registers `server`, lets an agent call its `pry` tool, and returns what it found.
async fn register_and_pry(client: &reqwest::Client, base: &str, admin: &str, server: &Value) -> Value {
    let (status, body) = post_json(client, format!("{base}/admin/mcp-servers"), Some(admin), server).await;
    assert_eq!(status, 201, "{body}");
    let agent = json!({"name": "pryer", "description": "", "allowed_tools": ["pry"], "approval_required_tools": []});
    let (status, body) = post_json(client, format!("{base}/admin/agents"), Some(admin), &agent).await;
    assert_eq!(status, 201, "{body}");
    let (status, minted) =
        post_json(client, format!("{base}/v1/agent-token"), Some(admin), &json!({"agent": "pryer"})).await;
    assert_eq!(status, 200, "{minted}");
    let token = minted["token"].as_str().expect("a token");

    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "pry", "arguments": {}}});
    let found = std::cell::RefCell::new(Value::Null);
    eventually(Duration::from_secs(20), "the prying tool answers", || {
        let request = post_json(client, format!("{base}/mcp/agents/pryer"), Some(token), &call);
        let found = &found;
        async move {
            let (status, body) = request.await;
            let text = body["result"]["content"][0]["text"].as_str().map(str::to_owned);
            match (status, text) {
                (200, Some(text)) => {
                    *found.borrow_mut() = serde_json::from_str(&text).expect("the tool's JSON");
                    true
                }
                _ => false,
            }
        }
    })
    .await;
    found.into_inner()
}

/// PostgreSQL's server binaries when the tests run as root (the managed cluster then
/// runs as `postgres`); otherwise None, after saying so (a failure under CI).
fn root_with_postgres(test: &str) -> Option<PathBuf> {
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .max();
    let ready = nix::unistd::Uid::effective().is_root() && bin.is_some();
    if !ready {
        assert!(!under_ci(), "CI=true but {test} cannot run: it needs root and PostgreSQL's binaries");
        announce_skip(test, "needs root and PostgreSQL's binaries");
    }
    bin.filter(|_| ready)
}

async fn superuser_connection(data_dir: &Path, password: Option<&str>) -> Result<sqlx::PgConnection, sqlx::Error> {
    use sqlx::Connection;
    let mut options = sqlx::postgres::PgConnectOptions::new()
        .socket(data_dir.join("pg/run"))
        .username("postgres")
        .database("alexandria");
    if let Some(password) = password {
        options = options.password(password);
    }
    sqlx::PgConnection::connect_with(&options).await
}

/// A gateway with its managed PostgreSQL, stopped gracefully (so the cluster stops with
/// it) even when the test fails; failing that, the cluster is stopped directly.
struct ManagedGateway {
    process: GatewayProcess,
    data_dir: PathBuf,
    pg_bin: PathBuf,
}

impl Drop for ManagedGateway {
    fn drop(&mut self) {
        if let Some(pid) = self.process.child.id() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM);
        }
        let postmaster = self.data_dir.join("pg/data/postmaster.pid");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while postmaster.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if postmaster.exists() {
            let _ = std::process::Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(self.pg_bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.data_dir.join("pg/data"))
                .args(["-m", "immediate", "stop"])
                .status();
        }
    }
}
