//! The chains' lines as stored: each event (or admin audit row) in chain order with its
//! seal, for exports, `GET /admin/events` and the live check.

use std::collections::HashMap;

use alexandria_projections::log::{read_projection_order_batch, StoredEvent};
use alexandria_projections::LogPosition;
use serde_json::{json, Value};
use sqlx::{PgConnection, Row};

use super::chain::{attach, hash_from_bytes};
use crate::event_export::export_line;

/// The chain over the event log.
pub const EVENTS_CHAIN: &str = "events";
/// The chain over the admin audit trail.
pub const ADMIN_AUDIT_CHAIN: &str = "admin_audit";

/// One line of a chain: its content, with `hash`/`prev_hash` once sealed.
#[derive(Debug, Clone)]
pub struct ChainLine {
    /// Projection order position (for an admin audit row: its transaction and id).
    pub at: LogPosition,
    /// The seal's place in the chain, once sealed.
    pub seq: Option<i64>,
    pub line: Value,
}

/// What the chain hashes of each event: its export line, plus, for a row serde_json cannot
/// read, the row's raw JSON text (`raw_payload`, `raw_metadata`), so that a change to an
/// unreadable (perhaps skipped) row is seen too.
pub async fn content_lines(conn: &mut PgConnection, events: &[StoredEvent]) -> Result<Vec<Value>, sqlx::Error> {
    let unreadable: Vec<i64> =
        events.iter().filter(|event| event.unreadable.is_some()).map(|event| event.global_position).collect();
    let mut raw: HashMap<i64, (String, String)> = HashMap::new();
    if !unreadable.is_empty() {
        let rows = sqlx::query(
            "SELECT global_position, payload::text AS payload, metadata::text AS metadata FROM events \
             WHERE global_position = ANY($1)",
        )
        .bind(&unreadable)
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            raw.insert(row.try_get("global_position")?, (row.try_get("payload")?, row.try_get("metadata")?));
        }
    }
    Ok(events
        .iter()
        .map(|event| {
            let mut line = export_line(event);
            if let Some((payload, metadata)) = raw.remove(&event.global_position) {
                line["raw_payload"] = Value::String(payload);
                line["raw_metadata"] = Value::String(metadata);
            }
            line
        })
        .collect())
}

/// Adds each line's seal, if it has one (read in the caller's transaction).
pub async fn attach_event_seals(
    conn: &mut PgConnection,
    events: &[StoredEvent],
    mut lines: Vec<Value>,
) -> Result<Vec<ChainLine>, sqlx::Error> {
    let positions: Vec<i64> = events.iter().map(|event| event.global_position).collect();
    let rows = sqlx::query("SELECT position, seq, prev_hash, hash FROM event_seals WHERE position = ANY($1)")
        .bind(&positions)
        .fetch_all(&mut *conn)
        .await?;
    let mut seals = HashMap::with_capacity(rows.len());
    for row in rows {
        seals.insert(
            row.try_get::<i64, _>("position")?,
            (
                row.try_get::<i64, _>("seq")?,
                row.try_get::<Vec<u8>, _>("prev_hash")?,
                row.try_get::<Vec<u8>, _>("hash")?,
            ),
        );
    }
    Ok(events
        .iter()
        .zip(lines.iter_mut())
        .map(|(event, line)| {
            let mut seq = None;
            if let Some((sealed_seq, prev, hash)) = seals.remove(&event.global_position) {
                if let (Some(prev), Some(hash)) = (hash_from_bytes(&prev), hash_from_bytes(&hash)) {
                    attach(line, &prev, &hash);
                    seq = Some(sealed_seq);
                }
            }
            ChainLine { at: event.position(), seq, line: std::mem::take(line) }
        })
        .collect())
}

/// The next events after `after` in chain (projection) order, with their seals.
pub async fn event_lines(
    conn: &mut PgConnection,
    after: LogPosition,
    limit: i64,
) -> Result<Vec<ChainLine>, sqlx::Error> {
    let events = read_projection_order_batch(conn, after, limit).await?;
    let lines = content_lines(conn, &events).await?;
    attach_event_seals(conn, &events, lines).await
}

/// The position of the event sealed as the chain's `seq`-th (to name a deleted event).
pub async fn sealed_position(conn: &mut PgConnection, chain: &str, seq: i64) -> Result<Option<i64>, sqlx::Error> {
    let sql = match chain {
        ADMIN_AUDIT_CHAIN => "SELECT audit_id FROM admin_audit_seals WHERE seq = $1",
        _ => "SELECT position FROM event_seals WHERE seq = $1",
    };
    sqlx::query_scalar(sql).bind(seq).fetch_optional(&mut *conn).await
}

/// An admin audit row as the chain hashes it (the fields of `GET /admin/audit`'s entries).
pub fn admin_content_line(row: &sqlx::postgres::PgRow) -> Result<Value, sqlx::Error> {
    Ok(json!({
        "id": row.try_get::<i64, _>("id")?,
        "at": row.try_get::<chrono::DateTime<chrono::Utc>, _>("at")?,
        "actor": row.try_get::<String, _>("actor")?,
        "action": row.try_get::<String, _>("action")?,
        "target": row.try_get::<String, _>("target")?,
        "before": row.try_get::<Option<Value>, _>("before")?,
        "after": row.try_get::<Option<Value>, _>("after")?,
    }))
}

/// The next admin audit rows after `after` in chain order (`(tx_id, id)`), with their
/// seals; only settled ones (behind the snapshot horizon) when `settled`.
pub async fn admin_lines(
    conn: &mut PgConnection,
    after: LogPosition,
    limit: i64,
    settled: bool,
) -> Result<Vec<ChainLine>, sqlx::Error> {
    let horizon = if settled { "AND a.tx_id < pg_snapshot_xmin(pg_current_snapshot())" } else { "" };
    let sql = format!(
        "SELECT a.id, a.tx_id::text::bigint AS tx_id, a.at, a.actor, a.action, a.target, a.before, a.after, \
                s.seq, s.prev_hash, s.hash \
         FROM admin_audit a LEFT JOIN admin_audit_seals s ON s.audit_id = a.id \
         WHERE (a.tx_id, a.id) > ($1::text::xid8, $2) {horizon} \
         ORDER BY a.tx_id, a.id LIMIT $3"
    );
    let rows = sqlx::query(&sql)
        .bind(after.tx_id.to_string())
        .bind(after.global_position)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|row| {
            let mut line = admin_content_line(row)?;
            let seq: Option<i64> = row.try_get("seq")?;
            let prev: Option<Vec<u8>> = row.try_get("prev_hash")?;
            let hash: Option<Vec<u8>> = row.try_get("hash")?;
            let sealed = match (prev.as_deref().and_then(hash_from_bytes), hash.as_deref().and_then(hash_from_bytes)) {
                (Some(prev), Some(hash)) => {
                    attach(&mut line, &prev, &hash);
                    seq
                }
                _ => None,
            };
            Ok(ChainLine {
                at: LogPosition { tx_id: row.try_get("tx_id")?, global_position: row.try_get("id")? },
                seq: sealed,
                line,
            })
        })
        .collect()
}
