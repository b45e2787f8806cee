//! Logging in, creating users and agents, minting and forging tokens: the vocabulary of
//! the auth tests, and of any later test that needs a caller.
#![allow(dead_code)] // shared by many test modules; not each uses every helper

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{TestApp, TEST_ADMIN_PASSWORD};

/// Every user the tests create gets this password (long enough for the policy).
pub const PASSWORD: &str = TEST_ADMIN_PASSWORD;

/// A logged-in user's tokens.
#[derive(Debug, Clone)]
pub struct Session {
    pub username: String,
    pub access_token: String,
    pub refresh_token: String,
    pub session_id: Uuid,
}

pub async fn login(app: &TestApp, username: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .expect("login request")
}

pub async fn login_ok(app: &TestApp, username: &str, password: &str) -> Session {
    let response = login(app, username, password).await;
    assert_eq!(response.status(), 200, "login as {username}");
    session_from(username, response.json().await.expect("login body"))
}

pub fn session_from(username: &str, body: Value) -> Session {
    let access_token = body["access_token"].as_str().expect("access_token").to_owned();
    let refresh_token = body["refresh_token"].as_str().expect("refresh_token").to_owned();
    let session_id = claims_of(&access_token)["sid"].as_str().expect("sid").parse().expect("sid is a uuid");
    Session { username: username.to_owned(), access_token, refresh_token, session_id }
}

/// The bootstrap super_admin.
pub async fn admin_session(app: &TestApp) -> Session {
    login_ok(app, "admin", TEST_ADMIN_PASSWORD).await
}

pub async fn create_user(app: &TestApp, by: &Session, username: &str, role: &str) {
    let response = app
        .client
        .post(app.url("/admin/users"))
        .bearer_auth(&by.access_token)
        .json(&json!({"username": username, "password": PASSWORD, "role": role}))
        .send()
        .await
        .expect("create user");
    assert_eq!(response.status(), 201, "create user {username}: {}", response.text().await.unwrap_or_default());
}

pub async fn create_agent(app: &TestApp, by: &Session, name: &str, allowed: &[&str], approval: &[&str]) -> Value {
    let response = app
        .client
        .post(app.url("/admin/agents"))
        .bearer_auth(&by.access_token)
        .json(&json!({"name": name, "description": format!("{name} for tests"), "allowed_tools": allowed, "approval_required_tools": approval}))
        .send()
        .await
        .expect("create agent");
    assert_eq!(response.status(), 201, "create agent {name}");
    response.json().await.expect("agent body")
}

pub async fn set_tools(app: &TestApp, by: &Session, agent: &str, list: &str, tools: &[&str]) -> reqwest::Response {
    app.client
        .put(app.url(&format!("/admin/agents/{agent}/{list}")))
        .bearer_auth(&by.access_token)
        .json(&json!({"tools": tools}))
        .send()
        .await
        .expect("set tools")
}

pub async fn mint_agent_token(app: &TestApp, by: &Session, agent: &str) -> String {
    let response = app
        .client
        .post(app.url("/v1/agent-token"))
        .bearer_auth(&by.access_token)
        .json(&json!({"agent": agent}))
        .send()
        .await
        .expect("mint agent token");
    assert_eq!(response.status(), 200, "mint a token for {agent}");
    let body: Value = response.json().await.expect("token body");
    body["token"].as_str().expect("token").to_owned()
}

pub async fn get_with(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    app.client.get(app.url(path)).bearer_auth(token).send().await.expect("GET")
}

/// A token's claims, read without verifying it (tests inspect what the server issued).
pub fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// The signing secret the server generated for this test database.
pub async fn jwt_secret(app: &TestApp) -> String {
    sqlx::query_scalar("SELECT value FROM generated_secrets WHERE name = 'jwt_secret'")
        .fetch_one(&app.db.pool)
        .await
        .expect("the generated JWT secret")
}

pub fn sign(secret: &[u8], algorithm: Algorithm, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(algorithm), claims, &EncodingKey::from_secret(secret)).expect("sign")
}

/// A token with `"alg": "none"` and no signature.
pub fn unsigned(claims: &Value) -> String {
    let b64 = |value: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string());
    format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), b64(claims))
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Access-token claims for a real session, valid for `lifetime_secs` from now (negative:
/// already expired).
pub fn access_claims(session: &Session, role: &str, lifetime_secs: i64) -> Value {
    json!({
        "typ": "access",
        "sub": session.username,
        "role": role,
        "sid": session.session_id,
        "iat": now() - 1,
        "exp": now() + lifetime_secs,
        "jti": Uuid::new_v4(),
    })
}

/// The error envelope every 4xx carries: `(status, error.code, error.message)`.
pub async fn error_of(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or_else(|_| panic!("a {status} with a JSON error body"));
    let code = body["error"]["code"].as_str().unwrap_or_else(|| panic!("error.code in {body}")).to_owned();
    let message = body["error"]["message"].as_str().unwrap_or_else(|| panic!("error.message in {body}")).to_owned();
    (status, code, message)
}

/// The admin audit rows about `target`, oldest first.
pub async fn audit_rows(app: &TestApp, target: &str) -> Vec<(String, String, Option<Value>, Option<Value>)> {
    sqlx::query_as("SELECT actor, action, before, after FROM admin_audit WHERE target = $1 ORDER BY id")
        .bind(target)
        .fetch_all(&app.db.pool)
        .await
        .expect("audit rows")
}

/// Posts the login form as a same-origin browser would; the response.
pub async fn post_login(app: &TestApp, origin: &str, username: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/login"))
        .header("origin", origin)
        .form(&[("username", username), ("password", password)])
        .send()
        .await
        .expect("POST /login")
}

/// Logs in through the console's form; the `Cookie` header value of the session.
pub async fn console_cookie(app: &TestApp, username: &str, password: &str) -> String {
    let response = post_login(app, &app.address, username, password).await;
    assert_eq!(response.status(), 303, "console login as {username}");
    let set_cookie = response.headers()[reqwest::header::SET_COOKIE].to_str().expect("ASCII").to_owned();
    set_cookie.split(';').next().expect("name=value").to_owned()
}
