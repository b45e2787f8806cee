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

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
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
