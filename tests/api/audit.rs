//! `events export` and `events replay`: the auditor's copy of the log.

use std::process::Command;

use alexandria::approval::store::PermissionStore;
use alexandria::event_export::{export_events, render_replay, replay, ExportFilter};
use serde_json::Value;

use crate::helpers::fresh_database;
use crate::helpers::requests::request_through;

fn parse_lines(bytes: &[u8]) -> Vec<Value> {
    std::str::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is one JSON object"))
        .collect()
}

#[tokio::test]
async fn export_lists_every_event_once_in_global_order() {
    let db = fresh_database().await;
    let store = PermissionStore::new(db.pool.clone());
    let a = request_through(&store, "agent-a", "a", &["approve", "claim", "cache"]).await;
    let b = request_through(&store, "agent-b", "b", &["reject"]).await;
    request_through(&store, "agent-a", "c", &[]).await;

    let mut out = Vec::new();
    let summary = export_events(&db.pool, &ExportFilter::default(), &mut out, |_| {}).await.unwrap();
    let lines = parse_lines(&out);
    assert_eq!(summary.events, 7);
    assert_eq!(lines.len(), 7);
    let positions: Vec<i64> = lines.iter().map(|l| l["position"].as_i64().unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "strictly increasing: {positions:?}");
    let types: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["Created", "Approved", "Executed", "ResultCached", "Created", "Rejected", "Created"]);
    let first = &lines[0];
    assert_eq!(first["aggregate_id"], a.to_string());
    assert_eq!(first["sequence"], 1);
    assert_eq!(first["payload"]["Created"]["tool"], "write_file");
    assert_eq!(first["metadata"]["actor"], "agent:agent-a");
    assert!(first["recorded_at"].as_str().unwrap().contains('T'));

    // One request only.
    let mut out = Vec::new();
    export_events(&db.pool, &ExportFilter { request: Some(b), ..Default::default() }, &mut out, |_| {}).await.unwrap();
    let only_b = parse_lines(&out);
    assert_eq!(only_b.len(), 2);
    assert!(only_b.iter().all(|l| l["aggregate_id"] == b.to_string()));

    // Resuming after a position gives exactly the rest.
    let mut out = Vec::new();
    export_events(&db.pool, &ExportFilter { since: positions[3], ..Default::default() }, &mut out, |_| {})
        .await
        .unwrap();
    let rest: Vec<i64> = parse_lines(&out).iter().map(|l| l["position"].as_i64().unwrap()).collect();
    assert_eq!(rest, positions[4..]);
}

#[tokio::test]
async fn replay_shows_the_state_after_each_event() {
    let db = fresh_database().await;
    let store = PermissionStore::new(db.pool.clone());
    let id = request_through(&store, "agent-a", "a", &["approve", "claim", "cache"]).await;
    let steps = replay(&db.pool, id).await.unwrap();
    let statuses: Vec<&str> = steps.iter().map(|s| s.status.as_str()).collect();
    assert_eq!(statuses, ["pending", "approved", "executing", "executed"]);
    assert_eq!(steps[1].actor.as_deref(), Some("user:admin"));
    assert_eq!(steps[1].state.reviewed_by.as_deref(), Some("admin"));
    assert!(steps[3].state.outcome.is_some());
    // `events replay --json` prints the steps: their shape is what auditors' tools read.
    let json = serde_json::to_value(&steps).unwrap();
    let state_keys = |step: usize| {
        let mut keys: Vec<String> = json[step]["state"].as_object().unwrap().keys().cloned().collect();
        keys.sort_unstable();
        keys
    };
    let mut expected = [
        "details",
        "status",
        "reviewed_by",
        "reviewed_at",
        "reason",
        "expired_at",
        "executed_by",
        "executed_at",
        "outcome",
        "result_cached_at",
    ];
    expected.sort_unstable();
    assert_eq!(state_keys(0), expected, "every field present from the first step");
    assert_eq!(json[0]["status"], "pending");
    assert_eq!(json[0]["state"]["status"], "pending");
    assert_eq!(json[0]["state"]["details"]["tool"], "write_file");
    assert_eq!(json[0]["state"]["reviewed_by"], Value::Null);
    assert_eq!(json[2]["state"]["status"], "executing");
    assert_eq!(json[2]["state"]["reviewed_by"], "admin");
    assert!(json[2]["state"]["executed_by"].is_string());
    assert!(json[2]["state"]["executed_at"].is_string());
    assert_eq!(json[2]["state"]["outcome"], Value::Null);
    assert_eq!(json[3]["state"]["status"], "executed");
    assert!(json[3]["state"]["outcome"]["result"].is_object(), "{}", json[3]["state"]);
    assert!(json[3]["state"]["result_cached_at"].is_string());
    let text = render_replay(id, &steps);
    assert!(text.contains("4 events"));
    assert!(text.contains("Approved by user:admin -> status approved"), "{text}");
    assert!(replay(&db.pool, uuid::Uuid::new_v4()).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_cli_exports_and_replays_with_a_summary() {
    let db = fresh_database().await;
    let store = PermissionStore::new(db.pool.clone());
    let id = request_through(&store, "agent-a", "a", &["reject"]).await;
    let binary = env!("CARGO_BIN_EXE_alexandria");

    let export = Command::new(binary).args(["events", "export"]).env("DATABASE_URL", db.url()).output().unwrap();
    assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));
    assert_eq!(parse_lines(&export.stdout).len(), 2);
    let stderr = String::from_utf8_lossy(&export.stderr);
    assert!(stderr.contains("exported 2 events"), "{stderr}");

    let replayed = Command::new(binary)
        .args(["events", "replay", "--request", &id.to_string()])
        .env("DATABASE_URL", db.url())
        .output()
        .unwrap();
    assert!(replayed.status.success());
    let text = String::from_utf8_lossy(&replayed.stdout);
    assert!(text.contains("-> status rejected") && text.contains("reason=\"no to a\""), "{text}");

    let bad = Command::new(binary)
        .args(["events", "replay", "--request", "not-a-uuid"])
        .env("DATABASE_URL", db.url())
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "clap refuses a malformed id");

    let status =
        Command::new(binary).args(["projections", "status", "--json"]).env("DATABASE_URL", db.url()).output().unwrap();
    assert!(status.status.success());
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    let ours = status.as_array().unwrap().iter().find(|s| s["name"] == "permission_requests").unwrap();
    assert_eq!(ours["lag"], 2);

    let rebuilt = Command::new(binary)
        .args(["projections", "rebuild", "permission_requests"])
        .env("DATABASE_URL", db.url())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&rebuilt.stderr);
    assert!(rebuilt.status.success(), "{stderr}");
    assert!(stderr.contains("rebuilt permission_requests: 2 events -> 1 rows"), "{stderr}");
    let unknown =
        Command::new(binary).args(["projections", "rebuild", "nope"]).env("DATABASE_URL", db.url()).output().unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no projection named \"nope\""));
}
