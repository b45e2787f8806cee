//! Three `alexandria serve` processes on one database, for the replica tests: started,
//! stopped (SIGTERM), killed (SIGKILL) and restarted one by one, with a real upstream (the
//! Python Streamable HTTP peer) and an agent whose gated tools are `add` and
//! `logged_sleep`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use alexandria_projections::leadership::holder;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

use crate::gateway_crash::{login, post_json, spawn_gateway, upstream_connected, GatewayProcess};
use crate::gateway_helpers::{slow_python_server, tool_call, SlowPythonServer};
use crate::helpers::{eventually, TestDatabase, TEST_ADMIN_PASSWORD};

pub const NAMES: [&str; 3] = ["replica-a", "replica-b", "replica-c"];
pub const AGENT: &str = "replicated";
/// Per replica: three processes (and the tests beside them) fit PostgreSQL's default 100
/// connections.
const POOL_SIZE: &str = "8";

pub struct Cluster {
    pub db: TestDatabase,
    pub replicas: Vec<Option<GatewayProcess>>,
    dirs: Vec<tempfile::TempDir>,
    settings: Vec<(&'static str, String)>,
    pub client: reqwest::Client,
    pub upstream: SlowPythonServer,
    _upstream_dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts the upstream and `replica-a`, registers the upstream and the agent through
    /// it (so it leads every worker), then `replica-b` and `replica-c`; returns once every
    /// replica has the upstream connected. `settings` go to every replica.
    pub async fn start(db: TestDatabase, peers: &Path, settings: &[(&'static str, &str)]) -> Cluster {
        let upstream_dir = tempfile::tempdir().unwrap();
        let upstream = slow_python_server(peers, &upstream_dir.path().join("calls.log")).await;
        let mut settings: Vec<(&'static str, String)> = settings.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        settings.extend([
            ("DATABASE_URL", db.url()),
            ("ALEXANDRIA_ADMIN_PASSWORD", TEST_ADMIN_PASSWORD.to_owned()),
            ("ALEXANDRIA_DB_POOL_SIZE", POOL_SIZE.to_owned()),
        ]);
        let dirs = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let mut cluster = Cluster {
            db,
            replicas: vec![None, None, None],
            dirs,
            settings,
            client: reqwest::Client::new(),
            upstream,
            _upstream_dir: upstream_dir,
        };
        cluster.start_replica(0).await;
        let admin = cluster.admin(0).await;
        let base = cluster.base(0);
        let (status, body) = post_json(
            &cluster.client,
            format!("{base}/admin/mcp-servers"),
            Some(&admin),
            &json!({"name": "py", "transport": "streamable_http", "url": cluster.upstream.url}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = post_json(
            &cluster.client,
            format!("{base}/admin/agents"),
            Some(&admin),
            &json!({"name": AGENT, "allowed_tools": ["add", "shout", "logged_sleep"],
                    "approval_required_tools": ["add", "logged_sleep"]}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        cluster.wait_for_leadership(0).await;
        cluster.start_replica(1).await;
        cluster.start_replica(2).await;
        for n in 0..3 {
            cluster.wait_for_upstream(n).await;
        }
        cluster
    }

    pub fn base(&self, n: usize) -> String {
        self.replicas[n].as_ref().unwrap_or_else(|| panic!("{} is not running", NAMES[n])).base.clone()
    }

    pub fn upstream_calls(&self) -> Vec<String> {
        crate::peers::calls_logged(&self.upstream.call_log)
    }

    pub async fn start_replica(&mut self, n: usize) {
        assert!(self.replicas[n].is_none(), "{} is running", NAMES[n]);
        let settings: Vec<(&str, String)> = self.settings.iter().map(|(k, v)| (*k, v.clone())).collect();
        let data_dir: PathBuf = self.dirs[n].path().to_owned();
        self.replicas[n] = Some(spawn_gateway(&data_dir, NAMES[n], None, &settings).await);
    }

    pub async fn wait_for_upstream(&self, n: usize) {
        let admin = self.admin(n).await;
        let base = self.base(n);
        eventually(Duration::from_secs(30), &format!("{} connected the upstream", NAMES[n]), || {
            upstream_connected(&self.client, &base, &admin, "py")
        })
        .await;
    }

    /// Waits until replica `n` leads the projection runners and the notification
    /// reconciler (the first replica started takes them all).
    pub async fn wait_for_leadership(&self, n: usize) {
        let name = format!("alexandria {}", NAMES[n]);
        eventually(Duration::from_secs(30), &format!("{} leads every worker", NAMES[n]), || async {
            leaders(&self.db.pool).await.iter().all(|leader| leader.as_deref() == Some(name.as_str()))
        })
        .await;
    }

    pub async fn admin(&self, n: usize) -> String {
        login(&self.client, &self.base(n)).await
    }

    pub async fn agent_token(&self, n: usize) -> String {
        let admin = self.admin(n).await;
        let (status, body) =
            post_json(&self.client, format!("{}/v1/agent-token", self.base(n)), Some(&admin), &json!({"agent": AGENT}))
                .await;
        assert_eq!(status, 200, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    pub fn pid(&self, n: usize) -> Pid {
        let process = self.replicas[n].as_ref().expect("running");
        Pid::from_raw(process.child.id().expect("a pid") as i32)
    }

    /// SIGKILL: no shutdown at all, its sessions end when the kernel closes its sockets.
    pub async fn kill(&mut self, n: usize) {
        let mut process = self.replicas[n].take().expect("running");
        process.child.start_kill().expect("SIGKILL");
        process.child.wait().await.expect("reap");
    }

    /// SIGTERM, as Kubernetes stops a pod; returns once the process has exited (it must
    /// exit cleanly).
    pub async fn stop(&mut self, n: usize) {
        kill(self.pid(n), Signal::SIGTERM).expect("SIGTERM");
        let mut process = self.replicas[n].take().expect("running");
        let status = tokio::time::timeout(Duration::from_secs(60), process.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not exit within 60 s of SIGTERM", NAMES[n]))
            .expect("wait");
        assert!(status.success(), "{} exited with {status}", NAMES[n]);
    }

    /// One `tools/call` as the agent to replica `n` with an idempotency key.
    pub async fn call(&self, n: usize, token: &str, key: &str, tool: &str, arguments: Value) -> Value {
        call_at(&self.client, &self.base(n), token, key, tool, arguments).await.expect("the call is answered")
    }
}

/// `tools/call` through `base`, or the transport error (connection refused, reset).
pub async fn call_at(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    key: &str,
    tool: &str,
    arguments: Value,
) -> Result<Value, reqwest::Error> {
    let mut request = client
        .post(format!("{base}/mcp/agents/{AGENT}"))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&tool_call(1, tool, arguments));
    if !key.is_empty() {
        request = request.header("x-idempotency-key", key);
    }
    let response = request.send().await?;
    assert_eq!(response.status(), 200, "tools/call {tool} through {base}");
    response.json().await
}

/// Whether a `tools/call` answer is the pending envelope (rather than the tool's result).
pub fn is_pending(body: &Value) -> bool {
    body["result"]["pending"] == true
}

/// The lock keys of every single-leader worker: each projection runner, the audit sealer
/// and the reconciler.
pub fn worker_keys() -> Vec<String> {
    let mut keys: Vec<String> =
        alexandria_projections::all().iter().map(|p| alexandria_projections::runner::lock_key(p.name())).collect();
    keys.push(alexandria_projections::runner::lock_key(alexandria::audit::SEALER_NAME));
    keys.push(alexandria::notify::reconciler::LOCK_KEY.to_owned());
    keys
}

/// Who leads each worker (`application_name` of the lock's session), in [`worker_keys`] order.
pub async fn leaders(pool: &sqlx::PgPool) -> Vec<Option<String>> {
    let mut leaders = Vec::new();
    for key in worker_keys() {
        let leader = holder(pool, &key).await.expect("pg_locks").and_then(|h| h.application_name);
        leaders.push(leader);
    }
    leaders
}
