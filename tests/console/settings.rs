//! Settings → Notifications in headless Chromium, against a real Alertmanager: save its
//! URL, press Test, and see the outcome of every channel; a closed port shows the error;
//! the webhook secret never comes back to the page.

use alexandria::notify::settings;
use alexandria::notify::Severity;

use crate::alertmanager::{free_port, Alertmanager};
use crate::browser::{browser, Browser, PAGE_DEADLINE};
use crate::helpers::{eventually, spawn_app, TestApp, TEST_ADMIN_PASSWORD};

const SECRET: &str = "console-webhook-secret-0123456789";

async fn replace(browser: &Browser, css: &str, text: &str) {
    let field = browser.wait_for(css).await;
    field.clear().await.unwrap_or_else(|e| panic!("clear {css}: {e}"));
    if !text.is_empty() {
        field.send_keys(text).await.unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }
}

async fn save(browser: &Browser) {
    browser.wait_for("#save-settings").await.click().await.expect("Save");
}

async fn saved(browser: &Browser) {
    browser.wait_for_xpath("//p[@id='notice' and contains(., 'Saved')]").await;
}

async fn test_line(browser: &Browser, channel: &str) -> String {
    browser.wait_for("#test-settings").await.click().await.expect("Test");
    browser.wait_for(&format!("#test-{channel}")).await.text().await.expect("the channel's outcome")
}

async fn stored(app: &TestApp) -> settings::SettingsView {
    settings::current(&app.state.pool).await.expect("the stored settings")
}

#[tokio::test]
async fn a_super_admin_saves_a_real_alertmanager_tests_it_and_sees_each_channels_outcome() {
    let Some(browser) = browser("a_super_admin_saves_a_real_alertmanager_tests_it").await else { return };
    let Some(alertmanager) = Alertmanager::start().await else { return };
    let app = spawn_app().await;
    browser.log_in(&app, "admin", TEST_ADMIN_PASSWORD).await;

    // Settings → Notifications, from the navigation.
    browser.wait_for("nav.sections a[href='/settings/notifications']").await.click().await.unwrap();
    browser.wait_for("#settings-form").await;
    assert_eq!(browser.wait_for("#secret-state").await.text().await.unwrap(), "not set");
    replace(&browser, "#alertmanager_url", &alertmanager.url()).await;
    browser.wait_for("#alertmanager_severity").await.select_by_value("critical").await.unwrap();
    save(&browser).await;
    saved(&browser).await;
    let view = stored(&app).await;
    assert_eq!(view.alertmanager_url.as_deref(), Some(alertmanager.url().as_str()));
    assert_eq!(view.alertmanager_severity, Severity::Critical);
    assert_eq!(view.updated_by.as_deref(), Some("user:admin"));

    // Test: Alertmanager received the alert, firing and then resolved; no webhook is set.
    let line = test_line(&browser, "alertmanager").await;
    assert!(line.contains("delivered"), "{line}");
    let webhook = browser.wait_for("#test-webhook").await.text().await.unwrap();
    assert!(webhook.contains("not configured"), "{webhook}");
    eventually(PAGE_DEADLINE, "Alertmanager to have received the test alert", || async {
        alertmanager.received("firing").await == 1 && alertmanager.received("resolved").await == 1
    })
    .await;
    browser.screenshot("settings-notifications").await;

    // A webhook with its secret: saved, shown only as "set", never in the page.
    let closed = format!("http://127.0.0.1:{}", free_port());
    replace(&browser, "#webhook_url", &format!("{closed}/hook")).await;
    replace(&browser, "#webhook_secret", SECRET).await;
    save(&browser).await;
    saved(&browser).await;
    assert_eq!(browser.wait_for("#secret-state").await.text().await.unwrap(), "set");
    assert_eq!(stored(&app).await.webhook_secret, "set");
    let source = browser.client.source().await.unwrap();
    assert!(!source.contains(SECRET), "the secret is not in the page");

    // Invalid input: the API's messages, inline; nothing saved; the secret still absent.
    replace(&browser, "#alertmanager_url", "not a url").await;
    save(&browser).await;
    let errors = browser.wait_for("#settings-errors").await.text().await.unwrap();
    assert!(errors.contains("alertmanager_url is not a valid URL"), "{errors}");
    assert_eq!(browser.wait_for("#alertmanager_url").await.prop("value").await.unwrap().as_deref(), Some("not a url"));
    assert_eq!(stored(&app).await.alertmanager_url.as_deref(), Some(alertmanager.url().as_str()));
    assert!(!browser.client.source().await.unwrap().contains(SECRET));

    // Nobody listens there: each channel says why, without the URL.
    replace(&browser, "#alertmanager_url", &closed).await;
    save(&browser).await;
    saved(&browser).await;
    let line = test_line(&browser, "alertmanager").await;
    assert!(line.contains("error") && line.contains("cannot connect"), "{line}");
    let webhook = browser.wait_for("#test-webhook").await.text().await.unwrap();
    assert!(webhook.contains("cannot connect"), "{webhook}");
    assert!(!line.contains(&closed) && !webhook.contains(&closed), "no URL in errors: {line} / {webhook}");

    // Removing the secret and the webhook turns the channel off.
    replace(&browser, "#webhook_url", "").await;
    browser.wait_for("#clear_webhook_secret").await.click().await.unwrap();
    save(&browser).await;
    saved(&browser).await;
    assert_eq!(browser.wait_for("#secret-state").await.text().await.unwrap(), "not set");
    let view = stored(&app).await;
    assert_eq!((view.webhook_url, view.webhook_secret), (None, "unset"));
    browser.close().await;
}
