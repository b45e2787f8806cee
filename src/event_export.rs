//! The auditor's view of the log: export every event as JSON lines, and replay one
//! request's history showing its state after each event.

use std::io::Write;

use alexandria_domain::{CallOutcome, PermissionRequest, RequestDetails, RequestStatus};
use alexandria_projections::log::read_global_batch;
use alexandria_projections::StoredEvent;
use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

const EXPORT_BATCH: i64 = 5000;

/// One exported line. Field names are part of the export format: keep them stable. A row
/// whose payload or metadata serde_json cannot read (written around the gateway) has
/// `null` there and one more field, `unreadable`, saying why.
pub fn export_line(event: &StoredEvent) -> Value {
    let mut line = json!({
        "position": event.global_position,
        "recorded_at": event.recorded_at,
        "aggregate_type": event.aggregate_type,
        "aggregate_id": event.aggregate_id,
        "sequence": event.sequence,
        "type": event.event_type,
        "version": event.event_version,
        "payload": event.payload,
        "metadata": event.metadata,
    });
    if let Some(reason) = &event.unreadable {
        line["unreadable"] = json!(reason);
    }
    line
}

/// One request's events in log order (at most 10,000: a request has a handful): its
/// history as the admin API and the console show it. Empty for an unknown request.
pub async fn request_events(pool: &PgPool, id: Uuid) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    read_global_batch(&mut conn, Some(&id.to_string()), 0, 10_000).await
}

pub use crate::audit::export::{ExportError, ExportFilter};

#[derive(Debug, Clone, Default)]
pub struct ExportSummary {
    pub events: u64,
    pub first_position: Option<i64>,
    pub last_position: Option<i64>,
    /// Lines that carry their seal (`hash`, `prev_hash`); the rest are not sealed yet.
    pub sealed: u64,
    /// The checkpoint the export ends with, if it stops at one.
    pub checkpoint: Option<crate::audit::Checkpoint>,
}

/// Total number of events the filter selects (for a progress bar).
pub async fn count_for_export(pool: &PgPool, filter: &ExportFilter) -> Result<i64, sqlx::Error> {
    let request = filter.request.map(|id| id.to_string());
    alexandria_projections::log::count_global(pool, request.as_deref(), filter.since).await
}

/// Writes the selected events, one JSON object per line, in chain order (the projection
/// order `(tx_id, global_position)`, which the audit chain seals; for one request, global
/// order), each with its `hash` and `prev_hash` once sealed. All lines are read in one
/// snapshot. docs/AUDIT.md.
pub async fn export_events(
    pool: &PgPool,
    filter: &ExportFilter,
    out: &mut dyn Write,
    mut on_progress: impl FnMut(u64),
) -> anyhow::Result<ExportSummary> {
    let mut summary = ExportSummary::default();
    let mut cursor = crate::audit::export::ExportCursor::new(filter.clone())?;
    let mut tx = crate::audit::export::begin_snapshot(pool).await?;
    loop {
        let batch = cursor.next_batch(&mut tx).await?;
        if batch.is_empty() {
            break;
        }
        for line in &batch {
            serde_json::to_writer(&mut *out, line)?;
            out.write_all(b"\n").context("cannot write the export")?;
            if let Some(checkpoint) = line.get("checkpoint") {
                summary.checkpoint = serde_json::from_value(checkpoint.clone()).ok();
                continue;
            }
            let position = line.get("position").and_then(Value::as_i64);
            if summary.first_position.is_none() {
                summary.first_position = position;
            }
            summary.last_position = position;
            summary.events += 1;
            summary.sealed += u64::from(line.get("hash").is_some());
        }
        on_progress(summary.events);
    }
    tx.rollback().await?;
    out.flush()?;
    Ok(summary)
}

/// One step of a replay: an event and the request's state right after it.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayStep {
    pub position: i64,
    pub sequence: i64,
    pub recorded_at: DateTime<Utc>,
    pub event: String,
    pub actor: Option<String>,
    pub status: String,
    pub state: ReplayState,
}

/// A request's state as a replay shows it: every field present, `null` until the log sets
/// it. This is the `state` of each step in `events replay --json`, the shape auditors'
/// tooling reads, so it stays flat and keeps its field names whatever shape the domain
/// gives its state.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayState {
    pub details: Option<RequestDetails>,
    pub status: Option<RequestStatus>,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
    pub expired_at: Option<DateTime<Utc>>,
    pub executed_by: Option<String>,
    pub executed_at: Option<DateTime<Utc>>,
    pub outcome: Option<CallOutcome>,
    pub result_cached_at: Option<DateTime<Utc>>,
}

impl From<&PermissionRequest> for ReplayState {
    fn from(state: &PermissionRequest) -> Self {
        ReplayState {
            details: state.details().cloned(),
            status: state.status(),
            reviewed_by: state.review().map(|review| review.by.clone()),
            reviewed_at: state.review().map(|review| review.at),
            reason: state.reason().map(str::to_owned),
            expired_at: state.expired_at(),
            executed_by: state.claim().map(|claim| claim.replica.clone()),
            executed_at: state.claim().map(|claim| claim.at),
            outcome: state.outcome().cloned(),
            result_cached_at: state.result_cached_at(),
        }
    }
}

pub async fn replay(pool: &PgPool, request: Uuid) -> anyhow::Result<Vec<ReplayStep>> {
    let mut conn = pool.acquire().await?;
    let id = request.to_string();
    let mut steps = Vec::new();
    let mut state = PermissionRequest::default();
    let mut after = 0;
    loop {
        let batch = read_global_batch(&mut conn, Some(&id), after, EXPORT_BATCH).await?;
        let Some(last) = batch.last() else { break };
        after = last.global_position;
        for stored in batch {
            // Only one aggregate type exists; another's event under this id would not be
            // part of this request's history.
            let Some((_, event)) = stored.decode_permission_request()? else { continue };
            state.evolve(event);
            steps.push(ReplayStep {
                position: stored.global_position,
                sequence: stored.sequence,
                recorded_at: stored.recorded_at,
                event: stored.event_type.clone(),
                actor: stored.metadata.get("actor").and_then(Value::as_str).map(str::to_owned),
                status: state.status().map(|s| s.as_str().to_owned()).unwrap_or_default(),
                state: ReplayState::from(&state),
            });
        }
    }
    Ok(steps)
}

/// The replay as text for a person.
pub fn render_replay(request: Uuid, steps: &[ReplayStep]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "permission request {request}: {} events", steps.len());
    for step in steps {
        let _ = writeln!(
            out,
            "\n#{} (position {}, {}) {} by {} -> status {}",
            step.sequence,
            step.position,
            step.recorded_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            step.event,
            step.actor.as_deref().unwrap_or("?"),
            step.status
        );
        let s = &step.state;
        if let Some(d) = &s.details {
            let _ = writeln!(out, "  agent={} tool={} arguments={}", d.agent, d.tool, d.arguments);
            let _ =
                writeln!(out, "  created_at={} expires_at={}", d.created_at.to_rfc3339(), d.expires_at.to_rfc3339());
        }
        if let (Some(by), Some(at)) = (&s.reviewed_by, s.reviewed_at) {
            let _ = writeln!(out, "  reviewed_by={by} reviewed_at={}", at.to_rfc3339());
        }
        if let Some(reason) = &s.reason {
            let _ = writeln!(out, "  reason={reason:?}");
        }
        if let (Some(replica), Some(at)) = (&s.executed_by, s.executed_at) {
            let _ = writeln!(out, "  executed_by={replica} executed_at={}", at.to_rfc3339());
        }
        if let Some(outcome) = &s.outcome {
            let _ = writeln!(out, "  outcome={}", serde_json::to_string(outcome).unwrap_or_default());
        }
    }
    out
}
