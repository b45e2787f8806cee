//! Users (super_admin): list, create, change role, reset password, delete, through
//! `admin::users`, the service of `/admin/users`: the same rules (names, the password
//! policy, never losing the last super_admin) and the same audit records.
//!
//! A person's own row offers none of these: changing one's own password is the account
//! page (which asks for the current one), and demoting or deleting oneself from here
//! would lock the page in one's face. The server does not rely on that: the service
//! applies its rules whoever asks.

use askama::Template;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use secrecy::SecretString;
use serde::Deserialize;

use super::pages::{error_page, failure, render};
use super::session::ConsoleUser;
use super::view::{Chrome, Section};
use crate::admin::users::{self, PasswordChange, UserError};
use crate::auth::{AuthenticatedUser, Role};
use crate::http::{ApiError, AppState};

const ROLES: [Role; 4] = [Role::Auditor, Role::Viewer, Role::Admin, Role::SuperAdmin];

#[derive(Template)]
#[template(path = "console/users.html")]
pub struct UsersPage {
    pub chrome: Chrome,
    pub notice: Option<String>,
    /// Why the last change was refused (the service's words).
    pub error: Option<String>,
    pub users: Vec<UserRow>,
    pub roles: [&'static str; 4],
    /// The create form's fields, kept when creating was refused (never the password).
    pub new_name: String,
    pub new_role: String,
    pub create_error: Option<String>,
}

pub struct UserRow {
    pub name: String,
    pub role: &'static str,
    pub created: String,
    pub is_me: bool,
}

impl UsersPage {
    async fn load(state: &AppState, me: &AuthenticatedUser) -> Result<Self, UserError> {
        let users = users::list(&state.pool)
            .await?
            .into_iter()
            .map(|user| UserRow {
                is_me: user.username == me.name,
                role: user.role.as_str(),
                created: user.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
                name: user.username,
            })
            .collect();
        Ok(UsersPage {
            chrome: Chrome::new(me, Section::Users),
            notice: None,
            error: None,
            users,
            roles: ROLES.map(Role::as_str),
            new_name: String::new(),
            new_role: Role::Viewer.as_str().to_owned(),
            create_error: None,
        })
    }
}

/// After a change: what was done (the names come back through the URL and are escaped
/// like anything else).
#[derive(Deserialize, Default)]
pub struct DoneQuery {
    created: Option<String>,
    role: Option<String>,
    reset: Option<String>,
    deleted: Option<String>,
}

impl DoneQuery {
    fn notice(self) -> Option<String> {
        if let Some(name) = self.created {
            return Some(format!(
                "Created {name}. Give them their initial password; they can change it on their account page."
            ));
        }
        if let Some(name) = self.role {
            return Some(format!("Changed the role of {name}. It applies to their next request."));
        }
        if let Some(name) = self.reset {
            return Some(format!("Reset the password of {name}; every session of theirs was signed out."));
        }
        self.deleted.map(|name| format!("Deleted {name}; their sessions ended with the account."))
    }
}

pub async fn page(
    user: ConsoleUser,
    State(state): State<AppState>,
    query: Result<Query<DoneQuery>, QueryRejection>,
) -> Response {
    let me = match user.at_least(Role::SuperAdmin) {
        Ok(me) => me,
        Err(refused) => return failure(refused),
    };
    let mut page = match UsersPage::load(&state, &me).await {
        Ok(page) => page,
        Err(error) => return failure(error),
    };
    page.notice = query.ok().and_then(|Query(done)| done.notice());
    render(StatusCode::OK, &page)
}

/// The page again with a refusal on it, at the status the API would answer; a failure
/// that is not the person's to fix is the error page.
async fn refused(
    state: &AppState,
    me: &AuthenticatedUser,
    error: UserError,
    show: impl FnOnce(&mut UsersPage, String),
) -> Response {
    let error = ApiError::from(error);
    let status = error.status();
    if status.is_server_error() {
        return failure(error);
    }
    match UsersPage::load(state, me).await {
        Ok(mut page) => {
            show(&mut page, error.to_string());
            render(status, &page)
        }
        Err(error) => failure(error),
    }
}

fn parse_role(raw: &str) -> Result<Role, UserError> {
    Role::try_from(raw.to_owned())
        .map_err(|_| UserError::Invalid(format!("role must be one of viewer, admin, super_admin, not {raw:?}")))
}

#[derive(Deserialize)]
pub struct CreateForm {
    username: String,
    role: String,
    password: SecretString,
}

pub async fn create(
    user: ConsoleUser,
    State(state): State<AppState>,
    form: Result<Form<CreateForm>, FormRejection>,
) -> Response {
    let me = match user.at_least(Role::SuperAdmin) {
        Ok(me) => me,
        Err(refused) => return failure(refused),
    };
    let Ok(Form(CreateForm { username, role, password })) = form else {
        return error_page(StatusCode::BAD_REQUEST, "A new user needs a name, a role and an initial password.");
    };
    let created = match parse_role(&role) {
        Ok(parsed) => users::create(&state.pool, &me.actor(), username.trim(), password, parsed).await,
        Err(error) => Err(error),
    };
    match created {
        Ok(created) => redirect_done("created", &created.username),
        Err(error) => {
            refused(&state, &me, error, |page, message| {
                page.create_error = Some(message);
                page.new_name = username;
                page.new_role = role;
            })
            .await
        }
    }
}

/// Post/redirect/get with what was done. A user name is `a-z0-9_-` (the service
/// checked it), safe in a URL as it is.
fn redirect_done(what: &str, name: &str) -> Response {
    Redirect::to(&format!("/users?{what}={name}#notice")).into_response()
}

#[derive(Deserialize)]
pub struct RoleForm {
    role: String,
}

pub async fn set_role(
    user: ConsoleUser,
    State(state): State<AppState>,
    Path(name): Path<String>,
    form: Result<Form<RoleForm>, FormRejection>,
) -> Response {
    let me = match user.at_least(Role::SuperAdmin) {
        Ok(me) => me,
        Err(refused) => return failure(refused),
    };
    let Ok(Form(RoleForm { role })) = form else {
        return error_page(StatusCode::BAD_REQUEST, "Choose a role.");
    };
    let changed = match (users::existing_name(&name), parse_role(&role)) {
        (Ok(name), Ok(role)) => users::set_role(&state.pool, &me.actor(), &name, role).await.map(|_| name),
        (Err(error), _) | (_, Err(error)) => Err(error),
    };
    match changed {
        Ok(name) => redirect_done("role", name.as_str()),
        Err(error) => refused(&state, &me, error, |page, message| page.error = Some(message)).await,
    }
}

#[derive(Deserialize)]
pub struct PasswordForm {
    password: SecretString,
}

pub async fn reset_password(
    user: ConsoleUser,
    State(state): State<AppState>,
    Path(name): Path<String>,
    form: Result<Form<PasswordForm>, FormRejection>,
) -> Response {
    let me = match user.at_least(Role::SuperAdmin) {
        Ok(me) => me,
        Err(refused) => return failure(refused),
    };
    let Ok(Form(PasswordForm { password })) = form else {
        return error_page(StatusCode::BAD_REQUEST, "Type the new password.");
    };
    let reset = match users::existing_name(&name) {
        Ok(name) => users::set_password(&state.pool, &me.actor(), PasswordChange::Reset, &name, password, None)
            .await
            .map(|_| name),
        Err(error) => Err(error),
    };
    match reset {
        Ok(name) => redirect_done("reset", name.as_str()),
        Err(error) => refused(&state, &me, error, |page, message| page.error = Some(message)).await,
    }
}

pub async fn delete(user: ConsoleUser, State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let me = match user.at_least(Role::SuperAdmin) {
        Ok(me) => me,
        Err(refused) => return failure(refused),
    };
    let deleted = match users::existing_name(&name) {
        Ok(name) => users::delete(&state.pool, &me.actor(), &name).await.map(|()| name),
        Err(error) => Err(error),
    };
    match deleted {
        Ok(name) => redirect_done("deleted", name.as_str()),
        Err(error) => refused(&state, &me, error, |page, message| page.error = Some(message)).await,
    }
}
