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
/// `tx_id` is read as it is stored (`xid8`, an unsigned 64-bit integer in binary): a cast
/// through text for every event was a large share of the query.
const REPLAY_COLUMNS: &str = concat!(
    "global_position, tx_id, aggregate_type, aggregate_id, sequence, \
     payload::text AS payload, metadata::text AS metadata, ",
    skipped_column!()
);

/// `COPY` of the next settled events after `after` in projection order, at most `limit`:
/// the events [`read_settled_batch`](super::read_settled_batch) reads, only the columns
/// [`ReplayDecoder`] decodes. Binary `COPY` streams rows as PostgreSQL produces them, so
/// decoding overlaps with the query, and each field is its bytes: no row objects, no copy
/// of a payload before it is decoded.
pub fn settled_copy_statement(after: LogPosition, limit: i64) -> String {
    // `COPY` takes no parameters: the bounds are integers, written in.
    let settled_after = SETTLED_AFTER
        .replace("$1", &format!("'{}'", after.tx_id))
        .replace("$2", &after.global_position.to_string())
        .replace("$3", &limit.to_string());
    format!("COPY (SELECT {REPLAY_COLUMNS} FROM events {settled_after}) TO STDOUT (FORMAT binary)")
}

/// Decodes the output of a [`settled_copy_statement`] as it arrives, into batches for a
/// fold. An event this build cannot read is an error, as it is for the live projection's
/// `apply`.
#[derive(Default)]
pub struct ReplayDecoder {
    /// The start of a row whose end has not arrived yet.
    pending: Vec<u8>,
    header_read: bool,
    ended: bool,
}

impl ReplayDecoder {
    /// Decodes the rows `data` completes into `batch`, keeping an unfinished one.
    /// PostgreSQL sends a row per message, so `pending` is rarely used.
    pub fn feed(&mut self, data: &[u8], batch: &mut ReplayBatch) -> anyhow::Result<()> {
        if self.pending.is_empty() {
            let used = self.decode(data, batch)?;
            self.pending.extend_from_slice(&data[used..]);
        } else {
            let mut pending = std::mem::take(&mut self.pending);
            pending.extend_from_slice(data);
            let used = self.decode(&pending, batch)?;
            pending.drain(..used);
            self.pending = pending;
        }
        Ok(())
    }

    /// Checks that the output ended as the format ends, with nothing left over.
    pub fn finish(self) -> anyhow::Result<()> {
        anyhow::ensure!(self.ended && self.pending.is_empty(), "the COPY of the log ended in the middle of a row");
        Ok(())
    }

    /// Decodes the complete rows at the start of `data`; returns the bytes used.
    fn decode(&mut self, data: &[u8], batch: &mut ReplayBatch) -> anyhow::Result<usize> {
        let mut cursor = Cursor { data, at: 0 };
        if !self.header_read {
            let Some(header) = cursor.take(HEADER.len() + 8) else { return Ok(0) };
            anyhow::ensure!(header.starts_with(HEADER), "COPY output that is not PostgreSQL's binary format");
            let extension = u32::from_be_bytes([header[15], header[16], header[17], header[18]]) as usize;
            let Some(_) = cursor.take(extension) else { return Ok(0) };
            self.header_read = true;
        }
        let mut used = cursor.at;
        while !self.ended {
            let Some(row) = cursor.row()? else { break };
            used = cursor.at;
            match row {
                None => self.ended = true,
                Some(row) => row.decode_into(batch)?,
            }
        }
        Ok(used)
    }
}

/// The binary `COPY` signature, before the flags and the header extension's length.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// The fields of one row of [`REPLAY_COLUMNS`].
struct CopyRow<'a>([&'a [u8]; 8]);

impl CopyRow<'_> {
    fn decode_into(&self, batch: &mut ReplayBatch) -> anyhow::Result<()> {
        let [global_position, tx_id, aggregate_type, aggregate_id, sequence, payload, metadata, skipped] = self.0;
        // An unsigned `xid8`; one beyond `i64::MAX` (2^63 transactions) reads as negative
        // here and fails, as the live reader's cast to bigint fails.
        let tx_id = int8(tx_id)?;
        anyhow::ensure!(tx_id >= 0, "a transaction id beyond a bigint");
        let position = LogPosition { tx_id, global_position: int8(global_position)? };
        batch.read += 1;
        batch.last = Some(position);
        let skipped = match skipped {
            [0] => false,
            [1] => true,
            _ => anyhow::bail!("a COPY boolean of {} bytes", skipped.len()),
        };
        if aggregate_type != PERMISSION_REQUEST_TYPE.as_bytes() || skipped {
            return Ok(());
        }
        let stored = StoredRequestEvent {
            position: position.global_position,
            aggregate_id: std::str::from_utf8(aggregate_id)?,
            sequence: int8(sequence)?,
            payload: std::str::from_utf8(payload)?,
            metadata: std::str::from_utf8(metadata)?,
        };
        batch.events.push(decode_request_event(&stored)?);
        Ok(())
    }
}

fn int8(field: &[u8]) -> anyhow::Result<i64> {
    let bytes: [u8; 8] = field.try_into().map_err(|_| anyhow::anyhow!("a COPY bigint of {} bytes", field.len()))?;
    Ok(i64::from_be_bytes(bytes))
}

/// Reading through binary `COPY` output; `None` where the data ends before what is read.
struct Cursor<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let taken = self.data.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(taken)
    }

    /// The next row: `Some(None)` for the end of the output (a field count of -1).
    fn row(&mut self) -> anyhow::Result<Option<Option<CopyRow<'a>>>> {
        let Some(&[high, low]) = self.take(2) else { return Ok(None) };
        let fields = i16::from_be_bytes([high, low]);
        if fields == -1 {
            return Ok(Some(None));
        }
        anyhow::ensure!(fields == 8, "a COPY row of {fields} fields where 8 were asked for");
        let mut row: [&[u8]; 8] = [&[]; 8];
        for field in &mut row {
            let Some(&[a, b, c, d]) = self.take(4) else { return Ok(None) };
            // -1 is NULL, which none of these columns is.
            let length = usize::try_from(i32::from_be_bytes([a, b, c, d]))
                .map_err(|_| anyhow::anyhow!("a NULL in a COPY of the log"))?;
            let Some(bytes) = self.take(length) else { return Ok(None) };
            *field = bytes;
        }
        Ok(Some(Some(CopyRow(row))))
    }
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

    /// A row of [`REPLAY_COLUMNS`]: (position, tx, aggregate type, aggregate id, sequence,
    /// payload, metadata, skipped).
    type Columns<'a> = (i64, i64, &'a str, &'a str, i64, &'a str, &'a str, bool);

    /// Binary `COPY` output of `rows`.
    fn copy_output(rows: &[Columns<'_>]) -> Vec<u8> {
        let mut out = HEADER.to_vec();
        out.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        let field = |out: &mut Vec<u8>, bytes: &[u8]| {
            out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
            out.extend_from_slice(bytes);
        };
        for &(position, tx, aggregate_type, aggregate_id, sequence, payload, metadata, skipped) in rows {
            out.extend_from_slice(&8i16.to_be_bytes());
            field(&mut out, &position.to_be_bytes());
            field(&mut out, &tx.to_be_bytes());
            field(&mut out, aggregate_type.as_bytes());
            field(&mut out, aggregate_id.as_bytes());
            field(&mut out, &sequence.to_be_bytes());
            field(&mut out, payload.as_bytes());
            field(&mut out, metadata.as_bytes());
            field(&mut out, &[u8::from(skipped)]);
        }
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out
    }

    #[test]
    fn copy_output_decodes_the_same_however_it_is_split() {
        let id = Uuid::new_v4().to_string();
        let approved = json!({"Approved": {"by": "admin", "at": "2026-12-03T10:00:00Z"}}).to_string();
        let skip = json!({"EventSkipped": {"position": 3}}).to_string();
        let data = copy_output(&[
            (3, 10, PERMISSION_REQUEST_TYPE, &id, 2, &approved, "{}", true),
            (4, 10, PERMISSION_REQUEST_TYPE, &id, 2, &approved, "{}", false),
            (5, 11, "EventSkip", "3", 1, &skip, "{}", false),
        ]);
        for split in [1, 2, 3, 7, 19, 20, 64, data.len()] {
            let (mut decoder, mut batch) = (ReplayDecoder::default(), ReplayBatch::default());
            for part in data.chunks(split) {
                decoder.feed(part, &mut batch).expect("well-formed");
            }
            decoder.finish().expect("complete");
            assert_eq!((batch.read, batch.last), (3, Some(LogPosition { tx_id: 11, global_position: 5 })));
            let positions: Vec<i64> = batch.events.iter().map(|e| e.position).collect();
            assert_eq!(positions, [4], "the skipped event and the other aggregate's are left out");
        }

        let mut cut = ReplayDecoder::default();
        cut.feed(&data[..data.len() - 5], &mut ReplayBatch::default()).expect("so far well-formed");
        assert!(cut.finish().is_err(), "an output that stops in a row");
        let unreadable =
            copy_output(&[(6, 12, PERMISSION_REQUEST_TYPE, &id, 3, r#"{"Approved": {"by": 7}}"#, "{}", false)]);
        let error = ReplayDecoder::default().feed(&unreadable, &mut ReplayBatch::default()).expect_err("unreadable");
        let error = error.downcast::<UnreadableEvent>().expect("an unreadable event");
        assert_eq!((error.position, error.sequence), (6, 3));
        assert!(ReplayDecoder::default()
            .feed(b"PGCOPY\n\xff\r\n\x01\0\0\0\0\0\0\0\0", &mut ReplayBatch::default())
            .is_err());
    }

    #[test]
    fn the_copy_reads_the_live_readers_settled_bound() {
        let statement = settled_copy_statement(LogPosition { tx_id: 41, global_position: 7 }, 100);
        assert!(statement.contains("> ('41'::text::xid8, 7)"), "{statement}");
        assert!(statement.contains("pg_snapshot_xmin(pg_current_snapshot())"), "{statement}");
        assert!(
            statement.ends_with("ORDER BY events.tx_id, events.global_position LIMIT 100) TO STDOUT (FORMAT binary)")
        );
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
