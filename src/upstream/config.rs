//! What an operator registers: an upstream MCP server's name, transport and options, and
//! the rules a configuration must meet before the gateway stores or uses it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use reqwest::header::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

/// How the gateway reaches an upstream server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    /// A child process speaking MCP on its stdin/stdout.
    Stdio,
    /// An MCP Streamable HTTP endpoint.
    StreamableHttp,
}

impl TransportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Stdio => "stdio",
            TransportKind::StreamableHttp => "streamable_http",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "stdio" => Some(TransportKind::Stdio),
            "streamable_http" => Some(TransportKind::StreamableHttp),
            _ => None,
        }
    }
}

/// One upstream server as registered (`POST /admin/mcp-servers`) and stored in
/// `mcp_servers`. Fields of the other transport must be absent or empty. `Debug` hides
/// env and header values: they hold secrets (API keys, `Authorization`).
#[derive(Clone, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    pub name: String,
    pub transport: TransportKind,
    /// stdio: the program to run (a path, or a name looked up in `PATH`).
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    /// stdio: environment added to the child's small inherited base (see
    /// `connection::BASE_ENV`); the gateway's own secrets are never passed on.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// stdio: the child's working directory (absolute).
    #[serde(default)]
    pub cwd: Option<String>,
    /// stdio: the account the child runs as (a user name; its primary group, no
    /// supplementary groups), so it cannot open the gateway's files. Needs a gateway
    /// running as root or with CAP_SETUID and CAP_SETGID (see `run_as`).
    #[serde(default)]
    pub run_as: Option<String>,
    /// streamable_http: the endpoint, `http://` or `https://`.
    #[serde(default)]
    pub url: Option<String>,
    /// streamable_http: headers sent with every request, e.g. `Authorization`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Prepended to this server's tool names downstream; stripped again when calling it.
    #[serde(default)]
    pub tool_prefix: Option<String>,
}

/// A configuration that breaks a rule; the message says which and how to fix it (a 422).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidConfig(pub String);

const MAX_NAME_LEN: usize = 64;
const MAX_PREFIX_LEN: usize = 32;
const MAX_ARGS: usize = 256;
const MAX_ENTRIES: usize = 128;
const MAX_TEXT_LEN: usize = 8192;

/// Headers the MCP transport sets itself; a configured value would break the protocol.
const RESERVED_HEADERS: &[&str] = &[
    "accept",
    "content-type",
    "content-length",
    "host",
    "connection",
    "transfer-encoding",
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
];

fn invalid(message: impl Into<String>) -> InvalidConfig {
    InvalidConfig(message.into())
}

/// A user name as `useradd` makes them (`[A-Za-z0-9._-]`, not starting with `-`, at
/// most 32 characters). Whether the account exists is the host's to say (`run_as`).
fn validate_user_name(user: &str) -> Result<(), InvalidConfig> {
    let ok = !user.is_empty()
        && user.len() <= 32
        && !user.starts_with('-')
        && user.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!("run_as must be a user name: 1 to 32 of A-Z, a-z, 0-9, '.', '_' or '-' (got {user:?})")))
    }
}

/// `[a-z0-9_-]{1,64}`: server names appear in URLs and log lines as they are.
pub fn validate_name(name: &str) -> Result<(), InvalidConfig> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!("name must be 1 to {MAX_NAME_LEN} characters of a-z, 0-9, '_' or '-' (got {name:?})")))
    }
}

fn check_text(field: &str, value: &str) -> Result<(), InvalidConfig> {
    if value.contains('\0') {
        return Err(invalid(format!("{field} must not contain NUL characters")));
    }
    if value.len() > MAX_TEXT_LEN {
        return Err(invalid(format!("{field} is longer than {MAX_TEXT_LEN} bytes")));
    }
    Ok(())
}

impl UpstreamConfig {
    /// Checks every rule; the first broken one is reported.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        validate_name(&self.name)?;
        if let Some(prefix) = &self.tool_prefix {
            // MCP tool names are [A-Za-z0-9_.-]; the prefix must keep them so.
            let ok = !prefix.is_empty()
                && prefix.len() <= MAX_PREFIX_LEN
                && prefix.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            if !ok {
                return Err(invalid(format!(
                    "tool_prefix must be 1 to {MAX_PREFIX_LEN} characters of A-Z, a-z, 0-9, '_', '-' or '.' (got {prefix:?})"
                )));
            }
        }
        match self.transport {
            TransportKind::Stdio => self.validate_stdio(),
            TransportKind::StreamableHttp => self.validate_http(),
        }
    }

    fn validate_stdio(&self) -> Result<(), InvalidConfig> {
        if self.url.is_some() || !self.headers.is_empty() {
            return Err(invalid("url and headers are for transport \"streamable_http\"; a \"stdio\" server takes command, args, env, cwd and run_as"));
        }
        let command = self.command.as_deref().unwrap_or("");
        if command.trim().is_empty() {
            return Err(invalid("transport \"stdio\" needs a command (the program to run)"));
        }
        check_text("command", command)?;
        if self.args.len() > MAX_ARGS {
            return Err(invalid(format!("at most {MAX_ARGS} args are allowed")));
        }
        for arg in &self.args {
            check_text("each of args", arg)?;
        }
        if self.env.len() > MAX_ENTRIES {
            return Err(invalid(format!("at most {MAX_ENTRIES} env entries are allowed")));
        }
        for (key, value) in &self.env {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                return Err(invalid(format!("env name {key:?} is not a valid environment variable name")));
            }
            check_text(&format!("the value of env {key}"), value)?;
        }
        if let Some(cwd) = &self.cwd {
            check_text("cwd", cwd)?;
            if !Path::new(cwd).is_absolute() {
                return Err(invalid(format!("cwd must be an absolute path (got {cwd:?})")));
            }
        }
        if let Some(user) = &self.run_as {
            validate_user_name(user)?;
        }
        Ok(())
    }

    fn validate_http(&self) -> Result<(), InvalidConfig> {
        if self.command.is_some()
            || !self.args.is_empty()
            || !self.env.is_empty()
            || self.cwd.is_some()
            || self.run_as.is_some()
        {
            return Err(invalid("command, args, env, cwd and run_as are for transport \"stdio\"; a \"streamable_http\" server takes url and headers"));
        }
        let Some(url) = self.url.as_deref() else {
            return Err(invalid("transport \"streamable_http\" needs a url (http:// or https://)"));
        };
        check_text("url", url)?;
        let parsed = reqwest::Url::parse(url).map_err(|e| invalid(format!("url is not a valid URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
            return Err(invalid("url must be an http:// or https:// URL with a host"));
        }
        // Error messages of the HTTP client quote the URL, and they reach the log and the
        // status view: credentials belong in headers, whose values are never shown.
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(invalid(
                "url must not contain a user name or password; send credentials in headers (e.g. Authorization)",
            ));
        }
        if self.headers.len() > MAX_ENTRIES {
            return Err(invalid(format!("at most {MAX_ENTRIES} headers are allowed")));
        }
        for (name, value) in &self.headers {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(format!("header name {name:?} is not a valid HTTP header name")))?;
            if RESERVED_HEADERS.contains(&header.as_str()) {
                return Err(invalid(format!(
                    "header {name:?} is set by the MCP transport itself and cannot be configured"
                )));
            }
            // The value is a secret: say which header is wrong, never echo the value.
            HeaderValue::from_str(value)
                .map_err(|_| invalid(format!("the value of header {name:?} is not a valid HTTP header value")))?;
        }
        Ok(())
    }

    /// This server's tool name as agents see it.
    pub fn exposed_tool_name(&self, upstream_name: &str) -> String {
        match &self.tool_prefix {
            Some(prefix) => format!("{prefix}{upstream_name}"),
            None => upstream_name.to_owned(),
        }
    }

    /// What the API may show of this configuration: env and header values replaced by
    /// their names only, and the values of arguments and URL query parameters whose names
    /// say they are secrets (`--api-key=…`, `--token …`, `?access_token=…`) masked. (A URL
    /// carries no user info: validation refuses it.)
    pub fn redacted(&self) -> RedactedConfig {
        RedactedConfig {
            transport: self.transport,
            command: self.command.clone(),
            args: redact_args(&self.args),
            env_names: self.env.keys().cloned().collect(),
            cwd: self.cwd.clone(),
            run_as: self.run_as.clone(),
            url: self.url.as_deref().map(redact_url),
            header_names: self.headers.keys().cloned().collect(),
            tool_prefix: self.tool_prefix.clone(),
        }
    }
}

/// What a masked value is shown as.
const MASK: &str = "***";

/// Whether a flag, parameter or header name says its value is a secret.
fn names_a_secret(name: &str) -> bool {
    let name = name.trim_start_matches('-').to_ascii_lowercase();
    ["token", "secret", "password", "passwd", "key", "auth", "credential", "bearer", "cookie", "session"]
        .iter()
        .any(|word| name.contains(word))
}

/// `--secret=value` → `--secret=***`; `--secret value` → `--secret ***`;
/// `Authorization: Bearer x` → `Authorization: ***`.
fn redact_args(args: &[String]) -> Vec<String> {
    let mut shown = Vec::with_capacity(args.len());
    let mut mask_next = false;
    for arg in args {
        if mask_next && !arg.starts_with('-') {
            shown.push(MASK.to_owned());
            mask_next = false;
            continue;
        }
        mask_next = false;
        if let Some((name, _)) = arg.split_once('=').filter(|(name, _)| names_a_secret(name)) {
            shown.push(format!("{name}={MASK}"));
        } else if let Some((name, _)) =
            arg.split_once(':').filter(|(name, _)| !name.contains('/') && names_a_secret(name))
        {
            shown.push(format!("{name}: {MASK}"));
        } else {
            mask_next = arg.starts_with('-') && names_a_secret(arg);
            shown.push(arg.clone());
        }
    }
    shown
}

/// The URL with the values of secret-named query parameters masked.
fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = reqwest::Url::parse(url) else { return url.to_owned() };
    if parsed.query().is_none() {
        return url.to_owned();
    }
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(name, value)| {
            let value = if names_a_secret(&name) { MASK.to_owned() } else { value.into_owned() };
            (name.into_owned(), value)
        })
        .collect();
    parsed.query_pairs_mut().clear().extend_pairs(pairs);
    parsed.to_string()
}

impl fmt::Debug for UpstreamConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Same shape as the API view: names of env entries and headers, never values.
        f.debug_struct("UpstreamConfig").field("name", &self.name).field("config", &self.redacted()).finish()
    }
}

/// The shareable part of an [`UpstreamConfig`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RedactedConfig {
    pub transport: TransportKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env_names: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub header_names: Vec<String>,
    pub tool_prefix: Option<String>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(value: serde_json::Value) -> UpstreamConfig {
        serde_json::from_value(value).expect("well-formed config")
    }

    fn error(value: serde_json::Value) -> String {
        parse(value).validate().expect_err("invalid").0
    }

    #[test]
    fn accepts_the_two_transports() {
        parse(json!({"name": "fs", "transport": "stdio", "command": "fs-server", "args": ["--root", "/srv"],
                     "env": {"RUST_LOG": "info"}, "cwd": "/tmp", "run_as": "mcp-fs"}))
        .validate()
        .unwrap();
        parse(json!({"name": "web_1", "transport": "streamable_http", "url": "https://mcp.example/mcp",
                     "headers": {"Authorization": "Bearer abc"}, "tool_prefix": "web."}))
        .validate()
        .unwrap();
    }

    #[test]
    fn refuses_what_cannot_work_with_a_message_naming_the_field() {
        assert!(error(json!({"name": "Fs", "transport": "stdio", "command": "x"})).contains("name must be"));
        assert!(error(json!({"name": "", "transport": "stdio", "command": "x"})).contains("name must be"));
        let long = "a".repeat(65);
        assert!(error(json!({"name": long, "transport": "stdio", "command": "x"})).contains("name must be"));
        assert!(error(json!({"name": "fs", "transport": "stdio"})).contains("needs a command"));
        assert!(error(json!({"name": "fs", "transport": "stdio", "command": "  "})).contains("needs a command"));
        assert!(error(json!({"name": "fs", "transport": "stdio", "command": "x", "cwd": "rel"})).contains("absolute"));
        assert!(error(json!({"name": "fs", "transport": "stdio", "command": "x", "env": {"A=B": "c"}}))
            .contains("env name"));
        assert!(error(json!({"name": "fs", "transport": "stdio", "command": "x", "url": "http://h"}))
            .contains("streamable_http"));
        for user in ["", "-root", "a b", "x\0", &"u".repeat(33)] {
            assert!(error(json!({"name": "fs", "transport": "stdio", "command": "x", "run_as": user}))
                .contains("run_as must be a user name"));
        }
        assert!(error(json!({"name": "h", "transport": "streamable_http", "url": "http://h", "run_as": "nobody"}))
            .contains("run_as are for transport \"stdio\""));
        assert!(error(json!({"name": "h", "transport": "streamable_http"})).contains("needs a url"));
        assert!(error(json!({"name": "h", "transport": "streamable_http", "url": "ftp://h/x"})).contains("http://"));
        assert!(
            error(json!({"name": "h", "transport": "streamable_http", "url": "not a url"})).contains("not a valid URL")
        );
        assert!(error(json!({"name": "h", "transport": "streamable_http", "url": "https://u:p@h/mcp"}))
            .contains("must not contain a user name or password"));
        assert!(error(json!({"name": "h", "transport": "streamable_http", "url": "http://h", "command": "x"}))
            .contains("stdio"));
        assert!(error(json!({"name": "h", "transport": "streamable_http", "url": "http://h",
                             "headers": {"Mcp-Session-Id": "x"}}))
        .contains("set by the MCP transport"));
        assert!(error(json!({"name": "h", "transport": "streamable_http", "url": "http://h", "tool_prefix": "a b"}))
            .contains("tool_prefix"));
    }

    #[test]
    fn a_bad_header_value_is_reported_without_echoing_it() {
        let message = error(json!({"name": "h", "transport": "streamable_http", "url": "http://h",
                                   "headers": {"Authorization": "Bearer s3cr3t\n"}}));
        assert!(message.contains("Authorization"), "{message}");
        assert!(!message.contains("s3cr3t"), "{message}");
    }

    #[test]
    fn unknown_fields_and_transports_are_refused_by_the_parser() {
        let unknown =
            serde_json::from_value::<UpstreamConfig>(json!({"name": "x", "transport": "stdio", "comand": "x"}));
        assert!(unknown.unwrap_err().to_string().contains("comand"));
        let transport = serde_json::from_value::<UpstreamConfig>(json!({"name": "x", "transport": "sse"}));
        assert!(transport.unwrap_err().to_string().contains("sse"));
    }

    #[test]
    fn debug_and_redacted_views_hide_secret_values() {
        let config = parse(json!({"name": "h", "transport": "streamable_http",
                                  "url": "https://mcp.example/mcp",
                                  "headers": {"Authorization": "Bearer s3cr3t"}}));
        let shown = format!("{config:?} {}", serde_json::to_string(&config.redacted()).unwrap());
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("Authorization"), "{shown}");
        let stdio = parse(json!({"name": "s", "transport": "stdio", "command": "x", "env": {"API_KEY": "k3y"}}));
        let shown = format!("{stdio:?} {}", serde_json::to_string(&stdio.redacted()).unwrap());
        assert!(!shown.contains("k3y") && shown.contains("API_KEY"), "{shown}");
    }

    #[test]
    fn secret_arguments_and_query_parameters_are_masked() {
        let stdio = parse(json!({"name": "s", "transport": "stdio", "command": "x", "args": [
            "--api-key=k1", "--token", "t2", "--verbose", "--root", "/data", "-H", "Authorization: Bearer b3",
            "--password", "--other"
        ]}));
        assert_eq!(
            stdio.redacted().args,
            [
                "--api-key=***",
                "--token",
                "***",
                "--verbose",
                "--root",
                "/data",
                "-H",
                "Authorization: ***",
                "--password",
                "--other"
            ]
        );
        let http = parse(json!({"name": "h", "transport": "streamable_http",
                                "url": "https://mcp.example/mcp?access_token=s3cr3t&region=eu"}));
        let url = http.redacted().url.expect("a url");
        assert!(!url.contains("s3cr3t") && url.contains("region=eu") && url.contains("access_token="), "{url}");
    }

    #[test]
    fn the_prefix_is_prepended_downstream() {
        let mut config = parse(json!({"name": "s", "transport": "stdio", "command": "x"}));
        assert_eq!(config.exposed_tool_name("echo"), "echo");
        config.tool_prefix = Some("fs2_".into());
        assert_eq!(config.exposed_tool_name("echo"), "fs2_echo");
    }
}
