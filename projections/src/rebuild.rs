//! Rebuilding a read model from event 0 while the server keeps serving.
//!
//! The log is replayed into a shadow copy of the table (`<table>_rebuild`, created with
//! `LIKE ... INCLUDING ALL` so the migrations stay the only definition of the schema).
//! Then one transaction locks the projection's checkpoint row (pausing the live runner on
//! every replica), replaces the live table with the shadow, renames the indexes back and
//! sets the checkpoint to where the shadow got. The live runner resumes from there.

use std::time::{Duration, Instant};

use futures::StreamExt;
use sqlx::{PgPool, Row};

use crate::log::replay::{settled_copy_statement, ReplayBatch, ReplayDecoder};
use crate::log::{count_after, read_settled_batch, LogPosition};
use crate::projection::{Projection, Replay};
use crate::runner::{lock_checkpoint, register, store_checkpoint};

pub const REBUILD_BATCH_SIZE: i64 = 10_000;
/// How many batches a replay reads with one `COPY` statement.
const REPLAY_BATCHES_PER_STATEMENT: u64 = 10;

/// Progress reports: events applied so far and the total expected at the start.
pub trait RebuildProgress {
    fn started(&mut self, total_events: u64);
    fn advanced(&mut self, applied_events: u64);
}

impl RebuildProgress for () {
    fn started(&mut self, _: u64) {}
    fn advanced(&mut self, _: u64) {}
}

#[derive(Debug, Clone)]
pub struct RebuildSummary {
    pub projection: String,
    pub events: u64,
    pub rows: i64,
    pub elapsed: Duration,
    pub position: i64,
}

impl RebuildSummary {
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// An index of the live table, to be recreated on the shadow table.
struct LiveIndex {
    name: String,
    /// `pg_indexes.indexdef`: `CREATE [UNIQUE] INDEX name ON schema.table USING ...`.
    definition: String,
    unique: bool,
    primary: bool,
}

impl LiveIndex {
    /// The same index on `shadow`, named with the shadow's prefix so the swap can
    /// rename it back.
    fn shadow_name(&self, table: &str, shadow: &str) -> String {
        match self.name.strip_prefix(table) {
            Some(suffix) => format!("{shadow}{suffix}"),
            None => format!("{shadow}_{}", self.name),
        }
    }

    fn definition_for(&self, table: &str, shadow: &str) -> String {
        let shadow_name = self.shadow_name(table, shadow);
        let on_clause = |t: &str| format!(" ON {t} USING ");
        let definition =
            self.definition.replacen(&format!("INDEX {} ON", self.name), &format!("INDEX {shadow_name} ON"), 1);
        // `indexdef` names the table schema-qualified; match either form.
        let definition = definition.replacen(&format!(" ON public.{table} USING "), &on_clause(shadow), 1);
        definition.replacen(&on_clause(table), &on_clause(shadow), 1)
    }
}

async fn live_indexes(pool: &PgPool, table: &str) -> Result<Vec<LiveIndex>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT c.relname::text AS name, pg_get_indexdef(i.indexrelid) AS definition, i.indisunique AS unique, i.indisprimary AS primary \
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
         WHERE i.indrelid = $1::regclass ORDER BY c.relname",
    )
    .bind(table)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(LiveIndex {
                name: r.try_get("name")?,
                definition: r.try_get("definition")?,
                unique: r.try_get("unique")?,
                primary: r.try_get("primary")?,
            })
        })
        .collect()
}

fn shadow_name(table: &str) -> String {
    format!("{table}_rebuild")
}

pub async fn rebuild(
    pool: &PgPool,
    projection: &dyn Projection,
    progress: &mut dyn RebuildProgress,
) -> anyhow::Result<RebuildSummary> {
    rebuild_in_batches_of(pool, projection, progress, REBUILD_BATCH_SIZE).await
}

/// [`rebuild`], reading `batch_size` events at a time (tests use small batches, so that a
/// request's events span several).
pub async fn rebuild_in_batches_of(
    pool: &PgPool,
    projection: &dyn Projection,
    progress: &mut dyn RebuildProgress,
    batch_size: i64,
) -> anyhow::Result<RebuildSummary> {
    let started = Instant::now();
    let table = projection.table();
    let shadow = shadow_name(table);
    register(pool, projection.name()).await?;

    sqlx::query(&format!("DROP TABLE IF EXISTS {shadow}")).execute(pool).await?;
    // Copy the table without its indexes, except the unique ones (upserts and lookups
    // need them); the others are built once at the end, which is several times cheaper
    // than maintaining them row by row during the replay.
    sqlx::query(&format!("CREATE TABLE {shadow} (LIKE {table} INCLUDING ALL EXCLUDING INDEXES)")).execute(pool).await?;
    let indexes = live_indexes(pool, table).await?;
    for index in indexes.iter().filter(|i| i.unique) {
        sqlx::query(&index.definition_for(table, &shadow)).execute(pool).await?;
        if index.primary {
            let name = index.shadow_name(table, &shadow);
            sqlx::query(&format!("ALTER TABLE {shadow} ADD CONSTRAINT {name} PRIMARY KEY USING INDEX {name}"))
                .execute(pool)
                .await?;
        }
    }

    let mut conn = pool.acquire().await?;
    progress.started(count_after(&mut conn, LogPosition::START).await?.max(0) as u64);
    drop(conn);
    // Replay into the shadow table without touching the live table or its checkpoint.
    let (mut at, mut applied) = match projection.replay() {
        Some(replay) => replay_into(pool, replay, &shadow, batch_size, progress).await?,
        None => apply_into(pool, projection, &shadow, batch_size, progress).await?,
    };

    // The swap. Events committed since the loop ended are not in the shadow table; the
    // live runner applies them after the swap, because the checkpoint says the shadow
    // has reached `at` and no further.
    let mut tx = pool.begin().await?;
    lock_checkpoint(&mut tx, projection.name()).await?;
    loop {
        let events = read_settled_batch(&mut tx, at, batch_size).await?;
        let Some(last) = events.last().map(|e| e.position()) else { break };
        projection.apply(&mut tx, &shadow, &events).await?;
        at = last;
        applied += events.len() as u64;
        progress.advanced(applied);
    }
    for index in indexes.iter().filter(|i| !i.unique) {
        sqlx::query(&index.definition_for(table, &shadow)).execute(&mut *tx).await?;
    }
    let shadow_indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1",
    )
    .bind(&shadow)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query(&format!("DROP TABLE {table}")).execute(&mut *tx).await?;
    sqlx::query(&format!("ALTER TABLE {shadow} RENAME TO {table}")).execute(&mut *tx).await?;
    for index in shadow_indexes {
        if let Some(suffix) = index.strip_prefix(&shadow) {
            sqlx::query(&format!("ALTER INDEX {index} RENAME TO {table}{suffix}")).execute(&mut *tx).await?;
        }
    }
    store_checkpoint(&mut tx, projection.name(), at).await?;
    let rows: i64 =
        sqlx::query(&format!("SELECT count(*) AS n FROM {table}")).fetch_one(&mut *tx).await?.try_get("n")?;
    tx.commit().await?;

    Ok(RebuildSummary {
        projection: projection.name().to_owned(),
        events: applied,
        rows,
        elapsed: started.elapsed(),
        position: at.global_position,
    })
}

/// Folds the settled log into the shadow table with the projection's [`Replay`]. Three
/// things run at once: reading and decoding (a task of its own, with its own connection),
/// folding (here), and PostgreSQL storing the rows already folded. The shadow table is
/// nobody else's until the swap: it is written by one `COPY` that lasts the whole replay
/// (a failed rebuild leaves a shadow table the next one drops). Returns where it got and
/// how many events it read.
async fn replay_into(
    pool: &PgPool,
    mut replay: Box<dyn Replay>,
    shadow: &str,
    batch_size: i64,
    progress: &mut dyn RebuildProgress,
) -> anyhow::Result<(LogPosition, u64)> {
    let (batches, mut incoming) = tokio::sync::mpsc::channel(2);
    let reader_pool = pool.clone();
    let reader = tokio::spawn(async move {
        let mut conn = reader_pool.acquire().await?;
        // A `COPY` left in the middle (the fold failed) would leave the connection in it.
        conn.close_on_drop();
        let batch_size = u64::try_from(batch_size.max(1))?;
        let mut at = LogPosition::START;
        loop {
            // Each statement re-reads the oldest running transaction, as each batch of
            // the live reader does; a statement spans several batches, so that the
            // query's setup is paid rarely.
            let statement = settled_copy_statement(at, (batch_size * REPLAY_BATCHES_PER_STATEMENT) as i64);
            let mut rows = conn.copy_out_raw(&statement).await?;
            let (mut decoder, mut batch) = (ReplayDecoder::default(), ReplayBatch::default());
            let mut read = 0;
            while let Some(data) = rows.next().await {
                decoder.feed(&data?, &mut batch)?;
                if batch.read >= batch_size {
                    read += batch.read;
                    at = batch.last.unwrap_or(at);
                    if batches.send(std::mem::take(&mut batch)).await.is_err() {
                        return Ok(()); // the fold failed and says why
                    }
                }
            }
            decoder.finish()?;
            read += batch.read;
            at = batch.last.unwrap_or(at);
            if read == 0 {
                return anyhow::Ok(());
            }
            if batch.read > 0 && batches.send(batch).await.is_err() {
                return Ok(());
            }
        }
    });
    let mut conn = pool.acquire().await?;
    let mut copy = conn.copy_in_raw(&replay.copy_statement(shadow)).await?;
    let (mut at, mut applied) = (LogPosition::START, 0);
    let folded = async {
        while let Some(batch) = incoming.recv().await {
            let data = replay.fold(batch.events)?;
            if !data.is_empty() {
                copy.send(data).await?;
            }
            at = batch.last.unwrap_or(at);
            applied += batch.read;
            progress.advanced(applied);
        }
        anyhow::Ok(())
    }
    .await;
    drop(incoming); // a reader still sending learns that the fold stopped
    let read = reader.await.map_err(anyhow::Error::from).and_then(|read| read);
    if let Err(error) = folded.and(read) {
        // Best effort: the error that stopped the rebuild is the one to report.
        let _ = copy.abort("the rebuild stopped").await;
        return Err(error);
    }
    copy.send(replay.finish()?).await?;
    copy.finish().await?;
    Ok((at, applied))
}

/// Applies the settled log to the shadow table with [`Projection::apply`], a transaction
/// per batch; reading the next batch overlaps with applying the current one.
async fn apply_into(
    pool: &PgPool,
    projection: &dyn Projection,
    shadow: &str,
    batch_size: i64,
    progress: &mut dyn RebuildProgress,
) -> anyhow::Result<(LogPosition, u64)> {
    let (batches, mut incoming) = tokio::sync::mpsc::channel(2);
    let reader_pool = pool.clone();
    let reader = tokio::spawn(async move {
        let mut conn = reader_pool.acquire().await?;
        let mut at = LogPosition::START;
        loop {
            let events = read_settled_batch(&mut conn, at, batch_size).await?;
            let Some(last) = events.last().map(|e| e.position()) else { return anyhow::Ok(()) };
            at = last;
            if batches.send(events).await.is_err() {
                return Ok(()); // the writer failed and says why
            }
        }
    });
    let (mut at, mut applied) = (LogPosition::START, 0);
    while let Some(events) = incoming.recv().await {
        let mut tx = pool.begin().await?;
        projection.apply(&mut tx, shadow, &events).await?;
        tx.commit().await?;
        at = events.last().map(|e| e.position()).unwrap_or(at);
        applied += events.len() as u64;
        progress.advanced(applied);
    }
    reader.await??;
    Ok((at, applied))
}
