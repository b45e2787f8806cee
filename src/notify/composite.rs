//! Fan-out over every configured channel, and the test send built on it.
//!
//! The durable path (the outbox) gets the same independence from separate rows and
//! lanes per channel; this is for sends that happen once, now, in front of a person.

use futures::future::join_all;
use serde::Serialize;
use sqlx::PgPool;

use super::notice::{RequestNotice, Review};
use super::reconciler::ReconcilerOptions;
use super::settings::{NotificationSettings, SettingsError};
use super::{Channel, DeliveryContext, DeliveryError, Notifier};
use crate::metrics::Metrics;
use crate::names::Actor;

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ChannelFailure {
    #[schema(value_type = String)]
    pub channel: &'static str,
    pub error: String,
}

/// Sends to every channel at once: a slow or failing channel neither delays nor
/// prevents the others' sends, and every failure is reported.
pub struct CompositeNotifier {
    notifiers: Vec<Box<dyn Notifier>>,
    metrics: Metrics,
}

impl CompositeNotifier {
    pub fn new(notifiers: Vec<Box<dyn Notifier>>, metrics: Metrics) -> Self {
        Self { notifiers, metrics }
    }

    pub fn is_empty(&self) -> bool {
        self.notifiers.is_empty()
    }

    async fn fan_out<'a, F, Fut>(&'a self, send: F) -> Vec<ChannelFailure>
    where
        F: Fn(&'a dyn Notifier) -> Fut,
        Fut: std::future::Future<Output = Result<(), DeliveryError>> + 'a,
    {
        let sends = self.notifiers.iter().map(|notifier| {
            let sent = send(notifier.as_ref());
            async move { (notifier.channel(), sent.await) }
        });
        let mut failures = Vec::new();
        for (channel, result) in join_all(sends).await {
            match result {
                Ok(()) => self.metrics.notifier_delivery(channel.as_str(), "delivered"),
                Err(error) => {
                    self.metrics.notifier_delivery(channel.as_str(), "failed");
                    failures.push(ChannelFailure { channel: channel.as_str(), error: error.0 });
                }
            }
        }
        failures
    }

    pub async fn notify_pending(&self, notice: &RequestNotice) -> Vec<ChannelFailure> {
        self.fan_out(|notifier| notifier.notify_pending(notice)).await
    }

    pub async fn notify_reviewed(&self, notice: &RequestNotice) -> Vec<ChannelFailure> {
        self.fan_out(|notifier| notifier.notify_reviewed(notice)).await
    }
}

/// `POST /admin/notifications/test`'s answer: `{"ok": true}`, or `ok: false` with one
/// error per failed channel. `channels` (not in the JSON, which the runbook fixes) says
/// what became of every channel, for the console.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct TestReport {
    pub ok: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ChannelFailure>,
    #[serde(skip)]
    #[schema(ignore)]
    pub channels: Vec<ChannelOutcome>,
}

/// What a test send did on one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelOutcome {
    pub channel: Channel,
    pub result: TestResult,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestResult {
    Delivered,
    /// Why it failed, in words safe to show (no URL, no secret).
    Failed(String),
    /// The channel has no settings, so nothing was sent.
    NotConfigured,
}

/// Sends a synthetic pending notice and then its review through every configured
/// channel: an Alertmanager sees an alert fire and resolve, a webhook receives both
/// deliveries (marked `"test": true`). A channel that is not configured is skipped, not
/// an error.
pub async fn send_test_notifications(
    settings: &NotificationSettings,
    context: &DeliveryContext,
    metrics: &Metrics,
    actor: &Actor,
) -> TestReport {
    let composite = CompositeNotifier::new(settings.notifiers(context), metrics.clone());
    let now = chrono::Utc::now();
    let pending = RequestNotice::synthetic(now);
    let review = Review {
        status: alexandria_domain::RequestStatus::Approved,
        by: Some(actor.to_string()),
        at: chrono::Utc::now(),
        reason: None,
    };
    let reviewed = pending.clone().reviewed(&review);
    let mut errors = composite.notify_pending(&pending).await;
    for failure in composite.notify_reviewed(&reviewed).await {
        // One error per channel: the first is the one that explains it.
        if !errors.iter().any(|e| e.channel == failure.channel) {
            errors.push(failure);
        }
    }
    let channels = Channel::ALL
        .into_iter()
        .map(|channel| {
            let result = if settings.notifier(channel, context).is_none() {
                TestResult::NotConfigured
            } else {
                match errors.iter().find(|failure| failure.channel == channel.as_str()) {
                    Some(failure) => TestResult::Failed(failure.error.clone()),
                    None => TestResult::Delivered,
                }
            };
            ChannelOutcome { channel, result }
        })
        .collect();
    TestReport { ok: errors.is_empty(), errors, channels }
}

/// The test send of `POST /admin/notifications/test` and the console's Test button: the
/// stored settings, the reconciler's time bounds, links to `public_url`.
pub async fn test_configured_channels(
    pool: &PgPool,
    public_url: &str,
    options: &ReconcilerOptions,
    metrics: &Metrics,
    actor: &Actor,
) -> Result<TestReport, SettingsError> {
    let settings = NotificationSettings::load(&mut *pool.acquire().await?).await?;
    let context = DeliveryContext::new(public_url, options.delivery_timeout, options.alert_validity)?;
    let report = send_test_notifications(&settings, &context, metrics, actor).await;
    tracing::info!(%actor, ok = report.ok, "test notifications sent");
    Ok(report)
}
