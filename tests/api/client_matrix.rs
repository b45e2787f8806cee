//! The client matrix of issue 11: every stock MCP client (the Python SDK 2.x, FastMCP 4.x,
//! the TypeScript SDK 1.32, rmcp's client), for a tool without and one with an
//! `outputSchema`, in every outcome a call through the gateway can have. Each cell checks
//! what the client hands its caller: a result (which one), or the MCP error the gateway
//! meant — never a validation or transport failure inside the client.
//!
//! Tools: the example fs server's (rmcp, no `outputSchema`) and the Python `MCPServer`
//! test upstream's (typed, so every tool has one). The cells of one gateway run
//! concurrently, each with its own idempotency key; "upstream down" runs last, after both
//! upstreams are stopped; "expired" runs on a second gateway whose requests live 1 s.
//! The README's "Clients" table is this test's output (printed to stderr).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use alexandria_domain::request_id;
use futures::future::join_all;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::auth_helpers::*;
use crate::gateway_helpers::*;
use crate::helpers::{eventually, fresh_database, spawn_app_on, TestApp};
use crate::matrix_clients::{Clients, McpClient, Scenario, CLIENT_DEADLINE};
use crate::peers::peers;

const PASS_AGENT: &str = "pass";
const GATED_AGENT: &str = "gated";
/// Long enough for a decision made while a cell's call waits in-band, even on a busy
/// machine; "pending" cells take this long.
const IN_BAND_WAIT: Duration = Duration::from_secs(8);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The fs server's tools: no `outputSchema`.
    Untyped,
    /// The Python upstream's tools: an `outputSchema` each.
    Typed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    PassThrough,
    Pending,
    ApprovedInBand,
    ApprovedThenRetried,
    Rejected,
    Expired,
    UpstreamIsError,
    UpstreamDown,
}

const OUTCOMES: [Outcome; 8] = [
    Outcome::PassThrough,
    Outcome::Pending,
    Outcome::ApprovedInBand,
    Outcome::ApprovedThenRetried,
    Outcome::Rejected,
    Outcome::Expired,
    Outcome::UpstreamIsError,
    Outcome::UpstreamDown,
];

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Self::PassThrough => "pass-through",
            Self::Pending => "pending",
            Self::ApprovedInBand => "approved during the in-band wait",
            Self::ApprovedThenRetried => "approved, then retried",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
            Self::UpstreamIsError => "upstream `isError`",
            Self::UpstreamDown => "upstream down",
        }
    }
}

/// The tool and arguments of a cell: a gated call goes through `gated`, the rest through
/// `pass`, and every call of a gated cell has its own idempotency key.
fn call_of(kind: Kind, outcome: Outcome, key: &str) -> (&'static str, &'static str, Value) {
    let agent = match outcome {
        Outcome::PassThrough | Outcome::UpstreamDown => PASS_AGENT,
        _ => GATED_AGENT,
    };
    let (tool, arguments) = match (kind, outcome) {
        (Kind::Untyped, Outcome::PassThrough | Outcome::UpstreamDown) => ("echo", json!({"message": "hello"})),
        (Kind::Untyped, Outcome::UpstreamIsError) => ("read_file", json!({"path": "/missing.txt"})),
        (Kind::Untyped, _) => ("write_file", json!({"path": format!("/{key}.txt"), "content": "matrix"})),
        (Kind::Typed, Outcome::UpstreamIsError) => ("fail", json!({"message": "on purpose"})),
        (Kind::Typed, _) => ("add", json!({"a": 40, "b": 2})),
    };
    (agent, tool, arguments)
}

/// One gateway with both upstreams and the two agents.
struct Gateway {
    app: TestApp,
    admin: Session,
    pass_token: String,
    gated_token: String,
}

impl Gateway {
    async fn start(settings: alexandria::startup::Settings, fs: &StoppableFs, python_url: &str) -> Self {
        let app = spawn_app_on(fresh_database().await, settings).await;
        let admin = admin_session(&app).await;
        register_server(&app, &admin, &fs.config()).await;
        register_server(&app, &admin, &json!({"name": "py", "transport": "streamable_http", "url": python_url})).await;
        let pass_token = agent_token(&app, &admin, PASS_AGENT, &["echo", "add"], &[]).await;
        let gated = ["write_file", "read_file", "add", "fail"];
        let gated_token = agent_token(&app, &admin, GATED_AGENT, &gated, &gated).await;
        Self { app, admin, pass_token, gated_token }
    }

    fn scenario(&self, kind: Kind, outcome: Outcome, key: &str) -> Scenario {
        let (agent, tool, arguments) = call_of(kind, outcome, key);
        let token = if agent == PASS_AGENT { &self.pass_token } else { &self.gated_token };
        Scenario {
            url: self.app.url(&format!("/mcp/agents/{agent}")),
            token: token.clone(),
            tool: tool.to_owned(),
            arguments,
            key: Some(key.to_owned()),
        }
    }

    /// Waits until the cell's permission request exists, or until the client has given up
    /// without making one (then the cell's expectation reports what the client saw). Slow
    /// machines start a Python driver slowly, so the bound is the client's own deadline.
    async fn requested(&self, id: Uuid, client_done: &AtomicBool) -> bool {
        eventually(CLIENT_DEADLINE, "the cell's permission request exists or the client gave up", || async {
            client_done.load(Ordering::Acquire) || !event_types(&self.app.db.pool, id).await.is_empty()
        })
        .await;
        !event_types(&self.app.db.pool, id).await.is_empty()
    }

    /// Runs the client's call while `decide` runs once the request exists.
    async fn run_and_decide<D: std::future::Future<Output = ()>>(
        &self,
        clients: &Clients,
        client: McpClient,
        scenario: &Scenario,
        id: Uuid,
        decide: impl FnOnce() -> D,
    ) -> Value {
        let client_done = AtomicBool::new(false);
        let run = async {
            let seen = clients.run(client, scenario).await;
            client_done.store(true, Ordering::Release);
            seen
        };
        let decide = async {
            if self.requested(id, &client_done).await {
                decide().await;
            }
        };
        tokio::join!(run, decide).0
    }

    /// Runs one cell for one client: what the client finally returned or raised.
    async fn cell(&self, clients: &Clients, client: McpClient, kind: Kind, outcome: Outcome) -> Value {
        let key = format!("{outcome:?}-{kind:?}-{}", client.name()).to_lowercase();
        let scenario = self.scenario(kind, outcome, &key);
        let id = request_id(GATED_AGENT, &key);
        match outcome {
            Outcome::ApprovedInBand | Outcome::UpstreamIsError => {
                let approve = || async {
                    approve_ok(&self.app, &self.admin, id).await;
                };
                self.run_and_decide(clients, client, &scenario, id, approve).await
            }
            Outcome::Rejected => {
                let refuse = || async {
                    let response = reject(&self.app, &self.admin, &id.to_string(), "not in the matrix").await;
                    assert_eq!(response.status(), 200, "reject {id}");
                };
                self.run_and_decide(clients, client, &scenario, id, refuse).await
            }
            Outcome::ApprovedThenRetried => {
                let first = clients.run(client, &scenario).await;
                if let Err(why) = expect(kind, Outcome::Pending, client, &first) {
                    return json!({"first call": first, "not pending": why});
                }
                approve_ok(&self.app, &self.admin, id).await;
                clients.run(client, &scenario).await
            }
            _ => clients.run(client, &scenario).await,
        }
    }
}

fn returned(seen: &Value) -> Result<&Value, String> {
    seen.get("returned").ok_or_else(|| format!("expected a result, got {seen}"))
}

fn text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_default()
}

fn approval_meta(result: &Value) -> &Value {
    &result["_meta"][APPROVAL_META]
}

/// Checks what a client saw in a cell; `Ok` is the cell's text for the README table.
fn expect(kind: Kind, outcome: Outcome, client: McpClient, seen: &Value) -> Result<String, String> {
    let fastmcp_raises_on_error = client == McpClient::FastMcp;
    let check = |ok: bool, why: &str| if ok { Ok(()) } else { Err(format!("{why}: {seen}")) };
    let mcp_error = |code: i64, message: &str| -> Result<String, String> {
        let raised = seen.get("raised").ok_or_else(|| format!("expected MCP error {code}, got {seen}"))?;
        check(raised["class"] == client.mcp_error_class(), "not the client's MCP error class")?;
        check(raised["code"] == code, "another code")?;
        // The TypeScript SDK prefixes "MCP error <code>: ".
        check(raised["message"].as_str().is_some_and(|m| m.contains(message)), "another message")?;
        Ok(format!("raises `{}` {code} `{message}…`", short_class(client.mcp_error_class())))
    };
    // A tool-level error result: FastMCP's `call_tool` raises it as `ToolError(<text>)`.
    let error_result = |contains: &str| -> Result<String, String> {
        if fastmcp_raises_on_error {
            let raised = seen.get("raised").ok_or_else(|| format!("expected ToolError, got {seen}"))?;
            check(raised["class"] == "fastmcp.exceptions.ToolError", "not FastMCP's ToolError")?;
            check(raised["message"].as_str().is_some_and(|m| m.contains(contains)), "another message")?;
            return Ok("raises `ToolError(<text>)`".to_owned());
        }
        let result = returned(seen)?;
        check(result["isError"] == true, "not an error result")?;
        check(result.get("structuredContent").is_none(), "structuredContent on an error result")?;
        check(text(result).contains(contains), "another text")?;
        Ok("returns `isError: true` + text".to_owned())
    };
    let real = |expected_text: &str| -> Result<String, String> {
        let result = returned(seen)?;
        check(result["isError"] != true, "an error result")?;
        check(result.get("_meta").is_none_or(|meta| meta.get(APPROVAL_META).is_none()), "a pending envelope")?;
        check(text(result) == expected_text, "another text")?;
        match kind {
            Kind::Typed => {
                check(result["structuredContent"] == json!({"result": 42}), "no structured result")?;
                Ok("returns the result + `structuredContent`".to_owned())
            }
            Kind::Untyped => Ok("returns the result".to_owned()),
        }
    };
    match (outcome, kind) {
        (Outcome::PassThrough, Kind::Untyped) => real("hello"),
        (Outcome::PassThrough | Outcome::ApprovedInBand | Outcome::ApprovedThenRetried, Kind::Typed) => real("42"),
        (Outcome::ApprovedInBand | Outcome::ApprovedThenRetried, Kind::Untyped) => {
            let result = returned(seen)?;
            check(text(result).starts_with("wrote 6 bytes to /"), "not written")?;
            real(text(result))
        }
        (Outcome::Pending, Kind::Untyped) => {
            let result = returned(seen)?;
            check(result["isError"] == false, "an error result")?;
            check(approval_meta(result)["pending"] == true, "no pending _meta")?;
            Ok("returns pending text + `_meta`".to_owned())
        }
        (Outcome::Pending, Kind::Typed) => {
            let cell = error_result("needs a person's approval")?;
            if !fastmcp_raises_on_error {
                check(approval_meta(returned(seen)?)["pending"] == true, "no pending _meta")?;
                return Ok("returns `isError: true` + pending text + `_meta`".to_owned());
            }
            Ok(cell.replace("<text>", "<pending text>"))
        }
        (Outcome::Rejected, _) => mcp_error(ACCESS_DENIED, "denied: not in the matrix"),
        (Outcome::Expired, _) => mcp_error(ACCESS_DENIED, "denied: approval expired"),
        (Outcome::UpstreamIsError, Kind::Untyped) => error_result("missing.txt"),
        (Outcome::UpstreamIsError, Kind::Typed) => error_result("on purpose"),
        (Outcome::UpstreamDown, _) => mcp_error(-32603, "upstream call failed"),
    }
}

fn short_class(class: &str) -> &str {
    class.rsplit(['.', ':']).next().unwrap_or(class)
}

type Observation = (Kind, Outcome, McpClient, Value);

async fn run_cells(gateway: &Gateway, clients: &Clients, outcomes: &[Outcome]) -> Vec<Observation> {
    let mut cells = Vec::new();
    for &outcome in outcomes {
        for kind in [Kind::Untyped, Kind::Typed] {
            for client in McpClient::ALL {
                cells.push(async move { (kind, outcome, client, gateway.cell(clients, client, kind, outcome).await) });
            }
        }
    }
    join_all(cells).await
}

/// The matrix as a Markdown table, and the cells that failed.
fn report(observations: &[Observation]) -> (String, Vec<String>) {
    let mut table = String::from("| outcome |");
    let mut rule = String::from("|---|");
    for kind in [Kind::Untyped, Kind::Typed] {
        for client in McpClient::ALL {
            let schema = if kind == Kind::Typed { "with" } else { "without" };
            let _ = write!(table, " {} ({schema} `outputSchema`) |", client.name());
            rule.push_str("---|");
        }
    }
    table = format!("{table}\n{rule}\n");
    let mut failures = Vec::new();
    for outcome in OUTCOMES {
        let _ = write!(table, "| {} |", outcome.label());
        for kind in [Kind::Untyped, Kind::Typed] {
            for client in McpClient::ALL {
                let seen = observations.iter().find(|(k, o, c, _)| (*k, *o, *c) == (kind, outcome, client));
                let cell = match seen.map(|(_, _, _, seen)| expect(kind, outcome, client, seen)) {
                    Some(Ok(cell)) => cell,
                    Some(Err(why)) => {
                        failures.push(format!("{} / {kind:?} / {}: {why}", outcome.label(), client.name()));
                        "**FAILS**".to_owned()
                    }
                    None => "not run".to_owned(),
                };
                let _ = write!(table, " {cell} |");
            }
        }
        table.push('\n');
    }
    (table, failures)
}

#[tokio::test]
async fn every_stock_client_gets_a_result_or_the_gateways_mcp_error_in_every_outcome_for_both_tool_kinds() {
    let Some(peers) =
        peers("every_stock_client_gets_a_result_or_the_gateways_mcp_error_in_every_outcome_for_both_tool_kinds")
    else {
        return;
    };
    let clients = Clients::start(&peers);
    let logs = tempfile::tempdir().unwrap();
    let python_upstream = slow_python_server(&peers, &logs.path().join("calls.log")).await;
    let fs = StoppableFs::new();
    let main = Gateway::start(settings_with_wait(IN_BAND_WAIT), &fs, &python_upstream.url).await;
    let expiring = alexandria::startup::Settings {
        approval_ttl: Duration::from_secs(1),
        ..settings_with_wait(Duration::from_secs(3))
    };
    let expiry = Gateway::start(expiring, &fs, &python_upstream.url).await;

    let in_band = [
        Outcome::PassThrough,
        Outcome::Pending,
        Outcome::ApprovedInBand,
        Outcome::ApprovedThenRetried,
        Outcome::Rejected,
        Outcome::UpstreamIsError,
    ];
    let (mut observations, expired) =
        tokio::join!(run_cells(&main, &clients, &in_band), run_cells(&expiry, &clients, &[Outcome::Expired]));
    observations.extend(expired);
    expiry.app.stop().await;

    drop(python_upstream);
    fs.stop();
    observations.extend(run_cells(&main, &clients, &[Outcome::UpstreamDown]).await);

    let (table, failures) = report(&observations);
    eprintln!("\nThe client matrix:\n\n{table}");
    assert!(failures.is_empty(), "{} cells fail:\n{}\n\n{table}", failures.len(), failures.join("\n"));
    main.app.stop().await;
}
