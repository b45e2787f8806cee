//! Schemathesis (PyPI, pinned in `scripts/install-peers.sh`) against a live server, from
//! its own `/openapi.json`, authenticated as each role in turn and as an agent: generated
//! valid and invalid requests for every operation, and every answer checked — never a
//! 5xx, always a documented status, content type and body shape, and invalid input
//! refused with a 4xx.

use std::path::Path;
use std::process::Stdio;

use crate::auth_helpers::{admin_session, create_user, login_ok, PASSWORD};
use crate::gateway_helpers::{agent_token, register_fs};
use crate::helpers::{spawn_app, TestApp};
use crate::peers::{peer_file, peers};

/// The checks every answer must pass.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_schema_conformance,negative_data_rejection";

/// Operations not fuzzed, and why.
const EXCLUDED: &[(&str, &str)] = &[
    // Ends the session the run authenticates with; tested in auth_sessions.
    ("POST", "/auth/logout"),
    // Registering a stdio server runs a program on the gateway's host (that is its job):
    // generated commands would run random programs. Its validation has property tests
    // (tests/properties.rs) and refusal tests (hardening_input, upstream).
    ("POST", "/admin/mcp-servers"),
];

async fn run(app: &TestApp, schemathesis: &Path, who: &str, token: &str) {
    let mut command = tokio::process::Command::new(schemathesis);
    command
        .arg("run")
        .arg(app.url("/openapi.json"))
        .args(["--checks", CHECKS])
        // One worker: with two, hypothesis's lambda descriptions call `ast.parse` from both
        // threads at once, which CPython 3.11 does not survive ("AST constructor recursion
        // depth mismatch", a Runtime Error of whichever operation it hits; seen once the
        // audit routes were added).
        .args(["--max-examples", "25", "--seed", "20261203", "--workers", "1"])
        .args(["--phases", "examples,coverage,fuzzing", "--generation-database", "none"])
        .args(["--suppress-health-check", "all", "--no-color", "--request-timeout", "40"])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .env("SCHEMATHESIS_HOOKS", "")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (method, path) in EXCLUDED {
        command.args(["--exclude-name", &format!("{method} {path}")]);
    }
    let output = command.output().await.expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis as {who} found problems:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // It ran operations (a run that tested nothing would also succeed).
    assert!(stdout.contains("passed"), "schemathesis as {who} tested nothing:\n{stdout}");
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let Some(peers) = peers("schemathesis_finds_no_server_error_and_no_answer_outside_the_document") else {
        return;
    };
    let schemathesis = peer_file(&peers, "schemathesis/bin/st");
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    // Something to find: a server with tools, an agent that may call them.
    let _fs = register_fs(&app, &admin, "fs", None).await;
    let agent = agent_token(&app, &admin, "fuzz-agent", &["read_file", "write_file"], &["write_file"]).await;
    // Every session first: the runs post wrong passwords to /auth/login, and the throttle
    // then refuses this address's logins for a while (as it should).
    let mut callers = Vec::new();
    for role in ["viewer", "admin", "super_admin"] {
        let name = format!("fuzz-{}", role.replace('_', "-"));
        create_user(&app, &admin, &name, role).await;
        callers.push((role, login_ok(&app, &name, PASSWORD).await.access_token));
    }
    callers.push(("agent", agent));
    for (who, token) in &callers {
        run(&app, &schemathesis, who, token).await;
    }
}
