//! `permission_requests`: one typed row per permission request, for listing and filtering.

use std::collections::HashMap;

use alexandria_domain::{PermissionRequestEvent, RequestStatus};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::log::StoredEvent;
use crate::projection::Projection;

pub struct PermissionRequestsProjection;

/// One row of the read model, mirroring the table's columns.
#[derive(Debug, Clone, PartialEq)]
struct ReadRow {
    id: Uuid,
    request_type: String,
    agent: String,
    tool: String,
    arguments: Value,
    arguments_digest: String,
    idempotency_key: String,
    requested_by: String,
    status: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    reviewed_by: Option<String>,
    reviewed_at: Option<DateTime<Utc>>,
    reason: Option<String>,
    expired_at: Option<DateTime<Utc>>,
    executed_by: Option<String>,
    executed_at: Option<DateTime<Utc>>,
    result_cached_at: Option<DateTime<Utc>>,
    last_position: i64,
}

impl ReadRow {
    /// Folds one event into the row; `None` means the row does not exist yet and the
    /// event is not a `Created` (which cannot happen in a well-formed log).
    fn evolve(row: Option<ReadRow>, id: Uuid, event: PermissionRequestEvent, position: i64) -> Option<ReadRow> {
        use PermissionRequestEvent as Ev;
        let mut row = match (row, event) {
            (
                None,
                Ev::Created {
                    request_type,
                    agent,
                    tool,
                    arguments,
                    arguments_digest,
                    idempotency_key,
                    requested_by,
                    at,
                    expires_at,
                },
            ) => ReadRow {
                id,
                request_type,
                agent,
                tool,
                arguments,
                arguments_digest,
                idempotency_key,
                requested_by,
                status: RequestStatus::Pending.as_str().to_owned(),
                created_at: at,
                expires_at,
                reviewed_by: None,
                reviewed_at: None,
                reason: None,
                expired_at: None,
                executed_by: None,
                executed_at: None,
                result_cached_at: None,
                last_position: position,
            },
            (None, _) => return None,
            (Some(row), Ev::Created { .. }) => row,
            (Some(mut row), Ev::Approved { by, at }) => {
                row.status = RequestStatus::Approved.as_str().to_owned();
                row.reviewed_by = Some(by);
                row.reviewed_at = Some(at);
                row
            }
            (Some(mut row), Ev::Rejected { by, at, reason }) => {
                row.status = RequestStatus::Rejected.as_str().to_owned();
                row.reviewed_by = Some(by);
                row.reviewed_at = Some(at);
                row.reason = Some(reason);
                row
            }
            (Some(mut row), Ev::Expired { at }) => {
                row.status = RequestStatus::Expired.as_str().to_owned();
                row.expired_at = Some(at);
                row
            }
            (Some(mut row), Ev::Executed { replica, at }) => {
                row.status = RequestStatus::Executing.as_str().to_owned();
                row.executed_by = Some(replica);
                row.executed_at = Some(at);
                row
            }
            (Some(mut row), Ev::ResultCached { at, .. }) => {
                row.status = RequestStatus::Executed.as_str().to_owned();
                row.result_cached_at = Some(at);
                row
            }
        };
        row.last_position = position;
        Some(row)
    }
}

const COLUMNS: &str = "id, request_type, agent, tool, arguments, arguments_digest, idempotency_key, \
    requested_by, status, created_at, expires_at, reviewed_by, reviewed_at, reason, expired_at, \
    executed_by, executed_at, result_cached_at, last_position";

async fn load_rows(conn: &mut PgConnection, table: &str, ids: &[Uuid]) -> anyhow::Result<HashMap<Uuid, ReadRow>> {
    let sql = format!("SELECT {COLUMNS} FROM {table} WHERE id = ANY($1)");
    let rows = sqlx::query(&sql).bind(ids).fetch_all(&mut *conn).await?;
    let mut out = HashMap::with_capacity(rows.len());
    for row in rows {
        let read = ReadRow {
            id: row.try_get("id")?,
            request_type: row.try_get("request_type")?,
            agent: row.try_get("agent")?,
            tool: row.try_get("tool")?,
            arguments: row.try_get("arguments")?,
            arguments_digest: row.try_get("arguments_digest")?,
            idempotency_key: row.try_get("idempotency_key")?,
            requested_by: row.try_get("requested_by")?,
            status: row.try_get("status")?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
            reviewed_by: row.try_get("reviewed_by")?,
            reviewed_at: row.try_get("reviewed_at")?,
            reason: row.try_get("reason")?,
            expired_at: row.try_get("expired_at")?,
            executed_by: row.try_get("executed_by")?,
            executed_at: row.try_get("executed_at")?,
            result_cached_at: row.try_get("result_cached_at")?,
            last_position: row.try_get("last_position")?,
        };
        out.insert(read.id, read);
    }
    Ok(out)
}

/// Writes rows in one statement (UNNEST of column arrays): one round trip per batch is
/// what makes a rebuild of millions of events fast.
async fn upsert_rows(conn: &mut PgConnection, table: &str, rows: Vec<ReadRow>) -> anyhow::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let n = rows.len();
    let mut id = Vec::with_capacity(n);
    let mut request_type = Vec::with_capacity(n);
    let mut agent = Vec::with_capacity(n);
    let mut tool = Vec::with_capacity(n);
    let mut arguments = Vec::with_capacity(n);
    let mut arguments_digest = Vec::with_capacity(n);
    let mut idempotency_key = Vec::with_capacity(n);
    let mut requested_by = Vec::with_capacity(n);
    let mut status = Vec::with_capacity(n);
    let mut created_at = Vec::with_capacity(n);
    let mut expires_at = Vec::with_capacity(n);
    let mut reviewed_by = Vec::with_capacity(n);
    let mut reviewed_at = Vec::with_capacity(n);
    let mut reason = Vec::with_capacity(n);
    let mut expired_at = Vec::with_capacity(n);
    let mut executed_by = Vec::with_capacity(n);
    let mut executed_at = Vec::with_capacity(n);
    let mut result_cached_at = Vec::with_capacity(n);
    let mut last_position = Vec::with_capacity(n);
    for r in rows {
        id.push(r.id);
        request_type.push(r.request_type);
        agent.push(r.agent);
        tool.push(r.tool);
        arguments.push(r.arguments);
        arguments_digest.push(r.arguments_digest);
        idempotency_key.push(r.idempotency_key);
        requested_by.push(r.requested_by);
        status.push(r.status);
        created_at.push(r.created_at);
        expires_at.push(r.expires_at);
        reviewed_by.push(r.reviewed_by);
        reviewed_at.push(r.reviewed_at);
        reason.push(r.reason);
        expired_at.push(r.expired_at);
        executed_by.push(r.executed_by);
        executed_at.push(r.executed_at);
        result_cached_at.push(r.result_cached_at);
        last_position.push(r.last_position);
    }
    let updates = COLUMNS
        .split(", ")
        .filter(|c| *c != "id")
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "INSERT INTO {table} ({COLUMNS}) \
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::text[], \
           $7::text[], $8::text[], $9::text[], $10::timestamptz[], $11::timestamptz[], $12::text[], \
           $13::timestamptz[], $14::text[], $15::timestamptz[], $16::text[], $17::timestamptz[], \
           $18::timestamptz[], $19::bigint[]) \
         ON CONFLICT (id) DO UPDATE SET {updates}"
    );
    sqlx::query(&sql)
        .bind(id)
        .bind(request_type)
        .bind(agent)
        .bind(tool)
        .bind(arguments)
        .bind(arguments_digest)
        .bind(idempotency_key)
        .bind(requested_by)
        .bind(status)
        .bind(created_at)
        .bind(expires_at)
        .bind(reviewed_by)
        .bind(reviewed_at)
        .bind(reason)
        .bind(expired_at)
        .bind(executed_by)
        .bind(executed_at)
        .bind(result_cached_at)
        .bind(last_position)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[async_trait]
impl Projection for PermissionRequestsProjection {
    fn name(&self) -> &'static str {
        "permission_requests"
    }

    fn table(&self) -> &'static str {
        "permission_requests"
    }

    async fn apply(&self, conn: &mut PgConnection, table: &str, events: &[StoredEvent]) -> anyhow::Result<()> {
        let mut decoded = Vec::with_capacity(events.len());
        for event in events {
            if let Some((id, payload)) = event.decode_permission_request()? {
                decoded.push((id, payload, event.global_position));
            }
        }
        if decoded.is_empty() {
            return Ok(());
        }
        // Only rows created in an earlier batch need a lookup.
        let created_here: std::collections::HashSet<Uuid> = decoded
            .iter()
            .filter(|(_, e, _)| matches!(e, PermissionRequestEvent::Created { .. }))
            .map(|(id, _, _)| *id)
            .collect();
        let mut lookup: Vec<Uuid> =
            decoded.iter().map(|(id, _, _)| *id).filter(|id| !created_here.contains(id)).collect();
        lookup.sort_unstable();
        lookup.dedup();
        let mut rows = if lookup.is_empty() { HashMap::new() } else { load_rows(conn, table, &lookup).await? };
        for (id, event, position) in decoded {
            let current = rows.remove(&id);
            match ReadRow::evolve(current, id, event, position) {
                Some(row) => {
                    rows.insert(id, row);
                }
                None => tracing::warn!(%id, position, "event for a request with no Created event; skipped"),
            }
        }
        upsert_rows(conn, table, rows.into_values().collect()).await
    }
}
