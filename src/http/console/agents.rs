//! The agents pages: the list (`GET /agents`), one agent (`GET /agents/{name}`), and what
//! may be done to them: create, edit both tool lists, delete (super_admin, the JSON API's
//! `agents::MANAGER_ROLE`), mint a token (admin, `agent_tokens::MINTER_ROLE`). Every change
//! goes through `admin::agents` / `admin::agent_tokens`, the services the JSON API calls;
//! their messages are shown next to the form, with the API's status.

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::agents_view::{picker, AgentPage, AgentRow, AgentTokenPage, AgentView, AgentsPage, NewAgentForm};
use super::pages::{error_page, failure, render};
use super::session::ConsoleUser;
use super::view::{human_duration, Chrome, Notice, Section};
use crate::admin::agent_tokens::{self, MINTER_ROLE};
use crate::admin::agents::{self, AgentError, NewAgent, MANAGER_ROLE};
use crate::http::{ApiError, AppState};
use crate::names::{is_principal_name, ToolName};

#[derive(Deserialize, Default)]
pub struct ListQuery {
    /// The agent just deleted (after the redirect of a delete).
    deleted: Option<String>,
}

pub async fn list(
    user: ConsoleUser,
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let query = query.map(|Query(query)| query).unwrap_or_default();
    // Only a valid agent name is echoed: a crafted link cannot make the page say anything.
    let notice = query
        .deleted
        .filter(|name| is_principal_name(name))
        .map(|name| Notice { text: format!("Agent {name} deleted; its tokens no longer work."), warning: false });
    list_page(&state, &user, StatusCode::OK, notice, NewAgentForm::default(), None).await
}

async fn list_page(
    state: &AppState,
    user: &ConsoleUser,
    status: StatusCode,
    notice: Option<Notice>,
    form: NewAgentForm,
    error: Option<String>,
) -> Response {
    let agents = match agents::list(&state.pool).await {
        Ok(agents) => agents,
        Err(error) => return failure(error),
    };
    let page = AgentsPage {
        chrome: Chrome::new(&user.0, Section::Agents),
        notice,
        agents: agents.iter().map(AgentRow::new).collect(),
        can_manage: user.0.role >= MANAGER_ROLE,
        form,
        error,
    };
    render(status, &page)
}

pub async fn create(
    user: ConsoleUser,
    State(state): State<AppState>,
    form: Result<Form<NewAgentForm>, FormRejection>,
) -> Response {
    let manager = match user.at_least(MANAGER_ROLE) {
        Ok(manager) => manager,
        Err(error) => return failure(error),
    };
    let Ok(Form(form)) = form else {
        return error_page(StatusCode::BAD_REQUEST, "The form was incomplete. Reload the page and try again.");
    };
    let new = NewAgent {
        name: form.name.trim().to_owned(),
        description: form.description.clone(),
        allowed_tools: Vec::new(),
        approval_required_tools: Vec::new(),
        allowed_prompts: Vec::new(),
        allowed_resources: Vec::new(),
    };
    match agents::create(&state.pool, &manager.actor(), new).await {
        Ok(agent) => Redirect::to(&format!("/agents/{}?created=1#notice", agent.name)).into_response(),
        Err(error @ (AgentError::Invalid(_) | AgentError::AlreadyExists(_))) => {
            let error = ApiError::from(error);
            list_page(&state, &user, error.status(), None, form, Some(error.to_string())).await
        }
        Err(error) => failure(error),
    }
}

#[derive(Deserialize, Default)]
pub struct ShowQuery {
    created: Option<String>,
    saved: Option<String>,
}

pub async fn show(
    user: ConsoleUser,
    State(state): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<ShowQuery>, QueryRejection>,
) -> Response {
    let query = query.map(|Query(query)| query).unwrap_or_default();
    let agent = match agent(&state, &name).await {
        Ok(agent) => agent,
        Err(response) => return response,
    };
    let notice = if query.saved.is_some() {
        Some(Notice {
            text: format!(
                "Tool lists saved. permissions_version is now {}: tokens minted before no longer work; mint a new one.",
                agent.permissions_version
            ),
            warning: true,
        })
    } else {
        query.created.map(|_| Notice {
            text: format!("Agent {} created. Choose its tools below, then mint a token.", agent.name),
            warning: false,
        })
    };
    let (allowed, approval) =
        (ToolName::strings(&agent.allowed_tools), ToolName::strings(&agent.approval_required_tools));
    detail_page(&state, &user, StatusCode::OK, notice, AgentView::new(&agent), &allowed, &approval, None)
}

async fn agent(state: &AppState, name: &str) -> Result<agents::Agent, Response> {
    let name = agents::existing_name(name).map_err(failure)?;
    agents::get(&state.pool, &name).await.map_err(failure)
}

/// The detail page; the picker shows `allowed` and `approval` ticked (the stored lists, or
/// what was just submitted when it was refused).
#[allow(clippy::too_many_arguments)]
fn detail_page(
    state: &AppState,
    user: &ConsoleUser,
    status: StatusCode,
    notice: Option<Notice>,
    agent: AgentView,
    allowed: &[String],
    approval: &[String],
    error: Option<String>,
) -> Response {
    let catalog = state.upstreams.tools();
    let (groups, allowed_other, approval_other) = picker(&catalog, allowed, approval);
    let page = AgentPage {
        chrome: Chrome::new(&user.0, Section::Agents),
        notice,
        agent,
        can_manage: user.0.role >= MANAGER_ROLE,
        can_mint: user.0.role >= MINTER_ROLE,
        groups,
        allowed_other,
        approval_other,
        error,
    };
    render(status, &page)
}

/// Splits the picker's form: ticked boxes (`allowed`, `approval`, repeated) and the
/// free-text fields (`allowed_other`, `approval_other`: names separated by whitespace,
/// which a tool name never contains).
fn tool_lists(fields: Vec<(String, String)>) -> (Vec<String>, Vec<String>) {
    let (mut allowed, mut approval) = (Vec::new(), Vec::new());
    for (key, value) in fields {
        match key.as_str() {
            "allowed" => allowed.push(value),
            "approval" => approval.push(value),
            "allowed_other" => allowed.extend(value.split_whitespace().map(str::to_owned)),
            "approval_other" => approval.extend(value.split_whitespace().map(str::to_owned)),
            _ => {}
        }
    }
    (allowed, approval)
}

pub async fn set_tools(
    user: ConsoleUser,
    State(state): State<AppState>,
    Path(name): Path<String>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let manager = match user.at_least(MANAGER_ROLE) {
        Ok(manager) => manager,
        Err(error) => return failure(error),
    };
    let Ok(Form(fields)) = form else {
        return error_page(StatusCode::BAD_REQUEST, "The form was incomplete. Reload the page and try again.");
    };
    let (allowed, approval) = tool_lists(fields);
    let agent_name = match agents::existing_name(&name) {
        Ok(agent_name) => agent_name,
        Err(error) => return failure(error),
    };
    match agents::set_policy(&state.pool, &manager.actor(), &agent_name, allowed.clone(), approval.clone()).await {
        Ok(agent) => {
            state.policy_cache.forget(&agent.name);
            Redirect::to(&format!("/agents/{}?saved=1#notice", agent.name)).into_response()
        }
        Err(error @ AgentError::Invalid(_)) => {
            let stored = match agent(&state, &name).await {
                Ok(stored) => stored,
                Err(response) => return response,
            };
            let error = ApiError::from(error);
            let message = format!("Nothing was saved: {error}");
            detail_page(
                &state,
                &user,
                error.status(),
                None,
                AgentView::new(&stored),
                &allowed,
                &approval,
                Some(message),
            )
        }
        Err(error) => failure(error),
    }
}

pub async fn delete(user: ConsoleUser, State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let manager = match user.at_least(MANAGER_ROLE) {
        Ok(manager) => manager,
        Err(error) => return failure(error),
    };
    let result = match agents::existing_name(&name) {
        Ok(name) => agents::delete(&state.pool, &manager.actor(), &name).await,
        Err(error) => Err(error),
    };
    match result {
        Ok(()) => {
            state.policy_cache.forget(&name);
            Redirect::to(&format!("/agents?deleted={name}#notice")).into_response()
        }
        Err(error) => failure(error),
    }
}

/// Mints a token and shows it on the response to this POST: never in a URL, never stored,
/// never shown again (the page is `no-store`, like every console page).
pub async fn mint_token(user: ConsoleUser, State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let minter = match user.at_least(MINTER_ROLE) {
        Ok(minter) => minter,
        Err(error) => return failure(error),
    };
    match agent_tokens::mint(&state.pool, &state.jwt, &minter, &name).await {
        Ok(minted) => {
            let page = AgentTokenPage {
                chrome: Chrome::new(&user.0, Section::Agents),
                agent: minted.agent,
                token: minted.token,
                effective_tools: ToolName::strings(&minted.effective_tools),
                permissions_version: minted.permissions_version,
                expires_in: human_duration(chrono::Duration::seconds(minted.expires_in_secs as i64)),
            };
            render(StatusCode::OK, &page)
        }
        Err(error) => failure(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticked_boxes_and_free_text_make_the_two_lists() {
        let fields = vec![
            ("allowed".to_owned(), "read_file".to_owned()),
            ("approval".to_owned(), "write_file".to_owned()),
            ("allowed".to_owned(), "write_file".to_owned()),
            ("allowed_other".to_owned(), " later_tool\r\nanother ".to_owned()),
            ("approval_other".to_owned(), String::new()),
        ];
        let (allowed, approval) = tool_lists(fields);
        assert_eq!(allowed, ["read_file", "write_file", "later_tool", "another"]);
        assert_eq!(approval, ["write_file"]);
    }
}
