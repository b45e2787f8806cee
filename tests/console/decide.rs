//! Helping a person decide, a request's page, the history, and links from notifications,
//! in headless Chromium against a real server, database and upstream (the example fs
//! server); and the same pages' refusals over plain HTTP.

use std::time::Duration;

use alexandria::notify::Links;
use fantoccini::Locator;
use reqwest::header::LOCATION;
use serde_json::json;
use uuid::Uuid;

use crate::auth_helpers::{admin_session, create_user, PASSWORD};
use crate::auth_helpers::{console_cookie, post_login};
use crate::browser::{browser, PAGE_DEADLINE};
use crate::gateway_helpers::{agent_token, approve_ok, call, register_fs, spawn_gateway};
use crate::helpers::{eventually, requests, spawn_app, TestApp, TEST_ADMIN_PASSWORD};
use crate::peers::text_of;

const AGENT: &str = "demo-agent";

/// The request id of a pending envelope.
fn request_id(pending: &serde_json::Value) -> Uuid {
    assert_eq!(pending["result"]["pending"], true, "{pending}");
    Uuid::parse_str(pending["result"]["request_id"].as_str().expect("request_id")).expect("a UUID")
}

/// Waits until the read model lists `count` requests (the history reads it).
async fn read_model_has(app: &TestApp, count: i64) {
    eventually(PAGE_DEADLINE, "the read model to catch up", || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM permission_requests")
            .fetch_one(&app.state.pool)
            .await
            .is_ok_and(|n| n == count)
    })
    .await;
}

#[tokio::test]
async fn the_inbox_shows_hints_the_last_decision_and_what_changed_and_the_request_page_its_history() {
    let Some(browser) = browser("the_inbox_shows_hints_the_last_decision_and_what_changed").await else { return };
    let app = spawn_gateway(Duration::from_millis(200)).await;
    let admin = admin_session(&app).await;
    let fs = register_fs(&app, &admin, "demo-fs", None).await;
    let token = agent_token(&app, &admin, AGENT, &["write_file"], &["write_file"]).await;

    // A first call, approved and run; then a second one with another path and a new key.
    let first_args = json!({"path": "/notes/a.txt", "content": "same"});
    let first = request_id(&call(&app, AGENT, &token, Some("first"), 1, "write_file", first_args.clone()).await);
    approve_ok(&app, &admin, first).await;
    let ran = call(&app, AGENT, &token, Some("first"), 2, "write_file", first_args).await;
    assert_eq!(text_of(&ran["result"]), "wrote 4 bytes to /notes/a.txt", "{ran}");
    let second_args = json!({"path": "/notes/b.txt", "content": "same"});
    let second = request_id(&call(&app, AGENT, &token, Some("second"), 3, "write_file", second_args.clone()).await);
    read_model_has(&app, 2).await;

    browser.log_in(&app, "admin", TEST_ADMIN_PASSWORD).await;
    let item = browser.wait_for(&format!("li#request-{second}")).await;
    let badges: Vec<String> = {
        let mut texts = Vec::new();
        for badge in item.find_all(Locator::Css(".badge")).await.unwrap() {
            texts.push(badge.text().await.unwrap());
        }
        texts
    };
    assert_eq!(badges, ["destructive", "idempotent", "closed world"], "from the fs server's annotations");
    let text = item.text().await.unwrap();
    assert!(text.contains("Write a text file inside the server's root directory"), "the description: {text}");
    assert!(text.contains("approved by admin"), "the last decision: {text}");
    let diff = item.find(Locator::Css("p.diff")).await.unwrap().text().await.unwrap();
    assert!(diff.contains("path changed"), "{diff}");
    assert!(!diff.contains("content"), "content did not change: {diff}");

    // The script adds a copy button per argument, and says when it copied.
    let copy = browser.wait_for(&format!("li#request-{second} dl.arguments button.copy")).await;
    assert_eq!(item.find_all(Locator::Css("button.copy")).await.unwrap().len(), 2, "one per argument");
    copy.click().await.unwrap();
    browser
        .wait_for_xpath(&format!("//li[@id='request-{second}']//span[contains(@class,'copied') and text()='Copied']"))
        .await;
    browser.screenshot("inbox").await;

    // Its page: decide there, and come back to it.
    item.find(Locator::Css("a.details-link")).await.unwrap().click().await.unwrap();
    browser.wait_for("#request").await;
    assert_eq!(browser.client.current_url().await.unwrap().path(), format!("/requests/{second}"));
    browser.wait_for_xpath("//*[@id='no-result']").await;
    browser.wait_for("details.decide.approve > summary").await.click().await.unwrap();
    browser.wait_for("button.confirm-approve").await.click().await.unwrap();
    browser.wait_for_xpath("//p[@id='notice' and contains(., 'approved by admin')]").await;
    assert_eq!(browser.client.current_url().await.unwrap().path(), format!("/requests/{second}"));
    assert_eq!(browser.count("details.decide").await, 0, "no decision on a decided request");

    // The agent's retry runs it; the page then shows the cached result and every event.
    let ran = call(&app, AGENT, &token, Some("second"), 4, "write_file", second_args).await;
    assert_eq!(text_of(&ran["result"]), "wrote 4 bytes to /notes/b.txt", "{ran}");
    assert_eq!(fs.file("/notes/b.txt").as_deref(), Some("same"));
    browser.client.refresh().await.unwrap();
    let result = browser.wait_for("#result").await.text().await.unwrap();
    assert!(result.contains("wrote 4 bytes to /notes/b.txt"), "{result}");
    let timeline = browser.wait_for("#timeline").await.text().await.unwrap();
    for event in ["Created", "Approved", "Executed", "ResultCached"] {
        assert!(timeline.contains(event), "{event} in the timeline: {timeline}");
    }
    assert!(timeline.contains("user:admin") && timeline.contains(&format!("agent:{AGENT}")), "{timeline}");
    browser.screenshot("request-detail").await;
    browser.close().await;
}

#[tokio::test]
async fn history_filters_narrow_the_list_and_next_page_goes_older() {
    let Some(browser) = browser("history_filters_narrow_the_list_and_next_page_goes_older").await else { return };
    let app = spawn_app().await;
    let store = &app.state.store;
    // 55 requests of one agent (30 rejected, 25 pending) and 5 approved of another.
    for n in 0..30 {
        requests::request_through(store, "alpha", &format!("r{n}"), &["reject"]).await;
    }
    for n in 0..25 {
        requests::request_through(store, "alpha", &format!("p{n}"), &[]).await;
    }
    for n in 0..5 {
        requests::request_through(store, "beta", &format!("a{n}"), &["approve"]).await;
    }
    read_model_has(&app, 60).await;

    browser.log_in(&app, "admin", TEST_ADMIN_PASSWORD).await;
    browser.goto(&app, "/history").await;
    browser.wait_for("#history").await;
    assert_eq!(browser.count("tr.history-row").await, 50, "a page is 50 requests");
    browser.wait_for("#next-page").await;

    // Agent beta: its five, and no next page.
    browser.wait_for("#f-agent").await.send_keys("beta").await.unwrap();
    browser.wait_for("#apply-filters").await.click().await.unwrap();
    browser.wait_for_xpath("//input[@id='f-agent' and @value='beta']").await;
    assert_eq!(browser.count("tr.history-row").await, 5);
    assert_eq!(browser.count("#next-page").await, 0);
    browser.screenshot("history").await;

    // Agent alpha, rejected: 30, paged 50 at a time would be one page; pending: 25.
    browser.goto(&app, "/history?agent=alpha&status=rejected").await;
    browser.wait_for("#history").await;
    assert_eq!(browser.count("tr.history-row").await, 30);
    let all = "/history?agent=alpha";
    browser.goto(&app, all).await;
    browser.wait_for("#history").await;
    assert_eq!(browser.count("tr.history-row").await, 50);
    let newest = browser.wait_for("tr.history-row th a").await.text().await.unwrap();
    browser.wait_for("#next-page").await.click().await.unwrap();
    browser.wait_for("#first-page").await;
    assert_eq!(browser.count("tr.history-row").await, 5, "the 5 older ones of 55");
    assert_eq!(browser.count("#next-page").await, 0);
    let url = browser.client.current_url().await.unwrap();
    assert!(url.query().unwrap_or_default().contains("agent=alpha"), "the filter stays: {url}");
    let older = browser.wait_for("tr.history-row th a").await.text().await.unwrap();
    assert!(older <= newest, "newest first: {older} after {newest}");

    // Each row opens the request's page.
    browser.wait_for("tr.history-row th a").await.click().await.unwrap();
    browser.wait_for("#request").await;
    assert!(browser.client.current_url().await.unwrap().path().starts_with("/requests/"));
    browser.close().await;
}

#[tokio::test]
async fn a_notification_link_opens_the_request_after_logging_in() {
    let Some(browser) = browser("a_notification_link_opens_the_request_after_logging_in").await else { return };
    let app = spawn_app().await;
    let id = requests::request_through(&app.state.store, AGENT, "linked", &[]).await;
    let link = Links::new(&app.address).approve_url(id);
    assert_eq!(link, app.url(&format!("/requests/{id}")));

    browser.client.goto(&link).await.unwrap();
    browser.wait_for("#login-form").await;
    browser.wait_for("#username").await.send_keys("admin").await.unwrap();
    browser.wait_for("#password").await.send_keys(TEST_ADMIN_PASSWORD).await.unwrap();
    browser.wait_for("#log-in").await.click().await.unwrap();
    browser.wait_for("#request").await;
    assert_eq!(browser.client.current_url().await.unwrap().path(), format!("/requests/{id}"));
    browser.wait_for("details.decide.approve").await;
    browser.close().await;
}

#[tokio::test]
async fn login_returns_only_to_local_pages() {
    let app = spawn_app().await;
    let id = Uuid::new_v4();
    // Not signed in: the page asked for travels through the login.
    let response = app.client.get(app.url(&format!("/requests/{id}?x=1"))).send().await.unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()[LOCATION], format!("/login?next=%2Frequests%2F{id}%3Fx%3D1"));
    let form = app.client.get(app.url(&format!("/login?next=/requests/{id}"))).send().await.unwrap();
    assert!(form.text().await.unwrap().contains(&format!("name=\"next\" value=\"/requests/{id}\"")));

    let log_in = |next: &'static str| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/login"))
                .header("origin", &app.address)
                .form(&[("username", "admin"), ("password", TEST_ADMIN_PASSWORD), ("next", next)])
                .send()
                .await
                .unwrap()
        }
    };
    let local = log_in("/history?agent=a").await;
    assert_eq!(local.headers()[LOCATION], "/history?agent=a");
    for foreign in ["//evil.example", "/\\evil.example", "https://evil.example/"] {
        let response = log_in(foreign).await;
        assert_eq!(response.status(), 303, "{foreign}");
        assert_eq!(response.headers()[LOCATION], "/", "{foreign} is ignored");
    }
    let form = app.client.get(app.url("/login?next=//evil.example")).send().await.unwrap();
    assert!(!form.text().await.unwrap().contains("evil.example"), "not even carried in the form");
    let plain = post_login(&app, &app.address, "admin", TEST_ADMIN_PASSWORD).await;
    assert_eq!(plain.headers()[LOCATION], "/");
}

#[tokio::test]
async fn bad_history_filters_are_400_with_the_form_and_request_pages_404_or_400() {
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    create_user(&app, &admin, "vera", "viewer").await;
    let cookie = console_cookie(&app, "admin", TEST_ADMIN_PASSWORD).await;
    let get = |path: String| {
        let (app, cookie) = (&app, cookie.clone());
        async move { app.client.get(app.url(&path)).header("cookie", cookie).send().await.unwrap() }
    };
    for (query, says) in [
        ("status=bogus", "nknown status"),
        ("from=yesterday", "is not a time"),
        ("to=2026-13-40T00:00", "is not a time"),
        ("from=2026-12-02T10:00&to=2026-12-01T10:00", "ends before it begins"),
        ("cursor=not-a-cursor", "ursor"),
    ] {
        let response = get(format!("/history?{query}")).await;
        assert_eq!(response.status(), 400, "{query}");
        let html = response.text().await.unwrap();
        assert!(html.contains("id=\"filter-error\"") && html.contains(says), "{query}: {html}");
        assert!(html.contains("id=\"history-filters\""), "the form is shown again: {query}");
    }
    let ok = get("/history?status=pending&from=2026-01-01T00:00&to=2099-01-01T00:00:00".into()).await;
    assert_eq!(ok.status(), 200);
    assert!(ok.text().await.unwrap().contains("id=\"history-empty\""));

    let unknown = get(format!("/requests/{}", Uuid::new_v4())).await;
    assert_eq!(unknown.status(), 404);
    let malformed = get("/requests/not-a-uuid".into()).await;
    assert_eq!(malformed.status(), 400);

    // A viewer reads both pages, without decision forms.
    let id = requests::request_through(&app.state.store, AGENT, "viewed", &[]).await;
    let viewer = console_cookie(&app, "vera", PASSWORD).await;
    let page = app.client.get(app.url(&format!("/requests/{id}"))).header("cookie", &viewer).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("<th scope=\"row\">Created</th>") && !html.contains("confirm-approve"), "{html}");
    let history = app.client.get(app.url("/history")).header("cookie", &viewer).send().await.unwrap();
    assert_eq!(history.status(), 200);
}
