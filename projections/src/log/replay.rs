//! A rebuild's read of the log: only the columns a fold needs, each permission request's
//! payload decoded straight into its typed event.
//!
//! The live reader ([`StoredEvent`](super::StoredEvent)) builds every payload and every
//! metadata as a `serde_json::Value` and then the typed event from the value; a rebuild
//! reads millions of events and never looks at the metadata, and building those values
//! was the largest share of its time after `malloc` itself. What stays exactly as the
//! live reader has it: the order and the settled bound, which events are folded (a
//! permission request's, not skipped), and which ones are unreadable (see
//! [`decode_request_event`]).

use alexandria_domain::PermissionRequestEvent;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::{skipped_column, LogPosition, UnreadableEvent, PERMISSION_REQUEST_TYPE, SETTLED_AFTER};

/// A permission request's event, as a rebuild folds it.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestEvent {
    pub id: Uuid,
    pub event: PermissionRequestEvent,
    pub position: i64,
}

/// One read of the settled log.
#[derive(Debug, Default)]
pub struct ReplayBatch {
    /// The permission requests' events, in projection order; other aggregates' events
    /// and skipped ones are left out.
    pub events: Vec<RequestEvent>,
    /// How many events were read, those left out included.
    pub read: u64,
    /// The last event read; `None` when the batch is empty (the settled log is read).
    pub last: Option<LogPosition>,
}

/// `metadata` is read only to tell whether it is readable (see [`decode_request_event`]).
const REPLAY_COLUMNS: &str = concat!(
    "global_position, tx_id::text::bigint AS tx_id, aggregate_type, aggregate_id, sequence, \
     payload::text AS payload, metadata::text AS metadata, ",
    skipped_column!()
);

/// The next settled events after `after` in projection order, as
/// [`read_settled_batch`](super::read_settled_batch) reads them, decoded for a fold. An
/// event this build cannot read is an error, as it is for the live projection's `apply`.
pub async fn read_settled_requests(
    conn: &mut PgConnection,
    after: LogPosition,
    limit: i64,
) -> anyhow::Result<ReplayBatch> {
    let sql = format!("SELECT {REPLAY_COLUMNS} FROM events {SETTLED_AFTER}");
    let rows = sqlx::query(&sql)
        .bind(after.tx_id.to_string())
        .bind(after.global_position)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    let mut batch = ReplayBatch { events: Vec::with_capacity(rows.len()), ..ReplayBatch::default() };
    for row in &rows {
        let position = LogPosition { tx_id: row.try_get(1)?, global_position: row.try_get(0)? };
        batch.read += 1;
        batch.last = Some(position);
        let aggregate_type: &str = row.try_get(2)?;
        if aggregate_type != PERMISSION_REQUEST_TYPE || row.try_get::<bool, _>(7)? {
            continue;
        }
        let stored = StoredRequestEvent {
            position: position.global_position,
            aggregate_id: row.try_get(3)?,
            sequence: row.try_get(4)?,
            payload: row.try_get(5)?,
            metadata: row.try_get(6)?,
        };
        batch.events.push(decode_request_event(&stored)?);
    }
    Ok(batch)
}

/// A permission request's stored event, its JSON columns as text.
pub(crate) struct StoredRequestEvent<'a> {
    pub position: i64,
    pub aggregate_id: &'a str,
    pub sequence: i64,
    pub payload: &'a str,
    pub metadata: &'a str,
}

/// The typed event, or why it cannot be read: the same outcome, and the same reason, as
/// [`StoredEvent::decode_permission_request`](super::StoredEvent::decode_permission_request)
/// gives for the same row.
///
/// Decoding the typed event straight from the text reads some rows differently from
/// decoding it from a `Value`: fields the event does not have are ignored without the
/// checks a `Value` makes (nesting depth, numbers in range), and a repeated key is an
/// error where a `Value` keeps the last. So both columns are first checked as a `Value`
/// would read them, without building one, and a payload the direct decoding refuses is
/// decoded once more the old way, whose verdict is the one kept.
pub(crate) fn decode_request_event(stored: &StoredRequestEvent<'_>) -> Result<RequestEvent, UnreadableEvent> {
    let unreadable = |reason: String| UnreadableEvent {
        position: stored.position,
        aggregate_type: PERMISSION_REQUEST_TYPE.to_owned(),
        aggregate_id: stored.aggregate_id.to_owned(),
        sequence: stored.sequence,
        reason,
    };
    for (name, text) in [("payload", stored.payload), ("metadata", stored.metadata)] {
        if let Err(error) = serde_json::from_str::<ReadAsValue>(text) {
            // Worded as the live reader's column decoding words it.
            let error = sqlx::Error::ColumnDecode { index: format!("{name:?}"), source: Box::new(error) };
            return Err(unreadable(format!("its {name} cannot be read as JSON: {error}")));
        }
    }
    let id = Uuid::parse_str(stored.aggregate_id).map_err(|_| unreadable("its aggregate id is not a UUID".into()))?;
    let event = match serde_json::from_str::<PermissionRequestEvent>(stored.payload) {
        Ok(event) => event,
        Err(_) => serde_json::from_str::<Value>(stored.payload)
            .map_err(serde::de::Error::custom)
            .and_then(|value| PermissionRequestEvent::deserialize(&value))
            .map_err(|error: serde_json::Error| {
                unreadable(format!("its payload is not a permission request event: {error}"))
            })?,
    };
    Ok(RequestEvent { id, event, position: stored.position })
}

/// Any JSON value, accepted exactly when `serde_json::Value` accepts it, and thrown away.
/// Both go through `deserialize_any`: the same depth limit, numbers that must fit an
/// `f64`, strings and keys with valid escapes; only nothing is allocated here.
struct ReadAsValue;

impl<'de> Deserialize<'de> for ReadAsValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ReadAsValue)
    }
}

impl<'de> Visitor<'de> for ReadAsValue {
    type Value = ReadAsValue;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_unit<E>(self) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<ReadAsValue>()?.is_some() {}
        Ok(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
        while map.next_entry::<ReadAsValue, ReadAsValue>()?.is_some() {}
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::log::StoredEvent;

    /// The live reader's verdict on the same row, through `StoredEvent`'s own decoding
    /// of its columns as `Value`s.
    fn live(payload: &str, metadata: &str, aggregate_id: &str) -> Result<RequestEvent, UnreadableEvent> {
        let mut unreadable = None;
        let mut column = |name: &str, text: &str| {
            serde_json::from_str::<Value>(text).unwrap_or_else(|error| {
                let error = sqlx::Error::ColumnDecode { index: format!("{name:?}"), source: Box::new(error) };
                unreadable.get_or_insert_with(|| format!("its {name} cannot be read as JSON: {error}"));
                Value::Null
            })
        };
        let (payload, metadata) = (column("payload", payload), column("metadata", metadata));
        let stored = StoredEvent {
            global_position: 9,
            tx_id: 1,
            recorded_at: chrono::Utc::now(),
            aggregate_type: PERMISSION_REQUEST_TYPE.into(),
            aggregate_id: aggregate_id.into(),
            sequence: 2,
            event_type: "Approved".into(),
            event_version: "1".into(),
            payload,
            metadata,
            unreadable,
            skipped: false,
        };
        let (id, event) = stored.decode_permission_request()?.expect("a permission request's event");
        Ok(RequestEvent { id, event, position: 9 })
    }

    fn direct(payload: &str, metadata: &str, aggregate_id: &str) -> Result<RequestEvent, UnreadableEvent> {
        decode_request_event(&StoredRequestEvent { position: 9, aggregate_id, sequence: 2, payload, metadata })
    }

    #[test]
    fn every_row_reads_as_the_live_reader_reads_it() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let at = "2026-12-03T10:00:00.123456789Z";
        let id = Uuid::new_v4().to_string();
        let readable_metadata = json!({"actor": "a", "replica": "r", "trace_id": "t"}).to_string();
        let payloads = [
            json!({"Approved": {"by": "admin", "at": at}}).to_string(),
            json!({"Created": {"request_type": "tool_call", "agent": "a", "tool": "t",
                "arguments": {"x": [1, 2.5, -3, "\u{e9}\n"], "y": null}, "arguments_digest": "d",
                "idempotency_key": "k", "requested_by": "agent:a", "at": at, "expires_at": at}})
            .to_string(),
            json!({"ResultCached": {"outcome": {"result": {"content": []}}, "at": at}}).to_string(),
            // A repeated key: a `Value` keeps the last one.
            format!(r#"{{"Approved": {{"by": "first", "by": "second", "at": "{at}"}}}}"#),
            // Unknown fields a `Value` refuses: too deep, a number out of range.
            format!(r#"{{"Approved": {{"by": "admin", "at": "{at}", "extra": {deep}}}}}"#),
            format!(r#"{{"Approved": {{"by": "admin", "at": "{at}", "extra": 1e400}}}}"#),
            format!(r#"{{"Approved": {{"by": {deep}}}}}"#),
            json!({"Approved": {"by": 7, "when": "yesterday"}}).to_string(),
            json!({"Archived": {"at": at}}).to_string(),
            r#"{"Approved": {"by": "\ud800", "at": "x"}}"#.to_owned(),
        ];
        for payload in &payloads {
            for metadata in [readable_metadata.clone(), format!(r#"{{"actor": {deep}}}"#)] {
                for aggregate_id in [id.as_str(), "not-a-uuid"] {
                    assert_eq!(
                        direct(payload, &metadata, aggregate_id),
                        live(payload, &metadata, aggregate_id),
                        "payload {payload}, metadata {metadata}, aggregate id {aggregate_id}"
                    );
                }
            }
        }
        let first = direct(&payloads[3], &readable_metadata, &id).expect("readable");
        assert!(matches!(first.event, PermissionRequestEvent::Approved { by, .. } if by == "second"));
    }
}
