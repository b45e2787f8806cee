//! The approvals inbox in headless Chromium, end to end: an agent's gated call waits, the
//! inbox shows it without a reload, a click decides it, and the agent sees the outcome.

use std::time::Duration;

use fantoccini::Locator;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::auth_helpers::console_cookie;
use crate::auth_helpers::{admin_session, create_user, PASSWORD};
use crate::browser::browser;
use crate::gateway_helpers::{agent_token, call, register_fs, rpc_error, spawn_gateway, ACCESS_DENIED};
use crate::helpers::{requests, spawn_app, TEST_ADMIN_PASSWORD};
use crate::peers::text_of;

const AGENT: &str = "demo-agent";
/// Long enough that a gated call is still parked in-band when the person decides.
const IN_BAND_WAIT: Duration = Duration::from_secs(90);

#[tokio::test]
async fn a_waiting_call_appears_live_and_approving_it_returns_the_real_result_in_the_same_response() {
    let Some(browser) = browser("a_waiting_call_appears_live_and_approving_it_returns_the_real_result").await else {
        return;
    };
    let app = spawn_gateway(IN_BAND_WAIT).await;
    let admin = admin_session(&app).await;
    let fs = register_fs(&app, &admin, "demo-fs", None).await;
    let token = agent_token(&app, &admin, AGENT, &["write_file", "read_file"], &["write_file"]).await;

    browser.goto(&app, "/login").await;
    browser.wait_for("#login-form").await;
    browser.screenshot("login").await;
    browser.log_in(&app, "admin", TEST_ADMIN_PASSWORD).await;
    browser.wait_for("#inbox-empty").await;
    browser.wait_for_xpath("//*[@id='live-status' and text()='live']").await;

    // The agent's call parks, waiting for a person; the open inbox shows it by itself.
    let agent_call = {
        let (address, client, token) = (app.address.clone(), app.client.clone(), token.clone());
        tokio::spawn(async move {
            let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                "params": {"name": "write_file", "arguments": {"path": "/notes/console.txt", "content": "approved in a browser"}}});
            let response = client
                .post(format!("{address}/mcp/agents/{AGENT}"))
                .bearer_auth(token)
                .header("accept", "application/json, text/event-stream")
                .header("x-idempotency-key", "console-approve")
                .json(&body)
                .send()
                .await
                .expect("the gated call");
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.expect("a JSON-RPC body")
        })
    };
    let item = browser.wait_for("li.request").await;
    assert_eq!(browser.client.current_url().await.unwrap().path(), "/", "no navigation happened");
    let text = item.text().await.unwrap();
    assert!(text.contains(AGENT) && text.contains("write_file"), "{text}");
    assert!(text.contains("on demo-fs"), "the upstream server is named: {text}");
    assert!(text.contains("approved in a browser") && text.contains("/notes/console.txt"), "{text}");
    browser.screenshot("inbox").await;

    // Approve needs a second, confirming click.
    browser.wait_for("li.request details.approve > summary").await.click().await.unwrap();
    browser.wait_for("li.request button.confirm-approve").await.click().await.unwrap();
    let notice = browser.wait_for_xpath("//p[@id='notice' and contains(., 'approved by admin')]").await;
    assert!(notice.text().await.unwrap().contains("write_file for demo-agent"));

    // The parked call got the real tool result, in the same HTTP response.
    let answer = tokio::time::timeout(Duration::from_secs(30), agent_call).await.expect("answered").expect("task");
    assert!(answer.get("error").is_none(), "{answer}");
    assert_ne!(answer["result"]["pending"], true, "{answer}");
    assert_eq!(text_of(&answer["result"]), "wrote 21 bytes to /notes/console.txt", "{answer}");
    assert_eq!(fs.file("/notes/console.txt").as_deref(), Some("approved in a browser"));
    browser.wait_for("#inbox-empty").await;
    browser.close().await;
}

#[tokio::test]
async fn rejecting_with_the_keyboard_denies_the_retry_and_markup_in_arguments_stays_text() {
    let Some(browser) = browser("rejecting_with_the_keyboard_denies_the_retry").await else { return };
    let app = spawn_gateway(Duration::from_millis(200)).await;
    let admin = admin_session(&app).await;
    let _fs = register_fs(&app, &admin, "demo-fs", None).await;
    let token = agent_token(&app, &admin, AGENT, &["write_file"], &["write_file"]).await;
    browser.log_in(&app, "admin", TEST_ADMIN_PASSWORD).await;

    const XSS: &str = "<img src=x onerror=alert(1)>";
    let arguments = json!({"path": "/x.html", "content": XSS});
    let pending = call(&app, AGENT, &token, Some("console-reject"), 1, "write_file", arguments.clone()).await;
    assert_eq!(pending["result"]["pending"], true, "{pending}");

    let item = browser.wait_for("li.request").await;
    let content = browser.wait_for_xpath("//li[contains(@class,'request')]//dd/pre[contains(., 'onerror')]").await;
    assert_eq!(content.text().await.unwrap(), XSS, "the argument shows as text");
    assert_eq!(browser.count("li.request img").await, 0, "no element was made from it");
    assert!(browser.client.get_alert_text().await.is_err(), "no dialog opened");

    // j selects, r opens the reject step with the reason focused; the reason is required.
    let body = browser.client.find(Locator::Css("body")).await.unwrap();
    body.send_keys("j").await.unwrap();
    body.send_keys("r").await.unwrap();
    let reason = browser.wait_for("li.request details.reject[open] textarea:focus").await;
    assert_eq!(item.attr("class").await.unwrap().as_deref(), Some("request selected"));
    reason.send_keys("not on a Friday").await.unwrap();
    browser.wait_for("li.request button.confirm-reject").await.click().await.unwrap();
    browser
        .wait_for_xpath("//p[@id='notice' and contains(., 'rejected by admin') and contains(., 'not on a Friday')]")
        .await;
    assert!(browser.client.get_alert_text().await.is_err(), "no dialog opened");

    let retry = call(&app, AGENT, &token, Some("console-reject"), 2, "write_file", arguments).await;
    assert_eq!(rpc_error(&retry), (ACCESS_DENIED, "denied: not on a Friday".to_owned()));
    browser.close().await;
}

#[tokio::test]
async fn a_viewer_sees_the_inbox_read_only_and_cannot_decide_by_hand() {
    let Some(browser) = browser("a_viewer_sees_the_inbox_read_only").await else { return };
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    create_user(&app, &admin, "vera", "viewer").await;
    let id = requests::request_through(&app.state.store, AGENT, "viewer", &[]).await;

    browser.log_in(&app, "vera", PASSWORD).await;
    browser.wait_for("li.request").await;
    assert_eq!(browser.count("li.request details.approve").await, 0, "no Approve for a viewer");
    assert_eq!(browser.count("li.request details.reject").await, 0, "no Reject for a viewer");

    // A hand-made POST with the viewer's own cookie, from the right origin: still 403.
    let cookie = browser.session_cookie().await;
    let forged = app
        .client
        .post(app.url(&format!("/requests/{id}/approve")))
        .header("cookie", &cookie)
        .header("origin", &app.address)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    // An admin's cookie from another origin: 403 as well.
    let admin_cookie = console_cookie(&app, "admin", TEST_ADMIN_PASSWORD).await;
    let cross = app
        .client
        .post(app.url(&format!("/requests/{id}/reject")))
        .header("cookie", &admin_cookie)
        .header("origin", "http://evil.example")
        .form(&[("reason", "csrf")])
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    let state = app.state.store.load(id).await.unwrap().unwrap();
    assert_eq!(state.status().unwrap().as_str(), "pending");
    browser.close().await;
}

#[tokio::test]
async fn after_sign_out_back_shows_nothing_private() {
    let Some(browser) = browser("after_sign_out_back_shows_nothing_private").await else { return };
    let app = spawn_app().await;
    requests::request_through(&app.state.store, AGENT, &Uuid::new_v4().to_string(), &[]).await;
    browser.log_in(&app, "admin", TEST_ADMIN_PASSWORD).await;
    browser.wait_for("li.request").await;
    browser.wait_for("#sign-out").await.click().await.unwrap();
    browser.wait_for("#login-form").await;
    browser.client.back().await.unwrap();
    browser.wait_for("#login-form").await;
    assert_eq!(browser.count("#inbox").await, 0);
    assert_eq!(browser.count("li.request").await, 0);
    assert_eq!(browser.client.current_url().await.unwrap().path(), "/login");
    browser.close().await;
}

#[tokio::test]
async fn a_rejection_posted_after_the_session_ended_is_not_lost_silently() {
    let Some(browser) = browser("a_rejection_posted_after_the_session_ended").await else { return };
    let app = spawn_app().await;
    let id = requests::request_through(&app.state.store, AGENT, "in-flight", &[]).await;
    browser.log_in(&app, "admin", TEST_ADMIN_PASSWORD).await;
    browser.wait_for("li.request details.reject > summary").await.click().await.unwrap();
    browser
        .wait_for("li.request details.reject textarea")
        .await
        .send_keys("typed before the session ended")
        .await
        .unwrap();

    // The session ends (unused too long, say) while the person is typing.
    sqlx::query("UPDATE sessions SET last_refreshed_at = now() - interval '8 days'")
        .execute(&app.db.pool)
        .await
        .unwrap();
    browser.wait_for("li.request button.confirm-reject").await.click().await.unwrap();
    let message = browser.wait_for_xpath("//*[contains(., 'nothing was changed')]").await;
    assert!(message.text().await.unwrap().contains("submit it again"));
    assert_eq!(browser.client.current_url().await.unwrap().path(), "/login");
    let (status,): (String,) = sqlx::query_as("SELECT status FROM permission_requests WHERE id = $1::uuid")
        .bind(id.to_string())
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(status, "pending", "the decision was not made");

    // Signed in again: the same request's reject form is open with the reason as typed.
    browser.wait_for("#username").await.send_keys("admin").await.unwrap();
    browser.wait_for("#password").await.send_keys(TEST_ADMIN_PASSWORD).await.unwrap();
    browser.wait_for("#log-in").await.click().await.unwrap();
    let reason = browser.wait_for("li.request details.reject[open] textarea").await;
    assert_eq!(reason.prop("value").await.unwrap().as_deref(), Some("typed before the session ended"));
    browser.wait_for("li.request button.confirm-reject").await.click().await.unwrap();
    browser.wait_for_xpath("//p[@id='notice' and contains(., 'typed before the session ended')]").await;
    browser.close().await;
}
