//! Logging in and out of the console, and the page that says what went wrong.

use askama::Template;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use secrecy::SecretString;
use serde::Deserialize;

use super::session::{self, ConsoleUser};
use super::view::{ErrorPage, LoginPage};
use crate::auth::console_session;
use crate::auth::login::check_password;
use crate::auth::AuthError;
use crate::http::extract::ClientAddress;
use crate::http::{ApiError, AppState};

/// Renders a template, or a plain 500 if it cannot be (it always can: templates are
/// checked when the binary is built).
pub fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot render a console page");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// A page saying what went wrong and what to do.
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error").to_owned();
    let page = ErrorPage { title, message: message.to_owned() };
    render(status, &page)
}

/// A service error as a page: the API's mapping (`http::error`) decides the status, and
/// internal details are logged, never shown.
pub fn failure(error: impl Into<ApiError>) -> Response {
    let error = error.into();
    if let ApiError::Internal(cause) = &error {
        tracing::error!(error = format!("{cause:#}"), "console request failed");
    }
    error_page(error.status(), &error.to_string())
}

#[derive(Deserialize)]
pub struct LoginQuery {
    expired: Option<String>,
    /// A form was posted after the session ended (see `session::NotSignedIn`).
    unsaved: Option<String>,
    password_changed: Option<String>,
    /// The page to open after logging in (see `local_path`).
    next: Option<String>,
}

/// `next` if it is a path on this console: one leading `/`, not `//` or `/\` (which a
/// browser reads as another host), printable ASCII only (it becomes a `Location`
/// header). Anything else is ignored, so a link cannot send a person who logs in to
/// another site (an open redirect).
pub fn local_path(next: Option<&str>) -> Option<&str> {
    let next = next?;
    let mut bytes = next.bytes();
    let local = bytes.next() == Some(b'/')
        && !matches!(bytes.next(), Some(b'/' | b'\\'))
        && next.bytes().all(|byte| byte.is_ascii_graphic());
    local.then_some(next)
}

const SESSION_EXPIRED: &str =
    "Your session ended (signed out elsewhere, password changed, or unused for a week). Log in again.";

const UNSAVED: &str = "Your session ended before what you just submitted was saved, so nothing was changed. \
     Log in and submit it again: a reason you typed is kept.";

const PASSWORD_CHANGED: &str =
    "Your password was changed, so every session of yours was signed out, this one too. Log in with the new password.";

pub async fn login_form(query: Result<Query<LoginQuery>, QueryRejection>) -> Response {
    let (message, next) = match query {
        Ok(Query(query)) if query.password_changed.is_some() => (Some(PASSWORD_CHANGED), query.next),
        Ok(Query(query)) if query.unsaved.is_some() => (Some(UNSAVED), query.next),
        Ok(Query(query)) if query.expired.is_some() => (Some(SESSION_EXPIRED), query.next),
        Ok(Query(query)) => (None, query.next),
        Err(_) => (None, None),
    };
    let page = LoginPage::new(message.map(str::to_owned), String::new());
    render(StatusCode::OK, &page.returning_to(local_path(next.as_deref())))
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: SecretString,
    next: Option<String>,
}

/// Checks the password with the API's rule (`auth::login`), then starts a console
/// session and sets its cookie.
pub async fn log_in(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Ok(Form(LoginForm { username, password, next })) = form else {
        return render(
            StatusCode::BAD_REQUEST,
            &LoginPage::new(Some("Enter a username and a password.".to_owned()), String::new()),
        );
    };
    let throttle = &state.settings.login_throttle;
    let next = local_path(next.as_deref());
    match check_password(&state.pool, throttle, &username, password, address).await {
        Ok(_role) => {}
        Err(AuthError::Unauthenticated(message)) => {
            let page = LoginPage::new(Some(capitalised(&message)), username).returning_to(next);
            return render(StatusCode::UNAUTHORIZED, &page);
        }
        Err(AuthError::Throttled { retry_after_secs }) => {
            let message = format!("Too many failed logins. Try again in {retry_after_secs} seconds.");
            let page = LoginPage::new(Some(message), username).returning_to(next);
            let mut response = render(StatusCode::TOO_MANY_REQUESTS, &page);
            if let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return response;
        }
        Err(error) => return failure(error),
    }
    let credential = match console_session::start(&state.pool, &username).await {
        Ok(credential) => credential,
        Err(error) => return failure(error),
    };
    let Some(cookie) = session::set_cookie(session::secure(&state), &credential) else {
        return failure(anyhow::anyhow!("the session cookie is not a valid header value"));
    };
    let mut response = Redirect::to(next.unwrap_or("/")).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    response
}

/// Ends the session (its row is revoked, so a copy of the cookie is worthless too) and
/// makes the browser forget the cookie.
pub async fn log_out(user: ConsoleUser, State(state): State<AppState>) -> Response {
    if let Err(error) = console_session::end(&state.pool, user.0.session_id).await {
        return failure(error);
    }
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(header::SET_COOKIE, session::clear_cookie(session::secure(&state)));
    response
}

/// `text` as a URL query value: everything but the unreserved characters percent-encoded.
pub fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn capitalised(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect::<String>() + ".",
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn only_local_paths_are_returned_to() {
        assert_eq!(local_path(Some("/requests/1?a=b")), Some("/requests/1?a=b"));
        assert_eq!(local_path(Some("/")), Some("/"));
        for refused in ["//evil.example", "/\\evil.example", "https://evil.example", "evil", "", "/a b", "/a\r\nX: y"] {
            assert_eq!(local_path(Some(refused)), None, "{refused:?}");
        }
        assert_eq!(local_path(None), None);
    }
}
