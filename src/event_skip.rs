//! Getting past a stored event nobody can read (`alexandria events skip`).
//!
//! The store never appends an event it could not read back, but a row written around it
//! (by hand, as a database superuser) can be one: a payload that is not its event type's
//! shape, or JSON nested deeper than serde_json reads. Such an event stops every fold that
//! meets it: the projections retry it forever and its request cannot be loaded.
//!
//! The log is append-only, so the event is never changed or deleted. An operator records
//! an `EventSkipped` event instead (aggregate type `EventSkip`, aggregate id the skipped
//! event's global position, so a position is skipped at most once), and every reader of
//! the log — the projections, the write side's fold, replays — treats the skipped event as
//! absent. Only an event that cannot be read may be skipped: a readable one is a fact, and
//! skipping it would rewrite history (a skipped claim would let a call run twice).

use alexandria_domain::EventMetadata;
use alexandria_projections::log::{read_global_batch, SKIP_AGGREGATE_TYPE};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::names::Actor;

/// The event type of a skip.
pub const SKIP_EVENT_TYPE: &str = "EventSkipped";
/// Longest reason recorded with a skip.
pub const MAX_REASON_CHARS: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum SkipError {
    #[error("give a reason of 1 to {MAX_REASON_CHARS} characters (it is kept in the log with the skip)")]
    InvalidReason,
    #[error("there is no event at position {0}")]
    NoSuchEvent(i64),
    #[error("event {0} is already skipped")]
    AlreadySkipped(i64),
    #[error(
        "event {0} can be read, so it is not skipped: only an event nothing can read may be; \
         a readable event is a fact, corrected (if at all) by a new event"
    )]
    Readable(i64),
    #[error("event {position} is an {aggregate_type} event, which nothing folds; there is nothing to skip")]
    NotFolded { position: i64, aggregate_type: String },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// What a skip recorded.
#[derive(Debug, Clone)]
pub struct SkipRecord {
    /// The skipped event: where it is, whose it is, and why it cannot be read.
    pub position: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub unreadable: String,
    /// The global position of the `EventSkipped` event that records the skip.
    pub recorded_at_position: i64,
}

/// Records that the event at `position`, which cannot be read, is to be read as absent.
pub async fn skip_unreadable_event(
    pool: &PgPool,
    position: i64,
    reason: &str,
    actor: &Actor,
    replica: &str,
) -> Result<SkipRecord, SkipError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return Err(SkipError::InvalidReason);
    }
    let mut conn = pool.acquire().await?;
    let stored = read_global_batch(&mut conn, None, position.saturating_sub(1), 1).await?;
    let Some(stored) = stored.into_iter().next().filter(|event| event.global_position == position) else {
        return Err(SkipError::NoSuchEvent(position));
    };
    if stored.skipped {
        return Err(SkipError::AlreadySkipped(position));
    }
    let unreadable = match stored.decode_permission_request() {
        Err(unreadable) => unreadable.reason,
        Ok(Some(_)) => return Err(SkipError::Readable(position)),
        Ok(None) => {
            return Err(SkipError::NotFolded { position, aggregate_type: stored.aggregate_type });
        }
    };
    let payload = json!({SKIP_EVENT_TYPE: {
        "position": position,
        "aggregate_type": stored.aggregate_type,
        "aggregate_id": stored.aggregate_id,
        "sequence": stored.sequence,
        "event_type": stored.event_type,
        "unreadable": unreadable,
        "reason": reason,
    }});
    let metadata = EventMetadata::new(actor.to_string(), replica, Uuid::new_v4().to_string()).to_map();
    // The columns postgres-es names; the rest are PostgreSQL's defaults, as for every event.
    let recorded = sqlx::query_scalar(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ($1, $2, 1, $3, '1', $4, $5) RETURNING global_position",
    )
    .bind(SKIP_AGGREGATE_TYPE)
    .bind(position.to_string())
    .bind(SKIP_EVENT_TYPE)
    .bind(payload)
    .bind(sqlx::types::Json(metadata))
    .fetch_one(&mut *conn)
    .await;
    let recorded_at_position = match recorded {
        Ok(recorded) => recorded,
        // Another operator skipped it between our read and this append.
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => return Err(SkipError::AlreadySkipped(position)),
        Err(error) => return Err(error.into()),
    };
    Ok(SkipRecord {
        position,
        aggregate_type: stored.aggregate_type,
        aggregate_id: stored.aggregate_id,
        sequence: stored.sequence,
        event_type: stored.event_type,
        unreadable,
        recorded_at_position,
    })
}
