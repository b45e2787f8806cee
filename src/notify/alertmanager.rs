//! The Alertmanager channel: API v2 `POST {url}/api/v2/alerts`.
//!
//! A pending request is a firing alert whose labels identify it (`alertname`,
//! `request_id`, `agent`, `tool`, `severity`). Alertmanager forgets an alert once its
//! `endsAt` passes, so the reconciler re-sends it while the request is pending, each time
//! with a fresh `endsAt`; a decision resolves it by posting the same labels with
//! `endsAt` = now. If Alexandria stops, its alerts resolve by themselves within
//! `alert_validity` instead of firing forever.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use super::notice::{Links, RequestNotice};
use super::{Channel, DeliveryError, Notifier};

pub const ALERT_NAME: &str = "AlexandriaPermissionRequestPending";
/// Arguments shown in an alert's description, in characters.
const ARGUMENTS_PREVIEW_CHARS: usize = 500;

/// The `severity` label of the alerts sent (a setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Severity {
    Critical,
    #[default]
    Warning,
    Info,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Critical, Severity::Warning, Severity::Info];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }

    pub fn parse(name: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl Serialize for Severity {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

pub struct AlertmanagerNotifier {
    alerts_url: String,
    severity: Severity,
    client: reqwest::Client,
    links: Links,
    timeout: Duration,
    alert_validity: Duration,
}

/// `{base}/api/v2/alerts`, for a base with or without a path prefix or trailing slash.
pub fn alerts_url(base: &str) -> String {
    format!("{}/api/v2/alerts", base.trim_end_matches('/'))
}

impl AlertmanagerNotifier {
    /// `alert_validity`: how long a firing alert stays firing without a re-send.
    pub fn new(
        base_url: &str,
        severity: Severity,
        client: reqwest::Client,
        links: Links,
        timeout: Duration,
        alert_validity: Duration,
    ) -> Self {
        Self { alerts_url: alerts_url(base_url), severity, client, links, timeout, alert_validity }
    }

    /// The labels that identify a request's alert. They must be identical in the firing
    /// and the resolving post.
    pub fn labels(&self, notice: &RequestNotice) -> Value {
        json!({
            "alertname": ALERT_NAME,
            "request_id": notice.id.to_string(),
            "agent": notice.agent,
            "tool": notice.tool,
            "severity": self.severity.as_str(),
        })
    }

    /// One postable alert; resolved when `ends_at` is now or earlier.
    pub fn alert(&self, notice: &RequestNotice, ends_at: DateTime<Utc>) -> Value {
        let arguments = notice.arguments_preview(ARGUMENTS_PREVIEW_CHARS);
        let test = if notice.test { " (test notification)" } else { "" };
        let (summary, description) = match notice.reviewed_at {
            None => (
                format!("{} wants to call {}: approval needed{test}", notice.agent, notice.tool),
                format!(
                    "Permission request {} by {}: {} with arguments {arguments}. It expires at {} unless an \
                     admin approves or rejects it.",
                    notice.id,
                    notice.requested_by,
                    notice.tool,
                    notice.expires_at.to_rfc3339()
                ),
            ),
            Some(at) => {
                let by = notice.reviewed_by.as_deref().map(|by| format!(" by {by}")).unwrap_or_default();
                let reason = notice.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
                (
                    format!("{}'s call of {} was {}{test}", notice.agent, notice.tool, notice.status),
                    format!(
                        "Permission request {} ({} with arguments {arguments}) was {}{by} at {}{reason}.",
                        notice.id,
                        notice.tool,
                        notice.status,
                        at.to_rfc3339()
                    ),
                )
            }
        };
        json!({
            "labels": self.labels(notice),
            "annotations": {
                "summary": summary,
                "description": description,
                "approve_url": self.links.approve_url(notice.id),
                "api_approve_url": self.links.api_approve_url(notice.id),
            },
            "startsAt": notice.created_at.to_rfc3339(),
            "endsAt": ends_at.to_rfc3339(),
            "generatorURL": self.links.approve_url(notice.id),
        })
    }

    async fn post(&self, alert: Value) -> Result<(), DeliveryError> {
        let sent = self.client.post(&self.alerts_url).json(&json!([alert])).send().await;
        DeliveryError::check(sent, self.timeout).await
    }
}

#[async_trait]
impl Notifier for AlertmanagerNotifier {
    fn channel(&self) -> Channel {
        Channel::Alertmanager
    }

    async fn notify_pending(&self, notice: &RequestNotice) -> Result<(), DeliveryError> {
        let validity = chrono::Duration::from_std(self.alert_validity).unwrap_or(chrono::Duration::minutes(5));
        self.post(self.alert(notice, Utc::now() + validity)).await
    }

    async fn notify_reviewed(&self, notice: &RequestNotice) -> Result<(), DeliveryError> {
        self.post(self.alert(notice, Utc::now())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_url_accepts_prefixes_and_trailing_slashes() {
        assert_eq!(alerts_url("http://am:9093"), "http://am:9093/api/v2/alerts");
        assert_eq!(alerts_url("http://am:9093/"), "http://am:9093/api/v2/alerts");
        assert_eq!(alerts_url("https://mon.example/alertmanager/"), "https://mon.example/alertmanager/api/v2/alerts");
    }

    #[test]
    fn firing_and_resolving_alerts_share_their_labels() {
        let notifier = AlertmanagerNotifier::new(
            "http://am:9093",
            Severity::Critical,
            reqwest::Client::new(),
            Links::new("https://gw.example"),
            Duration::from_secs(10),
            Duration::from_secs(300),
        );
        let pending = RequestNotice::synthetic(Utc::now());
        let review = super::super::notice::Review {
            status: alexandria_domain::RequestStatus::Rejected,
            by: Some("user:admin".into()),
            at: Utc::now(),
            reason: Some("no".into()),
        };
        let reviewed = pending.clone().reviewed(&review);
        let firing = notifier.alert(&pending, Utc::now());
        let resolving = notifier.alert(&reviewed, Utc::now());
        assert_eq!(firing["labels"], resolving["labels"]);
        assert_eq!(firing["labels"]["severity"], "critical");
        assert_eq!(firing["labels"]["alertname"], ALERT_NAME);
        assert_eq!(firing["generatorURL"], format!("https://gw.example/requests/{}", pending.id));
        assert!(resolving["annotations"]["description"].as_str().unwrap().contains("rejected by user:admin"));
    }
}
