//! `GET /metrics`: names, labels, values derived from the database, and a clean
//! `promtool check metrics`.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::gateway_helpers::scrape;
use crate::helpers::requests::request_through;
use crate::helpers::{spawn_app, spawn_app_on, test_settings};

fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

const PENDING: &str = r#"alexandria_permission_request_pending{request_type="tool_call",tool="write_file"}"#;

fn events_total(event: &str) -> String {
    format!(
        r#"alexandria_permission_request_events_total{{event="{event}",request_type="tool_call",tool="write_file"}}"#
    )
}

#[tokio::test]
async fn pending_gauge_comes_from_the_read_model_and_survives_restarts_and_replicas() {
    let app = spawn_app().await;
    let pending = request_through(&app.state.store, "agent-a", "p1", &[]).await;
    request_through(&app.state.store, "agent-a", "p2", &["approve"]).await;
    // Both conditions: the gauge is also 1 while only p1's Created is projected (another
    // test's open transaction can hold the settled bound back, it is cluster-wide).
    let caught_up = "alexandria_projection_lag_events{projection=\"permission_requests\"} 0";
    crate::helpers::eventually(std::time::Duration::from_secs(10), "the projection to catch up", || async {
        let text = scrape(&app).await;
        text.contains(caught_up) && sample(&text, PENDING) == Some(1.0)
    })
    .await;
    let text = scrape(&app).await;
    assert_eq!(sample(&text, PENDING), Some(1.0));
    assert_eq!(sample(&text, &events_total("created")), Some(2.0));
    assert_eq!(sample(&text, &events_total("approved")), Some(1.0));

    // A second replica on the same database reports the same gauge without having
    // appended anything itself.
    let replica = spawn_app_on(app.db.clone(), test_settings()).await;
    let replica_text = scrape(&replica).await;
    assert_eq!(sample(&replica_text, PENDING), Some(1.0));
    assert_eq!(sample(&replica_text, &events_total("created")), None, "counters count this process's appends");

    // Decided: the tool's series stays, at 0, also after a restart.
    request_through_decide(&app, pending).await;
    let db = app.stop().await;
    let restarted = spawn_app_on(db, test_settings()).await;
    crate::helpers::eventually(std::time::Duration::from_secs(10), "the gauge to return to 0", || async {
        sample(&scrape(&restarted).await, PENDING) == Some(0.0)
    })
    .await;
}

async fn request_through_decide(app: &crate::helpers::TestApp, id: uuid::Uuid) {
    use alexandria_domain::PermissionRequestCommand as C;
    app.state
        .store
        .execute(
            id,
            C::Reject { by: "admin".into(), at: chrono::Utc::now(), reason: "no".into() },
            &crate::helpers::requests::meta("user:admin"),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn http_durations_are_labelled_by_route_template() {
    let app = spawn_app().await;
    app.client.get(app.url("/healthz")).send().await.unwrap();
    let text = scrape(&app).await;
    assert!(
        text.contains(
            r#"alexandria_http_request_duration_seconds_count{method="GET",route="/healthz",status_class="2xx"} 1"#
        ),
        "{text}"
    );
}

#[tokio::test]
async fn the_exposition_passes_promtool() {
    let promtool =
        ["/usr/bin/promtool", "/usr/local/bin/promtool"].into_iter().find(|p| std::path::Path::new(p).exists());
    let Some(promtool) = promtool else {
        assert!(std::env::var_os("CI").is_none(), "promtool is missing; .ci/run installs the prometheus package");
        eprintln!("SKIPPED: promtool not installed (apt-get install prometheus)");
        return;
    };
    let app = spawn_app().await;
    request_through(&app.state.store, "agent-a", "p1", &["approve", "claim"]).await;
    app.client.get(app.url("/healthz")).send().await.unwrap();
    let text = scrape(&app).await;
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn refreshes(text: &str) -> f64 {
    sample(text, "alexandria_metrics_refreshes_total").expect("the refresh counter")
}

/// A flood of scrapes costs the database at most one refresh a second: 200 scrapes, 20
/// at a time, refresh the database-derived gauges once per elapsed second (plus the one
/// the first scrape did), not 200 times.
#[tokio::test]
async fn a_flood_of_scrapes_refreshes_from_the_database_at_most_once_a_second() {
    let app = spawn_app().await;
    let before = refreshes(&scrape(&app).await);
    let started = std::time::Instant::now();
    for _ in 0..10 {
        futures::future::join_all((0..20).map(|_| scrape(&app))).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let done = refreshes(&scrape(&app).await) - before;
    assert!(done <= seconds.ceil() + 1.0, "{done} refreshes for 200 scrapes in {seconds:.2} s");
}

/// The age of the oldest pending request (the "waiting too long" alert's input), from
/// the read model: a request created an hour ago reads about 3600 s; once it is decided,
/// the next oldest pending one counts, and with none pending the gauge is 0.
#[tokio::test]
async fn oldest_pending_age_is_the_oldest_undecided_request() {
    use alexandria_domain::PermissionRequestCommand as C;
    let app = spawn_app().await;
    let hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    let id = alexandria_domain::request_id("agent-a", "old");
    let mut create = crate::helpers::requests::create_cmd("agent-a", "old");
    if let C::Create { at, .. } = &mut create {
        *at = hour_ago;
    }
    app.state.store.execute(id, create, &crate::helpers::requests::meta("agent:agent-a")).await.unwrap();
    request_through(&app.state.store, "agent-a", "new", &[]).await;
    const OLDEST: &str = "alexandria_permission_request_oldest_pending_seconds";
    crate::helpers::eventually(std::time::Duration::from_secs(10), "the hour-old request to count", || async {
        sample(&scrape(&app).await, OLDEST).is_some_and(|age| (3590.0..3700.0).contains(&age))
    })
    .await;
    request_through_decide(&app, id).await;
    crate::helpers::eventually(std::time::Duration::from_secs(10), "the newer request to count", || async {
        sample(&scrape(&app).await, OLDEST).is_some_and(|age| age < 60.0)
    })
    .await;
}

#[tokio::test]
async fn seal_lag_is_a_metric_and_reaches_zero_once_the_sealer_caught_up() {
    let app = spawn_app().await;
    request_through(&app.state.store, "agent-a", "s1", &["approve"]).await;
    let text = scrape(&app).await;
    assert!(sample(&text, "alexandria_audit_seal_lag_seconds").is_some(), "{text}");
    crate::helpers::eventually(std::time::Duration::from_secs(10), "the sealer to catch up", || async {
        let text = scrape(&app).await;
        text.contains("alexandria_projection_lag_events{projection=\"event_seals\"} 0")
            && sample(&text, "alexandria_audit_seal_lag_seconds") == Some(0.0)
    })
    .await;
}
