//! A headless Chromium for one test, and the console's vocabulary in it: log in, wait for
//! an element or a text, save a screenshot.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use tokio::process::{Child, Command};

use crate::helpers::{announce_skip, eventually, under_ci, TestApp};
use crate::peers::repo;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long a page may take to show what a test waits for.
pub const PAGE_DEADLINE: Duration = Duration::from_secs(20);

/// chromedriver (in its own process group, with the Chromium it starts) and a WebDriver
/// session on it. `close` ends the session; dropping kills the whole group either way.
pub struct Browser {
    pub client: Client,
    driver: Child,
}

/// How the browser looks at the console.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// A laptop window, light colour scheme.
    Laptop,
    /// A phone (390 × 844 CSS pixels, touch) whose system asks for dark colours.
    PhoneDark,
}

/// A browser, or `None` (after a loud message) when Chromium is not installed outside CI.
pub async fn browser(test: &str) -> Option<Browser> {
    browser_looking(test, Look::Laptop).await
}

pub async fn browser_looking(test: &str, look: Look) -> Option<Browser> {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        assert!(
            !under_ci(),
            "CI=true but {CHROMIUM} or {CHROMEDRIVER} is missing: .ci/run installs chromium and chromium-driver"
        );
        announce_skip(test, "chromium or chromium-driver is not installed (apt-get install chromium chromium-driver); under CI=true this is a failure");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    let driver = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start chromedriver");
    let status = format!("http://127.0.0.1:{port}/status");
    let http = reqwest::Client::new();
    eventually(PAGE_DEADLINE, "chromedriver is ready", || async {
        http.get(&status).send().await.is_ok_and(|response| response.status().is_success())
    })
    .await;
    let mut options = json!({
        "binary": CHROMIUM,
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,900"],
    });
    if look == Look::PhoneDark {
        options["args"].as_array_mut().expect("args").push(json!("--force-dark-mode"));
        options["mobileEmulation"] =
            json!({"deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 2, "touch": true}});
    }
    let capabilities = json!({"browserName": "chrome", "goog:chromeOptions": options});
    // Several crypto providers are linked; fantoccini takes the process default.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = ClientBuilder::rustls()
        .expect("a rustls WebDriver client")
        .capabilities(capabilities.as_object().expect("an object").clone())
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a WebDriver session on headless Chromium");
    Some(Browser { client, driver })
}

impl Browser {
    pub async fn goto(&self, app: &TestApp, path: &str) {
        self.client.goto(&app.url(path)).await.unwrap_or_else(|e| panic!("open {path}: {e}"));
    }

    /// Waits for an element matching `css`.
    pub async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(PAGE_DEADLINE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("waiting for {css}: {e}"))
    }

    /// Waits for an element matching `xpath` (for conditions on text).
    pub async fn wait_for_xpath(&self, xpath: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(PAGE_DEADLINE)
            .for_element(Locator::XPath(xpath))
            .await
            .unwrap_or_else(|e| panic!("waiting for {xpath}: {e}"))
    }

    pub async fn count(&self, css: &str) -> usize {
        self.client.find_all(Locator::Css(css)).await.expect("find elements").len()
    }

    /// Logs in through the form and waits for the inbox.
    pub async fn log_in(&self, app: &TestApp, username: &str, password: &str) {
        self.goto(app, "/login").await;
        self.wait_for("#username").await.send_keys(username).await.expect("type the username");
        self.wait_for("#password").await.send_keys(password).await.expect("type the password");
        self.wait_for("#log-in").await.click().await.expect("submit the login form");
        self.wait_for("#inbox").await;
    }

    /// The console's session cookie, as the browser holds it.
    pub async fn session_cookie(&self) -> String {
        let cookie = self.client.get_named_cookie("alexandria_session").await.expect("the session cookie");
        format!("alexandria_session={}", cookie.value())
    }

    /// Saves a PNG of the page to `docs/screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = repo().join("docs/screenshots");
        std::fs::create_dir_all(&dir).expect("docs/screenshots");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write the screenshot");
    }

    /// Runs axe-core (npm, pinned by scripts/install-peers.sh) on the page and fails on
    /// any serious or critical violation, naming the rule and the elements.
    pub async fn assert_accessible(&self, page: &str) {
        let Some(axe) = axe_script() else { return };
        self.client.execute(&axe, vec![]).await.expect("inject axe-core");
        let result = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, {resultTypes: ['violations']})
                    .then(r => done(r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
                        .map(v => ({id: v.id, impact: v.impact, help: v.help,
                                    nodes: v.nodes.map(n => n.html).slice(0, 5)}))))
                    .catch(e => done([{id: 'axe-error', help: String(e)}]));",
                vec![],
            )
            .await
            .expect("run axe-core");
        let violations = result.as_array().cloned().unwrap_or_default();
        assert!(violations.is_empty(), "{page}: serious or critical accessibility violations: {result:#}");
    }

    /// Whether the page's colour scheme is dark (the system setting the browser reports).
    pub async fn prefers_dark(&self) -> bool {
        let dark = self.client.execute("return matchMedia('(prefers-color-scheme: dark)').matches", vec![]).await;
        dark.expect("matchMedia").as_bool().unwrap_or(false)
    }

    pub async fn close(mut self) {
        self.client.clone().close().await.ok();
        self.driver.kill().await.ok();
    }
}

/// axe-core's script, or `None` (after a loud message) when it is not installed outside CI.
fn axe_script() -> Option<String> {
    let path = repo().join(".peers/node/node_modules/axe-core/axe.min.js");
    match std::fs::read_to_string(&path) {
        Ok(script) => Some(script),
        Err(error) => {
            assert!(!under_ci(), "CI=true but {} is missing ({error}): run scripts/install-peers.sh", path.display());
            announce_skip("accessibility check", "axe-core is not installed (scripts/install-peers.sh)");
            None
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Chromium runs in chromedriver's process group: a panicking test leaves no
        // browser behind.
        if let Some(pid) = self.driver.id() {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
        }
    }
}
