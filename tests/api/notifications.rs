//! Notifications against real peers: a real Alertmanager (Debian `prometheus-alertmanager`,
//! one process per test) and a real HTTP receiver for webhooks that verifies signatures
//! the way `docs/NOTIFICATIONS.md` tells receivers to.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alexandria::approval::queries::{list, ListFilter, PermissionDto};
use alexandria::audit_trail::AuditFilter;
use alexandria::http::routes::notifications::{get_config, patch_config, test_notifications};
use alexandria::notify::{SettingsPatch, TestReport};
use alexandria_domain::{PermissionRequestCommand as C, RequestStatus};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use uuid::Uuid;

use crate::alertmanager::Alertmanager;
use crate::helpers::requests::{create_cmd, meta, request_through};
use crate::helpers::{eventually, spawn_app, spawn_app_on, test_settings, TestApp};

const WAIT: Duration = Duration::from_secs(20);
const ADMIN: &str = "user:notify-admin";

/// `ADMIN` as the services take it.
fn admin_actor() -> alexandria::names::Actor {
    alexandria::names::Actor::User("notify-admin".to_owned())
}
pub(crate) const WEBHOOK_SECRET: &str = "receiver-shared-secret-0123456789";

// ---------------------------------------------------------------------------------------
// A real webhook receiver, verifying as docs/NOTIFICATIONS.md says.

/// How a receiver checks a delivery: the HMAC-SHA256 of `<timestamp>.<body>` with the
/// shared secret, compared in constant time, and a timestamp no older than 5 minutes.
fn verify_delivery(secret: &str, headers: &HeaderMap, body: &[u8]) -> Result<(), &'static str> {
    let timestamp: i64 = headers
        .get("x-alexandria-timestamp")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or("no timestamp")?;
    if (Utc::now().timestamp() - timestamp).abs() > 300 {
        return Err("stale timestamp");
    }
    let signature = headers
        .get("x-alexandria-signature")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("sha256="))
        .and_then(|v| hex::decode(v).ok())
        .ok_or("no signature")?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| "bad key")?;
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    mac.verify_slice(&signature).map_err(|_| "bad signature")
}

#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    headers: HeaderMap,
    body: Bytes,
}

impl Delivery {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("delivery body is JSON")
    }
}

#[derive(Default)]
struct ReceiverState {
    /// Verified deliveries, in arrival order.
    accepted: Mutex<Vec<Delivery>>,
    refused: AtomicUsize,
    /// Answer this many (verified) deliveries with 503 before accepting.
    fail_first: AtomicUsize,
}

pub(crate) struct Receiver {
    pub(crate) url: String,
    state: Arc<ReceiverState>,
    client: reqwest::Client,
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    if verify_delivery(WEBHOOK_SECRET, &headers, &body).is_err() {
        state.refused.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::UNAUTHORIZED, "signature check failed");
    }
    let failing = state.fail_first.load(Ordering::SeqCst);
    if failing > 0 {
        state.fail_first.store(failing - 1, Ordering::SeqCst);
        return (StatusCode::SERVICE_UNAVAILABLE, "receiver warming up");
    }
    state.accepted.lock().unwrap().push(Delivery { headers, body });
    (StatusCode::OK, "ok")
}

impl Receiver {
    pub(crate) async fn start(fail_first: usize) -> Receiver {
        let state = Arc::new(ReceiverState { fail_first: AtomicUsize::new(fail_first), ..Default::default() });
        let router = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind receiver");
        let address: SocketAddr = listener.local_addr().expect("receiver address");
        tokio::spawn(async move { axum::serve(listener, router).await });
        Receiver { url: format!("http://{address}/hook"), state, client: reqwest::Client::new() }
    }

    pub(crate) fn accepted(&self) -> Vec<Delivery> {
        self.state.accepted.lock().unwrap().clone()
    }

    pub(crate) fn accepted_for(&self, id: Uuid) -> Vec<Value> {
        self.accepted().iter().map(Delivery::json).filter(|body| body["id"] == json!(id)).collect()
    }

    /// Posts raw bytes with the given headers, as an attacker replaying or editing a
    /// captured delivery would.
    async fn post_raw(&self, headers: &HeaderMap, body: Vec<u8>) -> u16 {
        let mut request = self.client.post(&self.url).body(body);
        for name in ["content-type", "x-alexandria-timestamp", "x-alexandria-signature", "x-alexandria-event"] {
            if let Some(value) = headers.get(name) {
                request = request.header(name, value.as_bytes());
            }
        }
        request.send().await.expect("post to receiver").status().as_u16()
    }
}

// ---------------------------------------------------------------------------------------
// Helpers over the app.

async fn configure(app: &TestApp, body: Value) {
    let patch: SettingsPatch = serde_json::from_value(body).expect("patch body");
    let _accepted = patch_config(&app.state, &admin_actor(), patch).await.expect("settings accepted");
}

/// One outbox row's delivery state, as `notifier_meta` shows it.
async fn delivery(app: &TestApp, id: Uuid, channel: &str, kind: &str) -> Option<Value> {
    let dto = permission(app, id).await?;
    let state = dto.notifier_meta["channels"][channel][kind].clone();
    (!state.is_null()).then_some(state)
}

/// Like `delivery`, once the request is in the read model (which its own projector fills,
/// independently of the outbox).
async fn delivery_shown(app: &TestApp, id: Uuid, channel: &str, kind: &str) -> Value {
    eventually(WAIT, "the request in the read model", || async { delivery(app, id, channel, kind).await.is_some() })
        .await;
    delivery(app, id, channel, kind).await.unwrap_or_default()
}

async fn permission(app: &TestApp, id: Uuid) -> Option<PermissionDto> {
    let mut page = list(&app.state.pool, &ListFilter { limit: Some(500), ..Default::default() }).await.expect("list");
    alexandria::notify::attach_delivery_state(&app.state.pool, &mut page.items).await.expect("delivery state");
    page.items.into_iter().find(|item| item.id == id)
}

async fn delivered(app: &TestApp, id: Uuid, channel: &str, kind: &str) -> bool {
    delivery(app, id, channel, kind).await.is_some_and(|d| !d["delivered_at"].is_null())
}

async fn decide(app: &TestApp, id: Uuid, command: C) {
    app.state.store.execute(id, command, &meta(ADMIN)).await.expect("decision");
}

fn label(alert: &Value, name: &str) -> String {
    alert["labels"][name].as_str().unwrap_or_default().to_owned()
}

// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_pending_request_fires_an_alert_until_it_is_approved_or_rejected() {
    let Some(alertmanager) = Alertmanager::start().await else { return };
    let app = spawn_app().await;
    configure(&app, json!({"alertmanager_url": alertmanager.url(), "alertmanager_severity": "critical"})).await;

    let approved = request_through(&app.state.store, "agent-a", "to-approve", &[]).await;
    eventually(WAIT, "the pending request's alert to be active", || async {
        alertmanager.alerts(approved).await.len() == 1
    })
    .await;
    let alert = &alertmanager.alerts(approved).await[0];
    assert_eq!(alert["status"]["state"], "active");
    assert_eq!(label(alert, "alertname"), "AlexandriaPermissionRequestPending");
    assert_eq!(label(alert, "request_id"), approved.to_string());
    assert_eq!(label(alert, "agent"), "agent-a");
    assert_eq!(label(alert, "tool"), "write_file");
    assert_eq!(label(alert, "severity"), "critical");
    assert_eq!(alert["annotations"]["approve_url"], format!("http://127.0.0.1/requests/{approved}"));
    assert_eq!(
        alert["annotations"]["api_approve_url"],
        format!("http://127.0.0.1/admin/permissions/{approved}/approve")
    );
    assert!(alert["annotations"]["summary"].as_str().unwrap().contains("agent-a"));
    assert!(alert["annotations"]["description"].as_str().unwrap().contains("/tmp/to-approve"));
    assert_eq!(alert["generatorURL"], format!("http://127.0.0.1/requests/{approved}"));

    eventually(WAIT, "the delivery to be recorded", || delivered(&app, approved, "alertmanager", "pending")).await;
    let pending = delivery(&app, approved, "alertmanager", "pending").await.unwrap();
    assert_eq!(pending["attempts"], 1);
    assert!(pending["last_error"].is_null());

    decide(
        &app,
        approved,
        C::Approve { by: ADMIN.into(), at: Utc::now(), execute_by: Utc::now() + chrono::Duration::days(1) },
    )
    .await;
    eventually(WAIT, "the approved request's alert to be resolved", || async {
        alertmanager.alerts(approved).await.is_empty()
    })
    .await;
    assert_eq!(alertmanager.received("resolved").await, 1);
    eventually(WAIT, "the resolve to be recorded", || delivered(&app, approved, "alertmanager", "reviewed")).await;
    let pending = delivery(&app, approved, "alertmanager", "pending").await.unwrap();
    assert!(!pending["superseded_at"].is_null(), "a decided request's alert is not re-sent: {pending}");
    assert!(pending["next_attempt_at"].is_null(), "{pending}");

    // Rejected: resolved too, and the reason is where the runbook's agents read it.
    let rejected = request_through(&app.state.store, "agent-a", "to-reject", &[]).await;
    eventually(WAIT, "the second alert", || async { alertmanager.alerts(rejected).await.len() == 1 }).await;
    eventually(WAIT, "its delivery to be recorded", || delivered(&app, rejected, "alertmanager", "pending")).await;
    decide(&app, rejected, C::Reject { by: ADMIN.into(), at: Utc::now(), reason: "smoke test rejection".into() }).await;
    eventually(WAIT, "the rejected request's alert to be resolved", || async {
        alertmanager.alerts(rejected).await.is_empty()
    })
    .await;
    eventually(WAIT, "the read model to show the rejection", || async {
        permission(&app, rejected).await.is_some_and(|p| p.status == "rejected")
    })
    .await;
    let dto = permission(&app, rejected).await.unwrap();
    assert_eq!(dto.notifier_meta["reason"], "smoke test rejection");
    // The webhook is not configured: its notice waits, untried.
    let webhook = &dto.notifier_meta["channels"]["webhook"]["pending"];
    assert_eq!(webhook["attempts"], 0, "{}", dto.notifier_meta);
    assert!(webhook["delivered_at"].is_null());
    assert!(dto.notifier_meta["channels"]["webhook"]["reviewed"].is_null(), "nothing to resolve for an untold request");
    assert_eq!(app.state.metrics.notifier_deliveries("alertmanager", "delivered"), 4);
}

#[tokio::test]
async fn the_test_endpoint_fires_then_resolves_an_alert_and_reports_failures() {
    let Some(mut alertmanager) = Alertmanager::start().await else { return };
    let receiver = Receiver::start(0).await;
    let app = spawn_app().await;

    // Nothing configured: nothing to fail.
    let report = test_notifications(&app.state, &admin_actor()).await.expect("test send").0;
    assert_eq!(serde_json::to_value(&report).unwrap(), json!({"ok": true}));

    configure(&app, json!({"alertmanager_url": alertmanager.url(), "alertmanager_severity": "warning"})).await;
    configure(&app, json!({"webhook_url": receiver.url, "webhook_secret": WEBHOOK_SECRET})).await;
    let report = test_notifications(&app.state, &admin_actor()).await.expect("test send").0;
    assert_eq!(serde_json::to_value(&report).unwrap(), json!({"ok": true}));
    // Firing, then resolved: both arrived, and nothing is left active.
    assert_eq!(alertmanager.received("firing").await, 1);
    assert_eq!(alertmanager.received("resolved").await, 1);
    let alerts: Vec<Value> = alertmanager
        .client
        .get(format!("{}/api/v2/alerts", alertmanager.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(alerts.is_empty(), "{alerts:?}");
    let deliveries: Vec<Value> = receiver.accepted().iter().map(Delivery::json).collect();
    assert_eq!(deliveries.len(), 2, "{deliveries:?}");
    assert_eq!(deliveries[0]["event"], "permission_request.pending");
    assert_eq!(deliveries[1]["event"], "permission_request.reviewed");
    assert_eq!(deliveries[1]["status"], "approved");
    assert!(deliveries.iter().all(|d| d["test"] == true && d["id"] == deliveries[0]["id"]));

    // Alertmanager down: the report names it, and the webhook still went out.
    alertmanager.stop();
    let report: TestReport = test_notifications(&app.state, &admin_actor()).await.expect("test send").0;
    let body = serde_json::to_value(&report).unwrap();
    assert_eq!(body["ok"], false, "{body}");
    assert_eq!(body["errors"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["errors"][0]["channel"], "alertmanager");
    assert!(body["errors"][0]["error"].as_str().unwrap().starts_with("cannot connect"), "{body}");
    assert!(!body.to_string().contains(&alertmanager.url()), "no URLs in errors: {body}");
    assert_eq!(receiver.accepted().len(), 4);
}

#[tokio::test]
async fn an_alert_raised_while_alertmanager_is_down_arrives_once_it_is_back_and_only_once() {
    let Some(mut alertmanager) = Alertmanager::start().await else { return };
    let app = spawn_app().await;
    configure(&app, json!({"alertmanager_url": alertmanager.url()})).await;
    alertmanager.stop();

    let id = request_through(&app.state.store, "agent-a", "while-down", &[]).await;
    eventually(WAIT, "failed attempts to be recorded", || async {
        delivery(&app, id, "alertmanager", "pending").await.is_some_and(|d| d["attempts"].as_i64() >= Some(2))
    })
    .await;
    let failing = delivery(&app, id, "alertmanager", "pending").await.unwrap();
    assert!(failing["last_error"].as_str().unwrap().starts_with("cannot connect"), "{failing}");
    assert!(failing["delivered_at"].is_null());

    alertmanager.start_again().await;
    eventually(WAIT, "the alert to arrive", || async { alertmanager.alerts(id).await.len() == 1 }).await;
    eventually(WAIT, "the delivery to be recorded", || delivered(&app, id, "alertmanager", "pending")).await;
    assert_eq!(alertmanager.received("firing").await, 1);
    assert_eq!(app.state.metrics.notifier_deliveries("alertmanager", "delivered"), 1);
    let attempts = delivery(&app, id, "alertmanager", "pending").await.unwrap()["attempts"].clone();

    // Restarted: the delivered notice is not sent again. A second request created after
    // the restart is the marker: once its alert is in, the first one would have been too.
    let restarted = spawn_app_on(app.stop().await, test_settings()).await;
    let marker = request_through(&restarted.state.store, "agent-a", "after-restart", &[]).await;
    eventually(WAIT, "the marker alert to arrive", || async { alertmanager.alerts(marker).await.len() == 1 }).await;
    assert_eq!(alertmanager.received("firing").await, 2, "each alert sent once");
    assert_eq!(restarted.state.metrics.notifier_deliveries("alertmanager", "delivered"), 1);
    assert_eq!(delivery(&restarted, id, "alertmanager", "pending").await.unwrap()["attempts"], attempts);
    assert_eq!(alertmanager.alerts(id).await.len(), 1, "still firing: Alertmanager keeps it until endsAt");
}

#[tokio::test]
async fn a_pending_requests_alert_is_re_sent_until_it_is_decided() {
    let Some(alertmanager) = Alertmanager::start().await else { return };
    let mut settings = test_settings();
    settings.notifier.alert_refresh_interval = Duration::from_millis(200);
    let app = spawn_app_on(crate::helpers::fresh_database().await, settings).await;
    configure(&app, json!({"alertmanager_url": alertmanager.url()})).await;

    let id = request_through(&app.state.store, "agent-a", "refreshed", &[]).await;
    eventually(WAIT, "the alert to be re-sent twice", || async { alertmanager.received("firing").await >= 3 }).await;
    let pending = delivery_shown(&app, id, "alertmanager", "pending").await;
    assert_eq!(pending["attempts"], 1, "re-sends are not attempts: {pending}");
    assert!(!pending["refreshed_at"].is_null(), "{pending}");
    assert!(app.state.metrics.notifier_deliveries("alertmanager", "refreshed") >= 2);

    decide(
        &app,
        id,
        C::Approve { by: ADMIN.into(), at: Utc::now(), execute_by: Utc::now() + chrono::Duration::days(1) },
    )
    .await;
    eventually(WAIT, "the alert to be resolved", || async { alertmanager.alerts(id).await.is_empty() }).await;
    eventually(WAIT, "re-sending to stop", || async {
        delivery(&app, id, "alertmanager", "pending").await.is_some_and(|d| d["next_attempt_at"].is_null())
    })
    .await;
}

#[tokio::test]
async fn webhook_deliveries_are_signed_retried_and_tampering_is_refused() {
    // The receiver refuses the first two deliveries: they are retried with backoff.
    let receiver = Receiver::start(2).await;
    let app = spawn_app().await;
    configure(&app, json!({"webhook_url": receiver.url, "webhook_secret": WEBHOOK_SECRET})).await;

    let id = request_through(&app.state.store, "agent-w", "signed", &[]).await;
    eventually(WAIT, "the webhook delivery", || async { receiver.accepted_for(id).len() == 1 }).await;
    let body = &receiver.accepted_for(id)[0];
    assert_eq!(body["event"], "permission_request.pending");
    assert_eq!(body["status"], "pending");
    assert_eq!(body["agent"], "agent-w");
    assert_eq!(body["tool"], "write_file");
    assert_eq!(body["arguments"], json!({"path": "/tmp/signed", "content": "hello"}));
    assert_eq!(body["approve_url"], format!("http://127.0.0.1/requests/{id}"));
    assert_eq!(body["api_approve_url"], format!("http://127.0.0.1/admin/permissions/{id}/approve"));
    assert_eq!(body["request_url"], format!("http://127.0.0.1/admin/permissions/{id}"));
    assert_eq!(body["test"], false);
    eventually(WAIT, "the delivery to be recorded", || delivered(&app, id, "webhook", "pending")).await;
    let state = delivery(&app, id, "webhook", "pending").await.unwrap();
    assert_eq!(state["attempts"], 3, "two refusals, then delivered: {state}");
    assert!(state["last_error"].is_null(), "{state}");

    // A captured delivery with an edited body, or replayed later, is refused.
    let captured = receiver.accepted()[0].clone();
    assert_eq!(captured.headers["x-alexandria-delivery"], format!("{id}/pending").as_str());
    let tampered = String::from_utf8(captured.body.to_vec()).unwrap().replace("write_file", "rm_rf_slash");
    assert_eq!(receiver.post_raw(&captured.headers, tampered.into_bytes()).await, 401);
    let stale = Utc::now().timestamp() - 600;
    let mut replayed = captured.headers.clone();
    replayed.insert("x-alexandria-timestamp", stale.to_string().parse().unwrap());
    let resigned =
        alexandria::notify::webhook::signature(&secrecy::SecretString::from(WEBHOOK_SECRET), stale, &captured.body);
    replayed.insert("x-alexandria-signature", resigned.parse().unwrap());
    assert_eq!(receiver.post_raw(&replayed, captured.body.to_vec()).await, 401, "a stale timestamp is a replay");
    assert_eq!(receiver.post_raw(&captured.headers, captured.body.to_vec()).await, 200, "the original verifies");

    decide(&app, id, C::Reject { by: ADMIN.into(), at: Utc::now(), reason: "not today".into() }).await;
    eventually(WAIT, "the reviewed delivery", || async { receiver.accepted_for(id).len() == 3 }).await;
    let reviewed = receiver.accepted_for(id).into_iter().find(|d| d["event"] == "permission_request.reviewed").unwrap();
    assert_eq!(reviewed["status"], "rejected");
    assert_eq!(reviewed["reason"], "not today");
    assert_eq!(reviewed["reviewed_by"], ADMIN);
}

#[tokio::test]
async fn a_hanging_webhook_does_not_hold_up_alertmanager() {
    let Some(alertmanager) = Alertmanager::start().await else { return };
    // Accepts connections (the kernel does) and never answers.
    let black_hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut settings = test_settings();
    settings.notifier.delivery_timeout = Duration::from_secs(60);
    let app = spawn_app_on(crate::helpers::fresh_database().await, settings).await;
    configure(
        &app,
        json!({
            "webhook_url": format!("http://{}/hook", black_hole.local_addr().unwrap()),
            "webhook_secret": WEBHOOK_SECRET,
            "alertmanager_url": alertmanager.url(),
        }),
    )
    .await;

    let ids = [
        request_through(&app.state.store, "agent-a", "first", &[]).await,
        request_through(&app.state.store, "agent-a", "second", &[]).await,
    ];
    for id in ids {
        eventually(WAIT, "the alert despite the hanging webhook", || async {
            alertmanager.alerts(id).await.len() == 1
        })
        .await;
        let webhook = delivery_shown(&app, id, "webhook", "pending").await;
        assert!(webhook["delivered_at"].is_null(), "{webhook}");
        assert!(webhook["last_error"].is_null(), "still waiting for an answer: {webhook}");
    }
}

#[tokio::test]
async fn a_request_past_its_deadline_is_expired_and_its_alert_resolved() {
    let Some(alertmanager) = Alertmanager::start().await else { return };
    let app = spawn_app().await;
    configure(&app, json!({"alertmanager_url": alertmanager.url()})).await;

    let id = alexandria_domain::request_id("agent-x", "short-lived");
    let C::Create { agent, tool, arguments, idempotency_key, requested_by, at, .. } =
        create_cmd("agent-x", "short-lived")
    else {
        unreachable!()
    };
    let expires_at = Utc::now() + chrono::Duration::seconds(5);
    let create = C::Create { agent, tool, arguments, idempotency_key, requested_by, at, expires_at };
    app.state.store.execute(id, create, &meta("agent:agent-x")).await.unwrap();
    eventually(WAIT, "the short-lived request's alert", || async { alertmanager.alerts(id).await.len() == 1 }).await;

    eventually(WAIT, "the request to be expired", || async {
        app.state.store.load(id).await.unwrap().and_then(|r| r.status()) == Some(RequestStatus::Expired)
    })
    .await;
    let expired = app.state.store.load(id).await.unwrap().unwrap();
    assert!(expired.expired_at().unwrap() >= expires_at);
    let events = app.state.store.load_events(id).await.unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.metadata["actor"], "system:reconciler");

    eventually(WAIT, "its alert to be resolved", || async { alertmanager.alerts(id).await.is_empty() }).await;
    eventually(WAIT, "the resolve to be recorded", || delivered(&app, id, "alertmanager", "reviewed")).await;
}

#[tokio::test]
async fn one_replica_sends_for_all() {
    let Some(alertmanager) = Alertmanager::start().await else { return };
    let first = spawn_app().await;
    let second = spawn_app_on(first.db.clone(), test_settings()).await;
    configure(&first, json!({"alertmanager_url": alertmanager.url()})).await;

    let ids = [
        request_through(&first.state.store, "agent-a", "from-first", &[]).await,
        request_through(&second.state.store, "agent-a", "from-second", &[]).await,
    ];
    for id in ids {
        eventually(WAIT, "the alert", || async { alertmanager.alerts(id).await.len() == 1 }).await;
        eventually(WAIT, "the delivery to be recorded", || delivered(&first, id, "alertmanager", "pending")).await;
    }
    let sent = |app: &TestApp| app.state.metrics.notifier_deliveries("alertmanager", "delivered");
    assert_eq!(sent(&first) + sent(&second), 2, "each alert sent by exactly one replica");
    assert_eq!(alertmanager.received("firing").await, 2);
}

#[tokio::test]
async fn settings_are_validated_partially_patched_and_never_show_the_secret() {
    let app = spawn_app().await;
    let initial = serde_json::to_value(get_config(&app.state).await.unwrap().0).unwrap();
    assert_eq!(initial["webhook_url"], Value::Null);
    assert_eq!(initial["webhook_secret"], "unset");
    assert_eq!(initial["alertmanager_url"], Value::Null);
    assert_eq!(initial["alertmanager_severity"], "warning");

    // Every problem at once, and nothing changes.
    let bad: SettingsPatch = serde_json::from_value(json!({
        "alertmanager_url": "ftp://am.example",
        "alertmanager_severity": "page-everyone",
        "webhook_url": "https://hooks.example/x",
    }))
    .unwrap();
    match patch_config(&app.state, &admin_actor(), bad).await {
        Err(alexandria::http::ApiError::Unprocessable(message)) => {
            assert!(message.contains("alertmanager_url must be an http or https URL"), "{message}");
            assert!(message.contains("alertmanager_severity must be one of critical, warning, info"), "{message}");
        }
        other => panic!("expected 422, got {:?}", other.map(|v| v.0)),
    }
    assert_eq!(serde_json::to_value(get_config(&app.state).await.unwrap().0).unwrap(), initial);

    let secret = "a-long-enough-webhook-secret";
    let patch: SettingsPatch = serde_json::from_value(json!({
        "webhook_url": "https://hooks.example/x",
        "webhook_secret": secret,
        "alertmanager_url": "http://am.example:9093",
    }))
    .unwrap();
    let view = serde_json::to_value(patch_config(&app.state, &admin_actor(), patch).await.unwrap().0).unwrap();
    assert_eq!(view["webhook_secret"], "set");
    assert_eq!(view["alertmanager_severity"], "warning");
    assert_eq!(view["updated_by"], ADMIN);
    assert!(!view.to_string().contains(secret));

    // Partial: only the severity changes; null clears the Alertmanager URL.
    configure(&app, json!({"alertmanager_severity": "info"})).await;
    configure(&app, json!({"alertmanager_url": null})).await;
    let view = serde_json::to_value(get_config(&app.state).await.unwrap().0).unwrap();
    assert_eq!(view["alertmanager_severity"], "info");
    assert_eq!(view["alertmanager_url"], Value::Null);
    assert_eq!(view["webhook_url"], "https://hooks.example/x");
    assert!(!view.to_string().contains(secret));

    // Every accepted change is in the audit trail (the refused one is not); a replaced
    // secret shows as replaced, never as itself.
    configure(&app, json!({"webhook_secret": "another-long-webhook-secret"})).await;
    let filter = AuditFilter { target: Some("notification_settings".into()), ..Default::default() };
    let entries = alexandria::audit_trail::page(&app.state.pool, &filter, 50).await.unwrap();
    assert_eq!(entries.len(), 4, "{entries:?}");
    assert!(entries.iter().all(|e| e.actor == ADMIN && e.action == "notification_settings.update"));
    let rotation = &entries[0];
    assert_eq!(rotation.after.as_ref().unwrap()["webhook_secret_replaced"], true);
    assert_eq!(entries[1].before.as_ref().unwrap()["alertmanager_url"], "http://am.example:9093");
    assert_eq!(entries[1].after.as_ref().unwrap()["alertmanager_url"], Value::Null);
    let audit = format!("{entries:?}");
    assert!(!audit.contains(secret) && !audit.contains("another-long-webhook-secret"), "{audit}");

    // A webhook without a secret is refused.
    let unsigned: SettingsPatch = serde_json::from_value(json!({"webhook_secret": ""})).unwrap();
    assert!(matches!(
        patch_config(&app.state, &admin_actor(), unsigned).await,
        Err(alexandria::http::ApiError::Unprocessable(message)) if message.contains("webhook_secret is required")
    ));
}

#[tokio::test]
async fn signed_audit_checkpoints_are_copied_to_the_webhook_when_asked_for() {
    let receiver = Receiver::start(0).await;
    let mut settings = crate::helpers::test_settings();
    settings.sealer.push_to_webhook = true;
    let key_file = settings.audit_key_file.clone();
    let app = crate::helpers::spawn_app_on(crate::helpers::fresh_database().await, settings).await;
    configure(&app, json!({"webhook_url": receiver.url, "webhook_secret": WEBHOOK_SECRET})).await;
    request_through(&app.state.store, "agent-k", "checkpointed", &[]).await;
    let copies = || {
        receiver
            .accepted()
            .into_iter()
            .filter(|d| d.headers["x-alexandria-event"] == "audit.checkpoint")
            .collect::<Vec<_>>()
    };
    eventually(WAIT, "a checkpoint on the webhook", || async { !copies().is_empty() }).await;
    let copy = copies()[0].json();
    assert_eq!(copy["event"], "audit.checkpoint");
    let checkpoint: alexandria::audit::Checkpoint = serde_json::from_value(copy["checkpoint"].clone()).unwrap();
    let key = alexandria::audit::AuditKey::load(&key_file).unwrap();
    checkpoint.verify(&key.public_key()).expect("signed with the server's key");
    assert_eq!(
        copies()[0].headers["x-alexandria-delivery"],
        format!("audit/{}/{}", checkpoint.chain, checkpoint.seq).as_str()
    );
}

#[tokio::test]
async fn checkpoints_are_not_sent_to_the_webhook_unless_asked_for() {
    let receiver = Receiver::start(0).await;
    let app = spawn_app().await;
    configure(&app, json!({"webhook_url": receiver.url, "webhook_secret": WEBHOOK_SECRET})).await;
    let id = request_through(&app.state.store, "agent-k", "quiet", &[]).await;
    eventually(WAIT, "the notice", || async { receiver.accepted_for(id).len() == 1 }).await;
    eventually(WAIT, "a checkpoint signed", || async {
        alexandria::audit::checkpoints::latest(&app.db.pool, "events").await.unwrap().is_some()
    })
    .await;
    // A copy is sent the moment a checkpoint is signed; a notice sent after that has
    // arrived, and no copy has.
    decide(&app, id, C::Reject { by: ADMIN.into(), at: Utc::now(), reason: "no".into() }).await;
    eventually(WAIT, "the reviewed notice", || async { receiver.accepted_for(id).len() == 2 }).await;
    assert!(receiver.accepted().iter().all(|d| d.headers["x-alexandria-event"] != "audit.checkpoint"));
}
