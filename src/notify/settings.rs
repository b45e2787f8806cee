//! Notification settings: one row in `notification_settings`, read by the reconciler on
//! every round (so a change applies on every replica without a restart) and changed by
//! `PATCH /admin/notifications/config`.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool, Row};

use super::alertmanager::{AlertmanagerNotifier, Severity};
use super::webhook::WebhookNotifier;
use super::{Channel, DeliveryContext, Notifier};
use crate::names::Actor;
use crate::validation::check_http_url;

/// The stored settings, secret included. Only the reconciler and the test send use the
/// secret; everything shown to people goes through [`SettingsView`].
#[derive(Debug, Clone)]
pub struct NotificationSettings {
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<SecretString>,
    pub alertmanager_url: Option<String>,
    pub alertmanager_severity: Severity,
    pub updated_at: DateTime<Utc>,
    pub updated_by: Option<String>,
}

const COLUMNS: &str = "webhook_url, webhook_secret, alertmanager_url, alertmanager_severity, updated_at, updated_by";

impl NotificationSettings {
    fn from_row(row: &sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        let severity: String = row.try_get("alertmanager_severity")?;
        Ok(NotificationSettings {
            webhook_url: row.try_get("webhook_url")?,
            webhook_secret: row.try_get::<Option<String>, _>("webhook_secret")?.map(SecretString::from),
            alertmanager_url: row.try_get("alertmanager_url")?,
            // The column's CHECK allows only known names.
            alertmanager_severity: Severity::parse(&severity).unwrap_or_default(),
            updated_at: row.try_get("updated_at")?,
            updated_by: row.try_get("updated_by")?,
        })
    }

    pub async fn load(conn: &mut PgConnection) -> Result<Self, sqlx::Error> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM notification_settings")).fetch_one(&mut *conn).await?;
        Self::from_row(&row)
    }

    /// The settings, locked until the end of the transaction `conn` is in, so two
    /// concurrent changes apply one after the other and each sees the other's result.
    async fn load_for_update(conn: &mut PgConnection) -> Result<Self, sqlx::Error> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM notification_settings FOR UPDATE"))
            .fetch_one(&mut *conn)
            .await?;
        Self::from_row(&row)
    }

    pub fn view(&self) -> SettingsView {
        SettingsView {
            webhook_url: self.webhook_url.clone(),
            webhook_secret: if self.webhook_secret.is_some() { "set" } else { "unset" },
            alertmanager_url: self.alertmanager_url.clone(),
            alertmanager_severity: self.alertmanager_severity,
            updated_at: self.updated_at,
            updated_by: self.updated_by.clone(),
        }
    }

    /// The sender for `channel`, if the channel is configured.
    pub fn notifier(&self, channel: Channel, context: &DeliveryContext) -> Option<Box<dyn Notifier>> {
        match channel {
            Channel::Webhook => {
                let (url, secret) = (self.webhook_url.as_ref()?, self.webhook_secret.as_ref()?);
                Some(Box::new(WebhookNotifier::new(
                    url.clone(),
                    secret.clone(),
                    context.client.clone(),
                    context.links.clone(),
                    context.timeout,
                )))
            }
            Channel::Alertmanager => Some(Box::new(AlertmanagerNotifier::new(
                self.alertmanager_url.as_ref()?,
                self.alertmanager_severity,
                context.client.clone(),
                context.links.clone(),
                context.timeout,
                context.alert_validity,
            ))),
        }
    }

    /// Senders for every configured channel.
    pub fn notifiers(&self, context: &DeliveryContext) -> Vec<Box<dyn Notifier>> {
        Channel::ALL.into_iter().filter_map(|channel| self.notifier(channel, context)).collect()
    }
}

/// The settings as the API shows them: the secret only as `"set"` or `"unset"`.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct SettingsView {
    pub webhook_url: Option<String>,
    #[schema(value_type = String, example = "unset")]
    pub webhook_secret: &'static str,
    pub alertmanager_url: Option<String>,
    #[schema(value_type = String, example = "warning")]
    pub alertmanager_severity: Severity,
    pub updated_at: DateTime<Utc>,
    pub updated_by: Option<String>,
}

impl SettingsView {
    /// The fields an audit record compares (no timestamps, no secret).
    pub fn audit_json(&self) -> Value {
        json!({
            "webhook_url": self.webhook_url,
            "webhook_secret": self.webhook_secret,
            "alertmanager_url": self.alertmanager_url,
            "alertmanager_severity": self.alertmanager_severity,
        })
    }
}

/// `PATCH /admin/notifications/config`: a field that is absent stays as it is; `null` or
/// `""` clears it (a cleared severity is back to `warning`). Its `Debug` hides the secret.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub webhook_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub webhook_secret: Option<Option<SecretString>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub alertmanager_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub alertmanager_severity: Option<Option<String>>,
}

/// Tells a field sent as `null` (`Some(None)`) from one not sent (`None`, by `default`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// What a patch changed, for the response and the admin audit trail.
#[derive(Debug, Clone)]
pub struct SettingsChange {
    pub before: SettingsView,
    pub after: SettingsView,
    /// A new secret replaced the old one (the views show both only as "set").
    pub secret_replaced: bool,
}

impl SettingsChange {
    /// `before` for `admin_audit`: no secret, no timestamps.
    pub fn audit_before(&self) -> Value {
        self.before.audit_json()
    }

    /// `after` for `admin_audit`; says whether the secret was replaced, never what it is.
    pub fn audit_after(&self) -> Value {
        let mut after = self.after.audit_json();
        after["webhook_secret_replaced"] = json!(self.secret_replaced);
        after
    }
}

/// Why a settings change was refused.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// Every problem with the patch, joined.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The test send could not be prepared (its HTTP client).
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The settings as people see them (`GET /admin/notifications/config`, the console).
pub async fn current(pool: &PgPool) -> Result<SettingsView, SettingsError> {
    let mut conn = pool.acquire().await?;
    Ok(NotificationSettings::load(&mut conn).await?.view())
}

/// Applies a partial update and its audit record in one transaction (every front end's
/// way to change the settings). Refused, with nothing changed, when any field is invalid.
pub async fn update(pool: &PgPool, actor: &Actor, patch: SettingsPatch) -> Result<SettingsChange, SettingsError> {
    let mut tx = pool.begin().await?;
    let change = patch.apply(&mut tx, actor).await?;
    tx.commit().await?;
    // Field names only: a webhook URL can carry a token, and logs are not for secrets.
    let (before, after) = (change.audit_before(), change.audit_after());
    let mut changed: Vec<&str> = ["webhook_url", "webhook_secret", "alertmanager_url", "alertmanager_severity"]
        .into_iter()
        .filter(|field| before.get(field) != after.get(field))
        .collect();
    if change.secret_replaced {
        changed.push("webhook_secret");
    }
    tracing::info!(%actor, changed = ?changed, "notification settings changed");
    Ok(change)
}

/// `admin_audit.action` and `.target` of a settings change.
pub const AUDIT_ACTION: &str = "notification_settings.update";
pub const AUDIT_TARGET: &str = "notification_settings";

pub const MIN_SECRET_CHARS: usize = 16;
pub const MAX_SECRET_CHARS: usize = 512;

/// `None` for null or blank: the field is cleared.
fn non_blank(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

impl SettingsPatch {
    /// The settings after this patch, or every reason it is refused.
    fn apply_to(self, current: &NotificationSettings) -> Result<NotificationSettings, Vec<String>> {
        let mut errors = Vec::new();
        let mut next = current.clone();
        if let Some(value) = self.webhook_url {
            match non_blank(value).map(|url| check_http_url("webhook_url", &url)).transpose() {
                Ok(url) => next.webhook_url = url,
                Err(error) => errors.push(error),
            }
        }
        if let Some(value) = self.alertmanager_url {
            match non_blank(value).map(|url| check_http_url("alertmanager_url", &url)).transpose() {
                Ok(url) => next.alertmanager_url = url,
                Err(error) => errors.push(error),
            }
        }
        if let Some(value) = self.webhook_secret {
            // Secrets are taken as given (no trimming): they are compared byte for byte.
            match value.filter(|s| !s.expose_secret().is_empty()) {
                None => next.webhook_secret = None,
                Some(secret)
                    if (MIN_SECRET_CHARS..=MAX_SECRET_CHARS).contains(&secret.expose_secret().chars().count()) =>
                {
                    next.webhook_secret = Some(secret)
                }
                Some(_) => errors
                    .push(format!("webhook_secret must be {MIN_SECRET_CHARS} to {MAX_SECRET_CHARS} characters long")),
            }
        }
        if let Some(value) = self.alertmanager_severity {
            match non_blank(value) {
                None => next.alertmanager_severity = Severity::default(),
                Some(name) => match Severity::parse(&name) {
                    Some(severity) => next.alertmanager_severity = severity,
                    None => errors
                        .push(format!("alertmanager_severity must be one of critical, warning, info, not {name:?}")),
                },
            }
        }
        if errors.is_empty() && next.webhook_url.is_some() && next.webhook_secret.is_none() {
            errors.push(
                "webhook_secret is required while webhook_url is set: receivers verify deliveries with it".to_owned(),
            );
        }
        if errors.is_empty() {
            Ok(next)
        } else {
            Err(errors)
        }
    }

    /// Applies the patch and appends its `admin_audit` record, both inside the caller's
    /// transaction: a change is never without its record. A refused patch changes
    /// nothing: 422 listing every problem.
    pub async fn apply(self, conn: &mut PgConnection, actor: &Actor) -> Result<SettingsChange, SettingsError> {
        let current = NotificationSettings::load_for_update(conn).await?;
        let next = self.apply_to(&current).map_err(|errors| SettingsError::Invalid(errors.join("; ")))?;
        let row = sqlx::query(&format!(
            "UPDATE notification_settings SET webhook_url = $1, webhook_secret = $2, alertmanager_url = $3, \
               alertmanager_severity = $4, updated_at = now(), updated_by = $5 \
             RETURNING {COLUMNS}"
        ))
        .bind(&next.webhook_url)
        .bind(next.webhook_secret.as_ref().map(ExposeSecret::expose_secret))
        .bind(&next.alertmanager_url)
        .bind(next.alertmanager_severity.as_str())
        .bind(actor.to_string())
        .fetch_one(&mut *conn)
        .await?;
        let stored = NotificationSettings::from_row(&row)?;
        let secret_replaced = match (&current.webhook_secret, &stored.webhook_secret) {
            (Some(before), Some(after)) => before.expose_secret() != after.expose_secret(),
            _ => false,
        };
        let change = SettingsChange { before: current.view(), after: stored.view(), secret_replaced };
        crate::audit_trail::record(
            conn,
            actor,
            AUDIT_ACTION,
            AUDIT_TARGET,
            Some(change.audit_before()),
            Some(change.audit_after()),
        )
        .await?;
        Ok(change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> NotificationSettings {
        NotificationSettings {
            webhook_url: None,
            webhook_secret: None,
            alertmanager_url: Some("http://am:9093".into()),
            alertmanager_severity: Severity::Warning,
            updated_at: Utc::now(),
            updated_by: None,
        }
    }

    fn patch(body: Value) -> SettingsPatch {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn absent_fields_stay_and_null_or_empty_clears() {
        let next = patch(json!({"alertmanager_severity": "critical"})).apply_to(&settings()).unwrap();
        assert_eq!(next.alertmanager_url.as_deref(), Some("http://am:9093"));
        assert_eq!(next.alertmanager_severity, Severity::Critical);
        assert_eq!(patch(json!({"alertmanager_url": null})).apply_to(&settings()).unwrap().alertmanager_url, None);
        assert_eq!(patch(json!({"alertmanager_url": " "})).apply_to(&settings()).unwrap().alertmanager_url, None);
        let mut critical = settings();
        critical.alertmanager_severity = Severity::Critical;
        let cleared = patch(json!({"alertmanager_severity": ""})).apply_to(&critical).unwrap();
        assert_eq!(cleared.alertmanager_severity, Severity::Warning);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let errors = patch(json!({
            "webhook_url": "ftp://x.example/hook",
            "alertmanager_url": "not a url",
            "alertmanager_severity": "loud",
            "webhook_secret": "short",
        }))
        .apply_to(&settings())
        .unwrap_err();
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(errors[0].contains("http or https"), "{errors:?}");
        assert!(errors[1].contains("alertmanager_url is not a valid URL"), "{errors:?}");
        assert!(errors[2].contains("16 to 512"), "{errors:?}");
        assert!(errors[3].contains("critical, warning, info"), "{errors:?}");
    }

    #[test]
    fn a_webhook_needs_a_secret() {
        let errors = patch(json!({"webhook_url": "https://hooks.example/x"})).apply_to(&settings()).unwrap_err();
        assert!(errors[0].contains("webhook_secret is required"), "{errors:?}");
        let next = patch(json!({"webhook_url": "https://hooks.example/x", "webhook_secret": "0123456789abcdef"}))
            .apply_to(&settings())
            .unwrap();
        assert!(next.webhook_secret.is_some());
    }

    #[test]
    fn unknown_fields_and_wrong_types_do_not_deserialize() {
        assert!(serde_json::from_value::<SettingsPatch>(json!({"webhook": "x"})).is_err());
        assert!(serde_json::from_value::<SettingsPatch>(json!({"webhook_url": 3})).is_err());
    }

    #[test]
    fn the_view_shows_whether_a_secret_is_set_but_never_the_secret() {
        let mut with_secret = settings();
        with_secret.webhook_secret = Some(SecretString::from("0123456789abcdef-secret"));
        let shown = serde_json::to_string(&with_secret.view()).unwrap();
        assert!(shown.contains(r#""webhook_secret":"set""#), "{shown}");
        assert!(!shown.contains("0123456789abcdef-secret"));
        assert!(!format!("{with_secret:?}").contains("0123456789abcdef-secret"));
        let patch = patch(json!({"webhook_secret": "0123456789abcdef-secret"}));
        assert!(!format!("{patch:?}").contains("0123456789abcdef-secret"));
    }
}
