//! The MCP servers pages: the list with each server's connection (`GET /servers`), one
//! server and its tools (`GET /servers/{name}`), registering (stdio or Streamable HTTP
//! form), refreshing and removing. Changes go through `admin::mcp_servers` and the
//! upstream registry, as the JSON API's do, with its roles and messages.

use std::collections::BTreeMap;

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::pages::{error_page, failure, render};
use super::servers_view::{RegisterForm, ServerPage, ServerRow, ServerView, ServersPage, ToolView};
use super::session::ConsoleUser;
use super::view::{Chrome, Notice, Section};
use crate::admin::mcp_servers::{self, MANAGER_ROLE, REFRESHER_ROLE};
use crate::http::{ApiError, AppState};
use crate::upstream::{validate_server_name, TransportKind, UpstreamConfig, UpstreamError};

#[derive(Deserialize, Default)]
pub struct ListQuery {
    /// The server just removed (after the redirect of a removal).
    removed: Option<String>,
}

pub async fn list(
    user: ConsoleUser,
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let query = query.map(|Query(query)| query).unwrap_or_default();
    // Only a valid server name is echoed: a crafted link cannot make the page say anything.
    let notice = query.removed.filter(|name| validate_server_name(name).is_ok()).map(|name| Notice {
        text: format!("MCP server {name} removed; its tools are gone from the catalog."),
        warning: false,
    });
    list_page(&state, &user, StatusCode::OK, notice, RegisterForm::default(), None)
}

fn list_page(
    state: &AppState,
    user: &ConsoleUser,
    status: StatusCode,
    notice: Option<Notice>,
    form: RegisterForm,
    error: Option<String>,
) -> Response {
    let mut servers = state.upstreams.list();
    servers.sort_by(|a, b| a.name.cmp(&b.name));
    let (stdio_error, http_error) = match form.transport.as_str() {
        "streamable_http" => (None, error),
        _ => (error, None),
    };
    let page = ServersPage {
        chrome: Chrome::new(&user.0, Section::Servers),
        notice,
        servers: servers.iter().map(ServerRow::new).collect(),
        can_manage: user.0.role >= MANAGER_ROLE,
        form,
        stdio_error,
        http_error,
    };
    render(status, &page)
}

pub async fn register(
    user: ConsoleUser,
    State(state): State<AppState>,
    form: Result<Form<RegisterForm>, FormRejection>,
) -> Response {
    let manager = match user.at_least(MANAGER_ROLE) {
        Ok(manager) => manager,
        Err(error) => return failure(error),
    };
    let Ok(Form(form)) = form else {
        return error_page(StatusCode::BAD_REQUEST, "The form was incomplete. Reload the page and try again.");
    };
    let config = match config(&form) {
        Ok(config) => config,
        Err(message) => {
            return list_page(
                &state,
                &user,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                form.without_secrets(),
                Some(message),
            )
        }
    };
    match mcp_servers::register(&state.upstreams, &manager.actor(), config).await {
        Ok(status) => Redirect::to(&format!("/servers/{}?registered=1#notice", status.name)).into_response(),
        Err(
            error @ (UpstreamError::InvalidConfig(_)
            | UpstreamError::AlreadyRegistered { .. }
            | UpstreamError::DuplicateTool { .. }
            | UpstreamError::Connect { .. }),
        ) => {
            let error = ApiError::from(error);
            list_page(&state, &user, error.status(), None, form.without_secrets(), Some(error.to_string()))
        }
        Err(error) => failure(error),
    }
}

/// The configuration a form describes. Only what a form cannot say is checked here (a
/// line that is not `NAME=value`); every rule of a configuration is `UpstreamConfig`'s.
fn config(form: &RegisterForm) -> Result<UpstreamConfig, String> {
    let transport = TransportKind::parse(&form.transport)
        .ok_or_else(|| format!("transport must be \"stdio\" or \"streamable_http\" (got {:?})", form.transport))?;
    let optional = |text: &str| Some(text.trim().to_owned()).filter(|text| !text.is_empty());
    let mut config = UpstreamConfig {
        name: form.name.trim().to_owned(),
        transport,
        command: None,
        args: Vec::new(),
        env: BTreeMap::new(),
        cwd: None,
        run_as: None,
        url: None,
        headers: BTreeMap::new(),
        tool_prefix: optional(&form.tool_prefix),
    };
    match transport {
        TransportKind::Stdio => {
            config.command = optional(&form.command);
            config.args = lines(&form.args).map(str::to_owned).collect();
            config.env = pairs(&form.env, '=', "env", "NAME=value")?;
            config.cwd = optional(&form.cwd);
            config.run_as = optional(&form.run_as);
        }
        TransportKind::StreamableHttp => {
            config.url = optional(&form.url);
            config.headers = pairs(&form.headers, ':', "headers", "Name: value")?;
        }
    }
    Ok(config)
}

/// The non-blank lines of a text area, without their line ends.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(|line| line.trim_end_matches('\r')).filter(|line| !line.trim().is_empty())
}

/// `NAME<separator>value` lines. The message names the line, never its value (it may be
/// a secret).
fn pairs(text: &str, separator: char, field: &str, shape: &str) -> Result<BTreeMap<String, String>, String> {
    let mut map = BTreeMap::new();
    for (number, line) in lines(text).enumerate() {
        let Some((name, value)) = line.split_once(separator) else {
            return Err(format!("{field}: line {} is not of the form {shape}", number + 1));
        };
        map.insert(name.trim().to_owned(), value.trim().to_owned());
    }
    Ok(map)
}

#[derive(Deserialize, Default)]
pub struct ShowQuery {
    registered: Option<String>,
    refreshed: Option<String>,
}

pub async fn show(
    user: ConsoleUser,
    State(state): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<ShowQuery>, QueryRejection>,
) -> Response {
    let query = query.map(|Query(query)| query).unwrap_or_default();
    let server = match state.upstreams.get(&name) {
        Ok(server) => server,
        Err(error) => return failure(error),
    };
    let notice = if query.registered.is_some() {
        Some(format!(
            "MCP server {name} registered; its tools are in the catalog. Allow them to agents on their pages."
        ))
    } else {
        query.refreshed.map(|_| format!("Tool list of {name} read again: {} tools.", server.tools.len()))
    };
    let page = ServerPage {
        chrome: Chrome::new(&user.0, Section::Servers),
        notice: notice.map(|text| Notice { text, warning: false }),
        tools: server.tools.iter().map(ToolView::new).collect(),
        server: ServerView::new(&server),
        can_refresh: user.0.role >= REFRESHER_ROLE,
        can_manage: user.0.role >= MANAGER_ROLE,
    };
    render(StatusCode::OK, &page)
}

pub async fn refresh(user: ConsoleUser, State(state): State<AppState>, Path(name): Path<String>) -> Response {
    if let Err(error) = user.at_least(REFRESHER_ROLE) {
        return failure(error);
    }
    match state.upstreams.refresh(&name).await {
        Ok(status) => Redirect::to(&format!("/servers/{}?refreshed=1#notice", status.name)).into_response(),
        Err(error) => failure(error),
    }
}

pub async fn remove(user: ConsoleUser, State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let manager = match user.at_least(MANAGER_ROLE) {
        Ok(manager) => manager,
        Err(error) => return failure(error),
    };
    match mcp_servers::remove(&state.upstreams, &manager.actor(), &name).await {
        Ok(()) => Redirect::to(&format!("/servers?removed={name}#notice")).into_response(),
        Err(error) => failure(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(transport: &str) -> RegisterForm {
        RegisterForm { transport: transport.to_owned(), name: " fs ".to_owned(), ..RegisterForm::default() }
    }

    #[test]
    fn a_stdio_form_becomes_a_stdio_config() {
        let mut stdio = form("stdio");
        stdio.command = "fs-server".into();
        stdio.args = "--root\r\n/srv/data\r\n\r\n".into();
        stdio.env = "RUST_LOG = info\nTOKEN=a=b".into();
        let config = config(&stdio).unwrap();
        assert_eq!(config.name, "fs");
        assert_eq!(config.command.as_deref(), Some("fs-server"));
        assert_eq!(config.args, ["--root", "/srv/data"]);
        assert_eq!(config.env.get("RUST_LOG").map(String::as_str), Some("info"));
        assert_eq!(config.env.get("TOKEN").map(String::as_str), Some("a=b"));
        assert_eq!((config.url, config.cwd, config.tool_prefix), (None, None, None));
        config_is_valid(&stdio);
    }

    fn config_is_valid(form: &RegisterForm) {
        config(form).unwrap().validate().unwrap();
    }

    #[test]
    fn an_http_form_becomes_an_http_config_and_a_bad_line_is_named_without_its_value() {
        let mut http = form("streamable_http");
        http.url = "https://mcp.example/mcp".into();
        http.headers = "Authorization: Bearer s3cr3t".into();
        http.command = "ignored: the other form's field".into();
        let config = config(&http).unwrap();
        assert_eq!(config.headers.get("Authorization").map(String::as_str), Some("Bearer s3cr3t"));
        assert_eq!(config.command, None);
        config_is_valid(&http);
        http.headers = "Authorization Bearer s3cr3t".into();
        let message = super::config(&http).unwrap_err();
        assert!(message.contains("line 1") && !message.contains("s3cr3t"), "{message}");
    }
}
