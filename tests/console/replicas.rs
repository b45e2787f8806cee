//! Two replicas on one database, a console open on one of them: what happens on the other
//! shows up without a reload, and a decision on one resumes the call parked on the other.

use std::time::Duration;

use serde_json::{json, Value};

use crate::auth_helpers::admin_session;
use crate::browser::browser;
use crate::gateway_helpers::{agent_token, register_fs, settings_with_wait, spawn_gateway};
use crate::helpers::{spawn_app_on, TEST_ADMIN_PASSWORD};
use crate::peers::text_of;

const AGENT: &str = "demo-agent";
/// Long enough that the gated call is still parked on replica B when A approves it.
const IN_BAND_WAIT: Duration = Duration::from_secs(90);

#[tokio::test]
async fn a_request_made_through_replica_b_shows_on_a_console_open_on_a_and_approving_it_there_resumes_b() {
    let Some(browser) = browser("a_request_made_through_replica_b_shows_on_a_console_open_on_a").await else {
        return;
    };
    let replica_a = spawn_gateway(IN_BAND_WAIT).await;
    let admin = admin_session(&replica_a).await;
    let fs = register_fs(&replica_a, &admin, "demo-fs", None).await;
    let token = agent_token(&replica_a, &admin, AGENT, &["write_file"], &["write_file"]).await;
    // B starts on the same database after the server was registered, so it serves the tool.
    let replica_b = spawn_app_on(replica_a.db.clone(), settings_with_wait(IN_BAND_WAIT)).await;

    browser.log_in(&replica_a, "admin", TEST_ADMIN_PASSWORD).await;
    browser.wait_for("#inbox-empty").await;
    browser.wait_for_xpath("//*[@id='live-status' and text()='live']").await;

    let parked_on_b = {
        let (address, client) = (replica_b.address.clone(), replica_b.client.clone());
        tokio::spawn(async move {
            let body = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                "params": {"name": "write_file", "arguments": {"path": "/replicas.txt", "content": "decided on A"}}});
            let response = client
                .post(format!("{address}/mcp/agents/{AGENT}"))
                .bearer_auth(token)
                .header("accept", "application/json, text/event-stream")
                .header("x-idempotency-key", "two-replicas")
                .json(&body)
                .send()
                .await
                .expect("the gated call on replica B");
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.expect("a JSON-RPC body")
        })
    };

    // The console on A hears of it through the log (NOTIFY), not from a reload.
    let item = browser.wait_for("li.request").await;
    assert_eq!(browser.client.current_url().await.unwrap().path(), "/", "no navigation happened");
    assert!(item.text().await.unwrap().contains("decided on A"));
    browser.wait_for("li.request details.approve > summary").await.click().await.unwrap();
    browser.wait_for("li.request button.confirm-approve").await.click().await.unwrap();
    browser.wait_for_xpath("//p[@id='notice' and contains(., 'approved by admin')]").await;

    let answer = tokio::time::timeout(Duration::from_secs(30), parked_on_b).await.expect("answered").expect("task");
    assert!(answer.get("error").is_none(), "{answer}");
    assert_eq!(text_of(&answer["result"]), "wrote 12 bytes to /replicas.txt", "{answer}");
    assert_eq!(fs.file("/replicas.txt").as_deref(), Some("decided on A"));
    assert_eq!(fs.calls(), ["write_file"], "executed once");
    browser.close().await;
    drop(replica_b);
}
