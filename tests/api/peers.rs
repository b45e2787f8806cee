//! Where the tests find their peers: the repository, the example filesystem server's
//! binary, and `.peers/` (npm and Python MCP peers from `scripts/install-peers.sh`).
//! Without `.peers/` a test that needs a peer is skipped with a loud message, except under
//! CI=true, where a missing peer fails the test. Shared by the `api` and `console` test
//! targets.
#![allow(dead_code)] // shared by several test modules and targets; not each uses every helper

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

use crate::helpers::under_ci;

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `.peers/`, or None (after a loud message) when it is absent outside CI.
pub fn peers(test: &str) -> Option<PathBuf> {
    let dir = repo().join(".peers");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(!under_ci(), "CI=true but {} is missing: .ci/run must run scripts/install-peers.sh", dir.display());
    // Written to the process's stderr directly: the test harness captures eprintln! of a
    // passing test, and a skip must not pass unnoticed.
    let _ = writeln!(
        std::io::stderr(),
        "\n!!!!!!!! SKIPPED {test}: {} is absent. Run scripts/install-peers.sh to install the npm and \
         Python MCP peers; under CI=true this is a failure. !!!!!!!!\n",
        dir.display()
    );
    None
}

/// A peer file inside `.peers/`; with `.peers/` present, a missing file is a failure.
pub fn peer_file(peers: &Path, relative: &str) -> PathBuf {
    let path = peers.join(relative);
    assert!(path.exists(), "{} is missing: run scripts/install-peers.sh", path.display());
    path
}

/// The example server's binary, built by `cargo test --workspace` (or `cargo build`).
pub fn example_fs_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        // target/<profile>/deps/api-<hash> → target/<profile>/alexandria-example-fs
        let profile_dir = exe.parent().and_then(Path::parent).expect("target profile directory");
        let bin = profile_dir.join("alexandria-example-fs");
        assert!(
            bin.exists(),
            "{} is missing: build it with `cargo build -p alexandria-example-fs` (cargo test --workspace does)",
            bin.display()
        );
        bin
    })
}

pub fn text_of(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_else(|| panic!("no text content in {result}"))
}

pub fn calls_logged(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log).map(|text| text.lines().map(str::to_owned).collect()).unwrap_or_default()
}

/// The port a peer started with piped stdout says it listens on: its first line,
/// `LISTENING <port>`, printed once its socket accepts connections. `what` names the peer
/// in the failure.
pub async fn listening_port(child: &mut tokio::process::Child, what: &str) -> u16 {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let stdout = child.stdout.take().expect("piped stdout");
    let first_line =
        tokio::time::timeout(std::time::Duration::from_secs(60), BufReader::new(stdout).lines().next_line())
            .await
            .unwrap_or_else(|_| panic!("{what} did not listen within 60 s"))
            .expect("read its stdout")
            .unwrap_or_else(|| panic!("{what} exited before listening"));
    first_line
        .strip_prefix("LISTENING ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("{what}: unexpected first line {first_line:?}"))
}
