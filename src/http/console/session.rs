//! The console's session cookie and the `ConsoleUser` extractor. What a cookie value means
//! (its session row, secret, idle limit, revocation) is `auth::console_session`'s
//! business; this module only carries it in and out of HTTP.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::pages::{error_page, local_path, percent_encoded};
use crate::auth::console_session::{self, ConsoleCredential};
use crate::auth::{AuthError, AuthenticatedUser, Principal, Role};
use crate::http::{ApiError, AppState};

/// The cookie's name. With https the `__Host-` prefix makes the browser insist on
/// `Secure`, `Path=/` and no `Domain`: no other host (a sibling subdomain) can set or
/// shadow it.
fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-alexandria_session"
    } else {
        "alexandria_session"
    }
}

/// Whether the console is served over https (`ALEXANDRIA_PUBLIC_URL`): then the cookie
/// is `Secure` and `__Host-` prefixed.
pub fn secure(state: &AppState) -> bool {
    state.settings.public_url.starts_with("https://")
}

/// `Set-Cookie` for a new session: not readable by script, never sent with a request
/// another site starts, for the whole console. A browser-session cookie (no
/// `Max-Age`); the server ends the session after a week without use in any case.
pub fn set_cookie(secure: bool, credential: &ConsoleCredential) -> Option<HeaderValue> {
    let value = format!(
        "{}={}; HttpOnly; SameSite=Strict; Path=/{}",
        cookie_name(secure),
        credential.cookie_value(),
        secure_attribute(secure)
    );
    HeaderValue::from_str(&value).ok()
}

/// `Set-Cookie` that makes the browser forget the session.
pub fn clear_cookie(secure: bool) -> HeaderValue {
    let value =
        format!("{}=; Max-Age=0; HttpOnly; SameSite=Strict; Path=/{}", cookie_name(secure), secure_attribute(secure));
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("alexandria_session=; Max-Age=0; Path=/"))
}

fn secure_attribute(secure: bool) -> &'static str {
    if secure {
        "; Secure"
    } else {
        ""
    }
}

/// The session cookie's value, if the request carries one.
fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(key, value)| (key == name).then_some(value))
}

/// A person signed in to the console, with the role stored now.
pub struct ConsoleUser(pub AuthenticatedUser);

impl ConsoleUser {
    /// Whether this person may approve and reject (the API's rule: admin or higher).
    pub fn can_decide(&self) -> bool {
        self.0.role >= Role::Admin
    }

    /// This person, if their role is at least `role` (the service's rule, as the JSON API
    /// applies it): `Err` is the API's 403.
    pub fn at_least(&self, role: Role) -> Result<AuthenticatedUser, AuthError> {
        Principal::User(self.0.clone()).user_at_least(role)
    }
}

/// Why a request has no console user: pages send the person to the login page (saying
/// the session ended when there was one); scripts (`/console/...`) get 401 and decide.
pub enum NotSignedIn {
    /// `next`: the page asked for, opened after logging in (pages fetched with `GET`).
    /// `unsaved`: a form was posted with a session that had ended, so what it asked for
    /// was not done; the login page says so.
    Redirect {
        had_session: bool,
        next: Option<String>,
        unsaved: bool,
    },
    Unauthorized,
    Failed(ApiError),
}

impl IntoResponse for NotSignedIn {
    fn into_response(self) -> Response {
        match self {
            NotSignedIn::Redirect { had_session, next, unsaved } => {
                let mut query = Vec::new();
                if had_session {
                    query.push("expired=1".to_owned());
                }
                if unsaved {
                    query.push("unsaved=1".to_owned());
                }
                if let Some(next) = next.as_deref().and_then(|next| local_path(Some(next))) {
                    query.push(format!("next={}", percent_encoded(next)));
                }
                let target = if query.is_empty() { "/login".to_owned() } else { format!("/login?{}", query.join("&")) };
                Redirect::to(&target).into_response()
            }
            NotSignedIn::Unauthorized => (StatusCode::UNAUTHORIZED, "session ended; log in again").into_response(),
            NotSignedIn::Failed(error) => {
                let status = error.status();
                if status.is_server_error() {
                    tracing::error!(error = format!("{error:#}"), "console authentication failed");
                }
                error_page(status, &error.to_string()).into_response()
            }
        }
    }
}

impl FromRequestParts<AppState> for ConsoleUser {
    type Rejection = NotSignedIn;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let for_script = parts.uri.path().starts_with("/console/");
        let value = cookie_value(&parts.headers, cookie_name(secure(state)));
        // The inbox is where a login lands anyway; any other page is returned to.
        let next = match parts.uri.path_and_query() {
            Some(path) if parts.method == Method::GET && path.path() != "/" => Some(path.as_str().to_owned()),
            _ => None,
        };
        let not_signed_in = || {
            if for_script {
                NotSignedIn::Unauthorized
            } else {
                let had_session = value.is_some();
                let unsaved = had_session && parts.method == Method::POST;
                NotSignedIn::Redirect { had_session, next: next.clone(), unsaved }
            }
        };
        let Some(credential) = value.and_then(ConsoleCredential::parse) else {
            return Err(not_signed_in());
        };
        match console_session::authenticate(&state.pool, &credential).await {
            Ok(user) if user.role == Role::Auditor && !super::view::auditor_may_open(parts.uri.path()) => {
                Err(NotSignedIn::Failed(
                    AuthError::Forbidden(format!("this needs role {} or higher; you are {}", Role::Viewer, user.role))
                        .into(),
                ))
            }
            Ok(user) => Ok(ConsoleUser(user)),
            Err(AuthError::Unauthenticated(_)) => Err(not_signed_in()),
            Err(error) => Err(NotSignedIn::Failed(error.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; alexandria_session=x.y"));
        headers.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie_value(&headers, "alexandria_session"), Some("x.y"));
        assert_eq!(cookie_value(&headers, "__Host-alexandria_session"), None);
    }
}
