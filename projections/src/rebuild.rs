//! Rebuilding a read model from event 0 while the server keeps serving.
//!
//! The log is replayed into a shadow copy of the table (`<table>_rebuild`, created with
//! `LIKE ... INCLUDING ALL` so the migrations stay the only definition of the schema).
//! Then one transaction locks the projection's checkpoint row (pausing the live runner on
//! every replica), replaces the live table with the shadow, renames the indexes back and
//! sets the checkpoint to where the shadow got. The live runner resumes from there.

use std::time::{Duration, Instant};

use sqlx::{PgPool, Row};

use crate::log::{count_after, read_settled_batch, LogPosition};
use crate::projection::Projection;
use crate::runner::{lock_checkpoint, register, store_checkpoint};

pub const REBUILD_BATCH_SIZE: i64 = 10_000;

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

fn shadow_name(table: &str) -> String {
    format!("{table}_rebuild")
}

pub async fn rebuild(
    pool: &PgPool,
    projection: &dyn Projection,
    progress: &mut dyn RebuildProgress,
) -> anyhow::Result<RebuildSummary> {
    let started = Instant::now();
    let table = projection.table();
    let shadow = shadow_name(table);
    register(pool, projection.name()).await?;

    sqlx::query(&format!("DROP TABLE IF EXISTS {shadow}")).execute(pool).await?;
    sqlx::query(&format!("CREATE TABLE {shadow} (LIKE {table} INCLUDING ALL)")).execute(pool).await?;

    let mut conn = pool.acquire().await?;
    progress.started(count_after(&mut conn, LogPosition::START).await?.max(0) as u64);
    let mut at = LogPosition::START;
    let mut applied = 0u64;
    // Replay into the shadow table in batches, each its own transaction, without
    // touching the live table or its checkpoint.
    loop {
        let mut tx = pool.begin().await?;
        let events = read_settled_batch(&mut tx, at, REBUILD_BATCH_SIZE).await?;
        let Some(last) = events.last().map(|e| e.position()) else {
            tx.rollback().await?;
            break;
        };
        projection.apply(&mut tx, &shadow, &events).await?;
        tx.commit().await?;
        at = last;
        applied += events.len() as u64;
        progress.advanced(applied);
    }
    drop(conn);

    // The swap. Events committed since the loop ended are not in the shadow table; the
    // live runner applies them after the swap, because the checkpoint says the shadow
    // has reached `at` and no further.
    let mut tx = pool.begin().await?;
    lock_checkpoint(&mut tx, projection.name()).await?;
    loop {
        let events = read_settled_batch(&mut tx, at, REBUILD_BATCH_SIZE).await?;
        let Some(last) = events.last().map(|e| e.position()) else { break };
        projection.apply(&mut tx, &shadow, &events).await?;
        at = last;
        applied += events.len() as u64;
        progress.advanced(applied);
    }
    let shadow_indexes: Vec<String> =
        sqlx::query_scalar("SELECT indexname::text FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1")
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
    let rows: i64 = sqlx::query(&format!("SELECT count(*) AS n FROM {table}"))
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
    tx.commit().await?;

    Ok(RebuildSummary {
        projection: projection.name().to_owned(),
        events: applied,
        rows,
        elapsed: started.elapsed(),
        position: at.global_position,
    })
}
