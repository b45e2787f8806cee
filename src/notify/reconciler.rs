//! The notification reconciler: one process across all replicas (an advisory lock) keeps
//! the outbox projection caught up, expires requests past their deadline, and sends due
//! notices, one lane per channel.
//!
//! Waking: the process's `EventListener` (NOTIFY on every append) wakes the feeder; the
//! feeder wakes the lanes when it added rows; every loop also polls, and sleeps no longer
//! than until the next known deadline (a request's expiry, a notice's retry or re-send).
//!
//! Delivery is at least once: a notice is marked delivered after the receiver said so,
//! and a process that dies between the two sends it again once its lease runs out.
//! Receivers dedupe webhooks by `X-Alexandria-Delivery`; Alertmanager dedupes by labels.

use std::sync::Arc;
use std::time::Duration;

use alexandria_domain::{EventMetadata, PermissionRequestCommand};
use alexandria_projections::runner::{catch_up, record_error, DEFAULT_BATCH_SIZE};
use alexandria_projections::{Backoff, EventListener, Leadership, Projection};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use sqlx::PgPool;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::outbox::{self, ClaimedNotice, NotificationOutboxProjection};
use super::settings::NotificationSettings;
use super::{Channel, DeliveryContext, NoticeKind, Notifier, DEFAULT_DELIVERY_TIMEOUT};
use crate::approval::store::{CommandError, PermissionStore};
use crate::metrics::Metrics;
use crate::names::Actor;

pub const LOCK_KEY: &str = "alexandria.notification_reconciler";
/// The actor recorded on the `Expired` events the reconciler appends.
pub const EXPIRY_ACTOR: Actor = Actor::System("reconciler");
/// Requests expired per round; the next round follows at once when there were more.
const EXPIRY_BATCH: i64 = 100;

#[derive(Debug, Clone)]
pub struct ReconcilerOptions {
    /// Fallback re-check when no notification arrives, and a stand-by's retry interval.
    pub poll_interval: Duration,
    /// How often a still-pending request's alert is re-sent. Well below `alert_validity`
    /// so one lost re-send does not let the alert lapse.
    pub alert_refresh_interval: Duration,
    /// How long a firing alert stays firing without a re-send (`endsAt` = send + this).
    pub alert_validity: Duration,
    /// First retry delay; doubled per consecutive failure up to `retry_max`, with jitter.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// A reviewed notice still failing this long after it was due is given up. (A
    /// pending notice needs no such bound: its request expires.)
    pub give_up_after: Duration,
    /// Bound of one send.
    pub delivery_timeout: Duration,
    /// Notices claimed per round and channel, and how many of them are sent at once.
    pub lane_batch: i64,
    pub lane_concurrency: usize,
}

impl Default for ReconcilerOptions {
    fn default() -> Self {
        ReconcilerOptions {
            poll_interval: Duration::from_secs(1),
            alert_refresh_interval: Duration::from_secs(60),
            alert_validity: Duration::from_secs(5 * 60),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(5 * 60),
            give_up_after: Duration::from_secs(24 * 60 * 60),
            delivery_timeout: DEFAULT_DELIVERY_TIMEOUT,
            lane_batch: 32,
            lane_concurrency: 8,
        }
    }
}

impl ReconcilerOptions {
    /// Delay before the next try after `consecutive_failures` failures: exponential,
    /// capped, with "equal jitter" (half fixed, half random) so that many notices failing
    /// together do not retry together.
    pub fn retry_delay(&self, consecutive_failures: i32) -> Duration {
        let failures = u32::try_from(consecutive_failures).unwrap_or(0);
        Backoff::new(self.retry_base, self.retry_max).with_jitter().delay(failures)
    }

    /// How long a claimed notice is reserved for its sender: the send's bound plus a
    /// margin. Only matters if the sender dies mid-send.
    fn lease(&self) -> Duration {
        self.delivery_timeout + Duration::from_secs(30)
    }
}

pub struct Reconciler {
    pool: PgPool,
    store: PermissionStore,
    listener: Arc<EventListener>,
    metrics: Metrics,
    public_url: String,
    replica_id: String,
    options: ReconcilerOptions,
}

impl Reconciler {
    pub fn new(
        pool: PgPool,
        store: PermissionStore,
        listener: Arc<EventListener>,
        metrics: Metrics,
        public_url: &str,
        replica_id: &str,
        options: ReconcilerOptions,
    ) -> Self {
        Reconciler {
            pool,
            store,
            listener,
            metrics,
            public_url: public_url.to_owned(),
            replica_id: replica_id.to_owned(),
            options,
        }
    }

    /// Runs until `shutdown`: leads when it can, stands by while another replica leads.
    pub async fn run(self, shutdown: CancellationToken) {
        let context =
            match DeliveryContext::new(&self.public_url, self.options.delivery_timeout, self.options.alert_validity) {
                Ok(context) => context,
                Err(error) => {
                    tracing::error!(error = format!("{error:#}"), "cannot build the notification HTTP client");
                    return;
                }
            };
        let standby = self.options.poll_interval * 5;
        Leadership::run_while_leading(&self.pool, LOCK_KEY, standby, &shutdown, |leadership| {
            self.lead(leadership, &context, &shutdown)
        })
        .await
    }

    async fn lead(
        &self,
        mut leadership: Leadership,
        context: &DeliveryContext,
        shutdown: &CancellationToken,
    ) -> Leadership {
        // Cancelled on shutdown or when the lock is lost; the lanes finish the sends in
        // flight and stop.
        let leading = shutdown.child_token();
        let (wake_lanes, lanes_woken) = watch::channel(0u64);
        let lanes = futures::future::join_all(
            Channel::ALL.map(|channel| self.lane(channel, context, lanes_woken.clone(), &leading)),
        );
        tokio::join!(self.feed(&mut leadership, &wake_lanes, &leading), lanes);
        leadership
    }

    /// Keeps the outbox projection caught up and expires overdue requests.
    async fn feed(&self, leadership: &mut Leadership, wake_lanes: &watch::Sender<u64>, leading: &CancellationToken) {
        let projection = NotificationOutboxProjection;
        // Subscribe before the first catch-up so no append in between goes unnoticed.
        let mut changes = self.listener.subscribe();
        let mut lock_checked = Instant::now();
        loop {
            match catch_up(&self.pool, &projection, DEFAULT_BATCH_SIZE).await {
                Ok(0) => {}
                Ok(_) => wake_lanes.send_modify(|round| *round += 1),
                Err(error) => {
                    tracing::error!(error = format!("{error:#}"), "notification outbox projection failed");
                    record_error(&self.pool, projection.name(), &error).await;
                }
            }
            let next_expiry = match self.expire_overdue().await {
                Ok(next) => next,
                Err(error) => {
                    tracing::warn!(error = format!("{error:#}"), "cannot expire overdue permission requests");
                    None
                }
            };
            if lock_checked.elapsed() >= self.options.poll_interval {
                lock_checked = Instant::now();
                if !leadership.is_held().await {
                    tracing::warn!("lost the notification reconciler lock");
                    leading.cancel();
                    return;
                }
            }
            let wake_at = deadline(next_expiry, self.options.poll_interval);
            tokio::select! {
                _ = leading.cancelled() => return,
                change = changes.recv() => {
                    if let Err(broadcast::error::RecvError::Closed) = change {
                        // No more hints: polling alone from here on.
                        changes = self.listener.subscribe();
                        tokio::time::sleep_until(wake_at).await;
                    }
                }
                _ = tokio::time::sleep_until(wake_at) => {}
            }
        }
    }

    /// Expires pending requests past their deadline, through the event store like any
    /// other command. Returns when the next pending request falls due.
    async fn expire_overdue(&self) -> anyhow::Result<Option<DateTime<Utc>>> {
        let metadata = EventMetadata::new(EXPIRY_ACTOR.to_string(), &self.replica_id, Uuid::new_v4().to_string());
        loop {
            let now = Utc::now();
            // Pending past the approval window, or approved but not run by the execution
            // deadline; each through its own partial index.
            let overdue: Vec<Uuid> = sqlx::query_scalar(
                "(SELECT id FROM permission_requests WHERE status = 'pending' AND expires_at <= $1 \
                  ORDER BY expires_at LIMIT $2) \
                 UNION ALL \
                 (SELECT id FROM permission_requests WHERE status = 'approved' AND execute_by <= $1 \
                  ORDER BY execute_by LIMIT $2)",
            )
            .bind(now)
            .bind(EXPIRY_BATCH)
            .fetch_all(&self.pool)
            .await?;
            let mut expired = 0;
            for id in &overdue {
                match self.store.execute(*id, PermissionRequestCommand::Expire { at: Utc::now() }, &metadata).await {
                    Ok(applied) if !applied.events.is_empty() => expired += 1,
                    Ok(_) => {}
                    // Decided meanwhile, or the read model is behind a decision: fine.
                    Err(CommandError::Domain(reason)) => tracing::debug!(request_id = %id, %reason, "not expired"),
                    Err(error) => tracing::warn!(request_id = %id, %error, "cannot expire permission request"),
                }
            }
            if expired > 0 {
                tracing::info!(expired, "expired permission requests past their deadline");
            }
            // A full batch that expired something may have more behind it; a batch whose
            // commands all failed would just be read again.
            if (overdue.len() as i64) < EXPIRY_BATCH || expired == 0 {
                // One row always; NULL when nothing is pending or approved (decoded as an
                // Option: `fetch_optional` of a non-null type failed on that NULL).
                let next: Option<DateTime<Utc>> = sqlx::query_scalar(
                    "SELECT least( \
                       (SELECT expires_at FROM permission_requests WHERE status = 'pending' AND expires_at > $1 \
                        ORDER BY expires_at LIMIT 1), \
                       (SELECT execute_by FROM permission_requests WHERE status = 'approved' AND execute_by > $1 \
                        ORDER BY execute_by LIMIT 1))",
                )
                .bind(now)
                .fetch_one(&self.pool)
                .await?;
                return Ok(next);
            }
        }
    }

    /// Sends one channel's due notices until leadership ends.
    async fn lane(
        &self,
        channel: Channel,
        context: &DeliveryContext,
        mut woken: watch::Receiver<u64>,
        leading: &CancellationToken,
    ) {
        while !leading.is_cancelled() {
            let next_due = match self.deliver_due(channel, context, leading).await {
                Ok(next) => next,
                Err(error) => {
                    tracing::warn!(
                        channel = channel.as_str(),
                        error = format!("{error:#}"),
                        "notification lane failed"
                    );
                    None
                }
            };
            let wake_at = deadline(next_due, self.options.poll_interval);
            tokio::select! {
                _ = leading.cancelled() => return,
                changed = woken.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep_until(wake_at) => {}
            }
        }
    }

    /// Sends everything of `channel` that is due now. Returns when the next notice falls
    /// due. An unconfigured channel sends nothing: its notices wait, and go out if it is
    /// configured while they still matter.
    async fn deliver_due(
        &self,
        channel: Channel,
        context: &DeliveryContext,
        leading: &CancellationToken,
    ) -> anyhow::Result<Option<DateTime<Utc>>> {
        let settings = NotificationSettings::load(&mut *self.pool.acquire().await?).await?;
        let Some(notifier) = settings.notifier(channel, context) else {
            return Ok(None);
        };
        while !leading.is_cancelled() {
            let claimed = outbox::claim_due(&self.pool, channel, self.options.lane_batch, self.options.lease()).await?;
            if claimed.is_empty() {
                break;
            }
            futures::stream::iter(claimed)
                .for_each_concurrent(self.options.lane_concurrency, |notice| self.deliver(notifier.as_ref(), notice))
                .await;
        }
        Ok(outbox::next_due(&self.pool, channel).await?)
    }

    async fn deliver(&self, notifier: &dyn Notifier, claimed: ClaimedNotice) {
        let result = match claimed.kind {
            NoticeKind::Pending => notifier.notify_pending(&claimed.notice).await,
            NoticeKind::Reviewed => notifier.notify_reviewed(&claimed.notice).await,
        };
        let channel = claimed.channel.as_str();
        let recorded = match result {
            Ok(()) => {
                self.metrics.notifier_delivery(channel, if claimed.is_refresh { "refreshed" } else { "delivered" });
                // A firing alert is kept alive for as long as its request is pending.
                let refresh = (claimed.channel == Channel::Alertmanager && claimed.kind == NoticeKind::Pending)
                    .then_some(self.options.alert_refresh_interval);
                outbox::record_success(&self.pool, &claimed, refresh).await
            }
            Err(error) => {
                self.metrics.notifier_delivery(channel, "failed");
                let failures = claimed.consecutive_failures + 1;
                let overdue = Utc::now() - claimed.created_at;
                let give_up = claimed.kind == NoticeKind::Reviewed
                    && overdue.to_std().is_ok_and(|overdue| overdue > self.options.give_up_after);
                let retry = (!give_up).then(|| self.options.retry_delay(failures));
                let message = if give_up { format!("gave up: {error}") } else { error.0.clone() };
                tracing::warn!(
                    request_id = %claimed.request_id,
                    channel,
                    kind = claimed.kind.as_str(),
                    failures,
                    retry_in_ms = retry.map(|d| d.as_millis() as u64),
                    error = %error,
                    "notification not delivered"
                );
                outbox::record_failure(&self.pool, &claimed, &message, retry).await
            }
        };
        if let Err(error) = recorded {
            // The lease brings the notice back: it may be sent once more, never lost.
            tracing::warn!(request_id = %claimed.request_id, channel, %error, "cannot record notification delivery");
        }
    }
}

/// Shortest nap between rounds: something due but locked by another transaction (the
/// projection superseding it) must not turn a loop into a busy spin.
const MIN_NAP: Duration = Duration::from_millis(10);

/// The instant to wake at: `at` if it comes before one poll interval from now.
fn deadline(at: Option<DateTime<Utc>>, poll_interval: Duration) -> Instant {
    let now = Instant::now();
    let poll = now + poll_interval;
    let Some(at) = at else { return poll };
    let until = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    (now + until.max(MIN_NAP)).min(poll)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_exponentially_with_jitter_and_a_cap() {
        let options = ReconcilerOptions {
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            ..ReconcilerOptions::default()
        };
        for _ in 0..100 {
            let first = options.retry_delay(1);
            assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(1), "{first:?}");
            let fourth = options.retry_delay(4);
            assert!(fourth >= Duration::from_secs(4) && fourth <= Duration::from_secs(8), "{fourth:?}");
            let capped = options.retry_delay(1000);
            assert!(capped >= Duration::from_secs(30) && capped <= Duration::from_secs(60), "{capped:?}");
        }
        let spread: std::collections::HashSet<u128> = (0..20).map(|_| options.retry_delay(5).as_nanos()).collect();
        assert!(spread.len() > 1, "jitter spreads retries");
    }

    #[test]
    fn the_alert_is_refreshed_well_within_its_validity() {
        let options = ReconcilerOptions::default();
        assert!(options.alert_refresh_interval * 4 <= options.alert_validity);
    }
}
