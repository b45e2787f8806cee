//! The MCP endpoint's protocol edges: framing errors, lifecycle methods, version
//! negotiation, who may call through which path, and refusals that never reach upstream.

use std::time::Duration;

use serde_json::{json, Value};

use crate::auth_helpers::*;
use crate::gateway_helpers::*;
use crate::helpers::TestApp;

struct Edge {
    app: TestApp,
    admin: Session,
    fs: FsUpstream,
    token: String,
}

const PATH: &str = "/mcp/agents/edge-agent";

/// `edge-agent` may use echo, read_file, write_file (gated) and `ghost_tool`, which no
/// upstream offers; `list_directory` exists upstream but is not allowed.
async fn edge() -> Edge {
    let app = spawn_gateway(Duration::from_millis(300)).await;
    let admin = admin_session(&app).await;
    let fs = register_fs(&app, &admin, "fs", None).await;
    let token =
        agent_token(&app, &admin, "edge-agent", &["echo", "read_file", "write_file", "ghost_tool"], &["write_file"])
            .await;
    Edge { app, admin, fs, token }
}

impl Edge {
    async fn raw(&self, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        post_raw(&self.app, path, Some(&self.token), headers, body.as_bytes().to_vec()).await
    }

    async fn send(&self, message: &Value) -> Reply {
        post_mcp(&self.app, PATH, &self.token, None, message).await
    }
}

fn assert_rpc_error(reply: &Reply, http: u16, code: i64, id: Value, needle: &str) {
    assert_eq!(reply.status, http, "{}", reply.text);
    assert_eq!(reply.body["jsonrpc"], "2.0", "{}", reply.text);
    assert_eq!(reply.body["id"], id, "{}", reply.text);
    let (got, message) = rpc_error(&reply.body);
    assert_eq!(got, code, "{}", reply.text);
    assert!(message.contains(needle), "{message:?} should say {needle:?}");
}

#[tokio::test]
async fn framing_errors_get_their_json_rpc_codes() {
    let e = edge().await;
    let malformed = e.raw(PATH, &[], r#"{"jsonrpc": "2.0", "id": 1, "method": "#).await;
    assert_rpc_error(&malformed, 400, PARSE_ERROR, Value::Null, "parse error");

    let batch = e.raw(PATH, &[], r#"[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]"#).await;
    assert_rpc_error(&batch, 400, INVALID_REQUEST, Value::Null, "batch");

    let scalar = e.raw(PATH, &[], "42").await;
    assert_rpc_error(&scalar, 400, INVALID_REQUEST, Value::Null, "must be an object");

    let no_version = e.raw(PATH, &[], r#"{"id": 7, "method": "ping"}"#).await;
    assert_rpc_error(&no_version, 400, INVALID_REQUEST, json!(7), "jsonrpc must be \"2.0\"");

    let bad_id = e.raw(PATH, &[], r#"{"jsonrpc": "2.0", "id": {"x": 1}, "method": "ping"}"#).await;
    assert_rpc_error(&bad_id, 400, INVALID_REQUEST, Value::Null, "id must be a string or a number");

    let unknown = e.send(&request(3, "sampling/createMessage", json!({}))).await;
    assert_rpc_error(&unknown, 200, METHOD_NOT_FOUND, json!(3), "sampling/createMessage");

    let bad_params =
        e.raw(PATH, &[], r#"{"jsonrpc": "2.0", "id": "s-1", "method": "tools/list", "params": [1]}"#).await;
    assert_rpc_error(&bad_params, 200, INVALID_PARAMS, json!("s-1"), "params must be an object");

    // Over 4 MiB: 413, as a JSON-RPC error body.
    let oversized =
        format!(r#"{{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {{"pad": "{}"}}}}"#, "x".repeat(5 << 20));
    let too_big = e.raw(PATH, &[], &oversized).await;
    assert_eq!(too_big.status, 413, "{}", too_big.text);
    assert_eq!(rpc_error(&too_big.body).0, INVALID_REQUEST);

    // GET is not part of this endpoint (no server-initiated stream).
    for path in ["/mcp", PATH] {
        let get = e.app.client.get(e.app.url(path)).bearer_auth(&e.token).send().await.unwrap();
        assert_eq!(get.status(), 405, "GET {path}");
    }

    // A notification, and a response to a server request: 202, no body.
    let notified = e.raw(PATH, &[], r#"{"jsonrpc": "2.0", "method": "notifications/initialized"}"#).await;
    assert_eq!((notified.status, notified.text.as_str()), (202, ""));
    let cancelled = e
        .raw(PATH, &[], r#"{"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}"#)
        .await;
    assert_eq!((cancelled.status, cancelled.text.as_str()), (202, ""));
    let response = e.raw(PATH, &[], r#"{"jsonrpc": "2.0", "id": 5, "result": {}}"#).await;
    assert_eq!((response.status, response.text.as_str()), (202, ""));

    assert!(e.fs.calls().is_empty());
    e.app.stop().await;
}

#[tokio::test]
async fn lifecycle_methods_negotiate_the_protocol_version() {
    let e = edge().await;
    for version in ["2025-06-18", "2025-11-25"] {
        let reply = e
            .send(&request(
                1,
                "initialize",
                json!({
                    "protocolVersion": version,
                    "capabilities": {},
                    "clientInfo": {"name": "edge-test", "version": "1"},
                }),
            ))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let session = reply.headers.get("mcp-session-id").expect("Mcp-Session-Id on initialize").to_str().unwrap();
        assert!(!session.is_empty() && session.chars().all(|c| c.is_ascii_graphic()), "{session:?}");
        let result = &reply.body["result"];
        assert_eq!(result["protocolVersion"], version, "the client's version, which we speak");
        assert_eq!(result["serverInfo"]["name"], "alexandria");
        assert!(result["serverInfo"]["version"].is_string());
        assert!(result["capabilities"]["tools"].is_object(), "{result}");
        assert!(result["instructions"].as_str().unwrap().contains("X-Idempotency-Key"));
        assert!(result.get("resultType").is_none(), "no 2026 fields in a handshake-era result");
    }
    // Two initializations get two sessions.
    let init = request(1, "initialize", json!({"protocolVersion": "2025-06-18", "capabilities": {}}));
    let (a, b) = (e.send(&init).await, e.send(&init).await);
    assert_ne!(a.headers["mcp-session-id"], b.headers["mcp-session-id"]);
    // A version we do not speak: our newest, for the client to decide.
    let old = e.send(&request(2, "initialize", json!({"protocolVersion": "2024-11-05", "capabilities": {}}))).await;
    assert_eq!(old.body["result"]["protocolVersion"], "2025-11-25", "{}", old.text);
    let missing = e.send(&request(3, "initialize", json!({"capabilities": {}}))).await;
    assert_rpc_error(&missing, 200, INVALID_PARAMS, json!(3), "protocolVersion");

    // server/discover (2026-07-28): stateless, no session.
    let discover = e
        .raw(PATH, &[("mcp-protocol-version", "2026-07-28")], &request(4, "server/discover", json!({})).to_string())
        .await;
    assert_eq!(discover.status, 200, "{}", discover.text);
    assert!(discover.headers.get("mcp-session-id").is_none());
    let result = &discover.body["result"];
    assert_eq!(result["supportedVersions"], json!(["2026-07-28"]), "{result}");
    assert!(result["capabilities"]["tools"].is_object(), "{result}");
    assert_eq!(result["resultType"], "complete", "{result}");
    assert_eq!(result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "alexandria", "{result}");
    assert!(result["instructions"].is_string());

    // Modern requests: resultType on tools/list, with its cache hints.
    let listed =
        e.raw(PATH, &[("mcp-protocol-version", "2026-07-28")], &request(5, "tools/list", json!({})).to_string()).await;
    assert_eq!(listed.body["result"]["resultType"], "complete", "{}", listed.text);
    assert_eq!(listed.body["result"]["cacheScope"], "private");

    // An unsupported version header: 400, -32022, naming what is supported.
    let unsupported =
        e.raw(PATH, &[("mcp-protocol-version", "1999-01-01")], &request(6, "ping", json!({})).to_string()).await;
    assert_rpc_error(&unsupported, 400, UNSUPPORTED_PROTOCOL_VERSION, json!(6), "1999-01-01");
    let data = &unsupported.body["error"]["data"];
    assert_eq!(data["requested"], "1999-01-01");
    assert!(data["supported"].as_array().unwrap().contains(&json!("2026-07-28")), "{data}");
    // Header and _meta disagreeing.
    let mismatch = e
        .raw(
            PATH,
            &[("mcp-protocol-version", "2026-07-28")],
            &request(7, "ping", json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "2025-06-18"}}))
                .to_string(),
        )
        .await;
    assert_rpc_error(&mismatch, 400, -32020, json!(7), "does not match");

    let ping = e.send(&request(8, "ping", json!({}))).await;
    assert_eq!(ping.body, json!({"jsonrpc": "2.0", "id": 8, "result": {}}));
    e.app.stop().await;
}

#[tokio::test]
async fn tools_list_shows_only_the_callers_tools_with_upstream_schemas_and_approval_flags() {
    let e = edge().await;
    let reply = e.send(&request(1, "tools/list", json!({}))).await;
    let tools = reply.body["result"]["tools"].as_array().expect("tools").clone();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    // ghost_tool is allowed but offered by no upstream; list_directory is offered but not allowed.
    assert_eq!(names, ["echo", "read_file", "write_file"], "{}", reply.text);
    let write = tools.iter().find(|t| t["name"] == "write_file").unwrap();
    assert_eq!(write["inputSchema"]["required"], json!(["path", "content"]), "{write}");
    assert_eq!(write["annotations"]["destructiveHint"], true, "{write}");
    assert_eq!(write["_meta"]["alexandria/approval_required"], true);
    let echo = tools.iter().find(|t| t["name"] == "echo").unwrap();
    assert_eq!(echo["_meta"]["alexandria/approval_required"], false);
    e.app.stop().await;
}

#[tokio::test]
async fn refused_tool_calls_never_reach_the_upstream() {
    let e = edge().await;
    let key = [("x-idempotency-key", "k")];
    let call = |id: i64, tool: &str, arguments: Value| tool_call(id, tool, arguments);

    let not_allowed = e.send(&call(1, "list_directory", json!({"path": "/"}))).await;
    assert_rpc_error(
        &not_allowed,
        200,
        INVALID_PARAMS,
        json!(1),
        "\"list_directory\" is not available to agent \"edge-agent\"",
    );
    let not_offered = e.send(&call(2, "ghost_tool", json!({}))).await;
    assert_rpc_error(
        &not_offered,
        200,
        INVALID_PARAMS,
        json!(2),
        "no connected upstream server offers tool \"ghost_tool\"",
    );
    let unknown = e.send(&call(3, "no_such_tool", json!({}))).await;
    assert_rpc_error(&unknown, 200, INVALID_PARAMS, json!(3), "not available");
    let nameless = e.send(&request(4, "tools/call", json!({"arguments": {}}))).await;
    assert_rpc_error(&nameless, 200, INVALID_PARAMS, json!(4), "params.name");
    let bad_arguments = e.send(&request(5, "tools/call", json!({"name": "echo", "arguments": [1]}))).await;
    assert_rpc_error(&bad_arguments, 200, INVALID_PARAMS, json!(5), "arguments must be an object");
    let long_key = "k".repeat(201);
    let write = call(6, "write_file", json!({"path": "/k", "content": "k"})).to_string();
    let bad_key = e.raw(PATH, &[("x-idempotency-key", &long_key)], &write).await;
    assert_rpc_error(&bad_key, 200, INVALID_PARAMS, json!(6), "X-Idempotency-Key");
    // Gated refusals create nothing either.
    let gated_not_offered = e.raw(PATH, &key, &call(7, "ghost_tool", json!({})).to_string()).await;
    assert_rpc_error(&gated_not_offered, 200, INVALID_PARAMS, json!(7), "ghost_tool");
    assert!(e.fs.calls().is_empty(), "an upstream call was made: {:?}", e.fs.calls());
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&e.app.db.pool).await.unwrap();
    assert_eq!(events, 0, "no permission request was created");

    // The upstream's own failure is a result with isError, passed through as it is.
    let failed = e.send(&call(8, "read_file", json!({"path": "/missing.txt"}))).await;
    assert_eq!(failed.status, 200);
    assert_eq!(failed.body["result"]["isError"], true, "{}", failed.text);
    assert_eq!(e.fs.calls(), ["read_file"]);
    e.app.stop().await;
}

#[tokio::test]
async fn who_may_call_through_which_path() {
    let e = edge().await;
    let other = agent_token(&e.app, &e.admin, "other-agent", &["echo"], &[]).await;
    let list = request(1, "tools/list", json!({}));

    // An agent token on another agent's path: 403, in the API's error envelope.
    let foreign = post_mcp(&e.app, PATH, &other, None, &list).await;
    assert_eq!(foreign.status, 403, "{}", foreign.text);
    assert!(foreign.body["error"]["message"].as_str().unwrap().contains("\"other-agent\""), "{}", foreign.text);
    // On its own path and on /mcp it is itself.
    for path in ["/mcp/agents/other-agent", "/mcp"] {
        let own = post_mcp(&e.app, path, &other, None, &list).await;
        let names: Vec<&str> =
            own.body["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["echo"], "{path}: {}", own.text);
    }

    // A browser from a foreign origin is refused (DNS rebinding protection).
    let foreign_origin = e.raw(PATH, &[("origin", "https://evil.example")], &list.to_string()).await;
    assert_eq!(foreign_origin.status, 403, "{}", foreign_origin.text);
    let local_origin = e.raw(PATH, &[("origin", "http://localhost:3000")], &list.to_string()).await;
    assert_eq!(local_origin.status, 200, "{}", local_origin.text);

    // A user (admin or higher) acts through an agent's path with the agent's stored policy.
    let as_admin = post_mcp(&e.app, PATH, &e.admin.access_token, None, &list).await;
    assert_eq!(as_admin.status, 200, "{}", as_admin.text);
    let names: Vec<&str> =
        as_admin.body["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["echo", "read_file", "write_file"]);
    let echoed =
        post_mcp(&e.app, PATH, &e.admin.access_token, None, &tool_call(2, "echo", json!({"message": "by a person"})))
            .await;
    assert_eq!(echoed.body["result"]["content"][0]["text"], "by a person", "{}", echoed.text);
    let refused = post_mcp(&e.app, PATH, &e.admin.access_token, None, &tool_call(3, "list_directory", json!({}))).await;
    assert_eq!(rpc_error(&refused.body).0, INVALID_PARAMS, "the agent's policy applies to the person too");
    // A gated call by a person is still gated, and recorded as theirs.
    let write = tool_call(4, "write_file", json!({"path": "/p", "content": "p"}));
    let gated = post_mcp(&e.app, PATH, &e.admin.access_token, Some("by-admin"), &write).await;
    let id = alexandria_domain::request_id("edge-agent", "by-admin");
    assert_pending_envelope(&gated.body, 4, id, Some("by-admin"), "pending");
    let actor: String = sqlx::query_scalar("SELECT metadata->>'actor' FROM events WHERE aggregate_id = $1")
        .bind(id.to_string())
        .fetch_one(&e.app.db.pool)
        .await
        .unwrap();
    assert_eq!(actor, "user:admin");
    // A policy change applies to people at once (no token to re-mint).
    assert_eq!(set_tools(&e.app, &e.admin, "edge-agent", "approval-required-tools", &[]).await.status(), 200);
    assert_eq!(set_tools(&e.app, &e.admin, "edge-agent", "allowed-tools", &["echo"]).await.status(), 200);
    let after = post_mcp(&e.app, PATH, &e.admin.access_token, None, &list).await;
    assert_eq!(after.body["result"]["tools"].as_array().unwrap().len(), 1, "{}", after.text);
    // An unknown agent's path: 404.
    let nobody = post_mcp(&e.app, "/mcp/agents/nobody", &e.admin.access_token, None, &list).await;
    assert_eq!(nobody.status, 404, "{}", nobody.text);

    // A viewer may not act through an agent.
    create_user(&e.app, &e.admin, "edge-viewer", "viewer").await;
    let viewer = login_ok(&e.app, "edge-viewer", PASSWORD).await;
    let as_viewer = post_mcp(&e.app, PATH, &viewer.access_token, None, &list).await;
    assert_eq!(as_viewer.status, 403, "{}", as_viewer.text);

    // A user token on /mcp must say which agent it acts as: 400.
    let unscoped = post_mcp(&e.app, "/mcp", &e.admin.access_token, None, &list).await;
    assert_eq!(unscoped.status, 400, "{}", unscoped.text);
    assert!(unscoped.body["error"]["message"].as_str().unwrap().contains("/mcp/agents/{name}"), "{}", unscoped.text);

    // No credentials at all: 401.
    let anonymous = post_raw(&e.app, PATH, None, &[], list.to_string().into_bytes()).await;
    assert_eq!(anonymous.status, 401);

    e.app.stop().await;
}
