//! The tamper-evident audit chain: seals over the log and the admin audit trail, signed
//! checkpoints, `events verify` from the database and from an export file, and what it
//! names when a database superuser changes history behind the gateway's back.

use std::path::{Path, PathBuf};
use std::process::Output;

use alexandria::approval::store::PermissionStore;
use alexandria::audit::sealer::{chain_head, seal_admin_batch, seal_event_batch};
use alexandria::audit::{checkpoints, AuditKey, Checkpoint, ADMIN_AUDIT_CHAIN, EVENTS_CHAIN};
use alexandria::names::Actor;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::helpers::requests::request_through;
use crate::helpers::{fresh_database, TestDatabase};

pub(crate) async fn alexandria(database_url: &str, data_dir: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_alexandria"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("ALEXANDRIA_DATA_DIR", data_dir)
        .env_remove("ALEXANDRIA_AUDIT_KEY_FILE")
        .output()
        .await
        .expect("run alexandria")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn both(output: &Output) -> String {
    format!("{}\n{}", stdout(output), String::from_utf8_lossy(&output.stderr))
}

/// Seals everything, both chains. Only settled rows are sealed, and the bound is
/// cluster-wide: another test's open transaction can hold it back for a moment.
pub(crate) async fn seal_all(pool: &PgPool) {
    crate::helpers::eventually(std::time::Duration::from_secs(30), "every row sealed", || async {
        while seal_event_batch(pool, 1000).await.expect("seal events").0 > 0 {}
        while seal_admin_batch(pool, 1000).await.expect("seal admin audit").0 > 0 {}
        let unsealed: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM events WHERE global_position NOT IN (SELECT position FROM event_seals)) \
                  + (SELECT count(*) FROM admin_audit WHERE id NOT IN (SELECT audit_id FROM admin_audit_seals))",
        )
        .fetch_one(pool)
        .await
        .expect("count unsealed rows");
        unsealed == 0
    })
    .await;
}

/// A small history: three requests (12 events) and two admin audit rows, all sealed.
/// Returns the events' positions in chain order and the admin rows' ids.
async fn sealed_history(pool: &PgPool) -> (Vec<i64>, Vec<i64>) {
    let store = PermissionStore::new(pool.clone());
    request_through(&store, "agent-a", "a", &["approve", "claim", "cache"]).await;
    request_through(&store, "agent-b", "b", &["reject"]).await;
    request_through(&store, "agent-a", "c", &[]).await;
    request_through(&store, "agent-c", "d", &["approve", "claim", "cache"]).await;
    let mut conn = pool.acquire().await.unwrap();
    for (target, tools) in [("agent:demo-agent", json!(["write_file"])), ("agent:demo-agent", json!([]))] {
        alexandria::audit_trail::record(
            &mut conn,
            &Actor::User("root".into()),
            "agent.update",
            target,
            Some(json!({"approval_required_tools": []})),
            Some(json!({"approval_required_tools": tools})),
        )
        .await
        .unwrap();
    }
    drop(conn);
    seal_all(pool).await;
    let positions = sqlx::query_scalar("SELECT global_position FROM events ORDER BY tx_id, global_position")
        .fetch_all(pool)
        .await
        .unwrap();
    let ids = sqlx::query_scalar("SELECT id FROM admin_audit ORDER BY id").fetch_all(pool).await.unwrap();
    (positions, ids)
}

/// Runs `sql` as a superuser would: with the append-only triggers of `table` off.
async fn behind_the_gateway(pool: &PgPool, table: &str, sql: &str) {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query(&format!("ALTER TABLE {table} DISABLE TRIGGER USER")).execute(&mut *tx).await.unwrap();
    sqlx::query(sql).execute(&mut *tx).await.unwrap();
    sqlx::query(&format!("ALTER TABLE {table} ENABLE TRIGGER USER")).execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
}

struct Auditor {
    dir: tempfile::TempDir,
}

impl Auditor {
    fn new() -> Self {
        Auditor { dir: tempfile::tempdir().unwrap() }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    async fn export(&self, db: &TestDatabase, extra: &[&str]) -> PathBuf {
        let file = self.path("export.jsonl");
        let file_arg = file.to_str().unwrap().to_owned();
        let mut args = vec!["events", "export", "--output", &file_arg];
        args.extend_from_slice(extra);
        let export = alexandria(&db.url(), self.dir.path(), &args).await;
        assert!(export.status.success(), "{}", both(&export));
        file
    }

    async fn verify_live(&self, db: &TestDatabase, extra: &[&str]) -> Output {
        let mut args = vec!["events", "verify"];
        args.extend_from_slice(extra);
        alexandria(&db.url(), self.dir.path(), &args).await
    }

    async fn verify_file(&self, file: &Path, extra: &[&str]) -> Output {
        let mut args = vec!["events", "verify", "--file", file.to_str().unwrap()];
        args.extend_from_slice(extra);
        // No database: a file check needs none.
        alexandria("postgres://nobody@127.0.0.1:1/none", self.dir.path(), &args).await
    }
}

/// Asserts that verify failed, naming `position` and `kind` for `chain`.
fn assert_names(output: &Output, chain: &str, position: i64, kind: &str) {
    assert!(!output.status.success(), "verify must fail: {}", both(output));
    let expected = format!("{chain}: FAILED at position {position}: {kind}");
    assert!(stdout(output).contains(&expected), "expected `{expected}` in:\n{}", both(output));
}

#[tokio::test]
async fn an_untouched_log_verifies_live_and_from_its_export() {
    let db = fresh_database().await;
    let (positions, ids) = sealed_history(&db.pool).await;
    let auditor = Auditor::new();

    let live = auditor.verify_live(&db, &[]).await;
    assert!(live.status.success(), "{}", both(&live));
    assert!(stdout(&live).contains(&format!("events: OK: {} sealed", positions.len())), "{}", both(&live));
    assert!(stdout(&live).contains(&format!("admin_audit: OK: {} sealed", ids.len())), "{}", both(&live));

    let file = auditor.export(&db, &[]).await;
    let lines: Vec<Value> =
        std::fs::read_to_string(&file).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), positions.len());
    assert_eq!(lines[0]["prev_hash"], "0".repeat(64), "the first line follows the genesis hash");
    for pair in lines.windows(2) {
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"], "each line names the one before it");
    }
    let from_file = auditor.verify_file(&file, &[]).await;
    assert!(from_file.status.success(), "{}", both(&from_file));
    assert!(stdout(&from_file).contains(&format!("events: OK: {} sealed", positions.len())), "{}", both(&from_file));
}

#[tokio::test]
async fn an_edited_payload_is_named_live_and_in_the_export() {
    let db = fresh_database().await;
    let (positions, _) = sealed_history(&db.pool).await;
    let victim = positions[4]; // the second request's Created
    behind_the_gateway(
        &db.pool,
        "events",
        &format!("UPDATE events SET payload = replace(payload::text, 'write_file', 'read_file')::json WHERE global_position = {victim}"),
    )
    .await;
    let auditor = Auditor::new();
    assert_names(&auditor.verify_live(&db, &[]).await, "events", victim, "edited");
    let file = auditor.export(&db, &[]).await;
    assert_names(&auditor.verify_file(&file, &[]).await, "events", victim, "edited");
}

#[tokio::test]
async fn a_deleted_event_is_named_live_and_seen_in_the_export() {
    let db = fresh_database().await;
    let (positions, _) = sealed_history(&db.pool).await;
    let victim = positions[5]; // the second request's Rejected
    behind_the_gateway(&db.pool, "events", &format!("DELETE FROM events WHERE global_position = {victim}")).await;
    let auditor = Auditor::new();
    assert_names(&auditor.verify_live(&db, &[]).await, "events", victim, "deleted");
    // The file has lost the event itself: the break is found at the line after it.
    let file = auditor.export(&db, &[]).await;
    assert_names(&auditor.verify_file(&file, &[]).await, "events", positions[6], "deleted");
}

#[tokio::test]
async fn a_forged_approval_inserted_into_the_past_is_named() {
    let db = fresh_database().await;
    let (positions, _) = sealed_history(&db.pool).await;
    let pending = positions[6]; // the third request: Created only
    let forged: i64 = {
        let mut tx = db.pool.begin().await.unwrap();
        // Placed in its request's transaction, so it sorts among sealed events.
        let forged = sqlx::query_scalar(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, tx_id) \
             SELECT aggregate_type, aggregate_id, 2, 'Approved', '1', \
                    '{\"Approved\": {\"by\": \"mallory\", \"at\": \"2026-12-01T00:00:00Z\", \"execute_by\": \"2026-12-31T00:00:00Z\"}}', \
                    metadata, tx_id FROM events WHERE global_position = $1 RETURNING global_position",
        )
        .bind(pending)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
        forged
    };
    let (sealed, _) = seal_event_batch(&db.pool, 1000).await.unwrap();
    assert_eq!(sealed, 0, "the forged row sorts behind the sealer's checkpoint: it is never sealed");
    let auditor = Auditor::new();
    assert_names(&auditor.verify_live(&db, &[]).await, "events", forged, "inserted");
    let file = auditor.export(&db, &[]).await;
    assert_names(&auditor.verify_file(&file, &[]).await, "events", forged, "inserted");
}

#[tokio::test]
async fn two_events_swapped_in_order_are_named() {
    let db = fresh_database().await;
    let (positions, _) = sealed_history(&db.pool).await;
    // The third request's Created and the fourth's: separate transactions, one after the other.
    let (first, second) = (positions[6], positions[7]);
    behind_the_gateway(
        &db.pool,
        "events",
        &format!(
            "UPDATE events AS e SET tx_id = o.tx_id FROM events AS o \
             WHERE (e.global_position, o.global_position) IN (({first}, {second}), ({second}, {first}))"
        ),
    )
    .await;
    let auditor = Auditor::new();
    assert_names(&auditor.verify_live(&db, &[]).await, "events", second, "reordered");
    let file = auditor.export(&db, &[]).await;
    assert_names(&auditor.verify_file(&file, &[]).await, "events", second, "reordered");
}

#[tokio::test]
async fn an_edited_admin_audit_row_is_named() {
    let db = fresh_database().await;
    let (_, ids) = sealed_history(&db.pool).await;
    behind_the_gateway(
        &db.pool,
        "admin_audit",
        &format!("UPDATE admin_audit SET actor = 'user:somebody-else' WHERE id = {}", ids[0]),
    )
    .await;
    let output = Auditor::new().verify_live(&db, &[]).await;
    assert_names(&output, "admin_audit", ids[0], "edited");
    assert!(stdout(&output).contains("events: OK"), "the event chain is intact: {}", both(&output));
}

/// Signs a checkpoint of the events chain's head with the key in `key_file`.
async fn sign_head(pool: &PgPool, key_file: &Path) -> Checkpoint {
    let key = AuditKey::load_or_create(key_file).unwrap();
    let head = chain_head(pool, EVENTS_CHAIN).await.unwrap().expect("something sealed");
    key.sign(EVENTS_CHAIN, head.seq, head.position, &head.hash, chrono::Utc::now().to_rfc3339())
}

fn public_key(key_file: &Path) -> String {
    AuditKey::load(key_file).unwrap().public_key_hex()
}

#[tokio::test]
async fn a_forged_checkpoint_is_rejected_and_a_genuine_one_verifies() {
    let db = fresh_database().await;
    sealed_history(&db.pool).await;
    let auditor = Auditor::new();
    let genuine = sign_head(&db.pool, &auditor.path("audit-signing-key")).await;
    checkpoints::insert(&db.pool, &genuine).await.unwrap();
    let key = public_key(&auditor.path("audit-signing-key"));

    // `export --checkpoint latest` ends with it; the file verifies with the public key.
    let file = auditor.export(&db, &["--checkpoint", "latest"]).await;
    let last = std::fs::read_to_string(&file).unwrap().lines().last().unwrap().to_owned();
    assert_eq!(serde_json::from_str::<Value>(&last).unwrap()["checkpoint"]["signature"], json!(genuine.signature));
    let ok = auditor.verify_file(&file, &["--public-key", &key]).await;
    assert!(ok.status.success(), "{}", both(&ok));
    assert!(stdout(&ok).contains("1 checkpoints verified"), "{}", both(&ok));

    // Signed by another key: refused, however right its content.
    let forged = sign_head(&db.pool, &auditor.path("mallory-key")).await;
    let forged_file = auditor.path("forged-checkpoint.json");
    std::fs::write(&forged_file, serde_json::to_string(&forged.to_line()).unwrap()).unwrap();
    let refused =
        auditor.verify_file(&file, &["--public-key", &key, "--checkpoint", forged_file.to_str().unwrap()]).await;
    assert!(!refused.status.success(), "{}", both(&refused));
    assert!(stdout(&refused).contains("bad checkpoint signature"), "{}", both(&refused));
    // A forged row in the database is refused by the live check too.
    checkpoints::insert(&db.pool, &Checkpoint { seq: genuine.seq - 1, ..forged }).await.unwrap();
    let live = auditor.verify_live(&db, &["--public-key", &key]).await;
    assert!(!live.status.success() && stdout(&live).contains("bad checkpoint signature"), "{}", both(&live));
}

#[tokio::test]
async fn a_log_truncated_after_a_signed_checkpoint_is_detected() {
    let db = fresh_database().await;
    let (positions, _) = sealed_history(&db.pool).await;
    let auditor = Auditor::new();
    let checkpoint = sign_head(&db.pool, &auditor.path("audit-signing-key")).await;
    let key = public_key(&auditor.path("audit-signing-key"));
    // The checkpoint went out (webhook, log); then the tail of the log, its seals and the
    // checkpoint row are removed.
    let held = auditor.path("held-checkpoint.json");
    std::fs::write(&held, serde_json::to_string(&checkpoint).unwrap()).unwrap();
    let cut = positions[positions.len() - 3];
    behind_the_gateway(&db.pool, "events", &format!("DELETE FROM events WHERE global_position >= {cut}")).await;
    behind_the_gateway(&db.pool, "event_seals", &format!("DELETE FROM event_seals WHERE position >= {cut}")).await;

    let file = auditor.export(&db, &[]).await;
    let plain = auditor.verify_file(&file, &[]).await;
    assert!(plain.status.success(), "a truncated chain is still a chain: {}", both(&plain));
    let with_checkpoint =
        auditor.verify_file(&file, &["--public-key", &key, "--checkpoint", held.to_str().unwrap()]).await;
    assert_names(&with_checkpoint, "events", checkpoint.position, "truncated");
    let live = auditor.verify_live(&db, &["--public-key", &key, "--checkpoint", held.to_str().unwrap()]).await;
    assert_names(&live, "events", checkpoint.position, "truncated");
}

/// How many events are not sealed yet.
async fn unsealed(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE global_position NOT IN (SELECT position FROM event_seals)")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_auditor_reads_the_sealed_log_and_checkpoints_over_http_and_nothing_else() {
    use crate::auth_helpers::{admin_session, create_user, login_ok, PASSWORD};
    use crate::helpers::{eventually, spawn_app_on, test_settings};
    use std::time::Duration;

    let settings = test_settings();
    let key_file = settings.audit_key_file.clone();
    let app = spawn_app_on(fresh_database().await, settings).await;
    let admin = admin_session(&app).await;
    create_user(&app, &admin, "auditor-1", "auditor").await; // an admin audit row
    let auditor = login_ok(&app, "auditor-1", PASSWORD).await;
    for key in ["h1", "h2", "h3"] {
        request_through(&app.state.store, "agent-h", key, &["approve"]).await;
    }
    // The running sealer catches up by itself (NOTIFY, or its 1 s poll) and signs a
    // checkpoint within its 1 s interval.
    eventually(Duration::from_secs(20), "the log sealed and a checkpoint signed", || async {
        unsealed(&app.db.pool).await == 0
            && checkpoints::latest(&app.db.pool, EVENTS_CHAIN).await.unwrap().is_some_and(|c| c.seq == 6)
    })
    .await;

    let get = |path: &str, token: &str| app.client.get(app.url(path)).bearer_auth(token.to_owned()).send();
    let response = get("/admin/events", &auditor.access_token).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let streamed = response.text().await.unwrap();
    let cli = Auditor::new();
    let dir = cli.dir.path();
    let export = cli.export(&app.db, &[]).await;
    assert_eq!(streamed, std::fs::read_to_string(&export).unwrap(), "the same lines as `events export`");
    let lines: Vec<Value> = streamed.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 6);

    // Continuing after a line gives exactly the rest; an unknown position is a 400.
    let since = lines[2]["position"].as_i64().unwrap();
    let rest = get(&format!("/admin/events?since={since}"), &auditor.access_token).await.unwrap().text().await.unwrap();
    assert_eq!(rest.lines().count(), 3);
    assert_eq!(rest.lines().next().map(|l| serde_json::from_str::<Value>(l).unwrap()), Some(lines[3].clone()));
    let unknown = get("/admin/events?since=999999", &auditor.access_token).await.unwrap();
    assert_eq!(unknown.status(), 400, "{}", unknown.text().await.unwrap());

    // The checkpoints verify with the server's public key, and so does the streamed file.
    let listed: Value = get("/admin/audit/checkpoints", &auditor.access_token).await.unwrap().json().await.unwrap();
    let newest: Checkpoint =
        serde_json::from_value(listed["checkpoints"].as_array().unwrap().last().unwrap().clone()).unwrap();
    let key = AuditKey::load(&key_file).unwrap();
    newest.verify(&key.public_key()).expect("signed with the server's key");
    let held = dir.join("checkpoint.json");
    std::fs::write(&held, serde_json::to_string(&newest).unwrap()).unwrap();
    let file = dir.join("streamed.jsonl");
    std::fs::write(&file, &streamed).unwrap();
    let verified =
        cli.verify_file(&file, &["--public-key", &key.public_key_hex(), "--checkpoint", held.to_str().unwrap()]).await;
    assert!(verified.status.success() && stdout(&verified).contains("1 checkpoints verified"), "{}", both(&verified));

    // The admin audit trail's own chain: the user's creation, sealed.
    let trail = get("/admin/audit/export", &auditor.access_token).await.unwrap().text().await.unwrap();
    let trail: Vec<Value> = trail.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(trail
        .iter()
        .any(|l| l["target"].as_str().is_some_and(|t| t.contains("auditor-1")) && l["hash"].is_string()));

    // Nothing else: no requests, decisions, settings or users.
    for path in ["/admin/permissions", "/admin/agents", "/admin/users", "/admin/notifications/config"] {
        assert_eq!(get(path, &auditor.access_token).await.unwrap().status(), 403, "{path}");
    }
    // `projections status` shows the sealer's lag as a row of its own.
    let status =
        alexandria_projections::projection_status(&app.db.pool, alexandria::notify::CHECKPOINTS_LED_BY).await.unwrap();
    let sealer = status.iter().find(|s| s.name == "event_seals").expect("the sealer's row");
    assert_eq!(sealer.lag, 0);
    assert!(sealer.leader.is_some(), "the serving process leads the sealer");
    // And the outbox's, which no projection runner advances: the reconciler's leader does.
    crate::helpers::eventually(std::time::Duration::from_secs(10), "the outbox's leader is shown", || async {
        let status = alexandria_projections::projection_status(&app.db.pool, alexandria::notify::CHECKPOINTS_LED_BY)
            .await
            .unwrap();
        status.iter().any(|s| s.name == "notification_outbox" && s.leader.is_some())
    })
    .await;
}

#[tokio::test]
async fn an_auditor_takes_the_evidence_from_the_console_and_it_verifies_offline_with_the_trusted_key() {
    use crate::auth_helpers::{admin_session, console_cookie, create_user, PASSWORD};
    use crate::helpers::{eventually, spawn_app_on, test_settings};
    use std::time::Duration;

    let settings = test_settings();
    let key = AuditKey::load_or_create(&settings.audit_key_file).unwrap();
    let app = spawn_app_on(fresh_database().await, settings).await;
    let admin = admin_session(&app).await;
    create_user(&app, &admin, "ada", "auditor").await;
    create_user(&app, &admin, "vic", "viewer").await;
    for key in ["c1", "c2"] {
        request_through(&app.state.store, "agent-c", key, &["approve"]).await;
    }
    eventually(Duration::from_secs(20), "the log sealed and a checkpoint signed", || async {
        unsealed(&app.db.pool).await == 0
            && checkpoints::latest(&app.db.pool, EVENTS_CHAIN).await.unwrap().is_some_and(|c| c.seq == 4)
            && checkpoints::latest(&app.db.pool, ADMIN_AUDIT_CHAIN).await.unwrap().is_some_and(|c| c.seq == 3)
    })
    .await;
    let get = |path: &str, cookie: &str| app.client.get(app.url(path)).header("cookie", cookie.to_owned()).send();

    // An auditor's console starts at the audit log, which names the signed head and key.
    let ada = console_cookie(&app, "ada", PASSWORD).await;
    let landing = get("/", &ada).await.unwrap();
    assert_eq!((landing.status().as_u16(), landing.headers()["location"].to_str().unwrap()), (303, "/audit-log"));
    let page = get("/audit-log", &ada).await.unwrap().text().await.unwrap();
    let head = checkpoints::latest(&app.db.pool, EVENTS_CHAIN).await.unwrap().unwrap();
    assert!(page.contains(&head.hash) && page.contains(&key.public_key_hex()), "{page}");
    assert!(page.contains(r#"href="/audit-log/events.jsonl""#) && page.contains("alexandria events verify --file"));

    // What the links download verifies offline with the key the auditor trusts.
    let cli = Auditor::new();
    let dir = cli.dir.path();
    for (file, kind) in [("events.jsonl", "application/x-ndjson"), ("checkpoint-events.json", "application/json")] {
        let response = get(&format!("/audit-log/{file}"), &ada).await.unwrap();
        assert_eq!(response.status(), 200, "{file}");
        assert_eq!(response.headers()["content-type"], kind);
        assert_eq!(response.headers()["content-disposition"], format!("attachment; filename=\"{file}\"").as_str());
        std::fs::write(dir.join(file), response.bytes().await.unwrap()).unwrap();
    }
    let checkpoint = dir.join("checkpoint-events.json");
    let verified = cli
        .verify_file(
            &dir.join("events.jsonl"),
            &["--public-key", &key.public_key_hex(), "--checkpoint", checkpoint.to_str().unwrap()],
        )
        .await;
    assert!(verified.status.success() && stdout(&verified).contains("1 checkpoints verified"), "{}", both(&verified));
    // The admin audit trail too: its checkpoint says which chain the file is; an edited
    // line is named.
    for file in ["admin-audit.jsonl", "checkpoint-admin_audit.json"] {
        let response = get(&format!("/audit-log/{file}"), &ada).await.unwrap();
        std::fs::write(dir.join(file), response.bytes().await.unwrap()).unwrap();
    }
    let trail = dir.join("admin-audit.jsonl");
    let held = dir.join("checkpoint-admin_audit.json");
    let trusted = ["--public-key", &key.public_key_hex(), "--checkpoint", held.to_str().unwrap()];
    let verified = cli.verify_file(&trail, &trusted).await;
    assert!(
        verified.status.success() && stdout(&verified).contains("admin_audit: OK: 3 sealed"),
        "{}",
        both(&verified)
    );
    let edited = std::fs::read_to_string(&trail).unwrap().replacen("\"vic\"", "\"eve\"", 1);
    std::fs::write(&trail, edited).unwrap();
    assert_names(&cli.verify_file(&trail, &trusted).await, "admin_audit", 3, "edited");
    // A checkpoint of the other chain is refused, not ignored.
    let mismatched = cli.verify_file(&trail, &["--chain", "events", "--checkpoint", held.to_str().unwrap()]).await;
    assert!(
        !mismatched.status.success() && both(&mismatched).contains("checkpoint given is of the \"admin_audit\" chain")
    );

    // Anything else is not there; a viewer is refused the page and the files; no session
    // is sent to log in.
    assert_eq!(get("/audit-log/passwords.txt", &ada).await.unwrap().status(), 404);
    // Off the viewer ladder in the console as in the API: no inbox, history, agents,
    // servers or projections for an auditor.
    for path in ["/history", "/agents", "/servers", "/projections", "/console/inbox", "/console/events"] {
        assert_eq!(get(path, &ada).await.unwrap().status(), 403, "{path}");
    }
    let vic = console_cookie(&app, "vic", PASSWORD).await;
    for path in ["/audit-log", "/audit-log/events.jsonl", "/audit-log/checkpoint-events.json"] {
        assert_eq!(get(path, &vic).await.unwrap().status(), 403, "{path}");
    }
    let anonymous = app.client.get(app.url("/audit-log/events.jsonl")).send().await.unwrap();
    assert_eq!(anonymous.status(), 303);
    assert!(anonymous.headers()["location"].to_str().unwrap().starts_with("/login"));
}
