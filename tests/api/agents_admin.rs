//! Agent policy: the DTO, validation (422 naming offenders), permissions_version bumps
//! that make older agent tokens useless at once on every replica, the audit trail, and
//! paging through it.

use serde_json::{json, Value};

use crate::auth_helpers::*;
use crate::helpers::{fresh_database, spawn_app, spawn_app_on, test_settings, TestApp};

async fn agent_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM agents").fetch_one(&app.db.pool).await.unwrap()
}

async fn post_agent(app: &TestApp, by: &Session, body: Value) -> reqwest::Response {
    app.client.post(app.url("/admin/agents")).bearer_auth(&by.access_token).json(&body).send().await.unwrap()
}

#[tokio::test]
async fn agents_are_created_read_listed_and_deleted() {
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    let created = create_agent(&app, &admin, "demo-agent", &["read_file", "write_file"], &["write_file"]).await;
    let mut keys: Vec<_> = created.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
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
    assert_eq!(created["name"], "demo-agent");
    assert_eq!(created["description"], "demo-agent for tests");
    assert_eq!(created["allowed_tools"], json!(["read_file", "write_file"]));
    assert_eq!(created["approval_required_tools"], json!(["write_file"]));
    // Prompts and resources: none unless named (fail closed).
    assert_eq!((&created["allowed_prompts"], &created["allowed_resources"]), (&json!([]), &json!([])));
    assert!(created["permissions_version"].as_i64().unwrap() > 0);

    let minimal = post_agent(&app, &admin, json!({"name": "bare"})).await;
    assert_eq!(minimal.status(), 201);
    let minimal: Value = minimal.json().await.unwrap();
    assert_eq!((minimal["description"].clone(), minimal["allowed_tools"].clone()), (json!(""), json!([])));

    let fetched: Value = get_with(&app, "/admin/agents/demo-agent", &admin.access_token).await.json().await.unwrap();
    assert_eq!(fetched, created);
    let listed: Value = get_with(&app, "/admin/agents", &admin.access_token).await.json().await.unwrap();
    let names: Vec<&str> = listed["agents"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["bare", "demo-agent"]);

    let (status, _, message) = error_of(post_agent(&app, &admin, json!({"name": "demo-agent"})).await).await;
    assert_eq!((status, message.as_str()), (409, "an agent named \"demo-agent\" already exists"));
    let (status, _, message) = error_of(get_with(&app, "/admin/agents/nobody", &admin.access_token).await).await;
    assert_eq!((status, message.as_str()), (404, "no agent named \"nobody\""));

    let deleted =
        app.client.delete(app.url("/admin/agents/demo-agent")).bearer_auth(&admin.access_token).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(get_with(&app, "/admin/agents/demo-agent", &admin.access_token).await.status(), 404);
    let again =
        app.client.delete(app.url("/admin/agents/demo-agent")).bearer_auth(&admin.access_token).send().await.unwrap();
    assert_eq!(again.status(), 404);
}

#[tokio::test]
async fn invalid_agents_are_refused_with_422_naming_the_offenders() {
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    let cases = [
        (json!({"name": "Demo Agent"}), vec!["\"Demo Agent\"", "a-z, 0-9, _ and -"]),
        (json!({"name": "x".repeat(65)}), vec!["is invalid"]),
        (json!({"name": ""}), vec!["is invalid"]),
        (
            json!({"name": "a", "allowed_tools": ["read_file"], "approval_required_tools": ["write_file", "delete_file"]}),
            vec!["subset of allowed_tools", "\"write_file\"", "\"delete_file\""],
        ),
        (
            json!({"name": "a", "allowed_tools": ["ok", "", "has space"]}),
            vec!["allowed_tools", "\"\"", "\"has space\""],
        ),
        (json!({"name": "a", "allowed_tools": ["x".repeat(129)]}), vec!["1 to 128 characters"]),
        (json!({"name": "a", "description": "d".repeat(1025)}), vec!["description must be at most 1024"]),
        (json!({"name": "BAD", "approval_required_tools": ["x"]}), vec!["\"BAD\"", "\"x\""]),
    ];
    for (body, fragments) in cases {
        let (status, code, message) = error_of(post_agent(&app, &admin, body.clone()).await).await;
        assert_eq!((status, code.as_str()), (422, "unprocessable"), "{body}: {message}");
        for fragment in fragments {
            assert!(message.contains(fragment), "{body}: {message:?} should name {fragment}");
        }
    }
    assert_eq!(agent_count(&app).await, 0);
    assert!(audit_rows(&app, "a").await.is_empty());
}

#[tokio::test]
async fn tool_lists_are_deduplicated_in_order() {
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    let created = create_agent(&app, &admin, "dup", &["b", "a", "b", "c", "a"], &["c", "c"]).await;
    assert_eq!(created["allowed_tools"], json!(["b", "a", "c"]));
    assert_eq!(created["approval_required_tools"], json!(["c"]));
    let updated: Value =
        set_tools(&app, &admin, "dup", "approval-required-tools", &["a", "b", "a"]).await.json().await.unwrap();
    assert_eq!(updated["approval_required_tools"], json!(["a", "b"]));
}

#[tokio::test]
async fn policy_changes_keep_approval_required_a_subset_of_allowed() {
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    let created = create_agent(&app, &admin, "demo-agent", &["read_file", "write_file"], &["write_file"]).await;

    let (status, _, message) =
        error_of(set_tools(&app, &admin, "demo-agent", "allowed-tools", &["read_file"]).await).await;
    assert_eq!(status, 422);
    assert!(
        message.contains("\"write_file\"") && message.contains("remove them from approval_required_tools"),
        "{message}"
    );
    let (status, _, message) =
        error_of(set_tools(&app, &admin, "demo-agent", "approval-required-tools", &["write_file", "rm_rf"]).await)
            .await;
    assert_eq!(status, 422);
    assert!(message.contains("\"rm_rf\"") && !message.contains("\"write_file\""), "only the offender: {message}");
    let (status, _, message) =
        error_of(set_tools(&app, &admin, "demo-agent", "allowed-tools", &["ok", " "]).await).await;
    assert_eq!(status, 422);
    assert!(message.contains("\" \""), "{message}");
    assert_eq!(error_of(set_tools(&app, &admin, "nobody", "allowed-tools", &[]).await).await.0, 404);
    let missing_tools = app
        .client
        .put(app.url("/admin/agents/demo-agent/allowed-tools"))
        .bearer_auth(&admin.access_token)
        .json(&json!({"tool": ["x"]}))
        .send()
        .await
        .unwrap();
    let (status, _, message) = error_of(missing_tools).await;
    assert_eq!(status, 422);
    assert!(message.contains("`tool`") || message.contains("`tools`"), "{message}");

    let unchanged: Value = get_with(&app, "/admin/agents/demo-agent", &admin.access_token).await.json().await.unwrap();
    assert_eq!(unchanged, created, "refused changes change nothing, not even the version");
    assert_eq!(audit_rows(&app, "demo-agent").await.len(), 1, "only the create");
}

#[tokio::test]
async fn every_policy_change_bumps_the_version_and_is_audited_with_before_and_after() {
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    let created = create_agent(&app, &admin, "demo-agent", &["read_file"], &[]).await;
    let v0 = created["permissions_version"].as_i64().unwrap();

    let allowed: Value = set_tools(&app, &admin, "demo-agent", "allowed-tools", &["read_file", "write_file"])
        .await
        .json()
        .await
        .unwrap();
    let v1 = allowed["permissions_version"].as_i64().unwrap();
    assert!(v1 > v0);
    assert_eq!(allowed["allowed_tools"], json!(["read_file", "write_file"]));
    let gated: Value =
        set_tools(&app, &admin, "demo-agent", "approval-required-tools", &["write_file"]).await.json().await.unwrap();
    let v2 = gated["permissions_version"].as_i64().unwrap();
    assert!(v2 > v1);
    // Re-applying the same list still bumps: the caller asked for tokens to be re-minted.
    let same: Value =
        set_tools(&app, &admin, "demo-agent", "approval-required-tools", &["write_file"]).await.json().await.unwrap();
    let v3 = same["permissions_version"].as_i64().unwrap();
    assert!(v3 > v2);
    assert!(same["updated_at"].as_str().unwrap() >= gated["updated_at"].as_str().unwrap());
    mint_agent_token(&app, &admin, "demo-agent").await;
    let deleted =
        app.client.delete(app.url("/admin/agents/demo-agent")).bearer_auth(&admin.access_token).send().await.unwrap();
    assert_eq!(deleted.status(), 204);

    let rows = audit_rows(&app, "demo-agent").await;
    let actions: Vec<&str> = rows.iter().map(|(_, action, _, _)| action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "agent.create",
            "agent.allowed_tools.set",
            "agent.approval_required_tools.set",
            "agent.approval_required_tools.set",
            "agent_token.mint",
            "agent.delete"
        ]
    );
    assert!(rows.iter().all(|(actor, _, _, _)| actor == "user:admin"));
    let (_, _, before, after) = &rows[1];
    assert_eq!(before.as_ref().unwrap()["allowed_tools"], json!(["read_file"]));
    assert_eq!(before.as_ref().unwrap()["permissions_version"], json!(v0));
    assert_eq!(after.as_ref().unwrap()["allowed_tools"], json!(["read_file", "write_file"]));
    assert_eq!(after.as_ref().unwrap()["permissions_version"], json!(v1));
    let (_, _, before, after) = &rows[2];
    assert_eq!(before.as_ref().unwrap()["approval_required_tools"], json!([]));
    assert_eq!(after.as_ref().unwrap()["approval_required_tools"], json!(["write_file"]));
    assert_eq!(rows[0].2, None);
    assert_eq!(rows[0].3.as_ref().unwrap()["name"], "demo-agent");
    assert_eq!(rows[4].3.as_ref().unwrap()["permissions_version"], json!(v3));
    assert_eq!(rows[5].2.as_ref().unwrap()["approval_required_tools"], json!(["write_file"]));
    assert_eq!(rows[5].3, None);
}

#[tokio::test]
async fn the_audit_trail_is_append_only() {
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    create_agent(&app, &admin, "demo-agent", &[], &[]).await;
    for statement in ["UPDATE admin_audit SET actor = 'user:nobody'", "DELETE FROM admin_audit", "TRUNCATE admin_audit"]
    {
        let error = sqlx::query(statement).execute(&app.db.pool).await.expect_err(statement);
        assert!(error.to_string().contains("append-only"), "{statement}: {error}");
    }
}

#[tokio::test]
async fn a_token_minted_before_a_policy_change_is_refused_by_the_changer_at_once_and_by_every_replica_after_the_notice()
{
    let db = fresh_database().await;
    let first = spawn_app_on(db.clone(), test_settings()).await;
    let second = spawn_app_on(db, test_settings()).await;
    let admin = admin_session(&first).await;
    create_agent(&first, &admin, "demo-agent", &["read_file", "write_file"], &[]).await;
    let token = mint_agent_token(&first, &admin, "demo-agent").await;
    for replica in [&first, &second] {
        assert_eq!(get_with(replica, "/auth/me", &token).await.status(), 200, "valid on both replicas");
    }

    // The change is made through one replica: it refuses the token at once; the other
    // once PostgreSQL's notification reaches it (docs/AUTH.md, "Policy propagation").
    let admin_on_second = admin_session(&second).await;
    assert_eq!(
        set_tools(&second, &admin_on_second, "demo-agent", "approval-required-tools", &["write_file"]).await.status(),
        200
    );
    let (status, _, message) = error_of(get_with(&second, "/auth/me", &token).await).await;
    assert_eq!((status, message.as_str()), (401, "agent policy changed; mint a new token"));
    crate::helpers::eventually(std::time::Duration::from_secs(10), "the other replica refuses the token", || async {
        get_with(&first, "/auth/me", &token).await.status() == 401
    })
    .await;
    let (status, _, message) = error_of(get_with(&first, "/auth/me", &token).await).await;
    assert_eq!((status, message.as_str()), (401, "agent policy changed; mint a new token"));
    let fresh = mint_agent_token(&first, &admin, "demo-agent").await;
    let me: Value = get_with(&second, "/auth/me", &fresh).await.json().await.unwrap();
    assert_eq!(me["approval_required_tools"], json!(["write_file"]));
}

#[tokio::test]
async fn a_token_for_a_deleted_agent_never_works_again_even_for_a_new_agent_of_that_name() {
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    create_agent(&app, &admin, "demo-agent", &["read_file"], &[]).await;
    let token = mint_agent_token(&app, &admin, "demo-agent").await;
    app.client.delete(app.url("/admin/agents/demo-agent")).bearer_auth(&admin.access_token).send().await.unwrap();
    let (status, _, message) = error_of(get_with(&app, "/auth/me", &token).await).await;
    assert_eq!(status, 401);
    assert!(message.contains("no longer exists"), "{message}");
    create_agent(&app, &admin, "demo-agent", &["read_file"], &[]).await;
    assert_eq!(get_with(&app, "/auth/me", &token).await.status(), 401, "versions never repeat across incarnations");
}

#[tokio::test]
async fn minting_needs_an_existing_agent() {
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    let response = app
        .client
        .post(app.url("/v1/agent-token"))
        .bearer_auth(&admin.access_token)
        .json(&json!({"agent": "nobody"}))
        .send()
        .await
        .unwrap();
    let (status, _, message) = error_of(response).await;
    assert_eq!((status, message.as_str()), (404, "no agent named \"nobody\""));
}

#[tokio::test]
async fn the_audit_trail_pages_newest_first() {
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    for name in ["a1", "a2", "a3", "a4", "a5"] {
        create_agent(&app, &admin, name, &[], &[]).await;
    }
    let mut seen = Vec::new();
    let mut path = "/admin/audit?limit=2".to_owned();
    loop {
        let page: Value = get_with(&app, &path, &admin.access_token).await.json().await.unwrap();
        let entries = page["entries"].as_array().unwrap();
        assert!(entries.len() <= 2);
        for entry in entries {
            for field in ["id", "at", "actor", "action", "target", "before", "after"] {
                assert!(entry.get(field).is_some(), "{field} in {entry}");
            }
            seen.push(entry["target"].as_str().unwrap().to_owned());
        }
        match page["next_before"].as_i64() {
            Some(before) => path = format!("/admin/audit?limit=2&before={before}"),
            None => break,
        }
    }
    // Newest first; the bootstrap of admin is the oldest row.
    assert_eq!(seen, ["a5", "a4", "a3", "a2", "a1", "admin"]);

    let filtered: Value =
        get_with(&app, "/admin/audit?target=a3&action=agent.create", &admin.access_token).await.json().await.unwrap();
    let entries = filtered["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["actor"], "user:admin");
    assert_eq!(filtered["next_before"], Value::Null);
}
