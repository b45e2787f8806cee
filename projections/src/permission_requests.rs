//! `permission_requests`: one typed row per permission request, for listing and filtering.
//!
//! The row is derived from the domain's state, never folded on its own: a batch's events
//! are folded with [`PermissionRequest::try_evolve`] (the one fold of a request's events)
//! and each changed request is written as `ReadRow::from_state`. A request created in an
//! earlier batch resumes from its stored row (`ReadRow::into_state`).

use std::collections::{HashMap, HashSet};

use alexandria_domain::{Claim, PermissionRequest, PermissionRequestEvent, RequestDetails, RequestStatus, Review};
use anyhow::anyhow;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::log::StoredEvent;
use crate::projection::{Projection, Replay};

mod replay;

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
    /// An approved request's execution deadline (the reconciler expires it after).
    execute_by: Option<DateTime<Utc>>,
    last_position: i64,
}

impl ReadRow {
    /// The row of `state`, last changed by the event at `last_position`; `None` before
    /// `Created`. Takes the state by value: a rebuild writes millions of rows, and moving
    /// the details out spares a copy of every request's arguments.
    fn from_state(id: Uuid, state: PermissionRequest, last_position: i64) -> Option<ReadRow> {
        use PermissionRequest as S;
        let status = state.status()?.as_str().to_owned();
        let execute_by = state.execute_by();
        let (details, review, reason, expired_at, claim, result_cached_at) = match state {
            S::New => return None,
            S::Pending { details } => (details, None, None, None, None, None),
            S::Approved { details, review, execute_by: _ } => (details, Some(review), None, None, None, None),
            S::Rejected { details, review, reason } => (details, Some(review), Some(reason), None, None, None),
            S::Expired { details, expired_at } => (details, None, None, Some(expired_at), None, None),
            // Who closed the request: for a withdrawn one, the agent (or the person acting
            // through its path) that took it back.
            S::Withdrawn { details, withdrawal } => (details, Some(withdrawal), None, None, None, None),
            S::Executing { details, review, claim } => (details, Some(review), None, None, Some(claim), None),
            // The outcome has no column: results are read from the log, not listed.
            S::Executed { details, review, claim, outcome: _, cached_at } => {
                (details, Some(review), None, None, Some(claim), Some(cached_at))
            }
        };
        let RequestDetails {
            request_type,
            agent,
            tool,
            arguments,
            arguments_digest,
            idempotency_key,
            requested_by,
            created_at,
            expires_at,
        } = details;
        let (reviewed_by, reviewed_at) = review.map(|Review { by, at }| (by, at)).unzip();
        let (executed_by, executed_at) = claim.map(|Claim { replica, at }| (replica, at)).unzip();
        Some(ReadRow {
            id,
            request_type,
            agent,
            tool,
            arguments,
            arguments_digest,
            idempotency_key,
            requested_by,
            status,
            created_at,
            expires_at,
            reviewed_by,
            reviewed_at,
            reason,
            expired_at,
            executed_by,
            executed_at,
            result_cached_at,
            execute_by,
            last_position,
        })
    }

    /// The domain state this row stands for, to fold a later batch's events onto; `None`
    /// for a terminal row (`rejected`, `expired`, `executed`, `withdrawn`), which no event
    /// may follow.
    /// Lossless for every other status: the only fact the row leaves out is the outcome,
    /// and a request that can still change has none. A row that breaks this (an approved
    /// row with no reviewer, say) was not written by this projection: an error.
    fn into_state(self) -> anyhow::Result<Option<PermissionRequest>> {
        let id = self.id;
        let status = RequestStatus::parse(&self.status)
            .ok_or_else(|| anyhow!("permission request row {id} has the unknown status {:?}", self.status))?;
        let missing = |what: &str| anyhow!("permission request row {id} is {status} but has no {what}");
        let review = match (self.reviewed_by, self.reviewed_at) {
            (Some(by), Some(at)) => Some(Review { by, at }),
            _ => None,
        };
        let claim = match (self.executed_by, self.executed_at) {
            (Some(replica), Some(at)) => Some(Claim { replica, at }),
            _ => None,
        };
        let details = RequestDetails {
            request_type: self.request_type,
            agent: self.agent,
            tool: self.tool,
            arguments: self.arguments,
            arguments_digest: self.arguments_digest,
            idempotency_key: self.idempotency_key,
            requested_by: self.requested_by,
            created_at: self.created_at,
            expires_at: self.expires_at,
        };
        Ok(Some(match status {
            RequestStatus::Pending => PermissionRequest::Pending { details },
            RequestStatus::Approved => PermissionRequest::Approved {
                details,
                review: review.ok_or_else(|| missing("reviewer"))?,
                execute_by: self.execute_by,
            },
            RequestStatus::Executing => PermissionRequest::Executing {
                details,
                review: review.ok_or_else(|| missing("reviewer"))?,
                claim: claim.ok_or_else(|| missing("execution claim"))?,
            },
            RequestStatus::Rejected | RequestStatus::Expired | RequestStatus::Executed | RequestStatus::Withdrawn => {
                return Ok(None)
            }
        }))
    }
}

/// One request's fold over a batch: the state so far, and the position of the last event
/// folded in (`None` while this batch has changed nothing: no row to write).
#[derive(Default)]
struct Fold {
    state: PermissionRequest,
    last_position: Option<i64>,
}

impl Fold {
    /// Folds in one event. None is skipped in a well-formed log; a skipped one is logged.
    fn apply(&mut self, id: Uuid, event: PermissionRequestEvent, position: i64) {
        let name = event.name();
        if self.state.try_evolve(event) {
            self.last_position = Some(position);
        } else if let Some(status) = self.state.status() {
            tracing::warn!(%id, position, event = name, %status, "event that cannot follow the request's status; skipped")
        } else {
            tracing::warn!(%id, position, "event for a request with no Created event; skipped")
        }
    }
}

const COLUMNS: &str = "id, request_type, agent, tool, arguments, arguments_digest, idempotency_key, \
    requested_by, status, created_at, expires_at, reviewed_by, reviewed_at, reason, expired_at, \
    executed_by, executed_at, result_cached_at, execute_by, last_position";

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
            execute_by: row.try_get("execute_by")?,
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
    let mut execute_by = Vec::with_capacity(n);
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
        execute_by.push(r.execute_by);
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
           $18::timestamptz[], $19::timestamptz[], $20::bigint[]) \
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
        .bind(execute_by)
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

    fn replay(&self) -> Option<Box<dyn Replay>> {
        Some(Box::<replay::PermissionRequestsReplay>::default())
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
        let created_here: HashSet<Uuid> = decoded
            .iter()
            .filter(|(_, e, _)| matches!(e, PermissionRequestEvent::Created { .. }))
            .map(|(id, _, _)| *id)
            .collect();
        let mut lookup: Vec<Uuid> =
            decoded.iter().map(|(id, _, _)| *id).filter(|id| !created_here.contains(id)).collect();
        lookup.sort_unstable();
        lookup.dedup();
        let stored = if lookup.is_empty() { HashMap::new() } else { load_rows(conn, table, &lookup).await? };
        let mut folds: HashMap<Uuid, Fold> = HashMap::with_capacity(created_here.len() + stored.len());
        // Requests whose stored row is final (rejected, expired, executed): no event may
        // follow one, so theirs are skipped.
        let mut final_rows: HashMap<Uuid, String> = HashMap::new();
        for (id, row) in stored {
            let status = row.status.clone();
            match row.into_state()? {
                Some(state) => {
                    folds.insert(id, Fold { state, last_position: None });
                }
                None => {
                    final_rows.insert(id, status);
                }
            }
        }
        for (id, event, position) in decoded {
            if let Some(status) = final_rows.get(&id) {
                tracing::warn!(%id, position, event = event.name(), %status, "event for a request that is already final; skipped");
                continue;
            }
            folds.entry(id).or_default().apply(id, event, position);
        }
        let rows = folds
            .into_iter()
            .filter_map(|(id, fold)| ReadRow::from_state(id, fold.state, fold.last_position?))
            .collect();
        upsert_rows(conn, table, rows).await
    }
}

#[cfg(test)]
mod tests {
    use alexandria_domain::CallOutcome;
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_790_000_000 + secs, 0).single().expect("a valid timestamp")
    }

    /// The state after each prefix of the happy path, and the other two decisions.
    fn states() -> Vec<PermissionRequest> {
        use PermissionRequestEvent as Ev;
        let created = Ev::Created {
            request_type: "tool_call".into(),
            agent: "agent".into(),
            tool: "write_file".into(),
            arguments: json!({"path": "/tmp/x"}),
            arguments_digest: alexandria_domain::arguments_digest(&json!({"path": "/tmp/x"})),
            idempotency_key: "k".into(),
            requested_by: "agent:agent".into(),
            at: at(0),
            expires_at: at(3600),
        };
        let histories = [
            vec![created.clone()],
            vec![created.clone(), Ev::Approved { by: "admin".into(), at: at(1), execute_by: Some(at(7200)) }],
            vec![created.clone(), Ev::Rejected { by: "admin".into(), at: at(1), reason: "no".into() }],
            vec![created.clone(), Ev::Expired { at: at(3600) }],
            vec![
                created.clone(),
                Ev::Approved { by: "admin".into(), at: at(1), execute_by: Some(at(7200)) },
                Ev::Executed { replica: "r1".into(), at: at(2) },
            ],
            vec![
                created.clone(),
                Ev::Approved { by: "admin".into(), at: at(1), execute_by: Some(at(7200)) },
                Ev::Executed { replica: "r1".into(), at: at(2) },
                Ev::ResultCached { outcome: CallOutcome::Result(json!({"isError": false})), at: at(3) },
            ],
            vec![created.clone(), Ev::Withdrawn { by: "agent:agent".into(), at: at(4) }],
        ];
        histories.into_iter().map(PermissionRequest::from_events).collect()
    }

    #[test]
    fn a_row_is_its_state_in_columns() {
        let id = Uuid::new_v4();
        assert_eq!(ReadRow::from_state(id, PermissionRequest::New, 1), None);
        let rows: Vec<ReadRow> = states()
            .into_iter()
            .map(|state| ReadRow::from_state(id, state, 7).expect("a created request has a row"))
            .collect();
        let statuses: Vec<&str> = rows.iter().map(|row| row.status.as_str()).collect();
        assert_eq!(statuses, ["pending", "approved", "rejected", "expired", "executing", "executed", "withdrawn"]);
        let executed = &rows[5];
        assert_eq!((executed.id, executed.last_position), (id, 7));
        assert_eq!(executed.tool, "write_file");
        assert_eq!(executed.created_at, at(0));
        assert_eq!(executed.expires_at, at(3600));
        assert_eq!((executed.reviewed_by.as_deref(), executed.reviewed_at), (Some("admin"), Some(at(1))));
        assert_eq!((executed.executed_by.as_deref(), executed.executed_at), (Some("r1"), Some(at(2))));
        assert_eq!(executed.result_cached_at, Some(at(3)));
        assert_eq!(rows[2].reason.as_deref(), Some("no"));
        assert_eq!(rows[3].expired_at, Some(at(3600)));
        assert_eq!((rows[6].reviewed_by.as_deref(), rows[6].reviewed_at), (Some("agent:agent"), Some(at(4))));
        assert!(rows[0].reviewed_by.is_none() && rows[0].executed_by.is_none() && rows[0].reason.is_none());
    }

    #[test]
    fn a_row_that_can_still_change_gives_back_its_state_and_a_final_one_none() {
        let id = Uuid::new_v4();
        for state in states() {
            let row = ReadRow::from_state(id, state.clone(), 7).expect("a row");
            let can_change = matches!(
                state.status(),
                Some(RequestStatus::Pending | RequestStatus::Approved | RequestStatus::Executing)
            );
            assert_eq!(can_change, !state.status().is_some_and(RequestStatus::is_final));
            let back = row.into_state().expect("a well-formed row");
            if can_change {
                assert_eq!(back, Some(state), "lossless");
            } else {
                assert_eq!(back, None, "{:?} is final", state.status());
            }
        }
    }

    #[test]
    fn a_row_missing_what_its_status_needs_is_an_error() {
        let approved = states().swap_remove(1);
        let mut row = ReadRow::from_state(Uuid::new_v4(), approved, 7).expect("a row");
        row.reviewed_by = None;
        let error = row.clone().into_state().expect_err("an approved row needs its reviewer");
        assert!(error.to_string().contains("is approved but has no reviewer"), "{error}");
        row.status = "archived".into();
        assert!(row.into_state().is_err(), "an unknown status");
    }
}
