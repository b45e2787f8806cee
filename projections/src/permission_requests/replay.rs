//! A rebuild's fold of `permission_requests`: the whole log folded in memory, each row
//! written once — when its request can change no more, or at the end — in `COPY`'s binary
//! format, which the rebuild streams into the shadow table with one `COPY`.
//! Same rows as [`PermissionRequestsProjection::apply`](super::PermissionRequestsProjection)
//! over the same events (both fold with the domain's one `try_evolve`), without reading
//! rows back or upserting a request once per batch it appears in.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{Fold, ReadRow, COLUMNS};
use crate::log::replay::RequestEvent;
use crate::projection::Replay;

/// Bytes of final rows held before they are handed to the `COPY`.
const WRITE_BATCH_BYTES: usize = 4 << 20;

pub(super) struct PermissionRequestsReplay {
    /// Requests that may still change.
    open: HashMap<Uuid, Fold>,
    /// Requests already written as final, with their status (events after one are skipped).
    closed: HashMap<Uuid, &'static str>,
    /// Final rows in `COPY` format, not handed over yet; starts with the format's header.
    ready: Vec<u8>,
}

impl Default for PermissionRequestsReplay {
    fn default() -> Self {
        PermissionRequestsReplay { open: HashMap::new(), closed: HashMap::new(), ready: COPY_HEADER.to_vec() }
    }
}

impl Replay for PermissionRequestsReplay {
    fn copy_statement(&self, table: &str) -> String {
        format!("COPY {table} ({COLUMNS}) FROM STDIN (FORMAT binary)")
    }

    fn fold(&mut self, events: Vec<RequestEvent>) -> anyhow::Result<Vec<u8>> {
        for RequestEvent { id, event: payload, position } in events {
            if let Some(status) = self.closed.get(&id) {
                tracing::warn!(%id, position, event = payload.name(), %status, "event for a request that is already final; skipped");
                continue;
            }
            let fold = self.open.entry(id).or_default();
            fold.apply(id, payload, position);
            let Some(status) = fold.state.status().filter(|status| status.is_final()) else { continue };
            if let Some(fold) = self.open.remove(&id) {
                self.closed.insert(id, status.as_str());
                if let Some(row) = fold.last_position.and_then(|at| ReadRow::from_state(id, fold.state, at)) {
                    write_row(&mut self.ready, &row)?;
                }
            }
        }
        Ok(if self.ready.len() >= WRITE_BATCH_BYTES { std::mem::take(&mut self.ready) } else { Vec::new() })
    }

    fn finish(self: Box<Self>) -> anyhow::Result<Vec<u8>> {
        let mut out = self.ready;
        for (id, fold) in self.open {
            if let Some(row) = fold.last_position.and_then(|at| ReadRow::from_state(id, fold.state, at)) {
                write_row(&mut out, &row)?;
            }
        }
        out.extend_from_slice(&COPY_TRAILER);
        Ok(out)
    }
}

/// The binary `COPY` signature, no flags, no header extension.
const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// Where the next row's field count would be.
const COPY_TRAILER: [u8; 2] = (-1i16).to_be_bytes();
/// The number of [`COLUMNS`].
const COLUMN_COUNT: i16 = 20;

/// One row in `COPY`'s binary format, columns in [`COLUMNS`] order. Each value is
/// encoded as the live projection's binary parameters encode it, so both store the same.
fn write_row(out: &mut Vec<u8>, row: &ReadRow) -> anyhow::Result<()> {
    out.extend_from_slice(&COLUMN_COUNT.to_be_bytes());
    field(out, Some(row.id.as_bytes()))?;
    for text in [&row.request_type, &row.agent, &row.tool] {
        field(out, Some(text.as_bytes()))?;
    }
    jsonb(out, &row.arguments)?;
    for text in [&row.arguments_digest, &row.idempotency_key, &row.requested_by, &row.status] {
        field(out, Some(text.as_bytes()))?;
    }
    time(out, Some(row.created_at))?;
    time(out, Some(row.expires_at))?;
    field(out, row.reviewed_by.as_deref().map(str::as_bytes))?;
    time(out, row.reviewed_at)?;
    field(out, row.reason.as_deref().map(str::as_bytes))?;
    time(out, row.expired_at)?;
    field(out, row.executed_by.as_deref().map(str::as_bytes))?;
    time(out, row.executed_at)?;
    time(out, row.result_cached_at)?;
    time(out, row.execute_by)?;
    field(out, Some(&row.last_position.to_be_bytes()))
}

/// A field's length, then its bytes; a length of -1 for NULL.
fn field(out: &mut Vec<u8>, value: Option<&[u8]>) -> anyhow::Result<()> {
    match value {
        Some(bytes) => {
            out.extend_from_slice(&i32::try_from(bytes.len())?.to_be_bytes());
            out.extend_from_slice(bytes);
        }
        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
    }
    Ok(())
}

/// `jsonb`: a format version (1), then the JSON text.
fn jsonb(out: &mut Vec<u8>, value: &Value) -> anyhow::Result<()> {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0, 1]);
    serde_json::to_writer(&mut *out, value)?;
    let length = i32::try_from(out.len() - start - 4)?;
    out[start..start + 4].copy_from_slice(&length.to_be_bytes());
    Ok(())
}

/// `timestamptz`: microseconds since 2000-01-01 UTC, computed as sqlx computes the live
/// projection's parameters (so both truncate to the microsecond alike).
fn time(out: &mut Vec<u8>, value: Option<DateTime<Utc>>) -> anyhow::Result<()> {
    let Some(at) = value else { return field(out, None) };
    let out_of_range = || anyhow::anyhow!("{at} is out of PostgreSQL's range");
    let epoch =
        NaiveDate::from_ymd_opt(2000, 1, 1).and_then(|date| date.and_hms_opt(0, 0, 0)).ok_or_else(out_of_range)?;
    let micros = (at.naive_utc() - epoch).num_microseconds().ok_or_else(out_of_range)?;
    field(out, Some(&micros.to_be_bytes()))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn encoded_time(at: DateTime<Utc>) -> i64 {
        let mut out = Vec::new();
        time(&mut out, Some(at)).expect("in range");
        assert_eq!(out[..4], 8i32.to_be_bytes());
        i64::from_be_bytes(out[4..].try_into().expect("8 bytes"))
    }

    #[test]
    fn times_are_microseconds_since_2000_truncated_as_the_live_encoding_truncates() {
        let epoch = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(encoded_time(epoch), 0);
        assert_eq!(encoded_time(Utc.timestamp_opt(946_684_800, 1_999).unwrap()), 1);
        // Before 2000, toward 2000, as the live encoding truncates (the text format this
        // replaces wrote the earlier microsecond there: a row unlike the live one).
        assert_eq!(encoded_time(Utc.timestamp_opt(946_684_799, 999_999_100).unwrap()), 0);
        assert_eq!(encoded_time(Utc.timestamp_opt(946_684_799, 999_998_100).unwrap()), -1);
        assert_eq!(encoded_time(Utc.timestamp_opt(1_700_000_000, 123_456_789).unwrap()), 753_315_200_123_456);
        let mut out = Vec::new();
        time(&mut out, None).expect("NULL");
        assert_eq!(out, (-1i32).to_be_bytes());
    }

    #[test]
    fn fields_are_length_prefixed_and_jsonb_carries_its_version() {
        let mut out = Vec::new();
        field(&mut out, Some(b"a\tb")).expect("a field");
        jsonb(&mut out, &serde_json::json!({"k": [1]})).expect("jsonb");
        assert_eq!(out, b"\0\0\0\x03a\tb\0\0\0\x0a\x01{\"k\":[1]}");
    }
}
