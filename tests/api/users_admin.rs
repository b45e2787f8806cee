//! User administration by super_admins: create, list, change role, reset password,
//! delete; the last super_admin stays; every change leaves an audit row.

use serde_json::{json, Value};

use crate::auth_helpers::*;
use crate::helpers::{spawn_app, TestApp, TEST_ADMIN_PASSWORD};

async fn patch_role(app: &TestApp, by: &Session, name: &str, role: &str) -> reqwest::Response {
    app.client
        .patch(app.url(&format!("/admin/users/{name}")))
        .bearer_auth(&by.access_token)
        .json(&json!({"role": role}))
        .send()
        .await
        .unwrap()
}

async fn delete_user(app: &TestApp, by: &Session, name: &str) -> reqwest::Response {
    app.client.delete(app.url(&format!("/admin/users/{name}"))).bearer_auth(&by.access_token).send().await.unwrap()
}

#[tokio::test]
async fn a_super_admin_creates_lists_promotes_resets_and_deletes_users() {
    let app = spawn_app().await;
    let admin = admin_session(&app).await;

    let response = app
        .client
        .post(app.url("/admin/users"))
        .bearer_auth(&admin.access_token)
        .json(&json!({"username": "bob", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let mut keys: Vec<_> = created.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["created_at", "role", "updated_at", "username"], "no hash in the DTO: {created}");
    assert_eq!(created["role"], "viewer", "least privilege when no role is given");

    let listed: Value = get_with(&app, "/admin/users", &admin.access_token).await.json().await.unwrap();
    let names: Vec<&str> =
        listed["users"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["admin", "bob"]);

    let bob = login_ok(&app, "bob", PASSWORD).await;
    assert_eq!(get_with(&app, "/admin/agents", &bob.access_token).await.status(), 403);
    let promoted = patch_role(&app, &admin, "bob", "admin").await;
    assert_eq!(promoted.status(), 200);
    assert_eq!(promoted.json::<Value>().await.unwrap()["role"], "admin");
    assert_eq!(get_with(&app, "/admin/agents", &bob.access_token).await.status(), 200, "the new role applies at once");

    let reset = app
        .client
        .post(app.url("/admin/users/bob/password"))
        .bearer_auth(&admin.access_token)
        .json(&json!({"password": "bob's new password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 204);
    assert_eq!(get_with(&app, "/auth/me", &bob.access_token).await.status(), 401, "a reset ends bob's sessions");
    assert_eq!(login(&app, "bob", PASSWORD).await.status(), 401);
    let bob = login_ok(&app, "bob", "bob's new password").await;

    assert_eq!(delete_user(&app, &admin, "bob").await.status(), 204);
    assert_eq!(get_with(&app, "/auth/me", &bob.access_token).await.status(), 401, "a deleted user's token dies");
    assert_eq!(login(&app, "bob", "bob's new password").await.status(), 401);
    assert_eq!(delete_user(&app, &admin, "bob").await.status(), 404);

    let actions: Vec<(String, String)> =
        audit_rows(&app, "bob").await.into_iter().map(|(actor, action, _, _)| (actor, action)).collect();
    let expected = ["user.create", "user.role.set", "user.password.reset", "user.delete"];
    assert_eq!(actions, expected.map(|action| ("user:admin".to_owned(), action.to_owned())));
    let rows = audit_rows(&app, "bob").await;
    assert_eq!(rows[1].2, Some(json!({"role": "viewer"})));
    assert_eq!(rows[1].3, Some(json!({"role": "admin"})));
    let all: Vec<String> =
        sqlx::query_scalar("SELECT coalesce(before::text, '') || coalesce(after::text, '') FROM admin_audit")
            .fetch_all(&app.db.pool)
            .await
            .unwrap();
    assert!(all.iter().all(|row| !row.contains("password\":") && !row.contains("argon2")), "{all:?}");
}

#[tokio::test]
async fn the_last_super_admin_can_be_neither_demoted_nor_deleted() {
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    let (status, code, message) = error_of(patch_role(&app, &admin, "admin", "admin").await).await;
    assert_eq!((status, code.as_str()), (409, "conflict"));
    assert!(message.contains("last super_admin"), "{message}");
    assert_eq!(error_of(delete_user(&app, &admin, "admin").await).await.0, 409);
    assert_eq!(get_with(&app, "/admin/users", &admin.access_token).await.status(), 200, "still super_admin");

    // With a second super_admin, either may go, but not both.
    create_user(&app, &admin, "carol", "super_admin").await;
    let carol = login_ok(&app, "carol", PASSWORD).await;
    assert_eq!(patch_role(&app, &carol, "admin", "viewer").await.status(), 200);
    assert_eq!(error_of(patch_role(&app, &carol, "carol", "admin").await).await.0, 409);
    assert_eq!(error_of(delete_user(&app, &carol, "carol").await).await.0, 409);
}

#[tokio::test]
async fn two_super_admins_demoting_each_other_at_once_leave_one() {
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    create_user(&app, &admin, "carol", "super_admin").await;
    let carol = login_ok(&app, "carol", PASSWORD).await;
    let (a, b) = tokio::join!(patch_role(&app, &admin, "carol", "viewer"), patch_role(&app, &carol, "admin", "viewer"));
    let statuses = [a.status().as_u16(), b.status().as_u16()];
    // The loser is refused (409) or, if the winner's demotion of it landed first, was no
    // longer allowed to act (403). Either way exactly one super_admin remains.
    assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 1, "{statuses:?}");
    let super_admins: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE role = 'super_admin'")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(super_admins, 1);
}

#[tokio::test]
async fn user_input_is_validated_before_anything_changes() {
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    let create =
        |body: Value| app.client.post(app.url("/admin/users")).bearer_auth(&admin.access_token).json(&body).send();

    let (status, _, message) =
        error_of(create(json!({"username": "Bad Name", "password": "short"})).await.unwrap()).await;
    assert_eq!(status, 422);
    assert!(message.contains("\"Bad Name\"") && message.contains("at least 12"), "both problems named: {message}");
    let (status, _, message) =
        error_of(create(json!({"username": "dave", "password": PASSWORD, "role": "root"})).await.unwrap()).await;
    assert_eq!(status, 422);
    assert!(message.contains("unknown variant `root`"), "{message}");
    let (status, _, message) =
        error_of(create(json!({"username": "admin", "password": PASSWORD})).await.unwrap()).await;
    assert_eq!((status, message.as_str()), (409, "a user named \"admin\" already exists"));
    assert_eq!(error_of(patch_role(&app, &admin, "nobody", "admin").await).await.0, 404);
    let (status, _, _) = error_of(patch_role(&app, &admin, "admin", "emperor").await).await;
    assert_eq!(status, 422);

    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&app.db.pool).await.unwrap();
    assert_eq!(users, 1);
    let audit: i64 = sqlx::query_scalar("SELECT count(*) FROM admin_audit WHERE actor = 'user:admin'")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(audit, 0, "refused changes leave no audit rows");
}

/// Runs `alexandria reset-password USER` against the app's database with `stdin`:
/// whether it succeeded, and everything it printed.
async fn reset_password_from_the_command_line(app: &TestApp, user: &str, stdin: &str) -> (bool, String) {
    use tokio::io::AsyncWriteExt;
    let data_dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(crate::gateway_crash::gateway_binary())
        .args(["reset-password", user])
        .env("DATABASE_URL", app.db.url())
        .env("ALEXANDRIA_DATA_DIR", data_dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run alexandria reset-password");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let output = child.wait_with_output().await.unwrap();
    let printed = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), printed)
}

#[tokio::test]
async fn the_command_line_resets_a_locked_out_super_admins_password_and_refuses_bad_input_changing_nothing() {
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    let audit_before = audit_rows(&app, "admin").await.len();

    // Refused, each with its reason, and nothing changes: an unknown user, a password the
    // policy refuses, nothing on standard input.
    let (ok, printed) = reset_password_from_the_command_line(&app, "nobody", "a perfectly long password\n").await;
    assert!(!ok && printed.contains(r#"no user named "nobody""#), "{printed}");
    let (ok, printed) = reset_password_from_the_command_line(&app, "admin", "short\n").await;
    assert!(!ok && printed.contains("password"), "{printed}");
    assert!(!printed.contains("short"), "the refused password is not echoed: {printed}");
    let (ok, printed) = reset_password_from_the_command_line(&app, "admin", "").await;
    assert!(!ok && printed.contains("standard input"), "{printed}");
    assert_eq!(get_with(&app, "/auth/me", &admin.access_token).await.status(), 200, "the session lives on");
    assert_eq!(audit_rows(&app, "admin").await.len(), audit_before);

    // Locked out: wrong guesses at the forgotten password lock the name.
    let limit = app.state.settings.login_throttle.max_failures_per_username;
    for _ in 0..limit {
        assert_eq!(login(&app, "admin", "what was it again").await.status(), 401);
    }
    assert_eq!(login(&app, "admin", TEST_ADMIN_PASSWORD).await.status(), 429);

    let new_password = "the operator's new admin password";
    let (ok, printed) = reset_password_from_the_command_line(&app, "admin", &format!("{new_password}\n")).await;
    assert!(ok, "{printed}");
    assert!(
        printed.contains(r#"password of user "admin" reset; 1 session ended; the login lock on the name lifted"#),
        "{printed}"
    );
    assert!(!printed.contains(new_password), "the password is never printed: {printed}");

    assert_eq!(get_with(&app, "/auth/me", &admin.access_token).await.status(), 401, "the old session ended");
    assert_eq!(login(&app, "admin", TEST_ADMIN_PASSWORD).await.status(), 401);
    login_ok(&app, "admin", new_password).await;
    let rows = audit_rows(&app, "admin").await;
    let (actor, action, _, after) = rows.last().unwrap();
    assert_eq!((actor.as_str(), action.as_str()), ("system:cli", "user.password.reset"));
    assert_eq!(after.as_ref().unwrap(), &json!({"sessions_revoked": 1, "login_lock_lifted": true}));
}
