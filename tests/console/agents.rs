//! The agents pages in headless Chromium: create, edit both tool lists with the picker fed
//! by the example fs server's tools, see the permissions_version bump, mint a token shown
//! once that really works against `/mcp`, delete; and the API's messages inline.

use std::time::Duration;

use reqwest::header::CACHE_CONTROL;
use serde_json::json;

use crate::auth_helpers::admin_session;
use crate::auth_helpers::console_cookie;
use crate::browser::{browser, Browser};
use crate::gateway_helpers::{post_mcp, register_fs, request, spawn_gateway};
use crate::helpers::{TestApp, TEST_ADMIN_PASSWORD};

const AGENT: &str = "helper";

async fn text(browser: &Browser, css: &str) -> String {
    browser.wait_for(css).await.text().await.unwrap_or_else(|e| panic!("text of {css}: {e}"))
}

async fn tick(browser: &Browser, name: &str, tool: &str) {
    let checkbox = browser.wait_for(&format!("#tool-picker input[name='{name}'][value='{tool}']")).await;
    checkbox.click().await.unwrap_or_else(|e| panic!("tick {name} {tool}: {e}"));
}

async fn permissions_version(browser: &Browser) -> i64 {
    text(browser, "#permissions-version").await.trim().parse().expect("a number")
}

/// The tools an agent token may list through the gateway.
async fn listed_tools(app: &TestApp, token: &str) -> (u16, Vec<String>) {
    let reply = post_mcp(app, &format!("/mcp/agents/{AGENT}"), token, None, &request(1, "tools/list", json!({}))).await;
    let names = reply.body["result"]["tools"]
        .as_array()
        .map(|tools| tools.iter().filter_map(|tool| tool["name"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    (reply.status, names)
}

#[tokio::test]
async fn a_super_admin_creates_an_agent_picks_its_tools_and_mints_a_token_that_works_once_shown() {
    let Some(browser) = browser("a_super_admin_creates_an_agent_picks_its_tools_and_mints_a_token").await else {
        return;
    };
    let app = spawn_gateway(Duration::from_millis(200)).await;
    let admin = admin_session(&app).await;
    let _fs = register_fs(&app, &admin, "demo-fs", None).await;
    browser.log_in(&app, "admin", TEST_ADMIN_PASSWORD).await;

    browser.goto(&app, "/agents").await;
    browser.wait_for("#agents-empty").await;
    // An invalid name: the service's message next to the form, what was typed kept.
    browser.wait_for("#agent-name").await.send_keys("Bad_Name").await.unwrap();
    browser.wait_for("#create-agent-submit").await.click().await.unwrap();
    let error = text(&browser, "#create-error").await;
    assert!(error.contains(r#"agent name "Bad_Name" is invalid"#), "{error}");
    let kept = browser.wait_for("#agent-name").await.prop("value").await.unwrap();
    assert_eq!(kept.as_deref(), Some("Bad_Name"));

    let name = browser.wait_for("#agent-name").await;
    name.clear().await.unwrap();
    name.send_keys(AGENT).await.unwrap();
    browser.wait_for("#agent-description").await.send_keys("files for the demo").await.unwrap();
    browser.wait_for("#create-agent-submit").await.click().await.unwrap();
    browser.wait_for_xpath("//p[@id='notice' and contains(., 'Agent helper created')]").await;
    let created_version = permissions_version(&browser).await;
    assert_eq!(text(&browser, "#allowed-tools").await, "none");
    let warning = text(&browser, "#version-warning").await;
    assert!(warning.contains("every token minted for helper so far stops working"), "{warning}");

    // Approval required for a tool that is not allowed: the service's rule, inline.
    tick(&browser, "approval", "echo").await;
    browser.wait_for("#save-tools").await.click().await.unwrap();
    let error = text(&browser, "#tools-error").await;
    assert!(error.contains("approval_required_tools must be a subset of allowed_tools"), "{error}");
    assert!(error.contains(r#"["echo"]"#), "{error}");
    assert_eq!(permissions_version(&browser).await, created_version, "nothing saved");

    // The picker, grouped by server, plus a tool no server offers yet.
    let caption = text(&browser, "#tool-picker caption").await;
    assert!(caption.contains("demo-fs"), "{caption}");
    tick(&browser, "approval", "echo").await; // untick: the refused form kept it ticked
    tick(&browser, "allowed", "read_file").await;
    tick(&browser, "allowed", "write_file").await;
    tick(&browser, "approval", "write_file").await;
    browser.wait_for("#allowed-other").await.send_keys("future_tool").await.unwrap();
    browser.wait_for("#save-tools").await.click().await.unwrap();
    let notice = browser.wait_for_xpath("//p[@id='notice' and contains(., 'Tool lists saved')]").await;
    let saved_version = permissions_version(&browser).await;
    assert!(saved_version > created_version, "{saved_version} > {created_version}");
    let notice = notice.text().await.unwrap();
    assert!(notice.contains(&format!("permissions_version is now {saved_version}")), "{notice}");
    assert!(notice.contains("tokens minted before no longer work"), "{notice}");
    assert_eq!(text(&browser, "#allowed-tools").await, "read_file write_file future_tool");
    assert_eq!(text(&browser, "#approval-tools").await, "write_file");
    assert_eq!(browser.wait_for("#allowed-other").await.prop("value").await.unwrap().as_deref(), Some("future_tool"));
    browser.screenshot("agent-detail").await;

    // Mint: the token is on the POST's response, never in a URL.
    browser.wait_for("#mint-token-submit").await.click().await.unwrap();
    let token = browser.wait_for("#agent-token").await.prop("value").await.unwrap().expect("the token");
    let url = browser.client.current_url().await.unwrap();
    assert_eq!(url.path(), "/agents/helper/token");
    assert!(!url.as_str().contains(&token));
    assert!(browser.wait_for("button.copy").await.is_displayed().await.unwrap(), "the script shows the copy button");
    browser.wait_for("button.copy").await.click().await.unwrap();
    browser.wait_for_xpath("//span[@class='copied' and text()='Copied.']").await;

    // The token works against the gateway, with the lists just saved.
    let (status, tools) = listed_tools(&app, &token).await;
    assert_eq!(status, 200);
    assert!(tools.contains(&"read_file".to_owned()) && tools.contains(&"write_file".to_owned()), "{tools:?}");
    assert!(!tools.contains(&"echo".to_owned()), "{tools:?}");

    // Shown once: the agent's page does not show it again.
    browser.goto(&app, "/agents/helper").await;
    browser.wait_for("#agent-facts").await;
    assert_eq!(browser.count("#agent-token").await, 0);
    let html = browser.client.source().await.unwrap();
    assert!(!html.contains(&token));

    browser.goto(&app, "/agents").await;
    let row = text(&browser, "#agents tbody tr").await;
    assert!(row.contains("helper") && row.contains("write_file") && row.contains(&saved_version.to_string()), "{row}");
    browser.screenshot("agents").await;

    // Delete, with its confirm step: the agent and its tokens are gone.
    browser.goto(&app, "/agents/helper").await;
    browser.wait_for("#delete-agent > summary").await.click().await.unwrap();
    browser.wait_for("#confirm-delete-agent").await.click().await.unwrap();
    browser.wait_for_xpath("//p[@id='notice' and contains(., 'Agent helper deleted')]").await;
    browser.wait_for("#agents-empty").await;
    let (status, _) = listed_tools(&app, &token).await;
    assert_eq!(status, 401, "a deleted agent's token is refused");
    browser.close().await;
}

#[tokio::test]
async fn a_minted_token_page_is_not_stored_and_a_bad_name_is_the_apis_422() {
    let app = spawn_gateway(Duration::from_millis(200)).await;
    let cookie = console_cookie(&app, "admin", TEST_ADMIN_PASSWORD).await;
    let post = |path: &str, form: &[(&str, &str)]| {
        app.client.post(app.url(path)).header("cookie", &cookie).header("origin", &app.address).form(form).send()
    };
    let refused = post("/agents", &[("name", "Nope!"), ("description", "")]).await.unwrap();
    assert_eq!(refused.status(), 422);
    let body = refused.text().await.unwrap();
    assert!(
        body.contains("agent name &#34;Nope!&#34; is invalid")
            || body.contains("agent name &quot;Nope!&quot; is invalid"),
        "{body}"
    );

    let created = post("/agents", &[("name", AGENT), ("description", "")]).await.unwrap();
    assert_eq!(created.status(), 303);
    let again = post("/agents", &[("name", AGENT), ("description", "")]).await.unwrap();
    assert_eq!(again.status(), 409, "the API's conflict");

    let minted = post("/agents/helper/token", &[]).await.unwrap();
    assert_eq!(minted.status(), 200);
    assert_eq!(minted.headers()[CACHE_CONTROL], "no-store");
    let page = minted.text().await.unwrap();
    assert!(page.contains("id=\"agent-token\""), "{page}");
    // The audit trail says who minted it.
    let minted_by: String = sqlx::query_scalar("SELECT actor FROM admin_audit WHERE action = 'agent_token.mint'")
        .fetch_one(&app.state.pool)
        .await
        .unwrap();
    assert_eq!(minted_by, "user:admin");
    let missing = post("/agents/nobody/token", &[]).await.unwrap();
    assert_eq!(missing.status(), 404);
}
