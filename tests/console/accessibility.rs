//! Every console page, checked by axe-core in headless Chromium (no serious or critical
//! violation), on a laptop in light colours and on a phone in dark ones — with a pending
//! request on the inbox, so its buttons and forms are checked too.

use std::time::Duration;

use serde_json::json;

use crate::auth_helpers::admin_session;
use crate::browser::{browser_looking, Browser, Look};
use crate::gateway_helpers::{agent_token, call, register_fs, spawn_gateway};
use crate::helpers::{TestApp, TEST_ADMIN_PASSWORD};

const AGENT: &str = "demo-agent";

/// The pages a super_admin can open, each with an element that shows it has rendered.
const PAGES: &[(&str, &str)] = &[
    ("/", "li.request"),
    ("/agents", "main h1"),
    ("/agents/demo-agent", "main h1"),
    ("/servers", "main h1"),
    ("/servers/demo-fs", "main h1"),
    ("/history", "main h1"),
    ("/settings/notifications", "main h1"),
    ("/users", "main h1"),
    ("/audit", "main h1"),
    ("/projections", "main h1"),
    ("/account/password", "main h1"),
];

async fn app_with_a_pending_request() -> TestApp {
    let app = spawn_gateway(Duration::from_millis(100)).await;
    let admin = admin_session(&app).await;
    register_fs(&app, &admin, "demo-fs", None).await;
    let token = agent_token(&app, &admin, AGENT, &["write_file"], &["write_file"]).await;
    let arguments = json!({"path": "/notes/a11y.txt", "content": "checked by axe-core\n".repeat(20)});
    let pending = call(&app, AGENT, &token, Some("a11y"), 1, "write_file", arguments).await;
    assert_eq!(pending["result"]["pending"], true, "{pending}");
    app
}

async fn check_every_page(browser: &Browser, app: &TestApp, suffix: &str) {
    browser.goto(app, "/login").await;
    browser.wait_for("#login-form").await;
    browser.assert_accessible(&format!("/login{suffix}")).await;
    browser.log_in(app, "admin", TEST_ADMIN_PASSWORD).await;
    for (path, rendered) in PAGES {
        browser.goto(app, path).await;
        browser.wait_for(rendered).await;
        browser.assert_accessible(&format!("{path}{suffix}")).await;
    }
}

#[tokio::test]
async fn every_page_passes_axe_core_on_a_laptop_in_light_colours() {
    let Some(browser) = browser_looking("every_page_passes_axe_core_on_a_laptop", Look::Laptop).await else { return };
    let app = app_with_a_pending_request().await;
    assert!(!browser.prefers_dark().await);
    check_every_page(&browser, &app, "").await;
    browser.close().await;
}

#[tokio::test]
async fn every_page_passes_axe_core_on_a_phone_in_dark_colours_and_fits_its_width() {
    let Some(browser) = browser_looking("every_page_passes_axe_core_on_a_phone", Look::PhoneDark).await else {
        return;
    };
    let app = app_with_a_pending_request().await;
    check_every_page(&browser, &app, " (phone, dark)").await;
    assert!(browser.prefers_dark().await, "the system setting reaches the page");
    browser.goto(&app, "/").await;
    browser.wait_for("li.request").await;
    // Dark colours are applied, and nothing makes the page scroll sideways.
    let look = browser
        .client
        .execute(
            "const body = getComputedStyle(document.body).backgroundColor;
             return {body, overflow: document.documentElement.scrollWidth - window.innerWidth};",
            vec![],
        )
        .await
        .expect("the page's look");
    let channels: Vec<u32> = look["body"]
        .as_str()
        .expect("a colour")
        .trim_start_matches("rgb(")
        .trim_end_matches(')')
        .split(',')
        .map(|c| c.trim().parse().expect("a channel"))
        .collect();
    assert!(channels.iter().all(|&c| c < 64), "a dark background: {look}");
    assert!(look["overflow"].as_i64().expect("a number") <= 0, "no sideways scrolling: {look}");
    browser.screenshot("inbox-phone-dark").await;
    browser.close().await;
}
