//! Telling people that a permission request needs them, and that it no longer does.
//!
//! ```text
//! events ──► outbox projection ──► notification_outbox ──► reconciler lanes ──► webhook
//!            (Created → pending,      (one row per request,   (one per channel,    Alertmanager
//!             decided → reviewed)      channel and kind)       retries, re-sends)
//! ```
//! Nothing is sent from the request path: a notice exists because an event does, so it
//! survives crashes and restarts and is sent by exactly one replica (the reconciler's
//! leader). Channels are independent rows and independent lanes, so a dead webhook never
//! delays or loses an Alertmanager alert. `docs/NOTIFICATIONS.md` is the receiver's view.

pub mod alertmanager;
pub mod composite;
pub mod notice;
pub mod outbox;
pub mod reconciler;
pub mod settings;
pub mod webhook;

use std::time::Duration;

use async_trait::async_trait;

pub use alertmanager::Severity;
pub use composite::{
    send_test_notifications, test_configured_channels, ChannelFailure, ChannelOutcome, TestReport, TestResult,
};
pub use notice::{Links, RequestNotice};
pub use outbox::{attach_delivery_state, delivery_state, NotificationOutboxProjection};
pub use reconciler::{Reconciler, ReconcilerOptions};
pub use settings::{NotificationSettings, SettingsChange, SettingsPatch, SettingsView};

/// Checkpoints a worker other than a projection runner advances, with that worker's lock
/// (for `alexandria_projections::projection_status`): the reconciler's leader applies the
/// outbox projection, so it leads `notification_outbox`.
pub const CHECKPOINTS_LED_BY: &[(&str, &str)] = &[(outbox::OUTBOX_PROJECTION, reconciler::LOCK_KEY)];

/// Where notices go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Webhook,
    Alertmanager,
}

impl Channel {
    pub const ALL: [Channel; 2] = [Channel::Webhook, Channel::Alertmanager];

    /// The name in the outbox, in metrics and in `notifier_meta`.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Webhook => "webhook",
            Channel::Alertmanager => "alertmanager",
        }
    }

    pub fn parse(name: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

/// What a notice announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoticeKind {
    /// The request waits for a decision.
    Pending,
    /// The request was approved, rejected or expired.
    Reviewed,
}

impl NoticeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Pending => "pending",
            NoticeKind::Reviewed => "reviewed",
        }
    }

    pub fn parse(name: &str) -> Option<NoticeKind> {
        [NoticeKind::Pending, NoticeKind::Reviewed].into_iter().find(|k| k.as_str() == name)
    }
}

/// Why a send failed, in words safe to store and show to an admin: never a URL (a
/// webhook URL may carry a token) and never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DeliveryError(pub String);

impl DeliveryError {
    /// Describes a transport failure. reqwest puts the URL into its messages; it is
    /// stripped, and the innermost cause (e.g. "Connection refused") is kept.
    pub fn from_transport(error: reqwest::Error, timeout: Duration) -> Self {
        if error.is_timeout() {
            return DeliveryError(format!("no answer within {} s", timeout.as_secs_f64()));
        }
        let what = if error.is_connect() { "cannot connect" } else { "request failed" };
        let error = error.without_url();
        let mut cause: &dyn std::error::Error = &error;
        while let Some(source) = cause.source() {
            cause = source;
        }
        DeliveryError(format!("{what}: {cause}"))
    }

    /// A non-success HTTP answer, with the start of its body (receivers explain there).
    /// The outcome of one sent request: a 2xx is delivered, anything else an error that
    /// says what the receiver answered.
    pub async fn check(
        sent: Result<reqwest::Response, reqwest::Error>,
        timeout: Duration,
    ) -> Result<(), DeliveryError> {
        let response = sent.map_err(|error| DeliveryError::from_transport(error, timeout))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        Err(DeliveryError::from_status(status, &text))
    }

    pub fn from_status(status: reqwest::StatusCode, body: &str) -> Self {
        const MAX_BODY_CHARS: usize = 200;
        let body: String = body.trim().chars().take(MAX_BODY_CHARS).collect();
        if body.is_empty() {
            DeliveryError(format!("HTTP {status}"))
        } else {
            DeliveryError(format!("HTTP {status}: {body}"))
        }
    }
}

/// One channel's sender. The outbox decides *when* to call it; an implementation only
/// sends, once, within its timeout.
#[async_trait]
pub trait Notifier: Send + Sync {
    fn channel(&self) -> Channel;

    /// Announces that the request waits for a decision. For Alertmanager this is also
    /// the periodic re-send that keeps the alert firing.
    async fn notify_pending(&self, notice: &RequestNotice) -> Result<(), DeliveryError>;

    /// Announces the decision (or expiry); for Alertmanager, resolves the alert.
    async fn notify_reviewed(&self, notice: &RequestNotice) -> Result<(), DeliveryError>;
}

/// Default bound of one send (connect, request and response).
pub const DEFAULT_DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP client every notifier uses: bounded in time, and never following redirects
/// (a redirected POST silently becomes a GET, and a receiver's redirect is a
/// misconfiguration to show, not to obey).
pub fn http_client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("alexandria/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// What every sender needs besides the settings: the HTTP client, links for the
/// messages, and the time bounds.
#[derive(Clone)]
pub struct DeliveryContext {
    pub client: reqwest::Client,
    pub links: Links,
    /// Bound of one send.
    pub timeout: Duration,
    /// How long a firing Alertmanager alert lives without a re-send.
    pub alert_validity: Duration,
}

impl DeliveryContext {
    pub fn new(public_url: &str, timeout: Duration, alert_validity: Duration) -> anyhow::Result<Self> {
        Ok(DeliveryContext { client: http_client(timeout)?, links: Links::new(public_url), timeout, alert_validity })
    }
}
