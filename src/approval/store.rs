//! The write side: commands against permission requests, persisted by postgres-es.
//!
//! This is the only code that writes `events`. It runs a command against the current
//! state and commits the resulting events with optimistic concurrency; a conflict (another
//! writer appended first) re-runs the command against the new state, so racing callers
//! end up with the domain's answer (e.g. "already approved"), never a storage error.

use std::sync::Arc;
use std::time::Duration;

use alexandria_domain::{
    EventMetadata, PermissionRequest, PermissionRequestCommand, PermissionRequestError, PermissionRequestEvent,
};
use alexandria_projections::Backoff;
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{AggregateContext, AggregateError, EventEnvelope, EventStore};
use postgres_es::PostgresEventRepository;
use sqlx::PgPool;
use uuid::Uuid;

use crate::metrics::Metrics;

type Store = PersistedEventStore<PostgresEventRepository, PermissionRequest>;

/// How many times a command is re-run after losing a race before giving up with
/// `CommandError::Conflict`. Each retry sees the winner's events, so this bound is only
/// reached under pathological contention.
const CONFLICT_RETRIES: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Domain(#[from] PermissionRequestError),
    #[error("the request kept changing under this command; try again")]
    Conflict,
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

#[derive(Clone)]
pub struct PermissionStore {
    /// Built once: the repository formats its SQL when it is created.
    store: Arc<Store>,
    metrics: Option<Metrics>,
}

impl PermissionStore {
    pub fn new(pool: PgPool) -> Self {
        let store = PersistedEventStore::new_event_store(PostgresEventRepository::new(pool));
        Self { store: Arc::new(store), metrics: None }
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

    fn store(&self) -> &Store {
        &self.store
    }

    /// Runs `command` once: a lost race comes back as `AggregateError::AggregateConflict`.
    pub async fn execute_once(
        &self,
        id: Uuid,
        command: PermissionRequestCommand,
        metadata: &EventMetadata,
    ) -> Result<Applied, AggregateError<PermissionRequestError>> {
        let store = self.store();
        let mut context = store.load_aggregate(&id.to_string()).await?;
        let events = context.aggregate().decide(command).map_err(AggregateError::UserError)?;
        let mut state = context.aggregate().clone();
        for event in &events {
            state.evolve(event.clone());
        }
        let committed =
            if events.is_empty() { Vec::new() } else { store.commit(events, context, metadata.to_map()).await? };
        self.count(&state, &committed);
        Ok(Applied { state, events: committed })
    }

    /// Runs `command`, re-running it on the fresh state after each lost race.
    pub async fn execute(
        &self,
        id: Uuid,
        command: PermissionRequestCommand,
        metadata: &EventMetadata,
    ) -> Result<Applied, CommandError> {
        // Jitter keeps a herd of losers from colliding again.
        let mut races = Backoff::new(Duration::from_millis(2), Duration::from_millis(16)).with_jitter().retries();
        for attempt in 0..=CONFLICT_RETRIES {
            match self.execute_once(id, command.clone(), metadata).await {
                Ok(applied) => return Ok(applied),
                Err(AggregateError::UserError(error)) => return Err(CommandError::Domain(error)),
                Err(AggregateError::AggregateConflict) => {
                    tracing::debug!(%id, attempt, "lost an append race; re-running the command");
                    tokio::time::sleep(races.next_delay()).await;
                }
                Err(other) => return Err(CommandError::Store(other.to_string())),
            }
        }
        Err(CommandError::Conflict)
    }

    /// The current state, or `None` if the request was never created.
    pub async fn load(&self, id: Uuid) -> Result<Option<PermissionRequest>, CommandError> {
        let events = self.load_events(id).await?;
        if events.is_empty() {
            return Ok(None);
        }
        Ok(Some(PermissionRequest::from_events(events.into_iter().map(|e| e.payload))))
    }

    pub async fn load_events(&self, id: Uuid) -> Result<Vec<EventEnvelope<PermissionRequest>>, CommandError> {
        self.store().load_events(&id.to_string()).await.map_err(|e| CommandError::Store(e.to_string()))
    }
}
