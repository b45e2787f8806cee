//! The approval gate: what happens to a `tools/call` of a tool that needs approval.
//!
//! A call becomes a permission request whose id is derived from (agent, idempotency key),
//! so every retry and every replica meets the same aggregate. The gate then waits a
//! bounded time for the request to reach an outcome, woken by LISTEN/NOTIFY and polling
//! as a fallback, holding no database connection while it waits. An approved request is
//! executed by whoever wins `ClaimExecution`; everyone else waits for the cached result.
//!
//! Callers run `Gate::call` in a spawned task: a client that disconnects must not cancel
//! an upstream call half way, nor the caching of its result.

use std::sync::Arc;
use std::time::Duration;

use alexandria_domain::{
    derived_idempotency_key, request_id, CallOutcome, EventMetadata, PermissionRequest,
    PermissionRequestCommand as Command, PermissionRequestError, RequestStatus,
};
use alexandria_projections::EventListener;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::time::Instant;
use uuid::Uuid;

use crate::approval::store::{CommandError, PermissionStore, Versioned};
use crate::approval::CallRelay;

mod claim;
mod executor;
use crate::metrics::Metrics;
use crate::names::Actor;
pub use executor::ToolExecutor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Debug, Clone)]
pub struct GateSettings {
    /// How long a call waits in-band for a decision.
    pub wait: Duration,
    /// How long a request stays open.
    pub ttl: Duration,
    /// The retry hint in the pending envelope.
    pub retry_after: Duration,
    /// Upper bound of one upstream call; a claim older than this plus a grace period
    /// with no result means the executing process died: the outcome is unknown.
    pub call_timeout: Duration,
    /// Fallback re-check interval when no notification arrives.
    pub poll_interval: Duration,
    pub replica_id: String,
}

/// One gated `tools/call`.
#[derive(Debug, Clone)]
pub struct GatedCall {
    pub agent: String,
    pub tool: String,
    pub arguments: Value,
    /// `X-Idempotency-Key`; derived from tool and arguments when absent.
    pub idempotency_key: Option<String>,
    /// The agent, or the user acting through its path.
    pub actor: Actor,
    pub trace_id: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum GateResponse {
    /// The upstream's outcome (fresh or cached).
    Completed(CallOutcome),
    /// Not decided (or not finished executing) yet: retry with the same key.
    Pending { request_id: Uuid, status: RequestStatus, expires_at: DateTime<Utc>, retry_after: Duration },
    /// Rejected (with the reviewer's reason), expired or withdrawn.
    Denied { request_id: Uuid, reason: String },
    /// Claimed for execution but no result was ever recorded: the executing process
    /// died mid-call. It is never executed a second time.
    OutcomeUnknown { request_id: Uuid },
    /// The idempotency key was already used for another call.
    KeyConflict(String),
    /// The event store failed; nothing the client did.
    Unavailable(String),
}

/// What one step of `Gate::resolve` found.
enum Step {
    /// The call's answer.
    Done(GateResponse),
    /// Nobody has moved the request on yet: wait for a change (or answer pending).
    Wait { status: RequestStatus, expires_at: DateTime<Utc> },
    /// This step changed the request or lost a race: read it again at once.
    Reload,
}

pub const APPROVAL_EXPIRED_REASON: &str = "approval expired";
/// The denial of a request its agent withdrew (MCP `tasks/cancel`) before anyone decided.
pub const WITHDRAWN_REASON: &str = "withdrawn by the agent";
#[derive(Clone)]
pub struct Gate {
    store: PermissionStore,
    listener: Arc<EventListener>,
    executor: Arc<dyn ToolExecutor>,
    settings: Arc<GateSettings>,
    metrics: Metrics,
    /// On shutdown, waiters answer "pending" at once instead of holding the server up
    /// for the rest of their wait; a claimed execution still finishes and is cached.
    shutdown: CancellationToken,
    /// Claimed calls in progress (the upstream call and the caching of its outcome), which
    /// shutdown waits for before it closes upstream sessions: see
    /// [`Gate::finish_claimed_calls`].
    claimed_calls: TaskTracker,
}

impl Gate {
    pub fn new(
        store: PermissionStore,
        listener: Arc<EventListener>,
        executor: Arc<dyn ToolExecutor>,
        settings: GateSettings,
        metrics: Metrics,
        shutdown: CancellationToken,
    ) -> Self {
        let claimed_calls = TaskTracker::new();
        Self { store, listener, executor, settings: Arc::new(settings), metrics, shutdown, claimed_calls }
    }

    pub fn settings(&self) -> &GateSettings {
        &self.settings
    }

    fn metadata(&self, call: &GatedCall) -> EventMetadata {
        EventMetadata::new(call.actor.to_string(), &self.settings.replica_id, &call.trace_id)
    }

    /// The request id a call maps to.
    pub fn request_id_for(call: &GatedCall) -> Uuid {
        request_id(&call.agent, &Self::idempotency_key_for(call))
    }

    fn idempotency_key_for(call: &GatedCall) -> String {
        call.idempotency_key.clone().unwrap_or_else(|| derived_idempotency_key(&call.tool, &call.arguments))
    }

    /// The status of the request `call` maps to, if it exists (and the store answers).
    pub async fn existing_status(&self, call: &GatedCall) -> Option<RequestStatus> {
        self.store.load(Self::request_id_for(call)).await.ok().flatten().and_then(|state| state.status())
    }

    /// Creates the request (or finds it) and waits the configured in-band time for its
    /// outcome.
    pub async fn call(&self, call: GatedCall) -> GateResponse {
        self.call_waiting(call, self.settings.wait).await
    }

    /// [`Self::call`] with a wait of its own: zero for an MCP task, which answers as soon
    /// as its request is durable.
    pub async fn call_waiting(&self, call: GatedCall, wait: Duration) -> GateResponse {
        self.call_waiting_relayed(call, wait, None).await
    }

    /// [`call_waiting`](Self::call_waiting) for a client that reads a stream: when the
    /// call is approved and run within the wait, what its upstream says during it goes
    /// to `relay`.
    pub async fn call_waiting_relayed(
        &self,
        call: GatedCall,
        wait: Duration,
        relay: Option<CallRelay>,
    ) -> GateResponse {
        let _waiting = self.metrics.waiter();
        let deadline = Instant::now() + wait;
        let key = Self::idempotency_key_for(&call);
        let id = request_id(&call.agent, &key);
        let metadata = self.metadata(&call);
        // Watch before the first read so no change between read and wait is missed.
        let watch = self.listener.watch(&id.to_string());
        // A parked waiter is kept small (ten thousand at once is a design target): the
        // sub-futures are boxed, since an async state machine is as large as its largest
        // await point and the event store's futures run to kilobytes; and neither the
        // call's arguments nor the request's state are held while waiting. Each box is
        // bound with `let`: in `Box::pin(f).await` the unboxed `f` is a temporary of the
        // whole statement, so its storage would stay in this state machine anyway.
        let create = Box::pin(self.create(id, call, key, &metadata));
        let state = match create.await {
            Ok(state) => state,
            Err(response) => return response,
        };
        let resolve = Box::pin(self.resolve(id, Some(state), watch, deadline, &metadata, relay));
        resolve.await
    }

    /// Drives an existing request towards its outcome for up to `wait`, as a retry of
    /// its call would (an approved request is claimed and executed here): how an MCP
    /// task's result is fetched. `actor` is who asks, recorded on what this appends.
    pub async fn follow(&self, id: Uuid, actor: &Actor, trace_id: &str, wait: Duration) -> GateResponse {
        let _waiting = self.metrics.waiter();
        let deadline = Instant::now() + wait;
        let metadata = EventMetadata::new(actor.to_string(), &self.settings.replica_id, trace_id);
        let watch = self.listener.watch(&id.to_string());
        let resolve = Box::pin(self.resolve(id, None, watch, deadline, &metadata, None));
        resolve.await
    }

    /// Wakes on every change to request `id` (NOTIFY); see [`EventListener::watch`].
    pub fn watch(&self, id: Uuid) -> alexandria_projections::changes::AggregateWatch {
        self.listener.watch(&id.to_string())
    }

    /// The request as the log has it now (on any replica, after any restart).
    pub async fn load(&self, id: Uuid) -> Result<Option<PermissionRequest>, CommandError> {
        self.store.load(id).await
    }

    /// The agent takes its still-pending request back (MCP `tasks/cancel`); the domain
    /// refuses once anyone decided, or the request closed.
    pub async fn withdraw(&self, id: Uuid, actor: &Actor, trace_id: &str) -> Result<PermissionRequest, CommandError> {
        let metadata = EventMetadata::new(actor.to_string(), &self.settings.replica_id, trace_id);
        let command = Command::Withdraw { by: actor.to_string(), at: Utc::now() };
        Ok(self.store.execute(id, command, &metadata).await?.state)
    }

    /// The answer a request has for good, without driving it: its cached outcome, its
    /// denial, or an unknown outcome for a claim whose executor is presumed dead. `None`
    /// while it may still change.
    pub fn settled_answer(&self, id: Uuid, state: &PermissionRequest) -> Option<GateResponse> {
        let status = state.status()?;
        let denied = |reason: &str| Some(GateResponse::Denied { request_id: id, reason: reason.to_owned() });
        match status {
            RequestStatus::Executed => state.outcome().cloned().map(GateResponse::Completed),
            RequestStatus::Rejected => denied(state.reason().unwrap_or("rejected")),
            RequestStatus::Expired => denied(APPROVAL_EXPIRED_REASON),
            RequestStatus::Withdrawn => denied(WITHDRAWN_REASON),
            RequestStatus::Executing if self.claim_abandoned(state) => {
                Some(GateResponse::OutcomeUnknown { request_id: id })
            }
            // Past its deadline with the `Expired` event not written yet: a retry would
            // write it and be denied.
            RequestStatus::Pending if state.details().is_some_and(|d| Utc::now() >= d.expires_at) => {
                denied(APPROVAL_EXPIRED_REASON)
            }
            RequestStatus::Approved if state.execute_by().is_some_and(|deadline| Utc::now() >= deadline) => {
                denied(APPROVAL_EXPIRED_REASON)
            }
            RequestStatus::Pending | RequestStatus::Approved | RequestStatus::Executing => None,
        }
    }

    /// Creates the request (idempotently: a retry finds it as it is).
    async fn create(
        &self,
        id: Uuid,
        call: GatedCall,
        idempotency_key: String,
        metadata: &EventMetadata,
    ) -> Result<Box<Versioned>, GateResponse> {
        let now = Utc::now();
        let create = Command::Create {
            agent: call.agent,
            tool: call.tool,
            arguments: call.arguments,
            idempotency_key,
            requested_by: call.actor.to_string(),
            at: now,
            expires_at: now + chrono::Duration::from_std(self.settings.ttl).unwrap_or(chrono::Duration::days(1)),
        };
        match self.store.execute(id, create, metadata).await {
            Ok(applied) => {
                // People are told through the notification outbox, a projection of this
                // `Created` event: durable, unlike a call from here.
                if let (false, Some(details)) = (applied.events.is_empty(), applied.state.details()) {
                    tracing::info!(request_id = %id, agent = %details.agent, tool = %details.tool, "permission request needs approval");
                }
                Ok(Box::new(applied.into_versioned()))
            }
            Err(CommandError::Domain(error @ PermissionRequestError::IdempotencyConflict { .. })) => {
                Err(GateResponse::KeyConflict(error.to_string()))
            }
            Err(error) => Err(GateResponse::Unavailable(error.to_string())),
        }
    }

    /// Drives a request towards an outcome until `deadline`.
    async fn resolve(
        &self,
        id: Uuid,
        state: Option<Box<Versioned>>,
        mut watch: alexandria_projections::changes::AggregateWatch,
        deadline: Instant,
        metadata: &EventMetadata,
        relay: Option<CallRelay>,
    ) -> GateResponse {
        let mut known = state;
        loop {
            let step = Box::pin(self.step(id, known.take(), metadata, relay.as_ref()));
            match step.await {
                Step::Done(response) => return response,
                Step::Reload => {}
                Step::Wait { status, expires_at } => {
                    if Instant::now() >= deadline || self.shutdown.is_cancelled() {
                        return self.pending(id, status, expires_at);
                    }
                    self.wait_for_change(&mut watch, deadline).await;
                }
            }
        }
    }

    /// One move towards an outcome from the request's current state (`None`: read it).
    async fn step(
        &self,
        id: Uuid,
        state: Option<Box<Versioned>>,
        metadata: &EventMetadata,
        relay: Option<&CallRelay>,
    ) -> Step {
        let versioned = match state {
            Some(versioned) => versioned,
            None => match self.store.load_versioned(id).await {
                Ok(Some(versioned)) => Box::new(versioned),
                Ok(None) => return Step::Done(GateResponse::Unavailable(format!("permission request {id} vanished"))),
                Err(error) => return Step::Done(GateResponse::Unavailable(error.to_string())),
            },
        };
        let (Some(details), Some(status)) = (versioned.state.details(), versioned.state.status()) else {
            return Step::Done(GateResponse::Unavailable(format!("permission request {id} vanished")));
        };
        let wait = Step::Wait { status, expires_at: details.expires_at };
        match status {
            RequestStatus::Executed => Step::Done(match versioned.state.into_outcome() {
                Some(outcome) => GateResponse::Completed(outcome),
                None => GateResponse::Unavailable(format!("permission request {id} has no outcome")),
            }),
            RequestStatus::Rejected | RequestStatus::Expired | RequestStatus::Withdrawn => {
                match self.settled_answer(id, &versioned.state) {
                    Some(answer) => Step::Done(answer),
                    None => Step::Done(GateResponse::Unavailable(format!("permission request {id} is {status}"))),
                }
            }
            RequestStatus::Pending if Utc::now() >= details.expires_at => {
                // Expire it now rather than wait for the sweeper; losing that race
                // to a decision is fine, the reload shows the decision.
                let _ = self.store.execute(id, Command::Expire { at: Utc::now() }, metadata).await;
                Step::Reload
            }
            // Approved, but its agent did not come back for it in time: it expires (the
            // domain refuses the claim anyway).
            RequestStatus::Approved if versioned.state.execute_by().is_some_and(|deadline| Utc::now() >= deadline) => {
                let _ = self.store.execute(id, Command::Expire { at: Utc::now() }, metadata).await;
                Step::Reload
            }
            RequestStatus::Approved => {
                // Not claimed while its upstream is down: the request stays approved and
                // the caller waits (re-checking on the poll interval) or is told to retry.
                if !self.executor.is_reachable(&details.tool).await {
                    return wait;
                }
                let claim = Command::ClaimExecution { replica: self.settings.replica_id.clone(), at: Utc::now() };
                match self.store.execute_after(id, &versioned, claim, metadata).await {
                    Ok(applied) if !applied.events.is_empty() => {
                        Step::Done(self.execute_claimed(id, applied.into_versioned(), metadata, relay.cloned()).await)
                    }
                    // Someone else claimed first: wait for their result.
                    Ok(_) | Err(CommandError::Domain(_)) => Step::Reload,
                    Err(error) => Step::Done(GateResponse::Unavailable(error.to_string())),
                }
            }
            RequestStatus::Executing if self.claim_abandoned(&versioned.state) => {
                Step::Done(GateResponse::OutcomeUnknown { request_id: id })
            }
            RequestStatus::Executing | RequestStatus::Pending => wait,
        }
    }

    fn pending(&self, id: Uuid, status: RequestStatus, expires_at: DateTime<Utc>) -> GateResponse {
        GateResponse::Pending { request_id: id, status, expires_at, retry_after: self.settings.retry_after }
    }

    async fn wait_for_change(&self, watch: &mut alexandria_projections::changes::AggregateWatch, deadline: Instant) {
        let poll = Instant::now() + self.settings.poll_interval;
        tokio::select! {
            _ = watch.changed() => {}
            _ = tokio::time::sleep_until(poll.min(deadline)) => {}
            _ = self.shutdown.cancelled() => {}
        }
    }
}
