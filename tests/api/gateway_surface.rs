//! Prompts, resources, completions and logging through the gateway, governed like tools:
//! an agent lists, reads, gets and subscribes to only the prompts and resource URI
//! patterns its policy names (none by default), and a change to them bumps its
//! `permissions_version`. Upstreams: the conformance reference server (with a
//! `tool_prefix`, which prompt names get too) and a Python server with one prompt that
//! records every `logging/setLevel` it receives.

use std::path::Path;

use serde_json::{json, Value};
use tokio::process::Child;

use crate::auth_helpers::{admin_session, create_agent, mint_agent_token, Session};
use crate::conformance::{set_agent_list, ReferenceServer};
use crate::gateway_helpers::{post_mcp, python_peer, register_server, request, rpc_error, INVALID_PARAMS};
use crate::helpers::{spawn_app, TestApp};
use crate::peers::peers;

const RESOURCE_NOT_FOUND: i64 = -32002;

/// The Python peer plus a prompt `greet(name)` and a `logging/setLevel` handler that
/// appends each level it is set to to `$PEER_LEVEL_LOG`.
const LEVEL_RECORDING_SERVER: &str = r#"
import os, sys
sys.path.insert(0, sys.argv[1])
sys.argv = [sys.argv[0]] + sys.argv[2:]
import mcp_types as types
import python_http_server as peer

@peer.server.prompt()
def greet(name: str) -> str:
    """Greet someone."""
    return f"Hello, {name}!"

async def set_level(ctx, params):
    with open(os.environ["PEER_LEVEL_LOG"], "a") as log:
        log.write(f"{params.level}\n")
    return types.EmptyResult()

peer.server._lowlevel_server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, set_level)
peer.main()
"#;

struct LevelRecordingServer {
    url: String,
    levels: tempfile::NamedTempFile,
    _child: Child,
}

impl LevelRecordingServer {
    async fn start(peers: &Path) -> Self {
        let levels = tempfile::NamedTempFile::new().expect("a level log");
        let (url, child) = python_peer(peers, LEVEL_RECORDING_SERVER, &[("PEER_LEVEL_LOG", levels.path())]).await;
        Self { url, levels, _child: child }
    }

    fn levels(&self) -> Vec<String> {
        std::fs::read_to_string(self.levels.path()).unwrap_or_default().lines().map(str::to_owned).collect()
    }
}

struct Setup {
    app: TestApp,
    admin: Session,
    _reference: ReferenceServer,
    python: LevelRecordingServer,
}

async fn setup(peers: &Path) -> Setup {
    let reference = ReferenceServer::start(peers).await;
    let python = LevelRecordingServer::start(peers).await;
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    let config = json!({"name": "ref", "transport": "streamable_http", "url": reference.url, "tool_prefix": "ref_"});
    register_server(&app, &admin, &config).await;
    let config = json!({"name": "py", "transport": "streamable_http", "url": python.url, "tool_prefix": "py_"});
    register_server(&app, &admin, &config).await;
    Setup { app, admin, _reference: reference, python }
}

async fn mcp(app: &TestApp, token: &str, method: &str, params: Value) -> Value {
    let reply = post_mcp(app, "/mcp", token, None, &request(1, method, params)).await;
    assert_eq!(reply.status, 200, "{method}: {}", reply.text);
    reply.body
}

fn names(body: &Value, list: &str, field: &str) -> Vec<String> {
    let items = body["result"][list].as_array().unwrap_or_else(|| panic!("no result.{list} in {body}"));
    items.iter().map(|item| item[field].as_str().expect("a string").to_owned()).collect()
}

#[tokio::test]
async fn an_agent_lists_reads_gets_and_subscribes_to_only_the_prompts_and_resources_its_policy_names() {
    let Some(peers) =
        peers("an_agent_lists_reads_gets_and_subscribes_to_only_the_prompts_and_resources_its_policy_names")
    else {
        return;
    };
    let setup = setup(&peers).await;
    let Setup { app, admin, .. } = &setup;
    let created = create_agent(app, admin, "reader", &[], &[]).await;
    assert_eq!((&created["allowed_prompts"], &created["allowed_resources"]), (&json!([]), &json!([])), "{created}");
    let token = mint_agent_token(app, admin, "reader").await;

    // Fail closed: nothing listed, nothing served.
    for (method, list) in [("prompts/list", "prompts"), ("resources/list", "resources")] {
        let body = mcp(app, &token, method, json!({})).await;
        assert_eq!(body["result"][list], json!([]), "{method}: {body}");
    }
    let body = mcp(app, &token, "resources/templates/list", json!({})).await;
    assert_eq!(body["result"]["resourceTemplates"], json!([]), "{body}");
    let refused = mcp(app, &token, "prompts/get", json!({"name": "ref_test_simple_prompt"})).await;
    assert_eq!(rpc_error(&refused).0, INVALID_PARAMS, "{refused}");
    let completion = json!({"ref": {"type": "ref/prompt", "name": "ref_test_prompt_with_arguments"},
        "argument": {"name": "arg1", "value": "par"}});
    assert_eq!(rpc_error(&mcp(app, &token, "completion/complete", completion.clone()).await).0, INVALID_PARAMS);
    for method in ["resources/read", "resources/subscribe", "resources/unsubscribe"] {
        let refused = mcp(app, &token, method, json!({"uri": "test://static-text"})).await;
        assert_eq!(rpc_error(&refused).0, RESOURCE_NOT_FOUND, "{method}: {refused}");
    }

    // Allowing a prompt and one URI pattern bumps the version: the old token stops working.
    let version = created["permissions_version"].as_i64().expect("a version");
    let changed =
        set_agent_list(app, admin, "reader", "allowed-prompts", json!({"prompts": ["ref_test_prompt_with_arguments"]}))
            .await;
    assert!(changed["permissions_version"].as_i64() > Some(version), "{changed}");
    let changed = set_agent_list(
        app,
        admin,
        "reader",
        "allowed-resources",
        json!({"resources": ["test://static-text", "test://template/*"]}),
    )
    .await;
    assert_eq!(changed["allowed_resources"], json!(["test://static-text", "test://template/*"]), "{changed}");
    let stale = post_mcp(app, "/mcp", &token, None, &request(1, "prompts/list", json!({}))).await;
    assert_eq!(stale.status, 401, "{}", stale.text);
    let token = mint_agent_token(app, admin, "reader").await;

    let listed = mcp(app, &token, "prompts/list", json!({})).await;
    let prompts = names(&listed, "prompts", "name");
    assert_eq!(prompts, ["ref_test_prompt_with_arguments"], "the prefixed name, and only the allowed prompt");
    let got = mcp(
        app,
        &token,
        "prompts/get",
        json!({"name": "ref_test_prompt_with_arguments",
        "arguments": {"arg1": "alpha", "arg2": "beta"}}),
    )
    .await;
    let text = got["result"]["messages"][0]["content"]["text"].as_str().unwrap_or_else(|| panic!("{got}"));
    assert!(text.contains("alpha") && text.contains("beta"), "{got}");
    let refused = mcp(app, &token, "prompts/get", json!({"name": "ref_test_simple_prompt"})).await;
    assert_eq!(rpc_error(&refused).0, INVALID_PARAMS, "{refused}");
    let completed = mcp(app, &token, "completion/complete", completion).await;
    assert!(completed["result"]["completion"]["values"].is_array(), "{completed}");

    let resources = names(&mcp(app, &token, "resources/list", json!({})).await, "resources", "uri");
    assert_eq!(resources, ["test://static-text"]);
    let templates = mcp(app, &token, "resources/templates/list", json!({})).await;
    assert_eq!(names(&templates, "resourceTemplates", "uriTemplate"), ["test://template/{id}/data"]);
    let read = mcp(app, &token, "resources/read", json!({"uri": "test://static-text"})).await;
    assert_eq!(read["result"]["contents"][0]["uri"], "test://static-text", "{read}");
    let read = mcp(app, &token, "resources/read", json!({"uri": "test://template/123/data"})).await;
    assert!(read["result"]["contents"][0]["text"].as_str().is_some_and(|t| t.contains("123")), "{read}");
    for (method, uri) in
        [("resources/read", "test://static-binary"), ("resources/subscribe", "test://watched-resource")]
    {
        let refused = mcp(app, &token, method, json!({"uri": uri})).await;
        assert_eq!(rpc_error(&refused).0, RESOURCE_NOT_FOUND, "{method} {uri}: {refused}");
    }
}

#[tokio::test]
async fn set_level_reaches_only_the_upstreams_serving_the_caller() {
    let Some(peers) = peers("set_level_reaches_only_the_upstreams_serving_the_caller") else { return };
    let setup = setup(&peers).await;
    let (app, admin) = (&setup.app, &setup.admin);
    // Served by py through its prompt, and by ref through a tool.
    create_agent(app, admin, "both", &["ref_test_simple_text"], &[]).await;
    set_agent_list(app, admin, "both", "allowed-prompts", json!({"prompts": ["py_greet"]})).await;
    let both = mint_agent_token(app, admin, "both").await;
    // Served by ref only.
    create_agent(app, admin, "ref-only", &["ref_test_simple_text"], &[]).await;
    let ref_only = mint_agent_token(app, admin, "ref-only").await;

    let answer = mcp(app, &ref_only, "logging/setLevel", json!({"level": "error"})).await;
    assert_eq!(answer["result"], json!({}), "{answer}");
    let refused = mcp(app, &ref_only, "logging/setLevel", json!({"level": "loud"})).await;
    assert_eq!(rpc_error(&refused).0, INVALID_PARAMS, "{refused}");
    let answer = mcp(app, &both, "logging/setLevel", json!({"level": "warning"})).await;
    assert_eq!(answer["result"], json!({}), "{answer}");
    assert_eq!(setup.python.levels(), ["warning"], "py got the level of the agent it serves, no other");

    let greeting = mcp(app, &both, "prompts/get", json!({"name": "py_greet", "arguments": {"name": "Ada"}})).await;
    assert_eq!(greeting["result"]["messages"][0]["content"]["text"], "Hello, Ada!", "{greeting}");
}
