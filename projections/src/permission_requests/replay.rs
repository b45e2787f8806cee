//! A rebuild's fold of `permission_requests`: the whole log folded in memory, each row
//! written once with `COPY` — when its request can change no more, or at the end.
//! Same rows as [`PermissionRequestsProjection::apply`](super::PermissionRequestsProjection)
//! over the same events (both fold with the domain's one `try_evolve`), without reading
//! rows back or upserting a request once per batch it appears in.

use std::collections::HashMap;
use std::io::Write;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
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
fn time(out: &mut Vec<u8>, value: Option<DateTime<Utc>>) {
    match value {
        Some(at) => {
            let _ = write!(out, "\t{}", at.format("%Y-%m-%d %H:%M:%S%.6f+00"));
        }
        None => out.extend_from_slice(b"\t\\N"),
    }
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
}
