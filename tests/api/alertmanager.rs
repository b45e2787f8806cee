//! A real Alertmanager for tests (Debian `prometheus-alertmanager`, one process per test,
//! on a free port of 127.0.0.1). Shared by the `api` and `console` test targets.
#![allow(dead_code)] // shared by several test modules and targets; not each uses every helper

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{announce_skip, eventually, under_ci};

const WAIT: Duration = Duration::from_secs(20);

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

/// `prometheus-alertmanager` on 127.0.0.1, killed on drop.
pub struct Alertmanager {
    binary: String,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    pub client: reqwest::Client,
}

impl Alertmanager {
    /// Starts one, or `None` (test skipped) where the binary is missing, except under CI,
    /// where a missing binary fails the test.
    pub async fn start() -> Option<Alertmanager> {
        let binary = ["/usr/bin/prometheus-alertmanager", "/usr/local/bin/prometheus-alertmanager"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists());
        let Some(binary) = binary else {
            assert!(!under_ci(), "CI=true but prometheus-alertmanager is missing: .ci/run installs the package");
            announce_skip(
                std::thread::current().name().unwrap_or("a notifications test"),
                "prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager); \
                 under CI=true this is a failure.",
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("alertmanager.yml"),
            "route:\n  receiver: default\nreceivers:\n  - name: default\n",
        )
        .expect("write config");
        let mut alertmanager = Alertmanager {
            binary: binary.to_owned(),
            port: free_port(),
            dir,
            child: None,
            client: reqwest::Client::new(),
        };
        alertmanager.start_again().await;
        Some(alertmanager)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// (Re)starts the process on the same port and waits until it is ready.
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::File::create(self.dir.path().join("alertmanager.log")).expect("log file");
        let child = Command::new(&self.binary)
            .arg(format!("--config.file={}", self.dir.path().join("alertmanager.yml").display()))
            .arg(format!("--storage.path={}", self.dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus-alertmanager");
        self.child = Some(child);
        let ready = format!("{}/-/ready", self.url());
        eventually(WAIT, "Alertmanager to be ready", || async {
            matches!(self.client.get(&ready).send().await, Ok(r) if r.status().is_success())
        })
        .await;
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// Active alerts about one request.
    pub async fn alerts(&self, request_id: Uuid) -> Vec<Value> {
        let response = self
            .client
            // filter=request_id="<id>", percent-encoded.
            .get(format!("{}/api/v2/alerts?filter=request_id%3D%22{request_id}%22", self.url()))
            .send()
            .await
            .expect("GET /api/v2/alerts");
        assert_eq!(response.status(), 200);
        response.json().await.expect("alerts JSON")
    }

    /// `alertmanager_alerts_received_total{status}` (API v2): how many alerts this process
    /// has received, firing or resolved.
    pub async fn received(&self, status: &str) -> u64 {
        let text = self
            .client
            .get(format!("{}/metrics", self.url()))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text");
        let series = format!("alertmanager_alerts_received_total{{status=\"{status}\",version=\"v2\"}}");
        text.lines()
            .find_map(|line| line.strip_prefix(&series))
            .and_then(|value| value.trim().parse::<f64>().ok())
            .map(|value| value as u64)
            .unwrap_or(0)
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        self.stop();
    }
}
