//! A rebuild's fold of `permission_requests`: the whole log folded in memory, each row
//! written once with `COPY` — when its request can change no more, or at the end.
//! Same rows as [`PermissionRequestsProjection::apply`](super::PermissionRequestsProjection)
//! over the same events (both fold with the domain's one `try_evolve`), without reading
//! rows back or upserting a request once per batch it appears in.

use std::collections::HashMap;
use std::io::Write;

use async_trait::async_trait;
use chrono::{DateTime, Datelike, Timelike, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Fold, ReadRow, COLUMNS};
use crate::log::replay::RequestEvent;
use crate::projection::Replay;

/// Final rows held before a `COPY` writes them.
const WRITE_BATCH: usize = 20_000;

#[derive(Default)]
pub(super) struct PermissionRequestsReplay {
    /// Requests that may still change.
    open: HashMap<Uuid, Fold>,
    /// Requests already written as final, with their status (events after one are skipped).
    closed: HashMap<Uuid, &'static str>,
    /// Final rows not written yet.
    ready: Vec<ReadRow>,
}

#[async_trait]
impl Replay for PermissionRequestsReplay {
    async fn fold(&mut self, conn: &mut PgConnection, table: &str, events: Vec<RequestEvent>) -> anyhow::Result<()> {
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
                self.ready.extend(fold.last_position.and_then(|at| ReadRow::from_state(id, fold.state, at)));
            }
        }
        if self.ready.len() >= WRITE_BATCH {
            copy_rows(conn, table, std::mem::take(&mut self.ready)).await?;
        }
        Ok(())
    }

    async fn finish(self: Box<Self>, conn: &mut PgConnection, table: &str) -> anyhow::Result<()> {
        let mut rows = self.ready;
        rows.extend(
            self.open.into_iter().filter_map(|(id, fold)| ReadRow::from_state(id, fold.state, fold.last_position?)),
        );
        copy_rows(conn, table, rows).await
    }
}

/// Writes rows into an empty table with `COPY ... FROM STDIN` (text format).
async fn copy_rows(conn: &mut PgConnection, table: &str, rows: Vec<ReadRow>) -> anyhow::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut text = Vec::with_capacity(rows.len() * 512);
    for row in &rows {
        write_row(&mut text, row);
    }
    let mut copy = conn.copy_in_raw(&format!("COPY {table} ({COLUMNS}) FROM STDIN")).await?;
    copy.send(text).await?;
    copy.finish().await?;
    Ok(())
}

/// One row in `COPY`'s text format, columns in [`COLUMNS`] order.
fn write_row(out: &mut Vec<u8>, row: &ReadRow) {
    let _ = write!(out, "{}", row.id.hyphenated());
    for text in [&row.request_type, &row.agent, &row.tool] {
        field(out, Some(text));
    }
    field(out, Some(&row.arguments.to_string()));
    for text in [&row.arguments_digest, &row.idempotency_key, &row.requested_by, &row.status] {
        field(out, Some(text));
    }
    time(out, Some(row.created_at));
    time(out, Some(row.expires_at));
    field(out, row.reviewed_by.as_deref());
    time(out, row.reviewed_at);
    field(out, row.reason.as_deref());
    time(out, row.expired_at);
    field(out, row.executed_by.as_deref());
    time(out, row.executed_at);
    time(out, row.result_cached_at);
    time(out, row.execute_by);
    let _ = writeln!(out, "\t{}", row.last_position);
}

/// A tab, then a text value escaped for `COPY` (or `\N` for NULL).
fn field(out: &mut Vec<u8>, value: Option<&str>) {
    out.push(b'\t');
    let Some(value) = value else {
        out.extend_from_slice(b"\\N");
        return;
    };
    for &byte in value.as_bytes() {
        match byte {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(byte),
        }
    }
}

/// A tab, then a timestamp to the microsecond, truncated as the binary encoding the
/// live projection writes with truncates it (so both write the same value).
///
/// Written digit by digit: `format` parses its pattern again for every value, which was
/// a few percent of a rebuild. Years outside 0–9999 and leap seconds, which the fixed
/// layout does not fit, still go through `format`.
fn time(out: &mut Vec<u8>, value: Option<DateTime<Utc>>) {
    let Some(at) = value else {
        out.extend_from_slice(b"\t\\N");
        return;
    };
    let (year, nanosecond) = (at.year(), at.nanosecond());
    if !(0..=9999).contains(&year) || nanosecond >= 1_000_000_000 {
        let _ = write!(out, "\t{}", at.format("%Y-%m-%d %H:%M:%S%.6f+00"));
        return;
    }
    // `\tYYYY-MM-DD HH:MM:SS.uuuuuu+00`
    let mut text = *b"\t0000-00-00 00:00:00.000000+00";
    let mut digits = |at: usize, width: usize, mut value: u32| {
        for i in (at..at + width).rev() {
            text[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    digits(1, 4, year as u32);
    digits(6, 2, at.month());
    digits(9, 2, at.day());
    digits(12, 2, at.hour());
    digits(15, 2, at.minute());
    digits(18, 2, at.second());
    digits(21, 6, nanosecond / 1000);
    out.extend_from_slice(&text);
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn text_fields_are_escaped_and_times_truncated_to_the_microsecond() {
        let mut out = Vec::new();
        field(&mut out, Some("a\tb\\c\nd\re"));
        field(&mut out, None);
        time(&mut out, Some(Utc.timestamp_opt(1_700_000_000, 123_456_789).unwrap()));
        assert_eq!(String::from_utf8(out).unwrap(), "\ta\\tb\\\\c\\nd\\re\t\\N\t2023-11-14 22:13:20.123456+00");
    }

    #[test]
    fn times_read_as_the_pattern_writes_them() {
        let pattern = |at: DateTime<Utc>| format!("\t{}", at.format("%Y-%m-%d %H:%M:%S%.6f+00"));
        let times = [
            Utc.timestamp_opt(0, 0).unwrap(),
            Utc.timestamp_opt(1_700_000_000, 999_999_999).unwrap(),
            Utc.timestamp_opt(1_790_000_000, 1_000).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-1, 6, 30, 12, 0, 0).unwrap(),
            // A leap second.
            Utc.timestamp_opt(1_483_228_799, 1_500_000_000).unwrap(),
        ];
        for at in times {
            let mut out = Vec::new();
            time(&mut out, Some(at));
            assert_eq!(String::from_utf8(out).unwrap(), pattern(at), "{at:?}");
        }
    }
}
