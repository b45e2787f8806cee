//! `GET /openapi.json`: the HTTP API's OpenAPI 3.1 document, made from the routes served.
//! Here: the document describes the routes the runbook uses, and every operation it
//! describes is served (no route missing, no method refused). Schemathesis then checks the
//! server's answers against it (`schemathesis.rs`).

use serde_json::Value;

use crate::auth_helpers::admin_session;
use crate::helpers::spawn_app;

/// Every route and method the runbook (docs and `scripts/smoke.sh`) calls.
const RUNBOOK_OPERATIONS: &[(&str, &str)] = &[
    ("post", "/auth/login"),
    ("get", "/admin/permissions"),
    ("get", "/admin/permissions/{id}"),
    ("post", "/admin/permissions/{id}/approve"),
    ("post", "/admin/permissions/{id}/reject"),
    ("put", "/admin/agents/{name}/approval-required-tools"),
    ("post", "/v1/agent-token"),
    ("post", "/mcp"),
    ("get", "/metrics"),
    ("get", "/admin/notifications/config"),
    ("patch", "/admin/notifications/config"),
    ("post", "/admin/notifications/test"),
];

async fn document(app: &crate::helpers::TestApp) -> Value {
    let response = app.client.get(app.url("/openapi.json")).send().await.expect("GET /openapi.json");
    assert_eq!(response.status(), 200);
    response.json().await.expect("the document is JSON")
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_describes_the_runbook() {
    let app = spawn_app().await;
    let document = document(&app).await;
    assert!(document["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{}", document["openapi"]);
    for (method, path) in RUNBOOK_OPERATIONS {
        assert!(document["paths"][path][method].is_object(), "{method} {path} is not in the document");
    }
    // Public routes say so; every other operation needs the bearer token.
    assert_eq!(document["paths"]["/auth/login"]["post"]["security"], serde_json::json!([{}]));
    assert_eq!(document["security"], serde_json::json!([{"bearer": []}]));
    assert_eq!(document["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    // The console's HTML pages are not part of the JSON API.
    assert!(document["paths"]["/console"].is_null());
}

/// Each operation in the document, called as the super_admin with placeholder path
/// parameters, reaches a handler: a route that is not served answers 404 with an empty
/// body or 405, where a handler answers JSON (a 404 for a name that does not exist).
#[tokio::test]
async fn every_operation_in_the_document_is_served() {
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    let document = document(&app).await;
    let paths = document["paths"].as_object().expect("paths");
    assert!(paths.len() >= 25, "only {} paths", paths.len());
    let mut checked = 0;
    for (path, operations) in paths {
        let concrete = path.replace("{id}", "00000000-0000-0000-0000-000000000000").replace("{name}", "no-such-name");
        for method in operations.as_object().expect("operations").keys() {
            if *path == "/auth/logout" {
                continue; // would end the session the rest of the loop uses
            }
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("an HTTP method");
            let response = app
                .client
                .request(method.clone(), app.url(&concrete))
                .bearer_auth(&admin.access_token)
                .header("accept", "application/json, text/event-stream")
                .send()
                .await
                .expect("request");
            let status = response.status().as_u16();
            let body = response.bytes().await.expect("body");
            assert_ne!(status, 405, "{method} {path}: the document lists a method the route refuses");
            assert!(!(status == 404 && body.is_empty()), "{method} {path}: in the document but not served");
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} operations checked");
}
