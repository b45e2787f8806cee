//! `POST /agents/{name}/surface`: an agent's allowed prompts and resource URI patterns,
//! both edited at once (super_admin, `agents::MANAGER_ROLE`), through the service the
//! JSON API's `PUT /admin/agents/{name}/allowed-prompts|allowed-resources` call.

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;

use super::pages::{error_page, failure};
use super::session::ConsoleUser;
use crate::admin::agents::{self, AgentError, MANAGER_ROLE};
use crate::http::{ApiError, AppState};

/// The form's two text fields, one entry per line (neither a prompt name nor a URI
/// pattern contains whitespace).
fn lists(fields: Vec<(String, String)>) -> (Vec<String>, Vec<String>) {
    let (mut prompts, mut resources) = (Vec::new(), Vec::new());
    for (key, value) in fields {
        match key.as_str() {
            "prompts" => prompts.extend(value.split_whitespace().map(str::to_owned)),
            "resources" => resources.extend(value.split_whitespace().map(str::to_owned)),
            _ => {}
        }
    }
    (prompts, resources)
}

pub async fn set_surface(
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
    let (prompts, resources) = lists(fields);
    let agent_name = match agents::existing_name(&name) {
        Ok(agent_name) => agent_name,
        Err(error) => return failure(error),
    };
    match agents::set_surface_lists(&state.pool, &manager.actor(), &agent_name, prompts, resources).await {
        Ok(agent) => {
            state.policy_cache.forget(&agent.name);
            Redirect::to(&format!("/agents/{}?saved=1#notice", agent.name)).into_response()
        }
        Err(error @ AgentError::Invalid(_)) => {
            let error = ApiError::from(error);
            error_page(error.status(), &format!("Nothing was saved: {error}"))
        }
        Err(error) => failure(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_field_is_one_entry_per_line() {
        let fields = vec![
            ("prompts".to_owned(), "greet\r\n summarize ".to_owned()),
            ("resources".to_owned(), "file:///docs/*\ntest://static-text".to_owned()),
        ];
        assert_eq!(
            lists(fields),
            (vec!["greet".into(), "summarize".into()], vec!["file:///docs/*".into(), "test://static-text".into()])
        );
    }
}
