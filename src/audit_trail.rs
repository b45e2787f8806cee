//! The admin audit trail: who changed which agent policy, user or secret, from what to
//! what. Each row is written in the same transaction as the change it describes, so there
//! is never a change without its row or a row without its change. The table is
//! append-only (a trigger refuses UPDATE, DELETE and TRUNCATE).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};

use crate::names::Actor;

/// Appends one row. `action` is one of the code's own names (`agent.create`, ...);
/// `before`/`after` describe the target; never put a password, hash or token in them.
pub async fn record(
    conn: &mut PgConnection,
    actor: &Actor,
    action: &'static str,
    target: &str,
    before: Option<Value>,
    after: Option<Value>,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO admin_audit (actor, action, target, before, after) VALUES ($1, $2, $3, $4, $5)")
        .bind(actor.to_string())
        .bind(action)
        .bind(target)
        .bind(before)
        .bind(after)
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// Which rows to read: newest first, those with `id < before`, optionally one target's.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub before: Option<i64>,
    pub target: Option<String>,
    pub action: Option<String>,
}

pub async fn page(pool: &PgPool, filter: &AuditFilter, limit: i64) -> Result<Vec<AuditEntry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, at, actor, action, target, before, after FROM admin_audit
         WHERE ($1::bigint IS NULL OR id < $1)
           AND ($2::text IS NULL OR target = $2)
           AND ($3::text IS NULL OR action = $3)
         ORDER BY id DESC LIMIT $4",
    )
    .bind(filter.before)
    .bind(filter.target.as_deref())
    .bind(filter.action.as_deref())
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// The page size when none is asked for, and the most one page may hold.
pub const DEFAULT_PAGE: i64 = 50;
pub const MAX_PAGE: i64 = 500;

/// One page of the trail, newest first (`GET /admin/audit`, the console's audit page).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` for the next (older) page; `null` on the last page.
    pub next_before: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("limit must be between 1 and {MAX_PAGE}")]
    InvalidLimit,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A page of at most `limit` rows (default [`DEFAULT_PAGE`]) matching `filter`, with the
/// cursor of the next one.
pub async fn page_with_cursor(
    pool: &PgPool,
    filter: &AuditFilter,
    limit: Option<i64>,
) -> Result<AuditPage, AuditError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(AuditError::InvalidLimit);
    }
    let entries = page(pool, filter, limit).await?;
    let next_before = if entries.len() as i64 == limit { entries.last().map(|entry| entry.id) } else { None };
    Ok(AuditPage { entries, next_before })
}
