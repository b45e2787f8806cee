//! The console over plain HTTP (no browser): headers, the cookie, the same-origin rule,
//! ended sessions, and the event stream's resume.

use std::time::Duration;

use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, LOCATION, SET_COOKIE};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::auth_helpers::{admin_session, console_cookie, create_user, post_login, PASSWORD};
use crate::helpers::{fresh_database, requests, spawn_app, spawn_app_on, test_settings, TestApp, TEST_ADMIN_PASSWORD};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn get(app: &TestApp, path: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut request = app.client.get(app.url(path));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    request.send().await.expect("GET")
}

#[tokio::test]
async fn console_responses_carry_the_security_headers() {
    let app = spawn_app().await;
    let cookie = console_cookie(&app, "admin", TEST_ADMIN_PASSWORD).await;
    for (path, cookie) in [("/login", None), ("/", Some(cookie.as_str())), ("/console/inbox", Some(cookie.as_str()))] {
        let response = get(&app, path, cookie).await;
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers();
        assert_eq!(headers[CONTENT_SECURITY_POLICY], CSP, "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(headers[CACHE_CONTROL], "no-store", "{path}");
        assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"), "{path}");
    }
    let script = get(&app, "/console/assets/console.js", None).await;
    assert_eq!(script.status(), 200);
    assert!(script.headers()[CACHE_CONTROL].to_str().unwrap().contains("immutable"));
    assert!(script.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    assert_eq!(script.headers()[CONTENT_SECURITY_POLICY], CSP);
    // The JSON API is unchanged: no console headers there.
    let health = get(&app, "/healthz", None).await;
    assert!(health.headers().get(CONTENT_SECURITY_POLICY).is_none());
}

#[tokio::test]
async fn a_console_login_is_a_session_row_holding_only_the_secrets_hash() {
    let app = spawn_app().await;
    let response = post_login(&app, &app.address, "admin", TEST_ADMIN_PASSWORD).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()[LOCATION], "/");
    let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(set_cookie.starts_with("alexandria_session="), "{set_cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{attribute} in {set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain http: {set_cookie}");
    let value = set_cookie.split(';').next().unwrap().trim_start_matches("alexandria_session=");
    let (session_id, secret) = value.split_once('.').expect("<session>.<secret>");
    let (username, hash): (String, Vec<u8>) =
        sqlx::query_as("SELECT username, console_secret_hash FROM sessions WHERE id = $1::uuid")
            .bind(session_id)
            .fetch_one(&app.db.pool)
            .await
            .expect("the session row");
    assert_eq!(username, "admin");
    assert_eq!(hash, Sha256::digest(secret.as_bytes()).to_vec(), "the SHA-256 of the secret, not the secret");

    // A wrong password: the login page again, 401, the API's message; it counts.
    let failed = post_login(&app, &app.address, "admin", "wrong password!").await;
    assert_eq!(failed.status(), 401);
    assert!(failed.headers().get(SET_COOKIE).is_none());
    assert!(failed.text().await.unwrap().contains("Invalid username or password."));
    let failures: i32 = sqlx::query_scalar("SELECT failures FROM login_throttle WHERE subject = 'user:admin'")
        .fetch_one(&app.db.pool)
        .await
        .expect("the failure is counted by the shared throttle");
    assert_eq!(failures, 1);
}

#[tokio::test]
async fn over_https_the_cookie_is_secure_and_host_prefixed() {
    let settings = alexandria::startup::Settings { public_url: "https://gate.example".to_owned(), ..test_settings() };
    let app = spawn_app_on(fresh_database().await, settings).await;
    let response = post_login(&app, "https://gate.example", "admin", TEST_ADMIN_PASSWORD).await;
    assert_eq!(response.status(), 303);
    let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(set_cookie.starts_with("__Host-alexandria_session="), "{set_cookie}");
    assert!(set_cookie.contains("; Secure"), "{set_cookie}");
    assert!(set_cookie.contains("Path=/") && !set_cookie.contains("Domain"), "{set_cookie}");
}

#[tokio::test]
async fn a_cross_origin_post_is_refused() {
    let app = spawn_app().await;
    let refused = post_login(&app, "http://evil.example", "admin", TEST_ADMIN_PASSWORD).await;
    assert_eq!(refused.status(), 403, "login CSRF");
    let no_origin = app
        .client
        .post(app.url("/login"))
        .form(&[("username", "admin"), ("password", TEST_ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(no_origin.status(), 403, "neither Origin nor Sec-Fetch-Site");
    let cross_site = app
        .client
        .post(app.url("/login"))
        .header("sec-fetch-site", "cross-site")
        .header("origin", &app.address)
        .form(&[("username", "admin"), ("password", TEST_ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403, "the browser says cross-site");

    let cookie = console_cookie(&app, "admin", TEST_ADMIN_PASSWORD).await;
    let id = requests::request_through(&app.state.store, "demo-agent", "csrf", &[]).await;
    let forged = app
        .client
        .post(app.url(&format!("/requests/{id}/approve")))
        .header("cookie", &cookie)
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let state = app.state.store.load(id).await.unwrap().unwrap();
    assert_eq!(state.status().unwrap().as_str(), "pending", "nothing was decided");
}

#[tokio::test]
async fn an_ended_session_sends_pages_to_the_login_page_and_scripts_get_401() {
    let app = spawn_app().await;
    let none = get(&app, "/", None).await;
    assert_eq!(none.status(), 303);
    assert_eq!(none.headers()[LOCATION], "/login");
    assert_eq!(get(&app, "/console/inbox", None).await.status(), 401);
    assert_eq!(get(&app, "/console/events", None).await.status(), 401);

    let admin = admin_session(&app).await;
    create_user(&app, &admin, "carol", "admin").await;
    let cookie = console_cookie(&app, "carol", PASSWORD).await;
    assert_eq!(get(&app, "/", Some(&cookie)).await.status(), 200);
    // A password reset by a super_admin ends every session of the user, the console's too.
    let reset = app
        .client
        .post(app.url("/admin/users/carol/password"))
        .bearer_auth(&admin.access_token)
        .json(&json!({"password": "a brand new password"}))
        .send()
        .await
        .unwrap();
    assert!(reset.status().is_success(), "reset: {}", reset.status());
    let ended = get(&app, "/", Some(&cookie)).await;
    assert_eq!(ended.status(), 303);
    assert_eq!(ended.headers()[LOCATION], "/login?expired=1");
    assert_eq!(get(&app, "/console/inbox", Some(&cookie)).await.status(), 401);
    let login_page = get(&app, "/login?expired=1", None).await.text().await.unwrap();
    assert!(login_page.contains("Your session ended"), "{login_page}");

    // Sign-out revokes the row: a copy of the cookie is worthless afterwards.
    let cookie = console_cookie(&app, "admin", TEST_ADMIN_PASSWORD).await;
    let out = app
        .client
        .post(app.url("/logout"))
        .header("cookie", &cookie)
        .header("origin", &app.address)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert!(out.headers()[SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    assert_eq!(get(&app, "/", Some(&cookie)).await.headers()[LOCATION], "/login?expired=1");

    // Idle past the refresh-token lifetime: ended too.
    let cookie = console_cookie(&app, "admin", TEST_ADMIN_PASSWORD).await;
    let session_id = cookie.trim_start_matches("alexandria_session=").split('.').next().unwrap().to_owned();
    sqlx::query("UPDATE sessions SET last_refreshed_at = now() - interval '8 days' WHERE id = $1::uuid")
        .bind(&session_id)
        .execute(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(get(&app, "/", Some(&cookie)).await.headers()[LOCATION], "/login?expired=1");
}

/// Reads the stream until a whole event (`\n\n`) arrived, within `deadline`.
async fn next_event(stream: &mut reqwest::Response, deadline: Duration) -> String {
    let mut text = String::new();
    tokio::time::timeout(deadline, async {
        while !text.contains("\n\n") || !text.contains("event: changed") {
            let chunk = stream.chunk().await.expect("a chunk").expect("the stream stays open");
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no event within {deadline:?}; got {text:?}"));
    text
}

fn event_id(text: &str) -> i64 {
    text.lines().find_map(|line| line.strip_prefix("id: ")).expect("an id line").trim().parse().expect("a number")
}

#[tokio::test]
async fn the_event_stream_announces_changes_and_resumes_from_last_event_id() {
    let app = spawn_app().await;
    let cookie = console_cookie(&app, "admin", TEST_ADMIN_PASSWORD).await;
    let response = get(&app, "/console/events", Some(&cookie)).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut stream = response;
    requests::request_through(&app.state.store, "demo-agent", "live-1", &[]).await;
    let first = next_event(&mut stream, Duration::from_secs(5)).await;
    let position = event_id(&first);
    assert!(position >= 1, "{first}");
    // The read model had applied it when the event was sent.
    let (pending, _) = alexandria::approval::queries::pending_oldest_first(&app.db.pool, 10).await.unwrap();
    assert_eq!(pending.len(), 1);

    // A reconnect that saw an older position hears at once that there is more to see.
    let mut resumed = app
        .client
        .get(app.url("/console/events"))
        .header("cookie", &cookie)
        .header("last-event-id", (position - 1).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(event_id(&next_event(&mut resumed, Duration::from_secs(5)).await), position);
    // So does a page rendered at an older position (`?since=`, before any Last-Event-ID).
    let mut from_page = get(&app, &format!("/console/events?since={}", position - 1), Some(&cookie)).await;
    assert_eq!(event_id(&next_event(&mut from_page, Duration::from_secs(5)).await), position);
}

#[tokio::test]
async fn many_open_streams_hold_no_database_connection_and_each_hears_of_a_new_request() {
    let app = spawn_app().await;
    let cookie = console_cookie(&app, "admin", TEST_ADMIN_PASSWORD).await;
    let pool = &app.state.pool;
    // The server's own workers (projection leadership, the reconciler) hold a few.
    let in_use = || pool.size() as usize - pool.num_idle();
    let workers = in_use();
    let mut streams = Vec::new();
    for _ in 0..50 {
        let stream = get(&app, "/console/events", Some(&cookie)).await;
        assert_eq!(stream.status(), 200);
        streams.push(stream);
    }
    // Waiting streams hold nothing: no more connections are in use than before them.
    crate::helpers::eventually(Duration::from_secs(5), "streams hold no connection", || async {
        in_use() <= workers.max(1)
    })
    .await;
    requests::request_through(&app.state.store, "demo-agent", "many-1", &[]).await;
    let positions: Vec<i64> =
        futures::future::join_all(streams.iter_mut().map(|stream| next_event(stream, Duration::from_secs(5))))
            .await
            .iter()
            .map(|event| event_id(event))
            .collect();
    assert!(positions.iter().all(|&position| position == positions[0] && position >= 1), "{positions:?}");
}

#[tokio::test]
async fn a_console_session_writes_its_activity_down_at_most_once_a_minute() {
    let app = spawn_app().await;
    let cookie = console_cookie(&app, "admin", TEST_ADMIN_PASSWORD).await;
    let session_id = cookie.trim_start_matches("alexandria_session=").split('.').next().unwrap().to_owned();
    let set_idle = |seconds: i64| {
        sqlx::query("UPDATE sessions SET last_refreshed_at = now() - make_interval(secs => $2) WHERE id = $1::uuid")
            .bind(session_id.clone())
            .bind(seconds as f64)
            .execute(&app.db.pool)
    };
    let idle_seconds = || async {
        let (idle,): (f64,) = sqlx::query_as(
            "SELECT extract(epoch FROM now() - last_refreshed_at)::float8 FROM sessions WHERE id = $1::uuid",
        )
        .bind(session_id.clone())
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
        idle
    };
    // Used 30 s ago: a page view reads the session and writes nothing.
    set_idle(30).await.unwrap();
    assert_eq!(get(&app, "/", Some(&cookie)).await.status(), 200);
    assert!(idle_seconds().await >= 30.0);
    // Used two minutes ago: the page view is written down.
    set_idle(120).await.unwrap();
    assert_eq!(get(&app, "/", Some(&cookie)).await.status(), 200);
    assert!(idle_seconds().await < 30.0);
}

#[tokio::test]
async fn deciding_what_someone_else_just_decided_shows_who_did() {
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    create_user(&app, &admin, "dave", "admin").await;
    let cookie = console_cookie(&app, "dave", PASSWORD).await;
    let id = requests::request_through(&app.state.store, "demo-agent", "race", &[]).await;
    // The bootstrap admin approves through the JSON API a moment before dave rejects.
    let approved = app
        .client
        .post(app.url(&format!("/admin/permissions/{id}/approve")))
        .bearer_auth(&admin.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200);
    let late = app
        .client
        .post(app.url(&format!("/requests/{id}/reject")))
        .header("cookie", &cookie)
        .header("origin", &app.address)
        .form(&[("reason", "too late")])
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), 303, "not an error page");
    let location = late.headers()[LOCATION].to_str().unwrap().to_owned();
    assert_eq!(location, format!("/?decided={id}&already=1#notice"));
    let page = get(&app, location.split('#').next().unwrap(), Some(&cookie)).await.text().await.unwrap();
    assert!(page.contains("Already decided"), "{page}");
    assert!(page.contains("write_file for demo-agent: approved by admin at "), "{page}");
    let state = app.state.store.load(id).await.unwrap().unwrap();
    assert_eq!(state.status().unwrap().as_str(), "approved", "dave's rejection was not recorded");

    // A rejection without a reason is refused with a clear 422, and nothing changes.
    let other = requests::request_through(&app.state.store, "demo-agent", "no-reason", &[]).await;
    let blank = app
        .client
        .post(app.url(&format!("/requests/{other}/reject")))
        .header("cookie", &cookie)
        .header("origin", &app.address)
        .form(&[("reason", "  ")])
        .send()
        .await
        .unwrap();
    assert_eq!(blank.status(), 422);
}
