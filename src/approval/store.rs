//! The write side: commands against permission requests, committed through postgres-es.
//!
//! This is the only code that writes a request's events. A create is first tried as a
//! single `INSERT` of the request's first event (no read: a new request has no history);
//! when the request exists, or for any other command, it runs the command against the
//! current state and commits the resulting events with optimistic concurrency; a conflict
//! (another writer appended first) re-runs the command against the new state, so racing
//! callers end up with the domain's answer (e.g. "already approved"), never a storage
//! error.
//!
//! A request's history is read here, not through postgres-es: its reader panics on a row
//! it cannot decode, and a stored event that cannot be read must be an error for the
//! request that has it (and only for that one), or readable once an operator skipped it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use alexandria_domain::{
    EventMetadata, PermissionRequest, PermissionRequestCommand, PermissionRequestError, PermissionRequestEvent,
};
use alexandria_projections::log::read_global_batch;
use alexandria_projections::{Backoff, StoredEvent, UnreadableEvent};
use cqrs_es::persist::{EventStoreAggregateContext, PersistedEventStore};
use cqrs_es::{Aggregate, AggregateError, DomainEvent, EventEnvelope, EventStore};
use postgres_es::PostgresEventRepository;
use sqlx::PgPool;
use uuid::Uuid;

use crate::metrics::Metrics;

type Store = PersistedEventStore<PostgresEventRepository, PermissionRequest>;

/// How many times a command is re-run after losing a race before giving up with
/// `CommandError::Conflict`. Each retry sees the winner's events, so this bound is only
/// reached under pathological contention.
const CONFLICT_RETRIES: usize = 8;
/// Events read per query when loading a request (a request has a handful).
const HISTORY_BATCH: i64 = 100;
/// An event row as postgres-es writes it (the same seven columns; the rest default).
const INSERT_EVENT: &str = "INSERT INTO events \
     (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Domain(#[from] PermissionRequestError),
    #[error("the request kept changing under this command; try again")]
    Conflict,
    /// One of the request's stored events cannot be read: the request cannot be loaded
    /// until an operator skips that event (`alexandria events skip`).
    #[error(transparent)]
    Unreadable(#[from] UnreadableEvent),
    #[error("event store failure: {0}")]
    Store(String),
}

/// The outcome of a command: the state after it and the events it appended (empty when
/// the command was an idempotent no-op).
#[derive(Debug)]
pub struct Applied {
    pub state: PermissionRequest,
    pub events: Vec<EventEnvelope<PermissionRequest>>,
}

/// A request's history as the log has it: the state its readable, unskipped events fold
/// to, and the sequence of its last stored event (skipped or not), after which the next
/// event is appended.
struct History {
    state: PermissionRequest,
    events: Vec<EventEnvelope<PermissionRequest>>,
    last_sequence: usize,
}

/// Why one run of a command did not apply.
enum AttemptError {
    /// Another writer appended first: run the command again on the new state.
    LostRace,
    Failed(CommandError),
}

#[derive(Clone)]
pub struct PermissionStore {
    pool: PgPool,
    /// Built once: the repository formats its SQL when it is created. Used to commit;
    /// reading is [`PermissionStore::history`].
    store: Arc<Store>,
    metrics: Option<Metrics>,
}

impl PermissionStore {
    pub fn new(pool: PgPool) -> Self {
        let store = PersistedEventStore::new_event_store(PostgresEventRepository::new(pool.clone()));
        Self { pool, store: Arc::new(store), metrics: None }
    }

    /// Counts every event this store appends in `alexandria_permission_request_events_total`.
    pub fn with_metrics(self, metrics: Metrics) -> Self {
        Self { metrics: Some(metrics), ..self }
    }

    fn count(&self, state: &PermissionRequest, events: &[EventEnvelope<PermissionRequest>]) {
        let (Some(metrics), Some(details)) = (&self.metrics, state.details()) else { return };
        for envelope in events {
            let label = match envelope.payload {
                PermissionRequestEvent::Created { .. } => "created",
                PermissionRequestEvent::Approved { .. } => "approved",
                PermissionRequestEvent::Rejected { .. } => "rejected",
                PermissionRequestEvent::Expired { .. } => "expired",
                PermissionRequestEvent::Executed { .. } => "executed",
                PermissionRequestEvent::Withdrawn { .. } => "withdrawn",
                PermissionRequestEvent::ResultCached { .. } => continue,
            };
            metrics.permission_event(&details.request_type, &details.tool, label);
        }
    }

    /// Runs `command` once against the request as the log has it now.
    async fn attempt(
        &self,
        id: Uuid,
        command: PermissionRequestCommand,
        metadata: &EventMetadata,
    ) -> Result<Applied, AttemptError> {
        let history = self.history(id).await.map_err(AttemptError::Failed)?;
        let events = history.state.decide(command).map_err(|error| AttemptError::Failed(error.into()))?;
        let mut state = history.state.clone();
        for event in &events {
            state.evolve(event.clone());
        }
        let committed = if events.is_empty() {
            Vec::new()
        } else {
            let context = EventStoreAggregateContext {
                aggregate_id: id.to_string(),
                aggregate: history.state,
                current_sequence: history.last_sequence,
                current_snapshot: None,
            };
            match self.store.commit(events, context, metadata.to_map()).await {
                Ok(committed) => committed,
                Err(AggregateError::AggregateConflict) => return Err(AttemptError::LostRace),
                Err(other) => return Err(AttemptError::Failed(CommandError::Store(other.to_string()))),
            }
        };
        self.count(&state, &committed);
        Ok(Applied { state, events: committed })
    }

    /// Appends a new request's first event without reading its history first: one
    /// autocommit `INSERT` at sequence 1, the round trip a create costs. `None` when the
    /// request already exists (the primary key refuses a second sequence 1: a retry, or a
    /// concurrent create) or the command does not apply to a new request: the caller
    /// then runs the command against the stored history, which gives the domain's answer
    /// (an idempotent retry finds the request as it is).
    async fn append_first(
        &self,
        id: Uuid,
        command: &PermissionRequestCommand,
        metadata: &EventMetadata,
    ) -> Result<Option<Applied>, CommandError> {
        let new = PermissionRequest::default();
        let Ok(events) = new.decide(command.clone()) else { return Ok(None) };
        let [event] = events.as_slice() else { return Ok(None) };
        let store_error = |error: serde_json::Error| CommandError::Store(error.to_string());
        let metadata = metadata.to_map();
        let inserted = sqlx::query(INSERT_EVENT)
            .bind(PermissionRequest::TYPE)
            .bind(id.to_string())
            .bind(1_i64)
            .bind(event.event_type())
            .bind(event.event_version())
            .bind(serde_json::to_value(event).map_err(store_error)?)
            .bind(serde_json::to_value(&metadata).map_err(store_error)?)
            .execute(&self.pool)
            .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => return Ok(None),
            Err(error) => return Err(CommandError::Store(error.to_string())),
        }
        let mut state = new;
        state.evolve(event.clone());
        let envelope = EventEnvelope { aggregate_id: id.to_string(), sequence: 1, payload: event.clone(), metadata };
        let committed = vec![envelope];
        self.count(&state, &committed);
        Ok(Some(Applied { state, events: committed }))
    }

    /// Runs `command`, re-running it on the fresh state after each lost race.
    pub async fn execute(
        &self,
        id: Uuid,
        command: PermissionRequestCommand,
        metadata: &EventMetadata,
    ) -> Result<Applied, CommandError> {
        if matches!(command, PermissionRequestCommand::Create { .. }) {
            if let Some(applied) = self.append_first(id, &command, metadata).await? {
                return Ok(applied);
            }
        }
        // Jitter keeps a herd of losers from colliding again.
        let mut races = Backoff::new(Duration::from_millis(2), Duration::from_millis(16)).with_jitter().retries();
        for attempt in 0..=CONFLICT_RETRIES {
            match self.attempt(id, command.clone(), metadata).await {
                Ok(applied) => return Ok(applied),
                Err(AttemptError::Failed(error)) => return Err(error),
                Err(AttemptError::LostRace) => {
                    tracing::debug!(%id, attempt, "lost an append race; re-running the command");
                    tokio::time::sleep(races.next_delay()).await;
                }
            }
        }
        Err(CommandError::Conflict)
    }

    /// The current state, or `None` if the request was never created (or every event it
    /// has was skipped).
    pub async fn load(&self, id: Uuid) -> Result<Option<PermissionRequest>, CommandError> {
        let history = self.history(id).await?;
        Ok((!history.events.is_empty()).then_some(history.state))
    }

    /// The request's readable events, in order (a skipped event is left out).
    pub async fn load_events(&self, id: Uuid) -> Result<Vec<EventEnvelope<PermissionRequest>>, CommandError> {
        Ok(self.history(id).await?.events)
    }

    /// Reads and folds the request's stored events. An event that cannot be read is an
    /// error naming it; a skipped one is passed over but still counts for the sequence.
    async fn history(&self, id: Uuid) -> Result<History, CommandError> {
        let aggregate_id = id.to_string();
        let store_error = |error: sqlx::Error| CommandError::Store(error.to_string());
        let mut conn = self.pool.acquire().await.map_err(store_error)?;
        let mut history = History { state: PermissionRequest::default(), events: Vec::new(), last_sequence: 0 };
        let mut after = 0;
        loop {
            let batch =
                read_global_batch(&mut conn, Some(&aggregate_id), after, HISTORY_BATCH).await.map_err(store_error)?;
            for stored in &batch {
                after = stored.global_position;
                // The sequence column is checked to be 0 or more.
                let sequence = usize::try_from(stored.sequence).unwrap_or_default();
                history.last_sequence = history.last_sequence.max(sequence);
                let Some((_, event)) = stored.decode_permission_request()? else { continue };
                history.state.evolve(event.clone());
                history.events.push(EventEnvelope {
                    aggregate_id: aggregate_id.clone(),
                    sequence,
                    payload: event,
                    metadata: metadata_of(stored),
                });
            }
            if (batch.len() as i64) < HISTORY_BATCH {
                return Ok(history);
            }
        }
    }
}

/// The string map cqrs-es keeps as an event's metadata. Metadata says who appended the
/// event; it is not part of the fold, so an entry that is not a string is left out rather
/// than making the request unreadable (readers of the log judge an event by its payload).
fn metadata_of(stored: &StoredEvent) -> HashMap<String, String> {
    let Some(entries) = stored.metadata.as_object() else { return HashMap::new() };
    entries.iter().filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned()))).collect()
}
