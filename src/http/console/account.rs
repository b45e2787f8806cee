//! The signed-in person's own account: changing their password (any role), through
//! `admin::users::change_own_password`, the rule of `PUT /auth/password` (policy first,
//! the current password checked and throttled like a login).
//!
//! Unlike the API, which keeps the caller's session, the console ends every session of
//! the person, this one included, and sends them to the login page saying why: a
//! password change is the moment to shut out whoever else might hold a session.

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::pages::{failure, render};
use super::session::{self, ConsoleUser};
use super::view::{Chrome, Section};
use crate::admin::users::{self, OwnPasswordChange, UserError};
use crate::auth::password::MIN_PASSWORD_CHARS;
use crate::auth::AuthError;
use crate::http::extract::ClientAddress;
use crate::http::{ApiError, AppState};

#[derive(Template)]
#[template(path = "console/account_password.html")]
pub struct PasswordPage {
    pub chrome: Chrome,
    pub error: Option<String>,
    pub min_chars: usize,
}

pub async fn page(user: ConsoleUser) -> Response {
    let page =
        PasswordPage { chrome: Chrome::new(&user.0, Section::Account), error: None, min_chars: MIN_PASSWORD_CHARS };
    render(StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub struct PasswordForm {
    current_password: SecretString,
    new_password: SecretString,
    confirm_password: SecretString,
}

pub async fn change(
    user: ConsoleUser,
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    form: Result<Form<PasswordForm>, FormRejection>,
) -> Response {
    let again = |status: StatusCode, message: &str| {
        let page = PasswordPage {
            chrome: Chrome::new(&user.0, Section::Account),
            error: Some(message.to_owned()),
            min_chars: MIN_PASSWORD_CHARS,
        };
        render(status, &page)
    };
    let Ok(Form(form)) = form else {
        return again(StatusCode::BAD_REQUEST, "Fill in all three fields.");
    };
    if form.new_password.expose_secret() != form.confirm_password.expose_secret() {
        return again(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The new password and its confirmation differ. Type them again.",
        );
    }
    let change = OwnPasswordChange {
        name: &user.0.name,
        current_password: form.current_password,
        new_password: form.new_password,
        keep_session: None,
        address,
    };
    match users::change_own_password(&state.pool, &state.settings.login_throttle, change).await {
        Ok(()) => {
            let mut response = Redirect::to("/login?password_changed=1").into_response();
            response.headers_mut().insert(header::SET_COOKIE, session::clear_cookie(session::secure(&state)));
            response
        }
        Err(UserError::WrongCurrentPassword) => {
            again(StatusCode::FORBIDDEN, "Your current password is not right, so nothing changed.")
        }
        Err(UserError::Auth(AuthError::Throttled { retry_after_secs })) => again(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Too many wrong passwords. Try again in {retry_after_secs} seconds."),
        ),
        Err(error) => {
            let error = ApiError::from(error);
            if error.status().is_server_error() {
                return failure(error);
            }
            again(error.status(), &error.to_string())
        }
    }
}
