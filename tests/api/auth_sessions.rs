//! Logging in and out, refresh rotation with reuse detection, login throttling, token
//! types and algorithms, and changing one's own password.

use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

use crate::auth_helpers::*;
use crate::helpers::{fresh_database, spawn_app, spawn_app_on, test_settings, TestApp};

async fn refresh(app: &TestApp, refresh_token: &str) -> reqwest::Response {
    app.client
        .post(app.url("/auth/refresh"))
        .json(&json!({"refresh_token": refresh_token}))
        .send()
        .await
        .expect("refresh request")
}

async fn live_sessions(app: &TestApp, username: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM sessions WHERE username = $1 AND revoked_at IS NULL")
        .bind(username)
        .fetch_one(&app.db.pool)
        .await
        .expect("count sessions")
}

#[tokio::test]
async fn a_failed_login_gets_one_answer_whether_or_not_the_user_exists() {
    let app = spawn_app().await;
    let wrong_password = login(&app, "admin", "not the admin password").await;
    let headers = wrong_password.headers().clone();
    let wrong_password = error_of(wrong_password).await;
    let no_such_user = error_of(login(&app, "nobody", "not the admin password").await).await;
    let invalid_name = error_of(login(&app, "No Such User!", "x").await).await;
    assert_eq!(wrong_password, (401, "unauthorized".to_owned(), "invalid username or password".to_owned()));
    assert_eq!(no_such_user, wrong_password);
    assert_eq!(invalid_name, wrong_password);
    assert!(headers.get("retry-after").is_none());
    assert_eq!(live_sessions(&app, "admin").await, 0, "a failed login starts no session");
}

#[tokio::test]
async fn repeated_failures_for_a_username_lock_it_with_retry_after() {
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    create_user(&app, &admin, "bystander", "viewer").await;
    let limit = app.state.settings.login_throttle.max_failures_per_username;
    for attempt in 1..=limit {
        let response = login(&app, "admin", "wrong password, again").await;
        assert_eq!(response.status(), 401, "failure {attempt} of {limit} is still only a 401");
    }
    // Locked now: even the right password is not looked at.
    let locked = login(&app, "admin", PASSWORD).await;
    assert_eq!(locked.status(), 429);
    let retry_after: u64 = locked.headers()["retry-after"].to_str().unwrap().parse().expect("Retry-After in seconds");
    let first_lockout = app.state.settings.login_throttle.first_lockout.as_secs();
    assert!((1..=first_lockout).contains(&retry_after), "Retry-After {retry_after} within the first lockout");
    let (_, code, message) = error_of(locked).await;
    assert_eq!(code, "too_many_requests");
    assert!(message.contains("too many failed logins"), "{message}");
    // Another user from the same address is not locked out by admin's failures.
    login_ok(&app, "bystander", PASSWORD).await;

    // Once the lock has passed (moved into the past here, rather than waited for) the
    // right password works again and clears the count.
    sqlx::query("UPDATE login_throttle SET locked_until = now() - interval '1 second' WHERE subject = 'user:admin'")
        .execute(&app.db.pool)
        .await
        .unwrap();
    login_ok(&app, "admin", PASSWORD).await;
    let remaining: i64 = sqlx::query_scalar("SELECT count(*) FROM login_throttle WHERE subject = 'user:admin'")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(remaining, 0, "a successful login forgets the username's failures");
}

#[tokio::test]
async fn each_failure_past_the_limit_doubles_the_lock() {
    let app = spawn_app().await;
    let limit = app.state.settings.login_throttle.max_failures_per_username;
    for _ in 0..limit {
        login(&app, "admin", "wrong password, again").await;
    }
    let lock_secs = || async {
        let secs: f64 = sqlx::query_scalar(
            "SELECT extract(epoch FROM locked_until - window_started_at)::float8 FROM login_throttle WHERE subject = 'user:admin'",
        )
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
        secs
    };
    let first = lock_secs().await;
    // Expire the lock, fail once more: the next lock is twice as long.
    sqlx::query("UPDATE login_throttle SET locked_until = now() - interval '1 second' WHERE subject = 'user:admin'")
        .execute(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(login(&app, "admin", "wrong password, again").await.status(), 401);
    let second = lock_secs().await;
    let first_lockout = app.state.settings.login_throttle.first_lockout.as_secs_f64();
    assert!((first - first_lockout).abs() < 5.0, "first lock {first} s");
    assert!((second - 2.0 * first_lockout).abs() < 5.0, "second lock {second} s");
}

#[tokio::test]
async fn a_successful_login_resets_the_username_count() {
    let app = spawn_app().await;
    let limit = app.state.settings.login_throttle.max_failures_per_username;
    for _ in 0..2 {
        for _ in 1..limit {
            assert_eq!(login(&app, "admin", "wrong password, again").await.status(), 401);
        }
        login_ok(&app, "admin", PASSWORD).await;
    }
}

#[tokio::test]
async fn repeated_failures_from_one_address_lock_that_address() {
    let mut settings = test_settings();
    settings.login_throttle.max_failures_per_address = 3;
    let app = spawn_app_on(fresh_database().await, settings).await;
    for name in ["nobody-1", "nobody-2", "nobody-3"] {
        assert_eq!(login(&app, name, "wrong password, again").await.status(), 401);
    }
    let locked = login(&app, "admin", PASSWORD).await;
    assert_eq!(locked.status(), 429, "three different usernames from one address lock the address");
    assert!(locked.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn a_lock_taken_on_one_replica_holds_on_another() {
    let db = fresh_database().await;
    let first = spawn_app_on(db.clone(), test_settings()).await;
    let second = spawn_app_on(db, test_settings()).await;
    let limit = first.state.settings.login_throttle.max_failures_per_username;
    for attempt in 0..limit {
        // Guesses spread over both replicas all count.
        let replica = if attempt % 2 == 0 { &first } else { &second };
        assert_eq!(login(replica, "admin", "wrong password, again").await.status(), 401);
    }
    assert_eq!(login(&first, "admin", PASSWORD).await.status(), 429);
    assert_eq!(login(&second, "admin", PASSWORD).await.status(), 429);
}

#[tokio::test]
async fn refresh_rotates_the_pair_and_reuse_revokes_the_whole_family() {
    let app = spawn_app().await;
    let original = admin_session(&app).await;
    let other_login = admin_session(&app).await;

    let rotated = refresh(&app, &original.refresh_token).await;
    assert_eq!(rotated.status(), 200);
    let body: Value = rotated.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let rotated = session_from("admin", body);
    assert_ne!(rotated.refresh_token, original.refresh_token);
    assert_ne!(rotated.access_token, original.access_token);
    assert_eq!(rotated.session_id, original.session_id, "a refresh continues the same session");
    assert_eq!(get_with(&app, "/auth/me", &rotated.access_token).await.status(), 200);

    // The used token comes back: someone else holds this family.
    let (status, _, message) = error_of(refresh(&app, &original.refresh_token).await).await;
    assert_eq!(status, 401);
    assert!(message.contains("already used"), "{message}");
    // The whole family is gone: the newest refresh token and the access tokens too.
    assert_eq!(refresh(&app, &rotated.refresh_token).await.status(), 401);
    let (status, _, message) = error_of(get_with(&app, "/auth/me", &rotated.access_token).await).await;
    assert_eq!((status, message.as_str()), (401, "session ended; log in again"));
    assert_eq!(get_with(&app, "/auth/me", &original.access_token).await.status(), 401);
    // Another login of the same user is another family, untouched.
    assert_eq!(get_with(&app, "/auth/me", &other_login.access_token).await.status(), 200);
    assert_eq!(refresh(&app, &other_login.refresh_token).await.status(), 200);
}

#[tokio::test]
async fn of_two_concurrent_refreshes_with_one_token_exactly_one_succeeds() {
    let app = spawn_app().await;
    let session = admin_session(&app).await;
    let (a, b) = tokio::join!(refresh(&app, &session.refresh_token), refresh(&app, &session.refresh_token));
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 401]);
    assert_eq!(live_sessions(&app, "admin").await, 0, "the second use counts as reuse and ends the session");
}

#[tokio::test]
async fn refresh_accepts_only_refresh_tokens() {
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    create_agent(&app, &admin, "demo-agent", &["read_file"], &[]).await;
    let agent_token = mint_agent_token(&app, &admin, "demo-agent").await;
    for (what, token) in [("an access token", admin.access_token.as_str()), ("an agent token", agent_token.as_str())] {
        let (status, _, message) = error_of(refresh(&app, token).await).await;
        assert_eq!((status, message.as_str()), (401, "that is not a refresh token"), "{what}");
    }
    let (status, _, message) = error_of(refresh(&app, "garbage").await).await;
    assert_eq!((status, message.as_str()), (401, "invalid refresh token"));
    // Nothing was used up by the refused attempts.
    assert_eq!(refresh(&app, &admin.refresh_token).await.status(), 200);
}

#[tokio::test]
async fn logout_ends_the_session_and_only_that_session() {
    let app = spawn_app().await;
    let leaving = admin_session(&app).await;
    let staying = admin_session(&app).await;
    let response = app.client.post(app.url("/auth/logout")).bearer_auth(&leaving.access_token).send().await.unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(get_with(&app, "/auth/me", &leaving.access_token).await.status(), 401);
    assert_eq!(refresh(&app, &leaving.refresh_token).await.status(), 401);
    assert_eq!(get_with(&app, "/auth/me", &staying.access_token).await.status(), 200);
}

#[tokio::test]
async fn only_hs256_tokens_of_a_known_type_with_every_claim_are_accepted() {
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    let secret = jwt_secret(&app).await.into_bytes();
    let good = access_claims(&admin, "super_admin", 600);
    assert_eq!(get_with(&app, "/auth/me", &sign(&secret, Algorithm::HS256, &good)).await.status(), 200, "control");

    for algorithm in [Algorithm::HS384, Algorithm::HS512] {
        let token = sign(&secret, algorithm, &good);
        assert_eq!(get_with(&app, "/auth/me", &token).await.status(), 401, "{algorithm:?} with the right secret");
    }
    let mut unknown_type = good.clone();
    unknown_type["typ"] = json!("super_token");
    let mut no_type = good.clone();
    no_type.as_object_mut().unwrap().remove("typ");
    let mut no_exp = good.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    let mut no_session = good.clone();
    no_session.as_object_mut().unwrap().remove("sid");
    let mut just_expired = good.clone();
    just_expired["exp"] = json!(now() - 30);
    for (what, claims) in [
        ("unknown typ", unknown_type),
        ("no typ", no_type),
        ("no exp", no_exp),
        ("no sid", no_session),
        ("expired 30 s ago", just_expired),
    ] {
        let token = sign(&secret, Algorithm::HS256, &claims);
        assert_eq!(get_with(&app, "/auth/me", &token).await.status(), 401, "{what}");
    }
    // A few seconds of clock skew between replicas is tolerated.
    let mut within_leeway = good.clone();
    within_leeway["exp"] = json!(now() - 1);
    assert_eq!(get_with(&app, "/auth/me", &sign(&secret, Algorithm::HS256, &within_leeway)).await.status(), 200);
}

#[tokio::test]
async fn issued_tokens_carry_their_type_and_lifetimes() {
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    let access = claims_of(&admin.access_token);
    assert_eq!(access["typ"], "access");
    assert_eq!(access["sub"], "admin");
    assert_eq!(access["role"], "super_admin");
    assert_eq!(access["exp"].as_i64().unwrap() - access["iat"].as_i64().unwrap(), 900);
    let refresh = claims_of(&admin.refresh_token);
    assert_eq!(refresh["typ"], "refresh");
    assert_eq!(refresh["sid"], access["sid"]);
    assert_eq!(refresh["exp"].as_i64().unwrap() - refresh["iat"].as_i64().unwrap(), 7 * 24 * 3600);
    let header: Value = {
        use base64::Engine;
        let part = admin.access_token.split('.').next().unwrap();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    };
    assert_eq!(header["alg"], "HS256");
}

#[tokio::test]
async fn changing_your_own_password_needs_the_current_one_and_ends_your_other_sessions() {
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    create_user(&app, &admin, "alice", "viewer").await;
    let here = login_ok(&app, "alice", PASSWORD).await;
    let elsewhere = login_ok(&app, "alice", PASSWORD).await;
    let change = |current: &str, new: &str| {
        app.client
            .put(app.url("/auth/password"))
            .bearer_auth(&here.access_token)
            .json(&json!({"current_password": current, "new_password": new}))
            .send()
    };

    let (status, _, message) = error_of(change("not my password at all", "a brand new password").await.unwrap()).await;
    assert_eq!((status, message.as_str()), (403, "current_password is incorrect"));
    let (status, _, message) = error_of(change(PASSWORD, "short").await.unwrap()).await;
    assert_eq!(status, 422);
    assert!(message.contains("new_password") && message.contains("at least 12"), "{message}");
    assert_eq!(login(&app, "alice", "a brand new password").await.status(), 401, "refused changes changed nothing");

    assert_eq!(change(PASSWORD, "a brand new password").await.unwrap().status(), 204);
    assert_eq!(login(&app, "alice", PASSWORD).await.status(), 401);
    login_ok(&app, "alice", "a brand new password").await;
    assert_eq!(get_with(&app, "/auth/me", &here.access_token).await.status(), 200, "this session stays");
    assert_eq!(get_with(&app, "/auth/me", &elsewhere.access_token).await.status(), 401, "other sessions end");
    let rows = audit_rows(&app, "alice").await;
    let (actor, action, _, after) = rows.last().unwrap();
    assert_eq!((actor.as_str(), action.as_str()), ("user:alice", "user.password.change"));
    assert!(!after.as_ref().unwrap().to_string().contains("brand new"), "no password in the audit trail");
}

#[tokio::test]
async fn wrong_current_passwords_count_against_the_login_throttle() {
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    let limit = app.state.settings.login_throttle.max_failures_per_username;
    for _ in 0..limit {
        let response = app
            .client
            .put(app.url("/auth/password"))
            .bearer_auth(&admin.access_token)
            .json(&json!({"current_password": "guess guess guess", "new_password": "a brand new password"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403);
    }
    assert_eq!(login(&app, "admin", PASSWORD).await.status(), 429);
}

#[tokio::test]
async fn bad_request_bodies_get_the_error_envelope_and_change_nothing() {
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    let post = |body: &'static str, content_type: &'static str| {
        app.client
            .post(app.url("/admin/agents"))
            .bearer_auth(&admin.access_token)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let (status, code, _) = error_of(post("{not json", "application/json").await.unwrap()).await;
    assert_eq!((status, code.as_str()), (400, "bad_request"));
    let (status, code, _) = error_of(post(r#"{"name": "x"}"#, "text/plain").await.unwrap()).await;
    assert_eq!((status, code.as_str()), (415, "unsupported_media_type"));
    let (status, code, message) = error_of(post(r#"{"description": "x"}"#, "application/json").await.unwrap()).await;
    assert_eq!((status, code.as_str()), (422, "unprocessable"));
    assert!(message.contains("missing field `name`"), "{message}");
    let (status, _, message) =
        error_of(post(r#"{"name": "x", "alowed_tools": []}"#, "application/json").await.unwrap()).await;
    assert_eq!(status, 422);
    assert!(message.contains("unknown field `alowed_tools`"), "{message}");
    let (status, _, message) =
        error_of(post(r#"{"name": "x", "allowed_tools": "read_file"}"#, "application/json").await.unwrap()).await;
    assert_eq!(status, 422);
    assert!(message.contains("invalid type"), "{message}");
    let login_without_password =
        app.client.post(app.url("/auth/login")).json(&json!({"username": "admin"})).send().await.unwrap();
    let (status, _, message) = error_of(login_without_password).await;
    assert_eq!(status, 422);
    assert!(message.contains("missing field `password`"), "{message}");
    let agents: i64 = sqlx::query_scalar("SELECT count(*) FROM agents").fetch_one(&app.db.pool).await.unwrap();
    assert_eq!(agents, 0);
}

#[tokio::test]
async fn bad_query_strings_get_the_error_envelope() {
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    for query in ["limit=lots", "limit=0", "limit=501", "colour=red"] {
        let (status, code, message) =
            error_of(get_with(&app, &format!("/admin/audit?{query}"), &admin.access_token).await).await;
        assert_eq!((status, code.as_str()), (400, "bad_request"), "{query}: {message}");
    }
}

#[tokio::test]
async fn an_access_token_expires_after_its_lifetime() {
    // Signed as the server would, but 15 minutes and 10 seconds ago.
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    let secret = jwt_secret(&app).await.into_bytes();
    let mut claims = claims_of(&admin.access_token);
    let lifetime = 900;
    claims["iat"] = json!(now() - lifetime - 10);
    claims["exp"] = json!(now() - 10);
    let (status, _, message) =
        error_of(get_with(&app, "/auth/me", &sign(&secret, Algorithm::HS256, &claims)).await).await;
    assert_eq!(status, 401);
    assert!(message.starts_with("token expired"), "{message}");
}
