//! Settings → Notifications (super_admin): the webhook and Alertmanager channels, Save and
//! Test. Both go through the services of `PATCH /admin/notifications/config` and `POST
//! /admin/notifications/test` (`notify::settings::update`, `notify::test_configured_channels`):
//! the same validation and messages, the same audit record, the same test send. The
//! webhook secret is never rendered: the page says whether one is set.

use askama::Template;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::pages::{error_page, failure, render};
use super::session::ConsoleUser;
use super::view::{Chrome, Section};
use crate::auth::{AuthenticatedUser, Role};
use crate::http::{ApiError, AppState};
use crate::notify::settings::{self, SettingsError};
use crate::notify::{SettingsPatch, SettingsView, TestReport, TestResult};

#[derive(Template)]
#[template(path = "console/settings_notifications.html")]
pub struct NotificationsPage {
    pub chrome: Chrome,
    pub notice: Option<String>,
    /// Why a save was refused, one line per problem (the API's messages).
    pub errors: Vec<String>,
    pub form: SettingsForm,
    /// Whether a webhook secret is stored (never the secret).
    pub secret_set: bool,
    pub updated: Option<String>,
    pub severities: [&'static str; 3],
    /// The channels' outcomes after pressing Test.
    pub test: Option<Vec<ChannelLine>>,
}

/// What the form's fields show: the stored settings, or what was just sent back when a
/// save was refused (the secret never: it stays empty).
pub struct SettingsForm {
    pub webhook_url: String,
    pub alertmanager_url: String,
    pub severity: String,
}

/// One channel's outcome of a test send, as the page shows it.
pub struct ChannelLine {
    pub channel: &'static str,
    pub outcome: &'static str,
    pub detail: String,
    pub ok: bool,
}

const SEVERITIES: [&str; 3] = ["critical", "warning", "info"];

impl NotificationsPage {
    fn new(user: &AuthenticatedUser, view: &SettingsView) -> Self {
        NotificationsPage {
            chrome: Chrome::new(user, Section::Settings),
            notice: None,
            errors: Vec::new(),
            form: SettingsForm {
                webhook_url: view.webhook_url.clone().unwrap_or_default(),
                alertmanager_url: view.alertmanager_url.clone().unwrap_or_default(),
                severity: view.alertmanager_severity.as_str().to_owned(),
            },
            secret_set: view.webhook_secret == "set",
            updated: view
                .updated_by
                .as_ref()
                .map(|by| format!("Last changed by {by} at {}.", view.updated_at.format("%Y-%m-%d %H:%M:%S UTC"))),
            severities: SEVERITIES,
            test: None,
        }
    }
}

fn lines(report: &TestReport) -> Vec<ChannelLine> {
    report
        .channels
        .iter()
        .map(|outcome| {
            let (text, detail, ok) = match &outcome.result {
                TestResult::Delivered => {
                    ("delivered", "Accepted the test notice and then its resolution.".to_owned(), true)
                }
                TestResult::Failed(error) => ("error", error.clone(), false),
                TestResult::NotConfigured => ("not configured", "Nothing was sent.".to_owned(), true),
            };
            ChannelLine { channel: outcome.channel.as_str(), outcome: text, detail, ok }
        })
        .collect()
}

#[derive(Deserialize)]
pub struct PageQuery {
    saved: Option<String>,
}

pub async fn page(
    user: ConsoleUser,
    State(state): State<AppState>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let user = match user.at_least(Role::SuperAdmin) {
        Ok(user) => user,
        Err(refused) => return failure(refused),
    };
    let view = match settings::current(&state.pool).await {
        Ok(view) => view,
        Err(error) => return failure(error),
    };
    let mut page = NotificationsPage::new(&user, &view);
    if query.is_ok_and(|Query(query)| query.saved.is_some()) {
        page.notice = Some("Saved. Press Test to send a test alert through every configured channel.".to_owned());
    }
    render(StatusCode::OK, &page)
}

/// The form as posted. Every field is sent every time; the secret only when typed.
#[derive(Deserialize)]
pub struct SaveForm {
    #[serde(default)]
    webhook_url: String,
    #[serde(default)]
    webhook_secret: Option<SecretString>,
    /// The "remove the stored secret" checkbox.
    #[serde(default)]
    clear_webhook_secret: Option<String>,
    #[serde(default)]
    alertmanager_url: String,
    #[serde(default)]
    alertmanager_severity: String,
}

impl SaveForm {
    /// The API's patch: URLs and severity as sent (blank clears them), the secret
    /// replaced only when one was typed, removed only when asked.
    fn patch(self) -> SettingsPatch {
        let typed = self.webhook_secret.filter(|secret| !secret.expose_secret().is_empty());
        let webhook_secret = match (self.clear_webhook_secret.is_some(), typed) {
            (true, _) => Some(None),
            (false, Some(secret)) => Some(Some(secret)),
            (false, None) => None,
        };
        SettingsPatch {
            webhook_url: Some(Some(self.webhook_url)),
            webhook_secret,
            alertmanager_url: Some(Some(self.alertmanager_url)),
            alertmanager_severity: Some(Some(self.alertmanager_severity)),
        }
    }
}

pub async fn save(
    user: ConsoleUser,
    State(state): State<AppState>,
    form: Result<Form<SaveForm>, FormRejection>,
) -> Response {
    let user = match user.at_least(Role::SuperAdmin) {
        Ok(user) => user,
        Err(refused) => return failure(refused),
    };
    let Ok(Form(form)) = form else {
        return error_page(StatusCode::BAD_REQUEST, "The settings form was incomplete. Reload the page and try again.");
    };
    let entered = SettingsForm {
        webhook_url: form.webhook_url.clone(),
        alertmanager_url: form.alertmanager_url.clone(),
        severity: form.alertmanager_severity.clone(),
    };
    match settings::update(&state.pool, &user.actor(), form.patch()).await {
        Ok(_) => Redirect::to("/settings/notifications?saved=1").into_response(),
        Err(SettingsError::Invalid(problems)) => {
            let view = match settings::current(&state.pool).await {
                Ok(view) => view,
                Err(error) => return failure(error),
            };
            let mut page = NotificationsPage::new(&user, &view);
            page.errors = problems.split("; ").map(str::to_owned).collect();
            page.form = entered;
            render(ApiError::from(SettingsError::Invalid(problems)).status(), &page)
        }
        Err(error) => failure(error),
    }
}

/// Sends the test notices now and shows each channel's outcome. Nothing stored changes
/// (so no redirect: the outcome is this response).
pub async fn test(user: ConsoleUser, State(state): State<AppState>) -> Response {
    let user = match user.at_least(Role::SuperAdmin) {
        Ok(user) => user,
        Err(refused) => return failure(refused),
    };
    let options = &state.settings;
    let sent = crate::notify::test_configured_channels(
        &state.pool,
        &options.public_url,
        &options.notifier,
        &state.metrics,
        &user.actor(),
    )
    .await;
    let report = match sent {
        Ok(report) => report,
        Err(error) => return failure(error),
    };
    let view = match settings::current(&state.pool).await {
        Ok(view) => view,
        Err(error) => return failure(error),
    };
    let mut page = NotificationsPage::new(&user, &view);
    page.notice = Some(if report.ok {
        "Test sent: every configured channel accepted it.".to_owned()
    } else {
        "Test sent: a channel failed; see below.".to_owned()
    });
    page.test = Some(lines(&report));
    render(StatusCode::OK, &page)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(secret: &str, clear: bool) -> SaveForm {
        SaveForm {
            webhook_url: "https://hooks.example/x".into(),
            webhook_secret: Some(SecretString::from(secret)),
            clear_webhook_secret: clear.then(|| "on".to_owned()),
            alertmanager_url: String::new(),
            alertmanager_severity: "warning".into(),
        }
    }

    #[test]
    fn an_empty_secret_field_keeps_the_stored_secret_and_the_checkbox_removes_it() {
        assert!(form("", false).patch().webhook_secret.is_none(), "unchanged");
        assert!(matches!(form("", true).patch().webhook_secret, Some(None)), "removed");
        assert!(matches!(form("typed-secret-0123456", true).patch().webhook_secret, Some(None)), "removal wins");
        let replaced = form("typed-secret-0123456", false).patch().webhook_secret;
        assert_eq!(replaced.flatten().map(|s| s.expose_secret().to_owned()).as_deref(), Some("typed-secret-0123456"));
        assert_eq!(form("", false).patch().alertmanager_url, Some(Some(String::new())), "a blank URL clears it");
    }
}
