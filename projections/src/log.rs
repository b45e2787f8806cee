//! Reading the event log in projection order.

use alexandria_domain::{PermissionRequest, PermissionRequestEvent};
use anyhow::Context;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use serde::Deserialize;
use serde_json::Value;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

/// A position in projection order: `(tx_id, global_position)`. `(0, 0)` is before every
/// event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogPosition {
    pub tx_id: i64,
    pub global_position: i64,
}

impl LogPosition {
    pub const START: LogPosition = LogPosition { tx_id: 0, global_position: 0 };
}

/// One row of `events`, as projections and exports see it.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub global_position: i64,
    pub tx_id: i64,
    pub recorded_at: DateTime<Utc>,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
    pub metadata: Value,
}

impl StoredEvent {
    pub fn position(&self) -> LogPosition {
        LogPosition { tx_id: self.tx_id, global_position: self.global_position }
    }

    /// This event as a permission request's: the request's id and the typed event; `None`
    /// for another aggregate's event. An error is a damaged log (the position is named).
    pub fn decode_permission_request(&self) -> anyhow::Result<Option<(Uuid, PermissionRequestEvent)>> {
        if self.aggregate_type != <PermissionRequest as Aggregate>::TYPE {
            return Ok(None);
        }
        let id = Uuid::parse_str(&self.aggregate_id)
            .with_context(|| format!("event {} has a non-UUID aggregate id", self.global_position))?;
        // Deserialize from the borrowed Value: cloning each payload first costs a
        // measurable share of a rebuild.
        let event = PermissionRequestEvent::deserialize(&self.payload)
            .with_context(|| format!("event {} has an unreadable payload", self.global_position))?;
        Ok(Some((id, event)))
    }

    fn from_row(row: &sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        Ok(StoredEvent {
            global_position: row.try_get("global_position")?,
            tx_id: row.try_get("tx_id")?,
            recorded_at: row.try_get("recorded_at")?,
            aggregate_type: row.try_get("aggregate_type")?,
            aggregate_id: row.try_get("aggregate_id")?,
            sequence: row.try_get("sequence")?,
            event_type: row.try_get("event_type")?,
            event_version: row.try_get("event_version")?,
            payload: row.try_get("payload")?,
            metadata: row.try_get("metadata")?,
        })
    }
}

const SELECT_COLUMNS: &str = "global_position, tx_id::text::bigint AS tx_id, recorded_at, \
     aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata";

/// The next events after `after` in projection order that are final: written by
/// transactions older than every transaction still running, so no event can later
/// appear before them.
pub async fn read_settled_batch(
    conn: &mut PgConnection,
    after: LogPosition,
    limit: i64,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let sql = format!(
        // `events.` qualifies the ORDER BY: a bare `tx_id` would name the output column
        // (the bigint cast) and lose the index, turning every batch into a full sort.
        "SELECT {SELECT_COLUMNS} FROM events \
         WHERE (events.tx_id, events.global_position) > ($1::text::xid8, $2) \
           AND events.tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
         ORDER BY events.tx_id, events.global_position LIMIT $3"
    );
    let rows = sqlx::query(&sql)
        .bind(after.tx_id.to_string())
        .bind(after.global_position)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(StoredEvent::from_row).collect()
}

/// Events in global order (the auditor's order), optionally for one permission request
/// and after a position.
///
/// One request's events are found through the primary key `(aggregate_type,
/// aggregate_id, sequence)`, so the type is named: with `aggregate_id` alone (or an
/// `$2 IS NULL OR ...` filter) PostgreSQL walks the global-position index over the whole
/// log instead.
pub async fn read_global_batch(
    conn: &mut PgConnection,
    aggregate_id: Option<&str>,
    after_position: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let rows = match aggregate_id {
        Some(aggregate_id) => {
            let sql = format!(
                "SELECT {SELECT_COLUMNS} FROM events \
                 WHERE aggregate_type = $1 AND aggregate_id = $2 AND global_position > $3 \
                 ORDER BY global_position LIMIT $4"
            );
            sqlx::query(&sql)
                .bind(PERMISSION_REQUEST_TYPE)
                .bind(aggregate_id)
                .bind(after_position)
                .bind(limit)
                .fetch_all(&mut *conn)
                .await?
        }
        None => {
            let sql = format!(
                "SELECT {SELECT_COLUMNS} FROM events WHERE global_position > $1 ORDER BY global_position LIMIT $2"
            );
            sqlx::query(&sql).bind(after_position).bind(limit).fetch_all(&mut *conn).await?
        }
    };
    rows.iter().map(StoredEvent::from_row).collect()
}

/// The one aggregate type in the log.
pub const PERMISSION_REQUEST_TYPE: &str = <alexandria_domain::PermissionRequest as cqrs_es::Aggregate>::TYPE;

/// How many events lie after `after_position`, optionally of one permission request
/// (through the primary key, as [`read_global_batch`]).
pub async fn count_global(
    pool: &sqlx::PgPool,
    aggregate_id: Option<&str>,
    after_position: i64,
) -> Result<i64, sqlx::Error> {
    match aggregate_id {
        Some(aggregate_id) => {
            sqlx::query_scalar(
                "SELECT count(*) FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 AND global_position > $3",
            )
            .bind(PERMISSION_REQUEST_TYPE)
            .bind(aggregate_id)
            .bind(after_position)
            .fetch_one(pool)
            .await
        }
        None => {
            sqlx::query_scalar("SELECT count(*) FROM events WHERE global_position > $1")
                .bind(after_position)
                .fetch_one(pool)
                .await
        }
    }
}

/// How many events lie beyond `after` in projection order, settled or not.
pub async fn count_after(conn: &mut PgConnection, after: LogPosition) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE (tx_id, global_position) > ($1::text::xid8, $2)")
        .bind(after.tx_id.to_string())
        .bind(after.global_position)
        .fetch_one(&mut *conn)
        .await
}
