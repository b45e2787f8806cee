//! The authorization matrix: every route × every kind of credential → the status it must
//! get. A new route is one more row in `routes()`; the expectations for each credential
//! follow from the row's `Access`.

use jsonwebtoken::Algorithm;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::auth_helpers::*;
use crate::gateway_helpers::{register_fs, FsUpstream};
use crate::helpers::{requests, spawn_app, TestApp};
use crate::peers::example_fs_bin;

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
    Auditor,
    Viewer,
    Admin,
    SuperAdmin,
    Agent,
    /// An agent token minted before its agent's policy changed.
    StaleAgent,
}

use Credential::*;

const CREDENTIALS: [Credential; 13] = [
    NoHeader,
    MalformedHeader,
    GarbageToken,
    Expired,
    BadSignature,
    AlgNone,
    RefreshAsBearer,
    Auditor,
    Viewer,
    Admin,
    SuperAdmin,
    Agent,
    StaleAgent,
];

/// Who a route lets in, and the status it answers when it does.
#[derive(Debug, Clone, Copy)]
enum Access {
    /// No authentication: the Authorization header is ignored; every credential gets this.
    Public(u16),
    /// Users whose role is at least this; agents get 403, invalid credentials 401.
    Users(&'static str, u16),
    /// Any user or an agent; invalid credentials 401.
    AgentOrUser(u16),
    /// The audit evidence: an auditor or a super_admin gets this; other users and agents
    /// 403, invalid credentials 401.
    Audit(u16),
    /// Users whose role is at least `min` get `ok` (below it 403); a valid agent gets
    /// `agent`; invalid credentials 401. The MCP endpoint.
    UsersOrAgent { min: &'static str, ok: u16, agent: u16 },
}

fn role_rank(role: &str) -> u8 {
    match role {
        "auditor" => 0,
        "viewer" => 1,
        "admin" => 2,
        "super_admin" => 3,
        other => panic!("unknown role {other}"),
    }
}

impl Access {
    fn expected(self, credential: Credential) -> u16 {
        let user_role = match credential {
            Auditor => Some("auditor"),
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
            Access::Audit(ok) => match user_role {
                Some("auditor" | "super_admin") => ok,
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
            Access::UsersOrAgent { min, ok, agent } => match user_role {
                Some(role) if role_rank(role) >= role_rank(min) => ok,
                Some(_) => 403,
                None if valid_agent => agent,
                None => 401,
            },
        }
    }
}

struct Route {
    method: Method,
    /// The path each credential calls: the same for most rows; a route that can succeed
    /// for several credentials but only once per object gets an object per credential.
    path: Box<dyn Fn(Credential) -> String>,
    body: Option<Value>,
    access: Access,
}

fn route(method: Method, path: impl Into<String>, body: Option<Value>, access: Access) -> Route {
    let path = path.into();
    Route { method, path: Box::new(move |_| path.clone()), body, access }
}

fn route_each(method: Method, path: fn(Credential) -> String, body: Option<Value>, access: Access) -> Route {
    Route { method, path: Box::new(path), body, access }
}

/// The pending permission request the credential's approve (or reject) row decides:
/// ids are derived from (agent, key), so `fixtures` creates exactly these.
fn decision_request(decision: &str, credential: Credential) -> Uuid {
    alexandria_domain::request_id(MATRIX_AGENT, &format!("{decision}-{credential:?}"))
}

const MATRIX_AGENT: &str = "matrix-agent";
fn ping() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})
}

/// Every route that exists. Routes that change something target objects of their own
/// (see `fixtures`), and only one credential column can succeed at a destructive route.
fn routes(fixtures: &Fixtures) -> Vec<Route> {
    use Access::*;
    let password = PASSWORD;
    let shown = fixtures.shown_request;
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
            Users("auditor", 204),
        ),
        route(Method::POST, "/auth/logout", None, Users("auditor", 204)),
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
        route(
            Method::PUT,
            "/admin/agents/policy-agent/allowed-prompts",
            Some(json!({"prompts": ["greet"]})),
            Users("super_admin", 200),
        ),
        route(
            Method::PUT,
            "/admin/agents/policy-agent/allowed-resources",
            Some(json!({"resources": ["test://*"]})),
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
        // The audit evidence: auditors and super_admins only.
        route(Method::GET, "/admin/audit", None, Audit(200)),
        route(Method::GET, "/admin/audit/export", None, Audit(200)),
        route(Method::GET, "/admin/audit/checkpoints", None, Audit(200)),
        route(Method::GET, "/admin/events", None, Audit(200)),
        route(Method::GET, "/admin/events?since=1", None, Audit(200)),
        route(Method::GET, "/admin/notifications/config", None, Users("super_admin", 200)),
        route(
            Method::PATCH,
            "/admin/notifications/config",
            Some(json!({"alertmanager_severity": "info"})),
            Users("super_admin", 200),
        ),
        // No channel configured: nothing to send, nothing failed.
        route(Method::POST, "/admin/notifications/test", None, Users("super_admin", 200)),
        // The MCP endpoint: a user must name the agent it acts as; an agent only itself.
        // Any user (an auditor too) is told to name an agent; nothing is done.
        route(Method::POST, "/mcp", Some(ping()), UsersOrAgent { min: "auditor", ok: 400, agent: 200 }),
        route(
            Method::POST,
            "/mcp/agents/token-agent",
            Some(ping()),
            UsersOrAgent { min: "admin", ok: 200, agent: 200 },
        ),
        route(
            Method::POST,
            "/mcp/agents/policy-agent",
            Some(ping()),
            UsersOrAgent { min: "admin", ok: 200, agent: 403 },
        ),
        // Permission requests.
        route(Method::GET, "/admin/permissions", None, Users("admin", 200)),
        route(Method::GET, "/admin/permissions?status=pending&limit=5", None, Users("admin", 200)),
        route(Method::GET, format!("/admin/permissions/{shown}"), None, Users("admin", 200)),
        route(Method::GET, format!("/admin/permissions/{shown}/events"), None, Users("admin", 200)),
        route_each(
            Method::POST,
            |c| format!("/admin/permissions/{}/approve", decision_request("approve", c)),
            None,
            Users("admin", 200),
        ),
        route_each(
            Method::POST,
            |c| format!("/admin/permissions/{}/reject", decision_request("reject", c)),
            Some(json!({"reason": "matrix"})),
            Users("admin", 200),
        ),
        // Upstream MCP servers: read and refresh as admin, register and delete as super_admin.
        route(Method::GET, "/admin/mcp-servers", None, Users("admin", 200)),
        route(Method::GET, "/admin/mcp-servers/listed-fs", None, Users("admin", 200)),
        route(Method::POST, "/admin/mcp-servers/listed-fs/refresh", None, Users("admin", 200)),
        route(
            Method::POST,
            "/admin/mcp-servers",
            Some(json!({
                "name": "new-fs",
                "transport": "stdio",
                "command": example_fs_bin(),
                "args": ["--root", fixtures.dir.path().join("new-fs")],
                "tool_prefix": "new_",
            })),
            Users("super_admin", 201),
        ),
        route(Method::DELETE, "/admin/mcp-servers/doomed-fs", None, Users("super_admin", 204)),
    ]
}

/// Users, agents and agent tokens the rows act on.
struct Fixtures {
    agent_token: String,
    stale_agent_token: String,
    other_secret: Vec<u8>,
    secret: Vec<u8>,
    /// A permission request the read rows show.
    shown_request: Uuid,
    /// Registered upstreams (kept alive for the test) and a directory for new ones.
    _upstreams: Vec<FsUpstream>,
    dir: tempfile::TempDir,
}

async fn fixtures(app: &TestApp) -> Fixtures {
    let admin = admin_session(app).await;
    create_user(app, &admin, "matrix-viewer", "viewer").await;
    create_user(app, &admin, "matrix-auditor", "auditor").await;
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
    // A fresh pending request per credential for each decision row, and one to show.
    let store = &app.state.store;
    for credential in CREDENTIALS {
        for decision in ["approve", "reject"] {
            let id = requests::request_through(store, MATRIX_AGENT, &format!("{decision}-{credential:?}"), &[]).await;
            assert_eq!(id, decision_request(decision, credential));
        }
    }
    let shown_request = requests::request_through(store, MATRIX_AGENT, "shown", &["approve"]).await;
    let upstreams = vec![
        register_fs(app, &admin, "listed-fs", None).await,
        register_fs(app, &admin, "doomed-fs", Some("doomed_")).await,
    ];
    Fixtures {
        agent_token,
        stale_agent_token,
        other_secret: b"another secret, long enough for HS256 signing".to_vec(),
        secret: jwt_secret(app).await.into_bytes(),
        shown_request,
        _upstreams: upstreams,
        dir: tempfile::tempdir().expect("tempdir"),
    }
}

/// The header each credential sends, built from sessions fresh for this row (a row may
/// end its caller's session: logout, password change).
struct Headers {
    auditor: Session,
    viewer: Session,
    admin: Session,
    super_admin: Session,
    expired: String,
    bad_signature: String,
    alg_none: String,
}

impl Headers {
    async fn fresh(app: &TestApp, fixtures: &Fixtures) -> Headers {
        let auditor = login_ok(app, "matrix-auditor", PASSWORD).await;
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
        Headers { auditor, viewer, admin, super_admin, expired, bad_signature, alg_none }
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
            Auditor => bearer(&self.auditor.access_token),
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
    for row in routes(&fixtures) {
        let headers = Headers::fresh(&app, &fixtures).await;
        for credential in CREDENTIALS {
            let path = (row.path)(credential);
            let mut request = app.client.request(row.method.clone(), app.url(&path));
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
                mismatches
                    .push(format!("{} {path} with {credential:?}: got {status}, want {expected}: {body}", row.method));
            } else if status >= 400 {
                let error: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                if !error["error"]["code"].is_string() || !error["error"]["message"].is_string() {
                    mismatches.push(format!(
                        "{} {path} with {credential:?}: {status} without the error envelope: {body}",
                        row.method
                    ));
                }
            }
        }
    }
    assert!(mismatches.is_empty(), "{} mismatches:\n{}", mismatches.len(), mismatches.join("\n"));

    // The decision rows decided exactly the requests of the credentials they admitted.
    for credential in CREDENTIALS {
        for (decision, event) in [("approve", "Approved"), ("reject", "Rejected")] {
            let id = decision_request(decision, credential);
            let history = crate::gateway_helpers::event_types(&app.db.pool, id).await;
            let want: &[&str] =
                if matches!(credential, Admin | SuperAdmin) { &["Created", event] } else { &["Created"] };
            assert_eq!(history, want, "{decision} by {credential:?}");
        }
    }
    assert!(app.state.upstreams.get("doomed-fs").is_err(), "doomed-fs was deleted");
    assert_eq!(app.state.upstreams.get("new-fs").map(|s| s.tools.len()).ok(), Some(4), "new-fs was registered");
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
        (Auditor, "/admin/permissions", 403, "this needs role admin or higher; you are auditor"),
        (Viewer, "/admin/events", 403, "this needs role auditor or super_admin; you are viewer"),
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
