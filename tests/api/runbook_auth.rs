//! The approval-gating runbook, Steps 1 to 3, request for request as an operator runs
//! them, with the exact response shapes.

use serde_json::{json, Value};

use crate::auth_helpers::*;
use crate::helpers::{spawn_app, TEST_ADMIN_PASSWORD};

fn keys_of(body: &Value) -> Vec<String> {
    let mut keys: Vec<String> = body.as_object().expect("a JSON object").keys().cloned().collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn runbook_steps_1_to_3_login_gate_a_tool_and_mint_an_agent_token() {
    let app = spawn_app().await;
    // Prerequisite 4: an agent whose allowed_tools include the tool to gate.
    let setup = admin_session(&app).await;
    let before = create_agent(&app, &setup, "demo-agent", &["read_file", "write_file"], &[]).await;

    // Step 1: login.
    let response = app
        .client
        .post(app.url("/auth/login"))
        .header("Content-Type", "application/json")
        .body(json!({"username": "admin", "password": TEST_ADMIN_PASSWORD}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let step1: Value = response.json().await.unwrap();
    assert_eq!(keys_of(&step1), ["access_token", "expires_in", "refresh_token", "token_type"], "the full body");
    let access_token = step1["access_token"].as_str().unwrap();
    assert!(access_token.starts_with("eyJ"), "a JWT");
    assert!(!step1["refresh_token"].as_str().unwrap().is_empty());
    assert_eq!(step1["token_type"], "Bearer");
    assert_eq!(step1["expires_in"], 900);
    assert_eq!(claims_of(access_token)["role"], "super_admin", "a super_admin token");

    // Step 2: set approval_required_tools.
    let response = app
        .client
        .put(app.url("/admin/agents/demo-agent/approval-required-tools"))
        .header("Authorization", format!("Bearer {access_token}"))
        .header("Content-Type", "application/json")
        .body(r#"{"tools": ["write_file"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let step2: Value = response.json().await.unwrap();
    assert_eq!(
        keys_of(&step2),
        [
            "allowed_prompts",
            "allowed_resources",
            "allowed_tools",
            "approval_required_tools",
            "created_at",
            "description",
            "name",
            "permissions_version",
            "updated_at"
        ]
    );
    assert_eq!(step2["name"], "demo-agent");
    assert_eq!(step2["description"], before["description"]);
    assert_eq!(step2["allowed_tools"], json!(["read_file", "write_file"]));
    assert_eq!(step2["approval_required_tools"], json!(["write_file"]));
    assert!(step2["permissions_version"].as_i64().unwrap() > before["permissions_version"].as_i64().unwrap(), "bumped");
    assert_eq!(step2["created_at"], before["created_at"]);
    let updated_at = chrono::DateTime::parse_from_rfc3339(step2["updated_at"].as_str().unwrap()).expect("RFC 3339");
    let created_at = chrono::DateTime::parse_from_rfc3339(step2["created_at"].as_str().unwrap()).expect("RFC 3339");
    assert!(updated_at >= created_at);

    // Step 3: mint an agent token.
    let response = app
        .client
        .post(app.url("/v1/agent-token"))
        .header("Authorization", format!("Bearer {access_token}"))
        .header("Content-Type", "application/json")
        .body(r#"{"agent": "demo-agent"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let step3: Value = response.json().await.unwrap();
    assert_eq!(keys_of(&step3), ["agent", "effective_tools", "expires_in", "token"], "the full body");
    let token = step3["token"].as_str().unwrap();
    assert!(token.starts_with("eyJ"));
    assert_eq!(step3["agent"], "demo-agent");
    assert_eq!(step3["effective_tools"], json!(["read_file", "write_file"]));
    assert_eq!(step3["expires_in"], 3600);

    // The token bakes in both lists and the version, as the runbook says.
    let claims = claims_of(token);
    assert_eq!(claims["typ"], "agent");
    assert_eq!(claims["sub"], "agent:demo-agent");
    assert_eq!(claims["agent"], "demo-agent");
    assert_eq!(claims["effective_tools"], json!(["read_file", "write_file"]));
    assert_eq!(claims["approval_required_tools"], json!(["write_file"]));
    assert_eq!(claims["pv"], step2["permissions_version"]);
    assert_eq!(claims["minted_by"], "admin");
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 3600);
    assert!(claims["jti"].as_str().is_some());
    let me: Value = get_with(&app, "/auth/me", token).await.json().await.unwrap();
    assert_eq!(
        me,
        json!({
            "type": "agent",
            "agent": "demo-agent",
            "effective_tools": ["read_file", "write_file"],
            "approval_required_tools": ["write_file"],
            "permissions_version": step2["permissions_version"],
        })
    );

    // Cleanup: reset the list; the token minted in Step 3 is now stale.
    let cleanup = set_tools(&app, &setup, "demo-agent", "approval-required-tools", &[]).await;
    assert_eq!(cleanup.status(), 200);
    assert_eq!(cleanup.json::<Value>().await.unwrap()["approval_required_tools"], json!([]));
    let (status, _, message) = error_of(get_with(&app, "/auth/me", token).await).await;
    assert_eq!((status, message.as_str()), (401, "agent policy changed; mint a new token"));
}
