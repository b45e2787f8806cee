//! docs/AUDIT.md's independent verifier (Python, the standard library and `cryptography`)
//! agrees with `alexandria events verify` on real exports: an intact one with a signed
//! checkpoint, and copies tampered with in each way.

use std::path::{Path, PathBuf};

use alexandria::approval::store::PermissionStore;
use alexandria::audit::sealer::chain_head;
use alexandria::audit::{checkpoints, AuditKey, EVENTS_CHAIN};
use alexandria_domain::PermissionRequestCommand as C;
use chrono::Utc;
use serde_json::{json, Value};

use crate::audit_chain::{alexandria, seal_all};
use crate::helpers::fresh_database;
use crate::helpers::requests::{meta, request_through};
use crate::peers::{peers, repo};

const VERIFIER: &str = "docs/audit_verify.py";

/// `FAILED at position N: kind` (or `OK`) from a verifier's output.
fn verdict(text: &str) -> String {
    if let Some(at) = text.find("FAILED at position ") {
        let rest = &text[at + "FAILED at position ".len()..];
        let position: String = rest.chars().take_while(char::is_ascii_digit).collect();
        return format!("FAILED at position {position}");
    }
    if text.contains("OK") {
        "OK".to_owned()
    } else {
        format!("neither: {text}")
    }
}

async fn python_verdict(python: &Path, file: &Path, key: &str) -> (bool, String) {
    let output = tokio::process::Command::new(python)
        .arg(repo().join(VERIFIER))
        .arg(file)
        .arg(key)
        .output()
        .await
        .expect("run the Python verifier");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), verdict(&text))
}

async fn our_verdict(dir: &Path, file: &Path, key: &str) -> (bool, String) {
    let output = alexandria(
        "postgres://nobody@127.0.0.1:1/none",
        dir,
        &["events", "verify", "--file", file.to_str().unwrap(), "--public-key", key],
    )
    .await;
    (output.status.success(), verdict(&String::from_utf8_lossy(&output.stdout)))
}

fn write_lines(path: &Path, lines: &[String]) -> PathBuf {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
    path.to_owned()
}

#[tokio::test]
async fn the_python_verifier_agrees_with_events_verify() {
    let Some(peers) = peers("the_python_verifier_agrees_with_events_verify") else { return };
    let python = peers.join("auditor/bin/python");
    let db = fresh_database().await;
    let store = PermissionStore::new(db.pool.clone());
    // Arguments that exercise the canonical form: floats in every layout serde_json has,
    // big and negative integers, escapes and non-ASCII text, nested and unsorted keys.
    let arguments = json!({
        "z": [0.1, 1e-7, 1.5e300, 1e16, 1e15, 123456789012345680000.0, 0.00001, -2.5, 100.0, -0.0, 5e-324],
        "ints": [18446744073709551615u64, -9223372036854775808i64, 0],
        "text": "quote \" backslash \\ tab \t newline \n bell \u{7} del \u{7f} é 日本 🎉 </script>",
        "nested": {"b": {"d": null, "c": true}, "a": false},
    });
    for (i, key) in ["f1", "f2", "f3"].iter().enumerate() {
        let create = C::Create {
            agent: "agent-f".into(),
            tool: "write_file".into(),
            arguments: json!({"i": i, "payload": arguments}),
            idempotency_key: (*key).into(),
            requested_by: "agent:agent-f".into(),
            at: Utc::now(),
            expires_at: Utc::now() + chrono::Duration::hours(1),
        };
        store.execute(alexandria_domain::request_id("agent-f", key), create, &meta("agent:agent-f")).await.unwrap();
    }
    request_through(&store, "agent-a", "a", &["approve", "claim", "cache"]).await;
    request_through(&store, "agent-b", "b", &["reject"]).await;
    // A row serde_json cannot read (nested deeper than it reads): its raw text is sealed.
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('PermissionRequest', 'not-a-request', 1, 'Approved', '1', $1::json, '{}')",
    )
    .bind(&deep)
    .execute(&db.pool)
    .await
    .unwrap();
    seal_all(&db.pool).await;

    let dir = tempfile::tempdir().unwrap();
    let key = AuditKey::load_or_create(&dir.path().join("audit-signing-key")).unwrap();
    let head = chain_head(&db.pool, EVENTS_CHAIN).await.unwrap().unwrap();
    let checkpoint = key.sign(EVENTS_CHAIN, head.seq, head.position, &head.hash, Utc::now().to_rfc3339());
    checkpoints::insert(&db.pool, &checkpoint).await.unwrap();
    let public_key = key.public_key_hex();
    let export = dir.path().join("export.jsonl");
    let exported = alexandria(
        &db.url(),
        dir.path(),
        &["events", "export", "--checkpoint", "latest", "-o", export.to_str().unwrap()],
    )
    .await;
    assert!(exported.status.success(), "{}", String::from_utf8_lossy(&exported.stderr));
    let lines: Vec<String> = std::fs::read_to_string(&export).unwrap().lines().map(str::to_owned).collect();
    assert!(lines.iter().any(|l| l.contains("raw_payload")), "the unreadable row carries its raw text");

    let position = |line: &str| serde_json::from_str::<Value>(line).unwrap()["position"].as_i64().unwrap();
    let edited = {
        let mut lines = lines.clone();
        lines[1] = lines[1].replace("1e-7", "2e-7");
        lines
    };
    let deleted = {
        let mut lines = lines.clone();
        lines.remove(4);
        lines
    };
    let swapped = {
        let mut lines = lines.clone();
        lines.swap(3, 4);
        lines
    };
    let inserted = {
        let mut lines = lines.clone();
        let mut forged: Value = serde_json::from_str(&lines[5]).unwrap();
        forged.as_object_mut().unwrap().remove("hash");
        forged.as_object_mut().unwrap().remove("prev_hash");
        forged["position"] = json!(999);
        lines.insert(5, forged.to_string());
        lines
    };
    let truncated = {
        let mut lines = lines.clone();
        let checkpoint_line = lines.pop().unwrap();
        lines.pop();
        lines.push(checkpoint_line);
        lines
    };
    let forged_checkpoint = {
        let other = AuditKey::load_or_create(&dir.path().join("mallory")).unwrap();
        let mut lines = lines.clone();
        let forged = other.sign(EVENTS_CHAIN, head.seq, head.position, &head.hash, Utc::now().to_rfc3339());
        *lines.last_mut().unwrap() = forged.to_line().to_string();
        lines
    };
    let cases = [
        ("intact", lines.clone(), "OK".to_owned()),
        ("edited", edited, format!("FAILED at position {}", position(&lines[1]))),
        ("deleted", deleted, format!("FAILED at position {}", position(&lines[5]))),
        ("swapped", swapped, format!("FAILED at position {}", position(&lines[4]))),
        ("inserted", inserted, "FAILED at position 999".to_owned()),
        ("truncated", truncated, format!("FAILED at position {}", head.position)),
        ("forged checkpoint", forged_checkpoint, format!("FAILED at position {}", head.position)),
    ];
    for (name, lines, expected) in cases {
        let file = write_lines(&dir.path().join(format!("{}.jsonl", name.replace(' ', "-"))), &lines);
        let ours = our_verdict(dir.path(), &file, &public_key).await;
        let python = python_verdict(&python, &file, &public_key).await;
        assert_eq!(ours.1, expected, "{name}: events verify");
        assert_eq!(python, ours, "{name}: the Python verifier and events verify disagree");
    }
}

#[test]
fn the_verifier_in_audit_md_is_the_one_tested() {
    let doc = std::fs::read_to_string(repo().join("docs/AUDIT.md")).unwrap();
    let script = std::fs::read_to_string(repo().join(VERIFIER)).unwrap();
    assert!(doc.contains(&script), "docs/AUDIT.md must quote {VERIFIER} verbatim");
}
