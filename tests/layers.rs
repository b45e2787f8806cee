//! The layers of ARCHITECTURE.md, checked against the source: domain ← projections ←
//! services ← http / cli. A violation names the file and the line.
//!
//! The check reads `use` lines and paths as text (comments skipped), which is what a
//! reviewer would grep for; the compiler already enforces the crate-level arrows.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `path` relative to the repository, with `/` separators.
fn relative(path: &Path) -> String {
    path.strip_prefix(root()).unwrap_or(path).to_string_lossy().replace('\\', "/")
}

/// Code lines (not comments) of every file under `dir` that mention one of `needles`,
/// skipping files for which `exempt` holds.
fn offending_lines(dir: &str, needles: &[&str], exempt: impl Fn(&str) -> bool) -> Vec<String> {
    let mut found = Vec::new();
    for file in rust_files(&root().join(dir)) {
        let name = relative(&file);
        if exempt(&name) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            if let Some(needle) = needles.iter().find(|needle| code.contains(*needle)) {
                found.push(format!("{name}:{}: {needle}: {}", number + 1, code));
            }
        }
    }
    found
}

#[test]
fn only_the_http_layer_and_the_composition_know_http() {
    let needles = ["axum", "tower", "hyper", "crate::http", "AppState", "ApiError"];
    let composition =
        |name: &str| name.starts_with("src/http/") || name.starts_with("src/cli/") || name == "src/startup.rs";
    let found = offending_lines("src", &needles, composition);
    assert!(found.is_empty(), "services that know HTTP:\n{}", found.join("\n"));
}

#[test]
fn nothing_below_the_composition_reaches_up_to_it() {
    let needles = ["crate::cli", "crate::startup"];
    let found = offending_lines("src", &needles, |name| name.starts_with("src/cli/") || name == "src/main.rs");
    assert!(found.is_empty(), "arrows that run back up:\n{}", found.join("\n"));
}

#[test]
fn the_domain_does_no_io() {
    let needles = ["sqlx", "axum", "reqwest", "tokio", "std::fs", "std::net", "Utc::now", "SystemTime"];
    let found = offending_lines("domain/src", &needles, |name| name.ends_with("/tests.rs"));
    assert!(found.is_empty(), "I/O in the domain:\n{}", found.join("\n"));
}

/// Files allowed past the size limit, each with the reason ARCHITECTURE.md gives.
const LONG_FILES: &[&str] = &[];
/// Lines of code before a file's unit tests (a trailing `#[cfg(test)]` module is not
/// what a reader has to hold in mind).
const MAX_LINES: usize = 400;

fn code_lines(text: &str) -> usize {
    text.lines().take_while(|line| !line.starts_with("#[cfg(test)]")).count()
}

#[test]
fn source_files_stay_small_enough_to_read() {
    let mut long = Vec::new();
    for dir in ["src", "domain/src", "projections/src"] {
        for file in rust_files(&root().join(dir)) {
            let name = relative(&file);
            let lines = code_lines(&std::fs::read_to_string(&file).unwrap());
            if lines > MAX_LINES && !LONG_FILES.contains(&name.as_str()) && !name.ends_with("/tests.rs") {
                long.push(format!("{name}: {lines} lines"));
            }
        }
    }
    assert!(long.is_empty(), "over {MAX_LINES} lines (split, or explain in ARCHITECTURE.md):\n{}", long.join("\n"));
}
