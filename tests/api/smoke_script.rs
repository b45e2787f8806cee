//! `scripts/smoke.sh`, the runbook as a script operators run against a deployment, run
//! here against a real `alexandria serve --demo` process: every step passes, and a wrong
//! password stops it at Step 1 with a non-zero exit.

use crate::gateway_crash::spawn_gateway;
use crate::helpers::{fresh_database, TEST_ADMIN_PASSWORD};
use crate::peers::repo;

fn smoke(base: &str, password: &str) -> std::process::Output {
    std::process::Command::new("bash")
        .arg(repo().join("scripts/smoke.sh"))
        .env("ALEX_URL", base)
        .env("ALEX_PASS", password)
        .output()
        .expect("run scripts/smoke.sh")
}

#[tokio::test]
async fn the_smoke_script_walks_the_runbook_against_a_demo_gateway() {
    let db = fresh_database().await;
    let data = tempfile::tempdir().expect("tempdir");
    let settings = [
        ("DATABASE_URL", db.url()),
        ("ALEXANDRIA_ADMIN_PASSWORD", TEST_ADMIN_PASSWORD.to_owned()),
        ("ALEXANDRIA_DEMO", "true".to_owned()),
    ];
    let gateway = spawn_gateway(data.path(), "smoke", None, &settings).await;
    let base = gateway.base.clone();

    let refused = tokio::task::spawn_blocking({
        let base = base.clone();
        move || smoke(&base, "not the password")
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains("HTTP 401"), "{stderr}");

    let walked = tokio::task::spawn_blocking(move || smoke(&base, TEST_ADMIN_PASSWORD)).await.unwrap();
    let stdout = String::from_utf8_lossy(&walked.stdout);
    assert!(walked.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&walked.stderr));
    for step in 1..=9 {
        assert!(stdout.contains(&format!("== Step {step} ")), "step {step} missing:\n{stdout}");
    }
    assert!(stdout.contains("denied: smoke test rejection"), "{stdout}");
    assert!(stdout.contains("smoke: every step passed"), "{stdout}");
    drop(gateway);
}
