//! Reading the event log in projection order.

use alexandria_domain::{PermissionRequest, PermissionRequestEvent};
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use serde::Deserialize;
use serde_json::Value;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

pub mod replay;

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

/// The aggregate type of an operator's skip (`alexandria events skip`): an `EventSkipped`
/// event whose aggregate id is the skipped event's global position. Every reader of the log
/// treats a skipped event as absent; the log itself never changes.
pub const SKIP_AGGREGATE_TYPE: &str = "EventSkip";

/// A stored event this build cannot read: a row written around the application (the
/// store never appends one). It stops every fold that meets it until an operator skips it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "event {position} ({aggregate_type} {aggregate_id} #{sequence}) cannot be read: {reason} \
     (`alexandria events skip {position} --reason ...` reads past it)"
)]
pub struct UnreadableEvent {
    pub position: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub reason: String,
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
    /// `Null` when the column could not be read as JSON (see `unreadable`).
    pub payload: Value,
    /// `Null` when the column could not be read as JSON (see `unreadable`).
    pub metadata: Value,
    /// Why the payload or metadata is not JSON serde_json can read (nested deeper than
    /// its 128 levels, say). Reading such a row is not an error, so it can be reported and
    /// skipped; decoding it is.
    pub unreadable: Option<String>,
    /// An operator skipped it (`alexandria events skip`): every fold reads it as absent.
    pub skipped: bool,
}

impl StoredEvent {
    pub fn position(&self) -> LogPosition {
        LogPosition { tx_id: self.tx_id, global_position: self.global_position }
    }

    /// This event as a permission request's: the request's id and the typed event; `None`
    /// for another aggregate's event and for a skipped one. An error is a damaged log.
    pub fn decode_permission_request(&self) -> Result<Option<(Uuid, PermissionRequestEvent)>, UnreadableEvent> {
        if self.aggregate_type != <PermissionRequest as Aggregate>::TYPE || self.skipped {
            return Ok(None);
        }
        if let Some(reason) = &self.unreadable {
            return Err(self.unreadable_because(reason));
        }
        let id = Uuid::parse_str(&self.aggregate_id)
            .map_err(|_| self.unreadable_because("its aggregate id is not a UUID"))?;
        // Deserialize from the borrowed Value: cloning each payload first costs a
        // measurable share of a rebuild.
        let event = PermissionRequestEvent::deserialize(&self.payload).map_err(|error| {
            self.unreadable_because(format!("its payload is not a permission request event: {error}"))
        })?;
        Ok(Some((id, event)))
    }

    /// The error that says this event cannot be read, and why.
    pub fn unreadable_because(&self, reason: impl std::fmt::Display) -> UnreadableEvent {
        UnreadableEvent {
            position: self.global_position,
            aggregate_type: self.aggregate_type.clone(),
            aggregate_id: self.aggregate_id.clone(),
            sequence: self.sequence,
            reason: reason.to_string(),
        }
    }

    fn from_row(row: &sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        // A JSON column serde_json refuses (nesting beyond its limit) must not fail the
        // whole read: the row is kept, marked, so its position can be named and skipped.
        let mut unreadable = None;
        let mut json_column = |name: &str| {
            row.try_get::<Value, _>(name).unwrap_or_else(|error| {
                unreadable.get_or_insert_with(|| format!("its {name} cannot be read as JSON: {error}"));
                Value::Null
            })
        };
        let (payload, metadata) = (json_column("payload"), json_column("metadata"));
        Ok(StoredEvent {
            global_position: row.try_get("global_position")?,
            tx_id: row.try_get("tx_id")?,
            recorded_at: row.try_get("recorded_at")?,
            aggregate_type: row.try_get("aggregate_type")?,
            aggregate_id: row.try_get("aggregate_id")?,
            sequence: row.try_get("sequence")?,
            event_type: row.try_get("event_type")?,
            event_version: row.try_get("event_version")?,
            payload,
            metadata,
            unreadable,
            skipped: row.try_get("skipped")?,
        })
    }
}

/// Whether an event is skipped, as a column `FROM events`: an uncorrelated subquery, run
/// once per statement (skips are few; usually none). A skip's aggregate id is the skipped
/// position in decimal; the few ids that are one (no sign, no leading zero, short enough
/// for a bigint) are cast once, rather than every event's position to text (a third of a
/// rebuild's read query). A macro, so every reader's column list is a constant that says
/// it the same way.
macro_rules! skipped_column {
    () => {
        "events.global_position = ANY (ARRAY (SELECT skip.aggregate_id::bigint FROM events AS skip \
           WHERE skip.aggregate_type = 'EventSkip' AND skip.aggregate_id ~ '^[1-9][0-9]{0,17}$')) AS skipped"
    };
}
use skipped_column;

/// The columns of a `StoredEvent`, read `FROM events`.
const SELECT_COLUMNS: &str = concat!(
    "global_position, tx_id::text::bigint AS tx_id, recorded_at, \
     aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, ",
    skipped_column!()
);

/// After `($1, $2)` in projection order, at most `$3` events, only those written by
/// transactions older than every transaction still running.
// `events.` qualifies the ORDER BY: a bare `tx_id` would name the output column (the
// bigint cast) and lose the index, turning every batch into a full sort.
const SETTLED_AFTER: &str = "WHERE (events.tx_id, events.global_position) > ($1::text::xid8, $2) \
       AND events.tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
     ORDER BY events.tx_id, events.global_position LIMIT $3";

/// The next events after `after` in projection order that are final: written by
/// transactions older than every transaction still running, so no event can later
/// appear before them.
pub async fn read_settled_batch(
    conn: &mut PgConnection,
    after: LogPosition,
    limit: i64,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let sql = format!("SELECT {SELECT_COLUMNS} FROM events {SETTLED_AFTER}");
    let rows = sqlx::query(&sql)
        .bind(after.tx_id.to_string())
        .bind(after.global_position)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(StoredEvent::from_row).collect()
}

/// The next events after `after` in projection order, settled or not (an export's and
/// the audit chain's order; a reader in one snapshot sees the sealed ones first).
pub async fn read_projection_order_batch(
    conn: &mut PgConnection,
    after: LogPosition,
    limit: i64,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let sql = format!(
        "SELECT {SELECT_COLUMNS} FROM events \
         WHERE (events.tx_id, events.global_position) > ($1::text::xid8, $2) \
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

/// Where the event at `position` sits in projection order; `None` if there is none.
pub async fn projection_position_of(
    conn: &mut PgConnection,
    position: i64,
) -> Result<Option<LogPosition>, sqlx::Error> {
    let tx_id: Option<i64> = sqlx::query_scalar("SELECT tx_id::text::bigint FROM events WHERE global_position = $1")
        .bind(position)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(tx_id.map(|tx_id| LogPosition { tx_id, global_position: position }))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_skip_subquery_names_the_skip_aggregate_type() {
        assert!(SELECT_COLUMNS.contains(&format!("skip.aggregate_type = '{SKIP_AGGREGATE_TYPE}'")));
    }
}
