//! The console in a real browser: headless Chromium driven over WebDriver (chromedriver,
//! started by each test on a free port), against a real server, database and upstream.
//!
//! Chromium and chromedriver are the Debian packages `chromium` and `chromium-driver`,
//! installed by `.ci/run`. Without them a browser test is skipped with a loud message,
//! except under CI=true, where it fails. The helpers of the `api` target are shared, not
//! copied (`#[path]`).

#[path = "../api/alertmanager.rs"]
mod alertmanager;
#[path = "../api/auth_helpers.rs"]
mod auth_helpers;
#[path = "../api/gateway_helpers.rs"]
mod gateway_helpers;
#[path = "../api/helpers.rs"]
mod helpers;
#[path = "../api/peers.rs"]
mod peers;

mod accessibility;
mod agents;
mod browser;
mod console_http;
mod decide;
mod inbox;
mod operators;
mod replicas;
mod servers;
mod settings;
