//! First start: the `admin` user from ALEXANDRIA_ADMIN_PASSWORD or from a generated
//! password in a 0600 file (logged where, never what); the JWT secret, configured or
//! generated once and shared by every replica.

use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};

use alexandria::startup::Application;
use jsonwebtoken::Algorithm;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::fmt::MakeWriter;

use crate::auth_helpers::*;
use crate::helpers::{fresh_database, spawn_app_on, test_settings, TEST_ADMIN_PASSWORD};

/// Everything logged on this thread while installed (the test runtime is single-threaded,
/// so that is everything the server under test logs while starting).
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedLogs;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl CapturedLogs {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(self.clone())
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn without_a_configured_password_the_first_start_writes_one_to_a_private_file() {
    let mut settings = test_settings();
    settings.admin_password = None;
    let data_dir = settings.data_dir.clone();
    let db = fresh_database().await;
    let logs = CapturedLogs::default();
    let guard = logs.install();
    let app = spawn_app_on(db.clone(), settings.clone()).await;

    let file = data_dir.join("admin-password");
    let mode = std::fs::metadata(&file).expect("the password file exists").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "readable by its owner only");
    let password = std::fs::read_to_string(&file).unwrap();
    assert!(password.len() >= 32, "a long random password");
    assert!(!password.contains('\n'), "the file holds exactly the password");
    let session = login_ok(&app, "admin", &password).await;
    let me = get_with(&app, "/auth/me", &session.access_token).await.json::<serde_json::Value>().await.unwrap();
    assert_eq!(me["role"], "super_admin");

    let logged = logs.text();
    assert!(logged.contains(&file.display().to_string()), "the log says where: {logged}");
    assert!(!logged.contains(&password), "the log never says what");
    drop(guard);

    // A restart finds users and leaves the password (and the file) alone, even when a
    // password is configured by then.
    let restarted_settings =
        alexandria::startup::Settings { admin_password: Some("a password set later on".into()), ..settings };
    let restarted = spawn_app_on(db, restarted_settings).await;
    assert_eq!(std::fs::read_to_string(&file).unwrap(), password);
    login_ok(&restarted, "admin", &password).await;
    assert_eq!(login(&restarted, "admin", "a password set later on").await.status(), 401);
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&restarted.db.pool).await.unwrap();
    assert_eq!(users, 1);
    std::fs::remove_dir_all(&data_dir).ok();
}

#[tokio::test]
async fn a_configured_password_creates_admin_without_any_file() {
    let settings = test_settings();
    let data_dir = settings.data_dir.clone();
    let app = spawn_app_on(fresh_database().await, settings).await;
    login_ok(&app, "admin", TEST_ADMIN_PASSWORD).await;
    assert!(!data_dir.exists(), "nothing written when the password is configured");
    let rows = audit_rows(&app, "admin").await;
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].0.as_str(), rows[0].1.as_str()), ("system:bootstrap", "user.create"));
    assert_eq!(rows[0].3, Some(serde_json::json!({"username": "admin", "role": "super_admin"})));
}

#[tokio::test]
async fn deleting_admin_after_appointing_another_super_admin_is_not_undone_by_a_restart() {
    let db = fresh_database().await;
    let app = spawn_app_on(db.clone(), test_settings()).await;
    let admin = admin_session(&app).await;
    create_user(&app, &admin, "carol", "super_admin").await;
    let carol = login_ok(&app, "carol", PASSWORD).await;
    let deleted =
        app.client.delete(app.url("/admin/users/admin")).bearer_auth(&carol.access_token).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    let restarted = spawn_app_on(db, test_settings()).await;
    assert_eq!(login(&restarted, "admin", TEST_ADMIN_PASSWORD).await.status(), 401);
}

#[tokio::test]
async fn unacceptable_secrets_stop_the_start_with_a_clear_message() {
    let db = fresh_database().await;
    let mut short_password = test_settings();
    short_password.admin_password = Some("short".into());
    let error =
        Application::build(short_password, db.pool.clone(), CancellationToken::new()).await.err().expect("refused");
    let message = format!("{error:#}");
    assert!(message.contains("ALEXANDRIA_ADMIN_PASSWORD") && message.contains("at least 12"), "{message}");
    assert!(!message.contains("short\""), "the message does not echo the password: {message}");

    let mut short_secret = test_settings();
    short_secret.jwt_secret = Some("too short".into());
    let error =
        Application::build(short_secret, db.pool.clone(), CancellationToken::new()).await.err().expect("refused");
    assert!(format!("{error:#}").contains("at least 32 bytes"), "{error:#}");
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&db.pool).await.unwrap();
    assert_eq!(users, 0, "nothing was created by the refused starts");
}

#[tokio::test]
async fn replicas_starting_together_share_one_admin_and_one_generated_jwt_secret() {
    let db = fresh_database().await;
    let mut first_settings = test_settings();
    first_settings.admin_password = None;
    let mut second_settings = test_settings();
    second_settings.admin_password = None;
    let dirs = [first_settings.data_dir.clone(), second_settings.data_dir.clone()];
    let (first, second) = tokio::join!(spawn_app_on(db.clone(), first_settings), spawn_app_on(db, second_settings));

    let files: Vec<_> = dirs.iter().map(|dir| dir.join("admin-password")).filter(|file| file.exists()).collect();
    assert_eq!(files.len(), 1, "exactly one replica created admin and wrote its password");
    let password = std::fs::read_to_string(&files[0]).unwrap();
    // A session started on one replica is good on the other: same secret, same database.
    let session = login_ok(&first, "admin", &password).await;
    assert_eq!(get_with(&second, "/auth/me", &session.access_token).await.status(), 200);
    let secrets: i64 =
        sqlx::query_scalar("SELECT count(*) FROM generated_secrets").fetch_one(&first.db.pool).await.unwrap();
    assert_eq!(secrets, 1);
    for dir in dirs {
        std::fs::remove_dir_all(dir).ok();
    }
}

#[tokio::test]
async fn a_configured_jwt_secret_signs_every_token_and_nothing_is_generated() {
    let secret = "a configured secret of at least thirty-two bytes";
    let mut settings = test_settings();
    settings.jwt_secret = Some(secret.into());
    let app = spawn_app_on(fresh_database().await, settings).await;
    let admin = admin_session(&app).await;
    let forged_with_configured = sign(secret.as_bytes(), Algorithm::HS256, &access_claims(&admin, "super_admin", 600));
    assert_eq!(get_with(&app, "/auth/me", &forged_with_configured).await.status(), 200);
    let generated: i64 =
        sqlx::query_scalar("SELECT count(*) FROM generated_secrets").fetch_one(&app.db.pool).await.unwrap();
    assert_eq!(generated, 0);
}

#[tokio::test]
async fn rotating_the_generated_secret_ends_every_session_at_once_and_every_token_after_a_restart() {
    let db = fresh_database().await;
    let app = spawn_app_on(db.clone(), test_settings()).await;
    let admin = admin_session(&app).await;
    alexandria::auth::jwt::rotate_stored_secret(&db.pool).await.expect("rotate");
    // The sessions end at once (console cookies are sessions, not JWTs): even the replica
    // still holding the old secret refuses the old refresh token.
    let live: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sessions WHERE revoked_at IS NULL").fetch_one(&db.pool).await.unwrap();
    assert_eq!(live, 0);
    let refresh = app
        .client
        .post(app.url("/auth/refresh"))
        .json(&serde_json::json!({"refresh_token": admin.refresh_token}))
        .send()
        .await
        .unwrap();
    assert_eq!(refresh.status(), 401);
    let restarted = spawn_app_on(db, test_settings()).await;
    assert_eq!(get_with(&restarted, "/auth/me", &admin.access_token).await.status(), 401);
    let fresh = admin_session(&restarted).await;
    assert_eq!(get_with(&restarted, "/auth/me", &fresh.access_token).await.status(), 200);
    let rows = audit_rows(&restarted, "jwt_secret").await;
    assert_eq!((rows[0].0.as_str(), rows[0].1.as_str()), ("system:cli", "jwt_secret.rotate"));
}
