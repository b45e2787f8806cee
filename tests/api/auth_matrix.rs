//! The authorization matrix: every route × every kind of credential → the status it must
//! get. A new route is one more row in `routes()`; the expectations for each credential
//! follow from the row's `Access`.

use jsonwebtoken::Algorithm;
use reqwest::Method;
use serde_json::{json, Value};

use crate::auth_helpers::*;
use crate::helpers::{spawn_app, TestApp};

/// What the caller presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Credential {
    NoHeader,
    /// `Authorization: Token ...`: not the Bearer scheme.
    MalformedHeader,
    GarbageToken,
    /// A super_admin's access token for a live session, expired a minute ago.
    Expired,
    /// The same, unexpired, signed with another secret.
    BadSignature,
    /// The same, unexpired, with `"alg": "none"` and no signature.
    AlgNone,
    /// A viewer's refresh token presented as a bearer token.
    RefreshAsBearer,
    Viewer,
    Admin,
    SuperAdmin,
    Agent,
    /// An agent token minted before its agent's policy changed.
    StaleAgent,
}

use Credential::*;

const CREDENTIALS: [Credential; 12] =
    [NoHeader, MalformedHeader, GarbageToken, Expired, BadSignature, AlgNone, RefreshAsBearer, Viewer, Admin, SuperAdmin, Agent, StaleAgent];

/// Who a route lets in, and the status it answers when it does.
#[derive(Debug, Clone, Copy)]
enum Access {
    /// No authentication: the Authorization header is ignored; every credential gets this.
    Public(u16),
    /// Users whose role is at least this; agents get 403, invalid credentials 401.
    Users(&'static str, u16),
    /// Any user or an agent; invalid credentials 401.
    AgentOrUser(u16),
}

fn role_rank(role: &str) -> u8 {
    match role {
        "viewer" => 0,
        "admin" => 1,
        "super_admin" => 2,
        other => panic!("unknown role {other}"),
    }
}

impl Access {
    fn expected(self, credential: Credential) -> u16 {
        let user_role = match credential {
            Viewer => Some("viewer"),
            Admin => Some("admin"),
            SuperAdmin => Some("super_admin"),
            _ => None,
        };
        let valid_agent = credential == Agent;
        match self {
            Access::Public(status) => status,
            Access::Users(min, ok) => match user_role {
                Some(role) if role_rank(role) >= role_rank(min) => ok,
                Some(_) => 403,
                None if valid_agent => 403,
                None => 401,
            },
            Access::AgentOrUser(ok) => {
                if user_role.is_some() || valid_agent {
                    ok
                } else {
                    401
                }
            }
        }
    }
}

struct Route {
    method: Method,
    path: &'static str,
    body: Option<Value>,
    access: Access,
}

fn route(method: Method, path: &'static str, body: Option<Value>, access: Access) -> Route {
    Route { method, path, body, access }
}

/// Every route that exists. Routes that change something target objects of their own
/// (see `fixtures`), and only one credential column can succeed at a destructive route.
fn routes() -> Vec<Route> {
    use Access::*;
    let password = PASSWORD;
    vec![
        route(Method::GET, "/healthz", None, Public(200)),
        route(Method::GET, "/readyz", None, Public(200)),
        route(Method::GET, "/metrics", None, Public(200)),
        route(Method::POST, "/auth/login", Some(json!({"username": "admin", "password": password})), Public(200)),
        route(Method::POST, "/auth/refresh", Some(json!({"refresh_token": "not-a-token"})), Public(401)),
        route(Method::GET, "/auth/me", None, AgentOrUser(200)),
        route(
            Method::PUT,
            "/auth/password",
            Some(json!({"current_password": password, "new_password": password})),
            Users("viewer", 204),
        ),
        route(Method::POST, "/auth/logout", None, Users("viewer", 204)),
        route(Method::POST, "/v1/agent-token", Some(json!({"agent": "token-agent"})), Users("admin", 200)),
        route(Method::GET, "/admin/agents", None, Users("admin", 200)),
        route(Method::GET, "/admin/agents/token-agent", None, Users("admin", 200)),
        route(Method::POST, "/admin/agents", Some(json!({"name": "new-agent"})), Users("super_admin", 201)),
        route(
            Method::PUT,
            "/admin/agents/policy-agent/allowed-tools",
            Some(json!({"tools": ["read_file", "write_file"]})),
            Users("super_admin", 200),
        ),
        route(
            Method::PUT,
            "/admin/agents/policy-agent/approval-required-tools",
            Some(json!({"tools": ["write_file"]})),
            Users("super_admin", 200),
        ),
        route(Method::DELETE, "/admin/agents/doomed-agent", None, Users("super_admin", 204)),
        route(Method::GET, "/admin/users", None, Users("super_admin", 200)),
        route(
            Method::POST,
            "/admin/users",
            Some(json!({"username": "new-user", "password": password, "role": "viewer"})),
            Users("super_admin", 201),
        ),
        route(Method::PATCH, "/admin/users/target-user", Some(json!({"role": "admin"})), Users("super_admin", 200)),
        route(
            Method::POST,
            "/admin/users/target-user/password",
            Some(json!({"password": password})),
            Users("super_admin", 204),
        ),
        route(Method::DELETE, "/admin/users/doomed-user", None, Users("super_admin", 204)),
        route(Method::GET, "/admin/audit", None, Users("super_admin", 200)),
    ]
}

/// Users, agents and agent tokens the rows act on.
struct Fixtures {
    agent_token: String,
    stale_agent_token: String,
    other_secret: Vec<u8>,
    secret: Vec<u8>,
}

async fn fixtures(app: &TestApp) -> Fixtures {
    let admin = admin_session(app).await;
    create_user(app, &admin, "matrix-viewer", "viewer").await;
    create_user(app, &admin, "matrix-admin", "admin").await;
    create_user(app, &admin, "target-user", "viewer").await;
    create_user(app, &admin, "doomed-user", "viewer").await;
    create_agent(app, &admin, "token-agent", &["read_file"], &[]).await;
    create_agent(app, &admin, "policy-agent", &["read_file"], &[]).await;
    create_agent(app, &admin, "doomed-agent", &[], &[]).await;
    create_agent(app, &admin, "stale-agent", &["read_file"], &[]).await;
    let agent_token = mint_agent_token(app, &admin, "token-agent").await;
    let stale_agent_token = mint_agent_token(app, &admin, "stale-agent").await;
    let bumped = set_tools(app, &admin, "stale-agent", "allowed-tools", &["read_file", "write_file"]).await;
    assert_eq!(bumped.status(), 200);
    Fixtures {
        agent_token,
        stale_agent_token,
        other_secret: b"another secret, long enough for HS256 signing".to_vec(),
        secret: jwt_secret(app).await.into_bytes(),
    }
}

/// The header each credential sends, built from sessions fresh for this row (a row may
/// end its caller's session: logout, password change).
struct Headers {
    viewer: Session,
    admin: Session,
    super_admin: Session,
    expired: String,
    bad_signature: String,
    alg_none: String,
}

impl Headers {
    async fn fresh(app: &TestApp, fixtures: &Fixtures) -> Headers {
        let viewer = login_ok(app, "matrix-viewer", PASSWORD).await;
        let admin = login_ok(app, "matrix-admin", PASSWORD).await;
        let super_admin = login_ok(app, "admin", PASSWORD).await;
        let expired = sign(&fixtures.secret, Algorithm::HS256, &access_claims(&super_admin, "super_admin", -60));
        let bad_signature =
            sign(&fixtures.other_secret, Algorithm::HS256, &access_claims(&super_admin, "super_admin", 600));
        let alg_none = unsigned(&access_claims(&super_admin, "super_admin", 600));
        // Control: the forged tokens differ from an accepted one only in their defect.
        let control = sign(&fixtures.secret, Algorithm::HS256, &access_claims(&super_admin, "super_admin", 600));
        assert_eq!(get_with(app, "/auth/me", &control).await.status(), 200, "the control token is accepted");
        Headers { viewer, admin, super_admin, expired, bad_signature, alg_none }
    }

    fn authorization(&self, fixtures: &Fixtures, credential: Credential) -> Option<String> {
        let bearer = |token: &str| Some(format!("Bearer {token}"));
        match credential {
            NoHeader => None,
            MalformedHeader => Some(format!("Token {}", self.super_admin.access_token)),
            GarbageToken => bearer("not.a.jwt"),
            Expired => bearer(&self.expired),
            BadSignature => bearer(&self.bad_signature),
            AlgNone => bearer(&self.alg_none),
            RefreshAsBearer => bearer(&self.viewer.refresh_token),
            Viewer => bearer(&self.viewer.access_token),
            Admin => bearer(&self.admin.access_token),
            SuperAdmin => bearer(&self.super_admin.access_token),
            Agent => bearer(&fixtures.agent_token),
            StaleAgent => bearer(&fixtures.stale_agent_token),
        }
    }
}

#[tokio::test]
async fn every_route_admits_exactly_the_credentials_it_should() {
    let app = spawn_app().await;
    let fixtures = fixtures(&app).await;
    let mut mismatches = Vec::new();
    for row in routes() {
        let headers = Headers::fresh(&app, &fixtures).await;
        for credential in CREDENTIALS {
            let mut request = app.client.request(row.method.clone(), app.url(row.path));
            if let Some(value) = headers.authorization(&fixtures, credential) {
                request = request.header(reqwest::header::AUTHORIZATION, value);
            }
            if let Some(body) = &row.body {
                request = request.json(body);
            }
            let response = request.send().await.expect("request");
            let status = response.status().as_u16();
            let expected = row.access.expected(credential);
            let body = response.text().await.unwrap_or_default();
            if status != expected {
                mismatches.push(format!("{} {} with {credential:?}: got {status}, want {expected}: {body}", row.method, row.path));
            } else if status >= 400 {
                let error: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                if !error["error"]["code"].is_string() || !error["error"]["message"].is_string() {
                    mismatches.push(format!("{} {} with {credential:?}: {status} without the error envelope: {body}", row.method, row.path));
                }
            }
        }
    }
    assert!(mismatches.is_empty(), "{} mismatches:\n{}", mismatches.len(), mismatches.join("\n"));
}

#[tokio::test]
async fn refusals_say_what_is_wrong() {
    let app = spawn_app().await;
    let fixtures = fixtures(&app).await;
    let headers = Headers::fresh(&app, &fixtures).await;
    let cases = [
        (NoHeader, "/auth/me", 401, "missing Authorization header"),
        (MalformedHeader, "/auth/me", 401, "malformed Authorization header"),
        (GarbageToken, "/auth/me", 401, "invalid token"),
        (Expired, "/auth/me", 401, "token expired"),
        (BadSignature, "/auth/me", 401, "invalid token"),
        (AlgNone, "/auth/me", 401, "invalid token"),
        (RefreshAsBearer, "/auth/me", 401, "refresh token is only accepted by POST /auth/refresh"),
        (StaleAgent, "/auth/me", 401, "agent policy changed; mint a new token"),
        (StaleAgent, "/admin/agents", 401, "agent policy changed; mint a new token"),
        (Agent, "/admin/agents", 403, "agent tokens are not accepted here"),
        (Viewer, "/admin/agents", 403, "this needs role admin or higher; you are viewer"),
        (Admin, "/admin/users", 403, "this needs role super_admin or higher; you are admin"),
    ];
    for (credential, path, want_status, want_message) in cases {
        let mut request = app.client.get(app.url(path));
        if let Some(value) = headers.authorization(&fixtures, credential) {
            request = request.header(reqwest::header::AUTHORIZATION, value);
        }
        let response = request.send().await.expect("request");
        if want_status == 401 {
            assert_eq!(response.headers()["www-authenticate"], "Bearer", "{credential:?}");
        }
        let (status, _code, message) = error_of(response).await;
        assert_eq!(status, want_status, "{credential:?} at {path}: {message}");
        assert!(message.contains(want_message), "{credential:?} at {path}: {message:?} should say {want_message:?}");
    }
}
