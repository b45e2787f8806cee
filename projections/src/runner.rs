//! The catch-up runner: applies the log to one projection, durably and exactly once.

use std::sync::Arc;
use std::time::Duration;

use sqlx::{PgConnection, PgPool, Row};
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::changes::EventListener;
use crate::leadership::Leadership;
use crate::log::{read_settled_batch, LogPosition, UnreadableEvent};
use crate::projection::Projection;

pub const DEFAULT_BATCH_SIZE: i64 = 1000;
/// Longest wait between retries of a failing batch. Shorter than
/// `leadership::STALE_AFTER`: the leader's heartbeat is beaten between batches.
const MAX_ERROR_BACKOFF: Duration = Duration::from_secs(15);

/// Makes sure the projection has a checkpoint row.
pub async fn register(pool: &PgPool, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .execute(pool)
        .await?;
    Ok(())
}

/// Reads a checkpoint, locking its row for the rest of the transaction. The row lock is
/// what serialises batches (and a rebuild's swap) across processes.
pub async fn lock_checkpoint(conn: &mut PgConnection, name: &str) -> Result<LogPosition, sqlx::Error> {
    let row = sqlx::query(
        "SELECT last_tx_id::text::bigint AS tx_id, last_position FROM projection_checkpoints \
         WHERE name = $1 FOR UPDATE",
    )
    .bind(name)
    .fetch_one(&mut *conn)
    .await?;
    Ok(LogPosition { tx_id: row.try_get("tx_id")?, global_position: row.try_get("last_position")? })
}

pub async fn store_checkpoint(conn: &mut PgConnection, name: &str, at: LogPosition) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE projection_checkpoints SET last_tx_id = $2::text::xid8, last_position = $3, \
         updated_at = now(), last_error = NULL, last_error_at = NULL, unreadable_position = NULL \
         WHERE name = $1",
    )
    .bind(name)
    .bind(at.tx_id.to_string())
    .bind(at.global_position)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Applies one batch in one transaction: the rows and the checkpoint commit together.
/// Returns how many events it applied (0 when caught up).
///
/// The commit does not wait for its WAL to reach disk (`synchronous_commit = off`): a
/// projection is derived from the log, and its rows and checkpoint commit together, so
/// a crash can only take back the last few batches whole (PostgreSQL flushes within
/// three `wal_writer_delay`s), which the projection then applies again from the durable
/// log. Any later durable commit flushes these first (the WAL is one sequence), so
/// nothing durable can depend on a batch that was lost. Not waiting keeps projection
/// batches out of the queue of fsyncs that requests' own appends wait in.
pub async fn apply_next_batch(pool: &PgPool, projection: &dyn Projection, batch_size: i64) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await?;
    let checkpoint = lock_checkpoint(&mut tx, projection.name()).await?;
    let events = read_settled_batch(&mut tx, checkpoint, batch_size).await?;
    let Some(last) = events.last().map(|e| e.position()) else {
        tx.rollback().await?;
        return Ok(0);
    };
    // Only for a batch that commits: an empty poll rolls back and needs no round trip more.
    sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *tx).await?;
    projection.apply(&mut tx, projection.table(), &events).await?;
    store_checkpoint(&mut tx, projection.name(), last).await?;
    tx.commit().await?;
    Ok(events.len())
}

/// Applies batches until nothing settled is left (a batch comes back short). Returns the
/// number applied.
pub async fn catch_up(pool: &PgPool, projection: &dyn Projection, batch_size: i64) -> anyhow::Result<u64> {
    register(pool, projection.name()).await?;
    let mut total = 0u64;
    loop {
        let applied = apply_next_batch(pool, projection, batch_size).await?;
        total += applied as u64;
        if (applied as i64) < batch_size {
            return Ok(total);
        }
    }
}

/// Records a failed batch on the projection's checkpoint row (shown by `projections
/// status`), with the position of the event it is stuck on when that event cannot be read;
/// the next success clears both.
pub async fn record_error(pool: &PgPool, name: &str, error: &anyhow::Error) {
    let unreadable_position =
        error.chain().find_map(|cause| cause.downcast_ref::<UnreadableEvent>()).map(|unreadable| unreadable.position);
    let result = sqlx::query(
        "UPDATE projection_checkpoints SET last_error = $2, last_error_at = now(), unreadable_position = $3 \
         WHERE name = $1",
    )
    .bind(name)
    .bind(format!("{error:#}"))
    .bind(unreadable_position)
    .execute(pool)
    .await;
    if let Err(db_error) = result {
        tracing::warn!(%db_error, "could not record projection error");
    }
}

/// The advisory lock whose holder runs the projection called `name`.
pub fn lock_key(name: &str) -> String {
    format!("alexandria.projection.{name}")
}

/// Keeps one projection caught up for as long as the process runs. Across replicas only
/// the holder of the projection's advisory lock works; the others stand by and take over
/// when its session ends.
pub struct ProjectionRunner {
    pub pool: PgPool,
    pub projection: Arc<dyn Projection>,
    pub listener: Arc<EventListener>,
    pub batch_size: i64,
    /// Fallback when notifications are lost, and the stand-by's retry interval.
    pub poll_interval: Duration,
}

impl ProjectionRunner {
    pub fn new(pool: PgPool, projection: Arc<dyn Projection>, listener: Arc<EventListener>) -> Self {
        Self { pool, projection, listener, batch_size: DEFAULT_BATCH_SIZE, poll_interval: Duration::from_secs(1) }
    }

    fn lock_key(&self) -> String {
        lock_key(self.projection.name())
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let standby = self.poll_interval * 5;
        Leadership::run_while_leading(&self.pool, &self.lock_key(), standby, &shutdown, |leadership| {
            self.lead(leadership, &shutdown)
        })
        .await
    }

    /// Applies batches while this process holds the projection's lock: woken by NOTIFY,
    /// polling as a fallback, backing off while batches fail.
    async fn lead(&self, mut leadership: Leadership, shutdown: &CancellationToken) -> Leadership {
        let name = self.projection.name();
        if let Err(error) = register(&self.pool, name).await {
            tracing::warn!(projection = name, %error, "cannot register projection");
        }
        let mut changes = self.listener.subscribe();
        let mut failures = Backoff::new(self.poll_interval, MAX_ERROR_BACKOFF).retries();
        let mut lock_checked = tokio::time::Instant::now();
        loop {
            // Still the leader? Checked on every round, however busy (this is also the
            // leader's heartbeat): a dead lock connection means the lock is gone.
            if lock_checked.elapsed() >= self.poll_interval {
                lock_checked = tokio::time::Instant::now();
                if !leadership.is_held().await {
                    tracing::warn!(projection = name, "lost the projection lock connection");
                    return leadership;
                }
            }
            let nap = match apply_next_batch(&self.pool, self.projection.as_ref(), self.batch_size).await {
                Ok(applied) if applied as i64 == self.batch_size => continue, // more is waiting
                Ok(_) => {
                    failures.reset();
                    self.poll_interval
                }
                Err(error) => {
                    tracing::error!(projection = name, error = format!("{error:#}"), "projection batch failed");
                    record_error(&self.pool, name, &error).await;
                    failures.next_delay()
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return leadership,
                _ = changes.recv() => {}
                _ = tokio::time::sleep(nap) => {}
            }
        }
    }
}
