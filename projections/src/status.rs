//! Where each projection stands.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Row};

use crate::leadership::{holder, LockHolder};
use crate::log::{count_after, LogPosition};
use crate::runner::lock_key;

#[derive(Debug, Clone, Serialize)]
pub struct ProjectionStatus {
    pub name: String,
    /// Global position of the last event applied (0 before any).
    pub position: i64,
    /// Events in the log not yet applied.
    pub lag: i64,
    pub updated_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    /// The global position of the event it is stuck on because that event cannot be read
    /// (`last_error` says why); `alexandria events skip` reads past it.
    pub unreadable_position: Option<i64>,
    /// The session running it now (`None`: no replica is, e.g. none is serving).
    pub leader: Option<LockHolder>,
}

/// Status of every known projection (what `alexandria projections status` and the
/// console's Projections page show) (one that never ran shows position 0 and the whole
/// log as lag). A checkpoint's leader is the holder of its runner's lock, or, for a
/// checkpoint in `led_by` (name, lock key), of the lock of the worker that advances it
/// instead of a runner.
pub async fn projection_status(pool: &PgPool, led_by: &[(&str, &str)]) -> Result<Vec<ProjectionStatus>, sqlx::Error> {
    for projection in crate::all() {
        crate::runner::register(pool, projection.name()).await?;
    }
    let rows = sqlx::query(
        "SELECT name, last_tx_id::text::bigint AS tx_id, last_position, updated_at, last_error, last_error_at, \
         unreadable_position \
         FROM projection_checkpoints ORDER BY name",
    )
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    let mut conn = pool.acquire().await?;
    for row in rows {
        let at = LogPosition { tx_id: row.try_get("tx_id")?, global_position: row.try_get("last_position")? };
        let name: String = row.try_get("name")?;
        out.push(ProjectionStatus {
            leader: match led_by.iter().find(|(checkpoint, _)| *checkpoint == name) {
                Some((_, key)) => holder(pool, key).await?,
                None => holder(pool, &lock_key(&name)).await?,
            },
            name,
            position: at.global_position,
            lag: count_after(&mut conn, at).await?,
            updated_at: row.try_get("updated_at")?,
            last_error: row.try_get("last_error")?,
            last_error_at: row.try_get("last_error_at")?,
            unreadable_position: row.try_get("unreadable_position")?,
        });
    }
    Ok(out)
}
