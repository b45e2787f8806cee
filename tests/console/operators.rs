//! The operators' pages in headless Chromium: users (create, change role, reset password,
//! delete), one's own password, the admin audit trail, projections; and what a viewer or
//! admin gets instead (no link, a 403 page, a refused hand-made POST).

use fantoccini::Locator;
use serde_json::json;

use crate::auth_helpers::console_cookie;
use crate::auth_helpers::{admin_session, create_user, login, login_ok, PASSWORD};
use crate::browser::{browser, Browser, PAGE_DEADLINE};
use crate::helpers::{eventually, requests, spawn_app, TEST_ADMIN_PASSWORD};

const NEW_PASSWORD: &str = "a-brand-new-password-42";

async fn type_into(browser: &Browser, css: &str, text: &str) {
    browser.wait_for(css).await.send_keys(text).await.unwrap_or_else(|e| panic!("type into {css}: {e}"));
}

async fn click(browser: &Browser, css: &str) {
    browser.wait_for(css).await.click().await.unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn notice(browser: &Browser, text: &str) {
    browser.wait_for_xpath(&format!("//p[@id='notice' and contains(., '{text}')]")).await;
}

async fn text(browser: &Browser, css: &str) -> String {
    browser.wait_for(css).await.text().await.unwrap_or_else(|e| panic!("text of {css}: {e}"))
}

#[tokio::test]
async fn a_super_admin_manages_a_user_and_the_audit_trail_shows_every_change_with_its_actor() {
    let Some(browser) = browser("a_super_admin_manages_a_user_and_the_audit_trail_shows_it").await else { return };
    let app = spawn_app().await;
    browser.log_in(&app, "admin", TEST_ADMIN_PASSWORD).await;
    click(&browser, "nav.sections a[href='/users']").await;
    browser.wait_for("#users").await;
    assert_eq!(browser.count("#user-admin form").await, 0, "no controls on one's own row");

    // Refused: the password policy's message, inline, the name kept.
    type_into(&browser, "#new-username", "vera").await;
    type_into(&browser, "#new-password", "short").await;
    click(&browser, "#create-user-button").await;
    let refused = text(&browser, "#create-error").await;
    assert!(refused.contains("password must be at least 12 characters"), "{refused}");
    assert_eq!(browser.wait_for("#new-username").await.prop("value").await.unwrap().as_deref(), Some("vera"));

    type_into(&browser, "#new-password", PASSWORD).await;
    browser.wait_for("#new-role").await.select_by_value("viewer").await.unwrap();
    click(&browser, "#create-user-button").await;
    notice(&browser, "Created vera").await;
    assert!(text(&browser, "#user-vera").await.contains("viewer"));

    browser.wait_for("#role-vera").await.select_by_value("admin").await.unwrap();
    click(&browser, "#user-vera button.change-role").await;
    notice(&browser, "Changed the role of vera").await;
    assert!(text(&browser, "#user-vera td[data-label='Role']").await.contains("admin"));
    let vera = login_ok(&app, "vera", PASSWORD).await;

    click(&browser, "#reset-vera").await;
    type_into(&browser, "#password-vera", NEW_PASSWORD).await;
    click(&browser, "#user-vera button.confirm-reset").await;
    notice(&browser, "Reset the password of vera").await;
    assert_eq!(login(&app, "vera", PASSWORD).await.status(), 401, "the old password is gone");
    assert_eq!(login(&app, "vera", NEW_PASSWORD).await.status(), 200);
    let refreshed = app.client.post(app.url("/auth/refresh")).json(&json!({"refresh_token": vera.refresh_token}));
    assert_eq!(refreshed.send().await.unwrap().status(), 401, "vera's sessions ended with the reset");
    browser.screenshot("users").await;

    click(&browser, "#delete-vera").await;
    click(&browser, "#user-vera button.confirm-delete").await;
    notice(&browser, "Deleted vera").await;
    assert_eq!(browser.count("#user-vera").await, 0);

    // The last super_admin stays, whatever a hand-made POST asks: 409 and the reason.
    let cookie = browser.session_cookie().await;
    for (path, form) in [("/users/admin/role", vec![("role", "viewer")]), ("/users/admin/delete", vec![])] {
        let response = app
            .client
            .post(app.url(path))
            .header("cookie", &cookie)
            .header("origin", &app.address)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 409, "{path}");
        assert!(response.text().await.unwrap().contains("last super_admin"), "{path}");
    }

    // The audit trail: newest first, each change with who made it.
    click(&browser, "nav.sections a[href='/audit']").await;
    browser.wait_for("#audit").await;
    let rows = browser.client.find_all(Locator::Css("#audit tbody tr")).await.unwrap();
    let mut seen = Vec::new();
    for row in &rows {
        seen.push(row.text().await.unwrap());
    }
    let order: Vec<&str> = ["user.delete", "user.password.reset", "user.role.set", "user.create"]
        .into_iter()
        .filter(|action| seen.iter().any(|row| row.contains(action) && row.contains("vera")))
        .collect();
    assert_eq!(order.len(), 4, "every change is there: {seen:#?}");
    let position = |action: &str| seen.iter().position(|row| row.contains(action)).unwrap();
    assert!(position("user.delete") < position("user.create"), "newest first: {seen:#?}");
    assert!(seen.iter().filter(|row| row.contains("vera")).all(|row| row.contains("user:admin")), "{seen:#?}");

    // Filtered by action: the role change alone, before and after pretty-printed.
    type_into(&browser, "#audit-action", "user.role.set").await;
    click(&browser, "#audit-filters button").await;
    browser.wait_for_xpath("//input[@id='audit-action' and @value='user.role.set']").await;
    assert_eq!(browser.count("#audit tbody tr").await, 1);
    let before = text(&browser, "#audit tbody td[data-label='Before'] pre").await;
    assert_eq!(before, "{\n  \"role\": \"viewer\"\n}");
    browser.screenshot("audit").await;
    browser.close().await;
}

#[tokio::test]
async fn the_audit_trail_pages_by_cursor_and_shows_markup_in_changes_as_text() {
    let Some(browser) = browser("the_audit_trail_pages_by_cursor").await else { return };
    let app = spawn_app().await;
    {
        let mut conn = app.state.pool.acquire().await.unwrap();
        let actor = alexandria::names::Actor::User("admin".to_owned());
        for n in 0..55 {
            let after = json!({"n": n, "note": "<img src=x onerror=alert(1)>"});
            alexandria::audit_trail::record(&mut conn, &actor, "test.entry", "<b>target</b>", None, Some(after))
                .await
                .unwrap();
        }
    }
    browser.log_in(&app, "admin", TEST_ADMIN_PASSWORD).await;
    browser.goto(&app, "/audit?action=test.entry").await;
    browser.wait_for("#audit").await;
    assert_eq!(browser.count("#audit tbody tr").await, 50, "a page is 50 entries");
    let first = text(&browser, "#audit tbody tr:first-child td[data-label='After'] pre").await;
    assert!(first.contains("\"n\": 54") && first.contains("<img src=x onerror=alert(1)>"), "{first}");
    assert_eq!(text(&browser, "#audit tbody tr:first-child td[data-label='Target']").await, "<b>target</b>");
    assert_eq!(browser.count("#audit img, #audit b").await, 0, "no element was made from the data");
    assert!(browser.client.get_alert_text().await.is_err(), "no dialog opened");

    click(&browser, "#audit-older").await;
    browser.wait_for("#audit-newest").await;
    assert_eq!(browser.count("#audit tbody tr").await, 5, "the older page holds the rest");
    assert!(text(&browser, "#audit tbody tr:last-child").await.contains("\"n\": 0"));
    assert_eq!(browser.count("#audit-older").await, 0, "nothing older");
    assert_eq!(
        browser.wait_for("#audit-action").await.prop("value").await.unwrap().as_deref(),
        Some("test.entry"),
        "the filter is kept"
    );
    let bad = app.client.get(app.url("/audit?before=yesterday")).header("cookie", browser.session_cookie().await);
    assert_eq!(bad.send().await.unwrap().status(), 400);
    browser.close().await;
}

#[tokio::test]
async fn changing_my_own_password_signs_me_out_everywhere_and_the_login_page_says_why() {
    let Some(browser) = browser("changing_my_own_password_signs_me_out_everywhere").await else { return };
    let app = spawn_app().await;
    create_user(&app, &admin_session(&app).await, "ann", "viewer").await;
    let api_session = login_ok(&app, "ann", PASSWORD).await;
    browser.log_in(&app, "ann", PASSWORD).await;
    let old_cookie = browser.session_cookie().await;

    click(&browser, "#account-link").await;
    browser.wait_for("#password-form").await;
    type_into(&browser, "#current_password", "not-my-password-at-all").await;
    type_into(&browser, "#new_password", NEW_PASSWORD).await;
    type_into(&browser, "#confirm_password", NEW_PASSWORD).await;
    click(&browser, "#change-password").await;
    assert!(text(&browser, "#password-error").await.contains("current password is not right"));

    type_into(&browser, "#current_password", PASSWORD).await;
    type_into(&browser, "#new_password", NEW_PASSWORD).await;
    type_into(&browser, "#confirm_password", NEW_PASSWORD).await;
    click(&browser, "#change-password").await;
    let message = text(&browser, "#login-message").await;
    assert!(message.contains("Your password was changed"), "{message}");
    assert_eq!(browser.client.current_url().await.unwrap().path(), "/login");

    // The old console session and the API session both ended.
    let old = app.client.get(app.url("/")).header("cookie", &old_cookie).send().await.unwrap();
    assert_eq!(old.status(), 303);
    assert_eq!(old.headers()["location"], "/login?expired=1");
    let refreshed =
        app.client.post(app.url("/auth/refresh")).json(&json!({"refresh_token": api_session.refresh_token}));
    assert_eq!(refreshed.send().await.unwrap().status(), 401);
    browser.log_in(&app, "ann", NEW_PASSWORD).await;
    browser.close().await;
}

#[tokio::test]
async fn a_viewer_sees_projections_caught_up_but_no_link_to_super_admin_pages_and_gets_403_there() {
    let Some(browser) = browser("a_viewer_sees_projections_caught_up").await else { return };
    let app = spawn_app().await;
    create_user(&app, &admin_session(&app).await, "vic", "viewer").await;
    for key in ["p-1", "p-2", "p-3"] {
        requests::request_through(&app.state.store, "demo-agent", key, &[]).await;
    }
    browser.log_in(&app, "vic", PASSWORD).await;
    for href in ["/settings/notifications", "/users", "/audit"] {
        assert_eq!(browser.count(&format!("a[href='{href}']")).await, 0, "no link to {href}");
    }
    click(&browser, "nav.sections a[href='/projections']").await;
    browser.wait_for("#projection-permission_requests").await;
    eventually(PAGE_DEADLINE, "permission_requests to have caught up", || async {
        browser.goto(&app, "/projections").await;
        let lag = text(&browser, "#projection-permission_requests td[data-label='Lag']").await;
        let position = text(&browser, "#projection-permission_requests td[data-label='Position']").await;
        lag == "0" && position.parse::<i64>().is_ok_and(|p| p >= 3)
    })
    .await;
    let leader = text(&browser, "#projection-permission_requests td[data-label='Leader']").await;
    assert!(leader.starts_with("PostgreSQL session"), "the leading session is known: {leader}");
    assert_eq!(
        text(&browser, "#rebuild-permission_requests").await,
        "alexandria projections rebuild permission_requests"
    );
    assert_eq!(browser.count("#rebuild-notification_outbox").await, 0, "the outbox is never rebuilt");
    browser.screenshot("projections").await;

    // Opened directly: a 403 page that says which role it needs.
    for path in ["/users", "/audit", "/settings/notifications"] {
        browser.goto(&app, path).await;
        let message = text(&browser, ".error-page p.message").await;
        assert!(message.contains("needs role super_admin"), "{path}: {message}");
    }
    browser.close().await;
}

/// Every super_admin page and form, for an admin and a viewer: 403, and nothing changed.
#[tokio::test]
async fn admins_and_viewers_are_refused_every_super_admin_page_and_hand_made_post() {
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    create_user(&app, &admin, "adam", "admin").await;
    create_user(&app, &admin, "vera", "viewer").await;
    let before = alexandria::notify::settings::current(&app.state.pool).await.unwrap();
    for name in ["adam", "vera"] {
        let cookie = console_cookie(&app, name, PASSWORD).await;
        let inbox = app.client.get(app.url("/")).header("cookie", &cookie).send().await.unwrap().text().await.unwrap();
        for href in ["/settings/notifications", "/users", "/audit"] {
            assert!(!inbox.contains(&format!("href=\"{href}\"")), "{name}: no link to {href}");
        }
        assert!(inbox.contains("href=\"/projections\""), "{name}: projections are linked");
        for path in ["/settings/notifications", "/users", "/audit"] {
            let page = app.client.get(app.url(path)).header("cookie", &cookie).send().await.unwrap();
            assert_eq!(page.status(), 403, "{name} GET {path}");
        }
        for path in ["/projections", "/account/password"] {
            let page = app.client.get(app.url(path)).header("cookie", &cookie).send().await.unwrap();
            assert_eq!(page.status(), 200, "{name} GET {path}");
        }
        let posts: [(&str, &[(&str, &str)]); 6] = [
            (
                "/settings/notifications",
                &[("alertmanager_url", "http://evil.example"), ("alertmanager_severity", "info")],
            ),
            ("/settings/notifications/test", &[]),
            ("/users", &[("username", "mallory"), ("role", "super_admin"), ("password", PASSWORD)]),
            ("/users/admin/role", &[("role", "viewer")]),
            ("/users/admin/password", &[("password", NEW_PASSWORD)]),
            ("/users/admin/delete", &[]),
        ];
        for (path, form) in posts {
            let response = app
                .client
                .post(app.url(path))
                .header("cookie", &cookie)
                .header("origin", &app.address)
                .form(form)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 403, "{name} POST {path}");
        }
    }
    assert_eq!(alexandria::notify::settings::current(&app.state.pool).await.unwrap(), before);
    let users = alexandria::admin::users::list(&app.state.pool).await.unwrap();
    assert_eq!(users.iter().map(|u| u.username.as_str()).collect::<Vec<_>>(), ["adam", "admin", "vera"]);
    assert_eq!(login(&app, "admin", TEST_ADMIN_PASSWORD).await.status(), 200, "the admin's password is unchanged");

    // The super_admin's invalid settings: 422 with the API's message.
    let cookie = console_cookie(&app, "admin", TEST_ADMIN_PASSWORD).await;
    let refused = app
        .client
        .post(app.url("/settings/notifications"))
        .header("cookie", &cookie)
        .header("origin", &app.address)
        .form(&[("alertmanager_url", "not a url"), ("webhook_url", ""), ("alertmanager_severity", "loud")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    let body = refused.text().await.unwrap();
    assert!(body.contains("alertmanager_url is not a valid URL"), "{body}");
    assert!(body.contains("alertmanager_severity must be one of critical, warning, info"), "{body}");
}

/// An auditor's console: the audit log and their own account, nothing of the viewer
/// ladder; the page passes axe, and a super_admin reaches it too.
#[tokio::test]
async fn an_auditor_lands_on_the_audit_log_with_the_signed_head_and_sees_nothing_else() {
    let Some(browser) = browser("an_auditor_lands_on_the_audit_log").await else { return };
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    create_user(&app, &admin, "ada", "auditor").await;
    requests::request_through(&app.state.store, "demo-agent", "a-1", &["approve"]).await;
    eventually(PAGE_DEADLINE, "a checkpoint of the events chain", || async {
        alexandria::audit::checkpoints::latest(&app.db.pool, alexandria::audit::EVENTS_CHAIN)
            .await
            .unwrap()
            .is_some_and(|c| c.seq == 2)
    })
    .await;

    browser.goto(&app, "/login").await;
    type_into(&browser, "#username", "ada").await;
    type_into(&browser, "#password", PASSWORD).await;
    click(&browser, "#log-in").await;
    browser.wait_for("#chain-events-checkpoint").await;
    let mut links = Vec::new();
    for link in browser.client.find_all(Locator::Css("nav.sections a")).await.unwrap() {
        links.push(link.attr("href").await.unwrap().unwrap_or_default());
    }
    assert_eq!(links, ["/audit-log"], "the audit log is the auditor's only section");
    let head = alexandria::audit::checkpoints::latest(&app.db.pool, alexandria::audit::EVENTS_CHAIN).await.unwrap();
    assert_eq!(text(&browser, "#chain-events-head").await, head.unwrap().hash);
    assert!(text(&browser, "#verify-command").await.starts_with("alexandria events verify --file events.jsonl"));
    assert_eq!(
        browser.wait_for("#download-events").await.attr("href").await.unwrap().as_deref(),
        Some("/audit-log/events.jsonl")
    );
    browser.assert_accessible("audit-log").await;
    browser.screenshot("audit-log").await;

    browser.goto(&app, "/history").await;
    let message = text(&browser, ".error-page p.message").await;
    assert!(message.contains("needs role viewer"), "{message}");
    browser.goto(&app, "/account/password").await;
    browser.wait_for("#current_password").await;
    browser.close().await;
}
