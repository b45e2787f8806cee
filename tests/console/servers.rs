//! The MCP servers pages in headless Chromium: register the example fs server through the
//! stdio form, see it connected with its tools, refresh, remove with a confirm step; the
//! API's messages inline. And a viewer: both areas read-only, hand-made POSTs 403.

use std::time::Duration;

use crate::auth_helpers::console_cookie;
use crate::auth_helpers::{admin_session, create_agent, create_user, PASSWORD};
use crate::browser::{browser, Browser};
use crate::gateway_helpers::{register_fs, spawn_gateway};
use crate::helpers::TEST_ADMIN_PASSWORD;
use crate::peers::example_fs_bin;

async fn text(browser: &Browser, css: &str) -> String {
    browser.wait_for(css).await.text().await.unwrap_or_else(|e| panic!("text of {css}: {e}"))
}

async fn type_into(browser: &Browser, css: &str, text: &str) {
    let field = browser.wait_for(css).await;
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap_or_else(|e| panic!("type into {css}: {e}"));
}

#[tokio::test]
async fn a_super_admin_registers_the_fs_server_through_the_stdio_form_refreshes_and_removes_it() {
    let Some(browser) = browser("a_super_admin_registers_the_fs_server_through_the_stdio_form").await else { return };
    let app = spawn_gateway(Duration::from_millis(200)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    browser.log_in(&app, "admin", TEST_ADMIN_PASSWORD).await;
    browser.goto(&app, "/servers").await;
    browser.wait_for("#servers-empty").await;

    // An invalid name: the configuration's own message, inline; what was typed is kept
    // except the env values.
    type_into(&browser, "#stdio-name", "Files").await;
    type_into(&browser, "#stdio-command", example_fs_bin().to_str().unwrap()).await;
    type_into(&browser, "#stdio-args", &format!("--root\n{}", root.display())).await;
    type_into(&browser, "#stdio-env", "FS_SERVER_SECRET=s3cr3t-value").await;
    browser.wait_for("#register-stdio-submit").await.click().await.unwrap();
    let error = text(&browser, "#stdio-error").await;
    assert!(error.contains(r#"name must be 1 to 64 characters of a-z, 0-9, '_' or '-' (got "Files")"#), "{error}");
    assert!(!browser.client.source().await.unwrap().contains("s3cr3t-value"), "env values are not rendered");
    assert_eq!(browser.count("#http-error").await, 0, "the other form has no error");

    type_into(&browser, "#stdio-name", "files").await;
    type_into(&browser, "#stdio-env", "FS_SERVER_SECRET=s3cr3t-value").await;
    browser.wait_for("#register-stdio-submit").await.click().await.unwrap();
    browser.wait_for_xpath("//p[@id='notice' and contains(., 'MCP server files registered')]").await;
    assert_eq!(text(&browser, "#server-status").await, "connected");
    let tools = text(&browser, "#server-tools").await;
    for tool in ["write_file", "read_file", "list_directory", "echo"] {
        assert!(tools.contains(tool), "{tool} in {tools}");
    }
    let facts = text(&browser, "#server-facts").await;
    assert!(facts.contains("FS_SERVER_SECRET") && facts.contains("values hidden"), "{facts}");
    assert!(!browser.client.source().await.unwrap().contains("s3cr3t-value"), "env values are never rendered");
    browser.screenshot("server-detail").await;

    browser.goto(&app, "/servers").await;
    let row = text(&browser, "#servers tr[data-server='files']").await;
    assert!(row.contains("connected") && row.contains("stdio") && row.contains(" 4 "), "{row}");
    browser.screenshot("servers").await;

    browser.goto(&app, "/servers/files").await;
    browser.wait_for("#refresh-server").await.click().await.unwrap();
    browser.wait_for_xpath("//p[@id='notice' and contains(., 'Tool list of files read again: 4 tools')]").await;

    browser.wait_for("#remove-server > summary").await.click().await.unwrap();
    browser.wait_for("#confirm-remove-server").await.click().await.unwrap();
    browser.wait_for_xpath("//p[@id='notice' and contains(., 'MCP server files removed')]").await;
    browser.wait_for("#servers-empty").await;
    assert!(app.state.upstreams.list().is_empty());
    assert!(app.state.upstreams.tools().is_empty());
    browser.close().await;
}

#[tokio::test]
async fn a_viewer_reads_agents_and_servers_without_forms_and_a_hand_made_post_is_403() {
    let Some(browser) = browser("a_viewer_reads_agents_and_servers_without_forms").await else { return };
    let app = spawn_gateway(Duration::from_millis(200)).await;
    let admin = admin_session(&app).await;
    let _fs = register_fs(&app, &admin, "demo-fs", None).await;
    create_agent(&app, &admin, "demo", &["read_file"], &[]).await;
    create_user(&app, &admin, "vera", "viewer").await;
    browser.log_in(&app, "vera", PASSWORD).await;

    for (path, shown) in [
        ("/agents", "#agents"),
        ("/agents/demo", "#agent-facts"),
        ("/servers", "#servers"),
        ("/servers/demo-fs", "#server-tools"),
    ] {
        browser.goto(&app, path).await;
        browser.wait_for(shown).await;
        assert_eq!(browser.count("main form").await, 0, "no form on {path} for a viewer");
        assert_eq!(browser.count("main button").await, 0, "no button on {path} for a viewer");
    }

    // The viewer's own cookie, from the right origin: the server refuses all the same.
    let cookie = browser.session_cookie().await;
    for (path, form) in [
        ("/agents", vec![("name", "sneaky")]),
        ("/agents/demo/tools", vec![("allowed", "write_file")]),
        ("/agents/demo/token", vec![]),
        ("/agents/demo/delete", vec![]),
        ("/servers", vec![("transport", "stdio"), ("name", "x"), ("command", "true")]),
        ("/servers/demo-fs/refresh", vec![]),
        ("/servers/demo-fs/remove", vec![]),
    ] {
        let response = app
            .client
            .post(app.url(path))
            .header("cookie", &cookie)
            .header("origin", &app.address)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "POST {path} as a viewer");
    }
    assert_eq!(app.state.upstreams.list().len(), 1);

    // An admin mints tokens and refreshes, but does not manage.
    create_user(&app, &admin, "ada", "admin").await;
    let cookie = console_cookie(&app, "ada", PASSWORD).await;
    let post =
        |path: &str| app.client.post(app.url(path)).header("cookie", &cookie).header("origin", &app.address).send();
    assert_eq!(post("/agents/demo/token").await.unwrap().status(), 200);
    assert_eq!(post("/servers/demo-fs/refresh").await.unwrap().status(), 303);
    assert_eq!(post("/agents/demo/delete").await.unwrap().status(), 403);
    assert_eq!(post("/servers/demo-fs/remove").await.unwrap().status(), 403);
    let page = app.client.get(app.url("/agents/demo")).header("cookie", &cookie).send().await.unwrap();
    let html = page.text().await.unwrap();
    assert!(html.contains("mint-token-submit") && !html.contains("tool-picker") && !html.contains("delete-agent"));
    browser.close().await;
}

#[tokio::test]
async fn the_streamable_http_form_shows_the_apis_message_and_never_echoes_a_header_value() {
    let app = spawn_gateway(Duration::from_millis(200)).await;
    let cookie = console_cookie(&app, "admin", TEST_ADMIN_PASSWORD).await;
    let register = |form: Vec<(&'static str, &'static str)>| {
        app.client.post(app.url("/servers")).header("cookie", &cookie).header("origin", &app.address).form(&form).send()
    };
    let refused = register(vec![
        ("transport", "streamable_http"),
        ("name", "web"),
        ("url", "ftp://mcp.example/mcp"),
        ("headers", "Authorization: Bearer s3cr3t-header"),
        ("tool_prefix", "web_"),
    ])
    .await
    .unwrap();
    assert_eq!(refused.status(), 422);
    let page = refused.text().await.unwrap();
    assert!(page.contains("id=\"http-error\"") && page.contains("url must be an http:// or https:// URL with a host"));
    assert!(!page.contains("id=\"stdio-error\""), "the message is next to the form that was sent");
    assert!(page.contains("value=\"ftp://mcp.example/mcp\"") && page.contains("value=\"web_\""), "typed values kept");
    assert!(!page.contains("s3cr3t-header"), "a header value is never rendered");

    let malformed = register(vec![
        ("transport", "streamable_http"),
        ("name", "web"),
        ("url", "https://mcp.example/mcp"),
        ("headers", "Authorization Bearer s3cr3t-header"),
    ])
    .await
    .unwrap();
    assert_eq!(malformed.status(), 422);
    let page = malformed.text().await.unwrap();
    assert!(
        page.contains("headers: line 1 is not of the form Name: value") && !page.contains("s3cr3t-header"),
        "{page}"
    );

    // Unreachable: the registry's connect error, as the API says it (422), nothing stored.
    let unreachable =
        register(vec![("transport", "streamable_http"), ("name", "web"), ("url", "http://127.0.0.1:9/mcp")])
            .await
            .unwrap();
    assert_eq!(unreachable.status(), 422);
    assert!(unreachable.text().await.unwrap().contains("cannot connect to MCP server"));
    assert!(app.state.upstreams.list().is_empty());
}
