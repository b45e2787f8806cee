//! The write side: commands against permission requests, committed through postgres-es.
//!
//! This is the only code that writes a request's events. A command on a version of the
//! request the caller already has (a new request: none yet) is first tried as a single
//! `INSERT` of its event at the next sequence, without reading; otherwise, or when that
//! version is no longer the last, it runs the command against the current state and
//! commits the resulting events with optimistic concurrency; a conflict
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
    /// The sequence of the request's last stored event after the command.
    pub last_sequence: usize,
}

impl Applied {
    /// The request as this command left it, for a command that follows without reading.
    pub fn into_versioned(self) -> Versioned {
        Versioned { state: self.state, last_sequence: self.last_sequence }
    }
}

/// A request's state and the sequence of its last stored event (skipped or not), as just
/// read or written: enough for the next command to append after it without reading the
/// history again ([`PermissionStore::execute_after`]).
#[derive(Debug, Clone)]
pub struct Versioned {
    pub state: PermissionRequest,
    pub last_sequence: usize,
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
        let last_sequence = committed.last().map_or(history.last_sequence, |event| event.sequence);
        Ok(Applied { state, events: committed, last_sequence })
    }

    /// Appends the one event `command` decides on `known` without reading the request's
    /// history first: one autocommit `INSERT` at the next sequence, a round trip instead
    /// of a read and a transaction. A new request is `known` as the default state at
    /// sequence 0. `None` when `known` is no longer the request's last version (the
    /// primary key refuses the sequence: a repeat, or another writer was first), or the
    /// command decides no single event on it: the caller then runs the command against
    /// the stored history, which gives the domain's answer (an idempotent retry finds the
    /// request as it is).
    async fn append_after(
        &self,
        id: Uuid,
        known: &Versioned,
        command: &PermissionRequestCommand,
        metadata: &EventMetadata,
    ) -> Result<Option<Applied>, CommandError> {
        let Ok(events) = known.state.decide(command.clone()) else { return Ok(None) };
        let Ok([event]) = <[PermissionRequestEvent; 1]>::try_from(events) else { return Ok(None) };
        let store_error = |error: serde_json::Error| CommandError::Store(error.to_string());
        let sequence = known.last_sequence + 1;
        let metadata = metadata.to_map();
        let inserted = sqlx::query(INSERT_EVENT)
            .bind(PermissionRequest::TYPE)
            .bind(id.to_string())
            .bind(i64::try_from(sequence).map_err(|error| CommandError::Store(error.to_string()))?)
            .bind(event.event_type())
            .bind(event.event_version())
            .bind(serde_json::to_value(&event).map_err(store_error)?)
            .bind(serde_json::to_value(&metadata).map_err(store_error)?)
            .execute(&self.pool)
            .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => return Ok(None),
            Err(error) => return Err(CommandError::Store(error.to_string())),
        }
        let mut state = known.state.clone();
        state.evolve(event.clone());
        let envelope = EventEnvelope { aggregate_id: id.to_string(), sequence, payload: event, metadata };
        let committed = vec![envelope];
        self.count(&state, &committed);
        Ok(Some(Applied { state, events: committed, last_sequence: sequence }))
    }

    /// Runs `command` on the request as `known` has it, appending without a read when
    /// that is still its last version; otherwise as [`Self::execute`].
    pub async fn execute_after(
        &self,
        id: Uuid,
        known: &Versioned,
        command: PermissionRequestCommand,
        metadata: &EventMetadata,
    ) -> Result<Applied, CommandError> {
        if let Some(applied) = self.append_after(id, known, &command, metadata).await? {
            return Ok(applied);
        }
        self.execute(id, command, metadata).await
    }

    /// Runs `command`, re-running it on the fresh state after each lost race.
    pub async fn execute(
        &self,
        id: Uuid,
        command: PermissionRequestCommand,
        metadata: &EventMetadata,
    ) -> Result<Applied, CommandError> {
        if matches!(command, PermissionRequestCommand::Create { .. }) {
            let new = Versioned { state: PermissionRequest::default(), last_sequence: 0 };
            if let Some(applied) = self.append_after(id, &new, &command, metadata).await? {
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
        Ok(self.load_versioned(id).await?.map(|versioned| versioned.state))
    }

    /// [`Self::load`] with the sequence of the request's last stored event.
    pub async fn load_versioned(&self, id: Uuid) -> Result<Option<Versioned>, CommandError> {
        let history = self.history(id).await?;
        Ok((!history.events.is_empty())
            .then_some(Versioned { state: history.state, last_sequence: history.last_sequence }))
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
