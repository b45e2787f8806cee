//! The record of what upstreams asked clients during calls (`sampling/createMessage`,
//! `elicitation/create`): which server asked what, in which call, and how it ended —
//! answered, refused (with the client's JSON-RPC error code), or no answer. Never the
//! client's answer: that is the client's business.
//!
//! Each record is an event in the log (so the audit chain seals it, `events export`
//! carries it and `events verify` checks it), of an aggregate type of its own that no fold
//! reads: [`RELAYED_REQUESTS_TYPE`], its aggregate id the call's — the permission request
//! id for a gated call, a fresh call id for a pass-through call — and its sequence the
//! order of the call's relayed requests. A permission request's own events stay as they
//! were: its state, its projections and its concurrency are untouched by a relay.
//!
//! Recording never holds up or fails a call: it is appended by a task of its own, and a
//! failed append is logged and counted
//! (`alexandria_relayed_client_request_record_failures_total`), and the call goes on.

use alexandria_domain::EventMetadata;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::metrics::Metrics;
use crate::names::Actor;

/// The aggregate type of relayed-request records; nothing folds it.
pub const RELAYED_REQUESTS_TYPE: &str = "RelayedClientRequests";
/// The event type of one record.
pub const RELAYED_EVENT_TYPE: &str = "ClientRequestRelayed";
/// Appends re-tried after losing the race for a sequence number (two requests of one
/// call ending at once).
const APPEND_ATTEMPTS: usize = 5;
/// Most records read for one call.
const MAX_RECORDS: i64 = 1000;

/// Whose call an upstream's request belongs to: the key of its record.
#[derive(Debug, Clone)]
pub struct CallOrigin {
    /// The permission request id of a gated call, a fresh id for a pass-through call.
    pub call_id: Uuid,
    /// Set for a gated call (then equal to `call_id`).
    pub permission_request: Option<Uuid>,
    pub agent: String,
    /// The tool as the agent called it.
    pub tool: String,
    pub trace_id: String,
}

impl CallOrigin {
    /// A pass-through call's origin, under a fresh call id.
    pub fn pass_through(agent: &str, tool: &str, trace_id: Option<&str>) -> Self {
        let call_id = Uuid::new_v4();
        CallOrigin {
            call_id,
            permission_request: None,
            agent: agent.to_owned(),
            tool: tool.to_owned(),
            trace_id: trace_id.map_or_else(|| call_id.to_string(), str::to_owned),
        }
    }

    /// A gated call's origin: its permission request.
    pub fn gated(request: Uuid, agent: &str, tool: &str, trace_id: &str) -> Self {
        CallOrigin {
            call_id: request,
            permission_request: Some(request),
            agent: agent.to_owned(),
            tool: tool.to_owned(),
            trace_id: trace_id.to_owned(),
        }
    }
}

/// Why a request got no answer from the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoAnswer {
    /// The call has no client stream to ask on (a gated call run after approval, or a
    /// client that does not read `text/event-stream`).
    NoClientStream,
    /// The client hung up before answering.
    ClientHungUp,
    /// The client did not answer in time.
    TimedOut,
}

impl NoAnswer {
    pub fn describe(self) -> &'static str {
        match self {
            NoAnswer::NoClientStream => "this call has no client stream to ask on",
            NoAnswer::ClientHungUp => "the client hung up",
            NoAnswer::TimedOut => "the client did not answer in time",
        }
    }
}

/// How a relayed request ended: its kind only, never the answer's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RelayOutcome {
    Answered,
    /// The client answered with a JSON-RPC error; its code (absent if it gave none).
    Refused {
        code: Option<i64>,
    },
    NoAnswer {
        reason: NoAnswer,
    },
}

impl RelayOutcome {
    /// The metric label.
    pub fn label(&self) -> &'static str {
        match self {
            RelayOutcome::Answered => "answered",
            RelayOutcome::Refused { .. } => "refused",
            RelayOutcome::NoAnswer { .. } => "no_answer",
        }
    }
}

/// One record: the payload of a `ClientRequestRelayed` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RelayedRequest {
    /// The upstream MCP server that asked.
    pub server: String,
    pub agent: String,
    /// The tool call it asked during (the tool as the agent called it).
    pub tool: String,
    pub call_id: Uuid,
    pub permission_request_id: Option<Uuid>,
    /// `sampling/createMessage` or `elicitation/create`.
    pub method: String,
    /// The request's params as the upstream sent them.
    pub params: Value,
    pub asked_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub outcome: RelayOutcome,
}

/// Appends records; cheap to clone.
#[derive(Clone)]
pub struct RelayRecorder {
    pool: PgPool,
    metrics: Metrics,
    replica: String,
}

impl RelayRecorder {
    pub fn new(pool: PgPool, metrics: Metrics, replica: &str) -> Self {
        RelayRecorder { pool, metrics, replica: replica.to_owned() }
    }

    /// Counts the request and records it in a task of its own: the caller never waits
    /// for the append, and a failed one is logged and counted, not returned.
    pub fn record(&self, origin: &CallOrigin, record: RelayedRequest) {
        self.metrics.relayed_client_request(&record.method, record.outcome.label());
        let recorder = self.clone();
        let metadata =
            EventMetadata::new(Actor::Agent(origin.agent.clone()).to_string(), &self.replica, &origin.trace_id);
        tokio::spawn(async move {
            if let Err(error) = append(&recorder.pool, &record, &metadata).await {
                recorder.metrics.relayed_client_request_record_failure();
                tracing::error!(call_id = %record.call_id, server = %record.server, method = %record.method, %error,
                    "cannot record a request relayed to a client; the call went on");
            }
        });
    }
}

/// Appends one record as the next event of its call's aggregate.
pub async fn append(pool: &PgPool, record: &RelayedRequest, metadata: &EventMetadata) -> Result<i64, sqlx::Error> {
    let payload = json!({ RELAYED_EVENT_TYPE: record });
    let metadata = sqlx::types::Json(metadata.to_map());
    let mut attempt = 0;
    loop {
        attempt += 1;
        // The columns postgres-es names; the rest are PostgreSQL's defaults, as for every
        // event. Two appends racing for a sequence: the primary key lets one win.
        let appended = sqlx::query_scalar(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
             SELECT $1, $2, coalesce(max(sequence), 0) + 1, $3, '1', $4, $5 FROM events \
             WHERE aggregate_type = $1 AND aggregate_id = $2 RETURNING global_position",
        )
        .bind(RELAYED_REQUESTS_TYPE)
        .bind(record.call_id.to_string())
        .bind(RELAYED_EVENT_TYPE)
        .bind(&payload)
        .bind(&metadata)
        .fetch_one(pool)
        .await;
        match appended {
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() && attempt < APPEND_ATTEMPTS => continue,
            other => return other,
        }
    }
}

/// A record as read back, with where it is in the log.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RelayedRequestEntry {
    pub position: i64,
    pub sequence: i64,
    #[serde(flatten)]
    pub request: RelayedRequest,
}

/// The records of call `call_id` (a permission request id for a gated call), in order.
/// A record this build cannot read is left out (and logged).
pub async fn for_call(pool: &PgPool, call_id: Uuid) -> Result<Vec<RelayedRequestEntry>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT global_position, sequence, payload FROM events \
         WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence LIMIT $3",
    )
    .bind(RELAYED_REQUESTS_TYPE)
    .bind(call_id.to_string())
    .bind(MAX_RECORDS)
    .fetch_all(pool)
    .await?;
    let mut entries = Vec::with_capacity(rows.len());
    for row in rows {
        let position: i64 = row.try_get("global_position")?;
        let sequence: i64 = row.try_get("sequence")?;
        let payload: Value = row.try_get("payload")?;
        match payload.get(RELAYED_EVENT_TYPE).cloned().map(serde_json::from_value::<RelayedRequest>) {
            Some(Ok(request)) => entries.push(RelayedRequestEntry { position, sequence, request }),
            _ => tracing::warn!(position, "a relayed-request record this build cannot read is left out"),
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_says_its_kind_and_nothing_of_the_answer() {
        let shapes = [
            (RelayOutcome::Answered, json!({"kind": "answered"})),
            (RelayOutcome::Refused { code: Some(-32042) }, json!({"kind": "refused", "code": -32042})),
            (
                RelayOutcome::NoAnswer { reason: NoAnswer::NoClientStream },
                json!({"kind": "no_answer", "reason": "no_client_stream"}),
            ),
            (
                RelayOutcome::NoAnswer { reason: NoAnswer::ClientHungUp },
                json!({"kind": "no_answer", "reason": "client_hung_up"}),
            ),
            (
                RelayOutcome::NoAnswer { reason: NoAnswer::TimedOut },
                json!({"kind": "no_answer", "reason": "timed_out"}),
            ),
        ];
        for (outcome, shape) in shapes {
            assert_eq!(serde_json::to_value(&outcome).expect("serialise"), shape);
            assert_eq!(serde_json::from_value::<RelayOutcome>(shape).expect("read back"), outcome);
        }
    }

    #[tokio::test]
    async fn a_record_that_cannot_be_appended_is_counted_and_the_caller_goes_on() {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .acquire_timeout(std::time::Duration::from_millis(200))
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .expect("a lazy pool");
        let metrics = Metrics::new();
        let recorder = RelayRecorder::new(pool, metrics.clone(), "replica-1");
        let origin = CallOrigin::pass_through("agent", "tool", None);
        let record = RelayedRequest {
            server: "srv".into(),
            agent: origin.agent.clone(),
            tool: origin.tool.clone(),
            call_id: origin.call_id,
            permission_request_id: None,
            method: "elicitation/create".into(),
            params: json!({"message": "?"}),
            asked_at: Utc::now(),
            ended_at: Utc::now(),
            outcome: RelayOutcome::Answered,
        };
        let started = std::time::Instant::now();
        recorder.record(&origin, record);
        assert!(started.elapsed() < std::time::Duration::from_millis(100), "recording does not wait for the append");
        assert_eq!(metrics.relayed_client_requests("elicitation/create", "answered"), 1);
        for _ in 0..100 {
            if metrics.relayed_client_request_record_failures() == 1 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the failed append is counted");
    }
}
