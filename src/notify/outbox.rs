//! The notification outbox: which notices exist (written by a projection of the event
//! log) and how their delivery stands (written by the reconciler).
//!
//! The projection lives here rather than in `alexandria_projections::all()` on purpose:
//! its table is not a disposable read model. Rebuilding it from event 0 would forget what
//! was already delivered and send it all again, so `projections rebuild` must not know
//! it. It still runs like every projection (`apply_next_batch`: rows and checkpoint in one
//! transaction, settled events only), and its checkpoint shows in `projections status`
//! and the lag metrics.
//!
//! Rules, per request and channel:
//! - `Created` → a `pending` row, due now (unless the request already expired by the
//!   time the event is projected: a first start over an old log announces nothing stale).
//! - `Approved` / `Rejected` / `Expired` / `Withdrawn` → the `pending` row is superseded (no more sends
//!   or re-sends), and a `reviewed` row is due only where the pending notice was tried at
//!   least once: there is nothing to resolve for a request nobody was told about. A
//!   request created and decided within one batch therefore produces no rows at all.

use std::collections::HashMap;
use std::time::Duration;

use alexandria_projections::{Projection, StoredEvent};
use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use super::notice::{RequestNotice, Review};
use super::{Channel, NoticeKind};
use crate::approval::queries::PermissionDto;

pub const OUTBOX_TABLE: &str = "notification_outbox";
/// The projection's (and its checkpoint's) name.
pub const OUTBOX_PROJECTION: &str = "notification_outbox";

pub struct NotificationOutboxProjection;

#[async_trait]
impl Projection for NotificationOutboxProjection {
    fn name(&self) -> &'static str {
        OUTBOX_PROJECTION
    }

    fn table(&self) -> &'static str {
        OUTBOX_TABLE
    }

    async fn apply(&self, conn: &mut PgConnection, table: &str, events: &[StoredEvent]) -> anyhow::Result<()> {
        // Fold the batch first: what matters per request is whether it was created here,
        // decided here, or both.
        let mut created: HashMap<Uuid, RequestNotice> = HashMap::new();
        let mut decided: HashMap<Uuid, Review> = HashMap::new();
        for event in events {
            let Some((id, payload)) = event.decode_permission_request()? else { continue };
            if let Some(notice) = RequestNotice::from_created(id, &payload) {
                created.insert(id, notice);
            } else if let Some(review) = Review::from_event(&payload) {
                // Created and decided in one batch: never announced, nothing to resolve.
                if created.remove(&id).is_none() {
                    decided.insert(id, review);
                }
            }
        }
        let now = Utc::now();
        created.retain(|_, notice| notice.expires_at > now);
        insert_pending(conn, table, created.into_values().collect()).await?;
        supersede(conn, table, decided).await
    }
}

async fn insert_pending(conn: &mut PgConnection, table: &str, notices: Vec<RequestNotice>) -> anyhow::Result<()> {
    if notices.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = notices.iter().map(|n| n.id).collect();
    let bodies: Vec<Value> = notices.iter().map(serde_json::to_value).collect::<Result<_, _>>()?;
    let channels: Vec<&str> = Channel::ALL.iter().map(|c| c.as_str()).collect();
    sqlx::query(&format!(
        "INSERT INTO {table} (request_id, channel, kind, notice, next_attempt_at) \
         SELECT r.id, c.channel, 'pending', r.notice, now() \
         FROM UNNEST($1::uuid[], $2::jsonb[]) AS r(id, notice) CROSS JOIN UNNEST($3::text[]) AS c(channel) \
         ON CONFLICT DO NOTHING"
    ))
    .bind(ids)
    .bind(bodies)
    .bind(channels)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn supersede(conn: &mut PgConnection, table: &str, decided: HashMap<Uuid, Review>) -> anyhow::Result<()> {
    if decided.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = decided.keys().copied().collect();
    // Racing the reconciler's claim on the same row is safe: whichever commits second
    // sees the other's write (the claim requires a row not yet superseded, and bumps
    // `attempts` that this statement returns).
    let rows = sqlx::query(&format!(
        "UPDATE {table} SET superseded_at = now(), next_attempt_at = NULL \
         WHERE kind = 'pending' AND request_id = ANY($1) AND superseded_at IS NULL \
         RETURNING request_id, channel, attempts, notice"
    ))
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    let (mut ids, mut channels, mut bodies) = (Vec::new(), Vec::new(), Vec::new());
    for row in rows {
        let attempts: i32 = row.try_get("attempts")?;
        if attempts == 0 {
            continue;
        }
        let id: Uuid = row.try_get("request_id")?;
        let Some(review) = decided.get(&id) else { continue };
        let pending: RequestNotice = serde_json::from_value(row.try_get("notice")?)
            .with_context(|| format!("outbox notice of request {id} is unreadable"))?;
        ids.push(id);
        channels.push(row.try_get::<String, _>("channel")?);
        bodies.push(serde_json::to_value(pending.reviewed(review))?);
    }
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(&format!(
        "INSERT INTO {table} (request_id, channel, kind, notice, next_attempt_at) \
         SELECT id, channel, 'reviewed', notice, now() FROM UNNEST($1::uuid[], $2::text[], $3::jsonb[]) \
           AS r(id, channel, notice) \
         ON CONFLICT DO NOTHING"
    ))
    .bind(ids)
    .bind(channels)
    .bind(bodies)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A notice the reconciler has claimed for sending.
#[derive(Debug, Clone)]
pub struct ClaimedNotice {
    pub request_id: Uuid,
    pub channel: Channel,
    pub kind: NoticeKind,
    pub notice: RequestNotice,
    /// Already delivered once: this send is an Alertmanager re-send.
    pub is_refresh: bool,
    pub created_at: DateTime<Utc>,
    /// Failures before this send.
    pub consecutive_failures: i32,
}

fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

/// Claims up to `limit` due notices of `channel`. A claim is a lease: the row is not due
/// again until `lease` has passed, so if this process dies mid-send the notice is sent
/// again later, and while it lives nobody else sends it.
pub async fn claim_due(
    pool: &PgPool,
    channel: Channel,
    limit: i64,
    lease: Duration,
) -> anyhow::Result<Vec<ClaimedNotice>> {
    let rows = sqlx::query(
        "UPDATE notification_outbox o SET \
           attempts = o.attempts + CASE WHEN o.delivered_at IS NULL THEN 1 ELSE 0 END, \
           last_attempt_at = now(), \
           next_attempt_at = now() + make_interval(secs => $3) \
         FROM (SELECT request_id, channel, kind FROM notification_outbox \
               WHERE channel = $1 AND next_attempt_at <= now() \
               ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED) due \
         WHERE (o.request_id, o.channel, o.kind) = (due.request_id, due.channel, due.kind) \
         RETURNING o.request_id, o.kind, o.notice, o.delivered_at IS NOT NULL AS is_refresh, o.created_at, \
           o.consecutive_failures",
    )
    .bind(channel.as_str())
    .bind(limit)
    .bind(seconds(lease))
    .fetch_all(pool)
    .await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for row in rows {
        let request_id: Uuid = row.try_get("request_id")?;
        let kind: String = row.try_get("kind")?;
        claimed.push(ClaimedNotice {
            request_id,
            channel,
            kind: NoticeKind::parse(&kind).with_context(|| format!("outbox row has unknown kind {kind:?}"))?,
            notice: serde_json::from_value(row.try_get("notice")?)
                .with_context(|| format!("outbox notice of request {request_id} is unreadable"))?,
            is_refresh: row.try_get("is_refresh")?,
            created_at: row.try_get("created_at")?,
            consecutive_failures: row.try_get("consecutive_failures")?,
        });
    }
    Ok(claimed)
}

/// Records a successful send. `refresh_after`: for a pending Alertmanager notice, when
/// to re-send it (unless the request was decided meanwhile); `None` for everything that
/// is sent once.
pub async fn record_success(
    pool: &PgPool,
    claimed: &ClaimedNotice,
    refresh_after: Option<Duration>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE notification_outbox SET \
           delivered_at = COALESCE(delivered_at, now()), \
           refreshed_at = CASE WHEN $4 THEN now() ELSE refreshed_at END, \
           last_error = NULL, consecutive_failures = 0, \
           next_attempt_at = CASE WHEN kind = 'pending' AND superseded_at IS NULL AND $5::float8 IS NOT NULL \
             THEN now() + make_interval(secs => $5) END \
         WHERE request_id = $1 AND channel = $2 AND kind = $3",
    )
    .bind(claimed.request_id)
    .bind(claimed.channel.as_str())
    .bind(claimed.kind.as_str())
    .bind(claimed.is_refresh)
    .bind(refresh_after.map(seconds))
    .execute(pool)
    .await?;
    Ok(())
}

/// Records a failed send. `retry_after`: when to try again, `None` to give up. A pending
/// notice superseded while it was being sent is not retried whatever `retry_after` says.
pub async fn record_failure(
    pool: &PgPool,
    claimed: &ClaimedNotice,
    error: &str,
    retry_after: Option<Duration>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE notification_outbox SET \
           last_error = $4, consecutive_failures = consecutive_failures + 1, \
           next_attempt_at = CASE WHEN (kind = 'reviewed' OR superseded_at IS NULL) AND $5::float8 IS NOT NULL \
             THEN now() + make_interval(secs => $5) END \
         WHERE request_id = $1 AND channel = $2 AND kind = $3",
    )
    .bind(claimed.request_id)
    .bind(claimed.channel.as_str())
    .bind(claimed.kind.as_str())
    .bind(error)
    .bind(retry_after.map(seconds))
    .execute(pool)
    .await?;
    Ok(())
}

/// When the next notice of `channel` falls due, if any is waiting.
pub async fn next_due(pool: &PgPool, channel: Channel) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT next_attempt_at FROM notification_outbox \
         WHERE channel = $1 AND next_attempt_at IS NOT NULL ORDER BY next_attempt_at LIMIT 1",
    )
    .bind(channel.as_str())
    .fetch_optional(pool)
    .await
}

/// Delivery state per request, for `notifier_meta`:
/// `{"<channel>": {"<kind>": {attempts, last_error, delivered_at, ...}}}`.
/// Fills `notifier_meta.channels` from the notification outbox (one query for all).
pub async fn attach_delivery_state(pool: &PgPool, items: &mut [PermissionDto]) -> Result<(), sqlx::Error> {
    let ids: Vec<Uuid> = items.iter().map(|item| item.id).collect();
    let mut state = delivery_state(pool, &ids).await?;
    for item in items {
        if let Some(channels) = state.remove(&item.id) {
            item.notifier_meta["channels"] = channels;
        }
    }
    Ok(())
}

pub async fn delivery_state(pool: &PgPool, ids: &[Uuid]) -> Result<HashMap<Uuid, Value>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = sqlx::query(
        "SELECT request_id, channel, kind, attempts, last_error, delivered_at, last_attempt_at, next_attempt_at, \
           refreshed_at, superseded_at \
         FROM notification_outbox WHERE request_id = ANY($1) ORDER BY channel, kind",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?;
    let mut state: HashMap<Uuid, Value> = HashMap::new();
    for row in rows {
        let id: Uuid = row.try_get("request_id")?;
        let channel: String = row.try_get("channel")?;
        let kind: String = row.try_get("kind")?;
        let delivery = json!({
            "attempts": row.try_get::<i32, _>("attempts")?,
            "last_error": row.try_get::<Option<String>, _>("last_error")?,
            "delivered_at": row.try_get::<Option<DateTime<Utc>>, _>("delivered_at")?,
            "last_attempt_at": row.try_get::<Option<DateTime<Utc>>, _>("last_attempt_at")?,
            "next_attempt_at": row.try_get::<Option<DateTime<Utc>>, _>("next_attempt_at")?,
            "refreshed_at": row.try_get::<Option<DateTime<Utc>>, _>("refreshed_at")?,
            "superseded_at": row.try_get::<Option<DateTime<Utc>>, _>("superseded_at")?,
        });
        let channels = state.entry(id).or_insert_with(|| Value::Object(Map::new()));
        if let Some(channels) = channels.as_object_mut() {
            let kinds = channels.entry(channel).or_insert_with(|| Value::Object(Map::new()));
            if let Some(kinds) = kinds.as_object_mut() {
                kinds.insert(kind, delivery);
            }
        }
    }
    Ok(state)
}
