//! Upstream configurations (`alexandria::upstream::UpstreamConfig`: the JSON body of
//! `POST /admin/mcp-servers`, and every row read back from `mcp_servers`): any JSON is
//! read and validated, or refused, never a panic; and
//! - secrets never shape what is shown: the redacted view and `Debug` are the same with
//!   every env and header value replaced;
//! - a configuration that validates has a valid name and what its transport needs.
#![no_main]

use alexandria::upstream::{validate_server_name, TransportKind, UpstreamConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(config) = serde_json::from_slice::<UpstreamConfig>(data) else { return };
    let verdict = config.validate();
    let shown = serde_json::to_string(&config.redacted()).expect("the view serializes");
    let debug = format!("{config:?}");
    let mut blanked = config.clone();
    blanked.env.values_mut().for_each(|value| *value = "x".to_owned());
    blanked.headers.values_mut().for_each(|value| *value = "x".to_owned());
    assert_eq!(serde_json::to_string(&blanked.redacted()).unwrap(), shown, "a secret value shows");
    assert_eq!(format!("{blanked:?}"), debug, "a secret value shows in Debug");
    if verdict.is_ok() {
        assert!(validate_server_name(&config.name).is_ok());
        match config.transport {
            TransportKind::Stdio => {
                assert!(config.command.as_deref().is_some_and(|command| !command.trim().is_empty()));
                assert!(config.url.is_none() && config.headers.is_empty());
            }
            TransportKind::StreamableHttp => {
                assert!(config.url.is_some() && config.command.is_none() && config.env.is_empty());
            }
        }
        assert!(config.exposed_tool_name("tool").ends_with("tool"));
    }
});
