//! Reading the log for an export, batch by batch, in chain order with each line's seal
//! (the CLI's `events export` and `GET /admin/events` share it).

use alexandria_projections::log::{projection_position_of, read_global_batch};
use alexandria_projections::LogPosition;
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use super::log::{attach_event_seals, content_lines, event_lines};
use super::signing::Checkpoint;

pub const EXPORT_BATCH: i64 = 5000;

/// What to export.
#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    /// Only this permission request's events (in global order; their seals are shown but
    /// such a file is not a chain).
    pub request: Option<Uuid>,
    /// Only events after the event at this global position in chain order (0: from the
    /// start). An auditor fetching more passes the last position it has.
    pub since: i64,
    /// Stop after the event this checkpoint covers and end with the checkpoint's line.
    pub until: Option<Checkpoint>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("there is no event at position {0} to export after; pass a position an earlier export ended with (or 0)")]
    NoSuchPosition(i64),
    #[error("--since must be a position of 0 or more")]
    NegativePosition,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Where an export is: call [`next_batch`](Self::next_batch) until it returns nothing.
/// Run it in one `REPEATABLE READ` transaction, so that sealed and unsealed lines are
/// seen as of one moment.
pub struct ExportCursor {
    filter: ExportFilter,
    after: Option<LogPosition>,
    done: bool,
}

impl ExportCursor {
    pub fn new(filter: ExportFilter) -> Result<Self, ExportError> {
        if filter.since < 0 {
            return Err(ExportError::NegativePosition);
        }
        Ok(ExportCursor { filter, after: None, done: false })
    }

    /// The next lines (events, and last the checkpoint's line when stopping at one).
    pub async fn next_batch(&mut self, conn: &mut PgConnection) -> Result<Vec<Value>, ExportError> {
        if self.done {
            return Ok(Vec::new());
        }
        let after = match self.after {
            Some(after) => after,
            None if self.filter.since == 0 || self.filter.request.is_some() => {
                LogPosition { tx_id: 0, global_position: self.filter.since }
            }
            None => projection_position_of(conn, self.filter.since)
                .await?
                .ok_or(ExportError::NoSuchPosition(self.filter.since))?,
        };
        let mut lines = match self.filter.request {
            Some(request) => {
                let events =
                    read_global_batch(conn, Some(&request.to_string()), after.global_position, EXPORT_BATCH).await?;
                let content = content_lines(conn, &events).await?;
                attach_event_seals(conn, &events, content).await?
            }
            None => event_lines(conn, after, EXPORT_BATCH).await?,
        };
        let Some(last) = lines.last() else {
            self.done = true;
            return Ok(match self.filter.until.take() {
                Some(checkpoint) => vec![checkpoint.to_line()],
                None => Vec::new(),
            });
        };
        self.after = Some(last.at);
        if let Some(checkpoint) = &self.filter.until {
            if let Some(end) = lines.iter().position(|line| line.seq == Some(checkpoint.seq)) {
                lines.truncate(end + 1);
                let checkpoint_line = checkpoint.to_line();
                self.done = true;
                let mut out: Vec<Value> = lines.into_iter().map(|line| line.line).collect();
                out.push(checkpoint_line);
                return Ok(out);
            }
        }
        Ok(lines.into_iter().map(|line| line.line).collect())
    }
}

/// Starts the transaction an export reads in: one snapshot, read only.
pub async fn begin_snapshot(pool: &sqlx::PgPool) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    Ok(tx)
}

/// Which chain an HTTP export streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamedChain {
    Events,
    AdminAudit,
}

/// An export as a stream of chunks of JSON lines (`GET /admin/events`,
/// `GET /admin/audit/export`): a task reads batch after batch in one snapshot and stops
/// when the receiver is dropped (the client went away). The first batch is read before
/// this returns, so a bad `since` is an error, not a broken stream.
pub async fn open_stream(
    pool: &sqlx::PgPool,
    chain: StreamedChain,
    filter: ExportFilter,
) -> Result<tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>, ExportError> {
    let mut tx = begin_snapshot(pool).await?;
    let mut next = match chain {
        StreamedChain::Events => Batches::Events(ExportCursor::new(filter)?),
        StreamedChain::AdminAudit => {
            if filter.since < 0 {
                return Err(ExportError::NegativePosition);
            }
            Batches::Admin(admin_start(&mut tx, filter.since).await?)
        }
    };
    let first = next.batch(&mut tx).await?;
    let (sender, receiver) = tokio::sync::mpsc::channel(2);
    tokio::spawn(async move {
        let mut batch = first;
        while !batch.is_empty() {
            if sender.send(Ok(to_lines(&batch))).await.is_err() {
                break; // the client hung up
            }
            batch = match next.batch(&mut tx).await {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::warn!(%error, "an export stream failed");
                    let _ = sender.send(Err(std::io::Error::other("the export failed; retry with since="))).await;
                    break;
                }
            };
        }
        let _ = tx.rollback().await;
    });
    Ok(receiver)
}

fn to_lines(batch: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(batch.len() * 512);
    for line in batch {
        // A Value always serialises.
        let _ = serde_json::to_writer(&mut out, line);
        out.push(b'\n');
    }
    out
}

enum Batches {
    Events(ExportCursor),
    Admin(LogPosition),
}

impl Batches {
    async fn batch(&mut self, conn: &mut PgConnection) -> Result<Vec<Value>, ExportError> {
        match self {
            Batches::Events(cursor) => cursor.next_batch(conn).await,
            Batches::Admin(after) => {
                let lines = super::log::admin_lines(conn, *after, EXPORT_BATCH, false).await?;
                if let Some(last) = lines.last() {
                    *after = last.at;
                }
                Ok(lines.into_iter().map(|line| line.line).collect())
            }
        }
    }
}

/// Where the admin chain continues after row `since` (0: the start).
async fn admin_start(conn: &mut PgConnection, since: i64) -> Result<LogPosition, ExportError> {
    if since == 0 {
        return Ok(LogPosition::START);
    }
    let tx_id: Option<i64> = sqlx::query_scalar("SELECT tx_id::text::bigint FROM admin_audit WHERE id = $1")
        .bind(since)
        .fetch_optional(&mut *conn)
        .await?;
    tx_id.map(|tx_id| LogPosition { tx_id, global_position: since }).ok_or(ExportError::NoSuchPosition(since))
}
