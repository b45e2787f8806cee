//! The aggregate: a request's state, `decide` (state × command → events) and `evolve`
//! (state × event → state), the one fold of a request's history.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    CallOutcome, PermissionRequestCommand, PermissionRequestError, PermissionRequestEvent, RequestStatus,
    MAX_REASON_CHARS, REQUEST_TYPE_TOOL_CALL,
};
use crate::ids::arguments_digest;

mod facts;

/// The facts fixed at creation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestDetails {
    pub request_type: String,
    pub agent: String,
    pub tool: String,
    pub arguments: Value,
    pub arguments_digest: String,
    pub idempotency_key: String,
    pub requested_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Who decided a request, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Review {
    pub by: String,
    pub at: DateTime<Utc>,
}

/// Which replica claimed an approved request for execution, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    pub replica: String,
    pub at: DateTime<Utc>,
}

/// The state of one permission request: one variant per status, each carrying exactly the
/// facts a request in that status has (a rejected request has a reason, an executing one a
/// claim but no outcome yet), so no combination the log cannot produce can be expressed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub enum PermissionRequest {
    /// No `Created` yet: the request does not exist.
    #[default]
    New,
    Pending {
        details: RequestDetails,
    },
    Approved {
        details: RequestDetails,
        review: Review,
        /// The call must be claimed before this, or the request expires.
        execute_by: Option<DateTime<Utc>>,
    },
    Rejected {
        details: RequestDetails,
        review: Review,
        reason: String,
    },
    Expired {
        details: RequestDetails,
        expired_at: DateTime<Utc>,
    },
    /// Claimed (the `Executed` event); the upstream call is (or was) in flight.
    Executing {
        details: RequestDetails,
        review: Review,
        claim: Claim,
    },
    /// Taken back by the agent before anyone decided (the `Withdrawn` event); `withdrawal`
    /// says who (the agent, or a person acting through its path) and when.
    Withdrawn {
        details: RequestDetails,
        withdrawal: Review,
    },
    /// Executed and its outcome cached (the `ResultCached` event).
    Executed {
        details: RequestDetails,
        review: Review,
        claim: Claim,
        outcome: CallOutcome,
        cached_at: DateTime<Utc>,
    },
}

impl PermissionRequest {
    /// The pure decision: which events `command` produces in the current state.
    pub fn decide(
        &self,
        command: PermissionRequestCommand,
    ) -> Result<Vec<PermissionRequestEvent>, PermissionRequestError> {
        use PermissionRequestCommand as C;
        use PermissionRequestError as E;
        use PermissionRequestEvent as Ev;

        if let C::Create { agent, tool, arguments, idempotency_key, requested_by, at, expires_at } = command {
            for (what, value) in [("agent", &agent), ("tool", &tool), ("idempotency key", &idempotency_key)] {
                if value.is_empty() {
                    return Err(E::Empty(what));
                }
            }
            let digest = arguments_digest(&arguments);
            return match self.details() {
                // Idempotent: the same call again creates nothing new.
                Some(existing) if existing.tool == tool && existing.arguments_digest == digest => Ok(vec![]),
                Some(existing) => Err(E::IdempotencyConflict { idempotency_key, existing_tool: existing.tool.clone() }),
                None => Ok(vec![Ev::Created {
                    request_type: REQUEST_TYPE_TOOL_CALL.to_owned(),
                    agent,
                    tool,
                    arguments,
                    arguments_digest: digest,
                    idempotency_key,
                    requested_by,
                    at,
                    expires_at,
                }]),
            };
        }

        let (Some(details), Some(status)) = (self.details(), self.status()) else {
            return Err(E::NotFound);
        };
        match command {
            C::Create { .. } => unreachable!("handled above"),
            C::Approve { by, at, execute_by } => {
                self.require_open_for_review(details, status, at)?;
                Ok(vec![Ev::Approved { by, at, execute_by: Some(execute_by) }])
            }
            C::Reject { by, at, reason } => {
                let reason = reason.trim().to_owned();
                if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS || reason.contains('\0') {
                    return Err(E::InvalidReason);
                }
                self.require_open_for_review(details, status, at)?;
                Ok(vec![Ev::Rejected { by, at, reason }])
            }
            C::Expire { at } => {
                // A pending request past its approval window, or an approved one whose
                // call was not claimed by its execution deadline.
                let deadline = match (status, self.execute_by()) {
                    (RequestStatus::Pending, _) => details.expires_at,
                    (RequestStatus::Approved, Some(execute_by)) => execute_by,
                    _ => return Err(E::NotPending { status }),
                };
                if at < deadline {
                    return Err(E::NotYetExpired { expires_at: deadline });
                }
                Ok(vec![Ev::Expired { at }])
            }
            C::Withdraw { by, at } => {
                self.require_open_for_review(details, status, at)?;
                Ok(vec![Ev::Withdrawn { by, at }])
            }
            C::ClaimExecution { replica, at } => match status {
                RequestStatus::Approved => match self.execute_by() {
                    Some(execute_by) if at >= execute_by => Err(E::ExecutionWindowClosed { execute_by }),
                    _ => Ok(vec![Ev::Executed { replica, at }]),
                },
                RequestStatus::Executing | RequestStatus::Executed => Err(E::AlreadyClaimed),
                other => Err(E::NotApproved { status: other }),
            },
            C::CacheResult { outcome, at } => match status {
                RequestStatus::Executing => Ok(vec![Ev::ResultCached { outcome, at }]),
                RequestStatus::Executed => Err(E::ResultAlreadyCached),
                _ => Err(E::NotClaimed),
            },
        }
    }

    fn require_open_for_review(
        &self,
        details: &RequestDetails,
        status: RequestStatus,
        at: DateTime<Utc>,
    ) -> Result<(), PermissionRequestError> {
        if status != RequestStatus::Pending {
            return Err(PermissionRequestError::NotPending { status });
        }
        if at >= details.expires_at {
            return Err(PermissionRequestError::ApprovalWindowClosed { expires_at: details.expires_at });
        }
        Ok(())
    }

    /// Folds one event into the state. Never fails: events are facts. An event that cannot
    /// follow the current state (`decide` produces none) leaves it as it is; see
    /// [`Self::try_evolve`].
    pub fn evolve(&mut self, event: PermissionRequestEvent) {
        let _ = self.try_evolve(event);
    }

    /// The one fold of a request's events: each arm is a transition of the diagram at the
    /// top of this module. Returns `false`, leaving the state as it is, for an event that
    /// cannot follow the current state (say `Approved` before `Created`, or a second
    /// `Created`), so a reader of a damaged log can tell it was ignored.
    #[must_use = "false means the event was ignored"]
    pub fn try_evolve(&mut self, event: PermissionRequestEvent) -> bool {
        use PermissionRequest as S;
        use PermissionRequestEvent as Ev;
        *self = match (std::mem::take(self), event) {
            (
                S::New,
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
            ) => S::Pending {
                details: RequestDetails {
                    request_type,
                    agent,
                    tool,
                    arguments,
                    arguments_digest,
                    idempotency_key,
                    requested_by,
                    created_at: at,
                    expires_at,
                },
            },
            (S::Pending { details }, Ev::Approved { by, at, execute_by }) => {
                S::Approved { details, review: Review { by, at }, execute_by }
            }
            (S::Approved { details, .. }, Ev::Expired { at }) => S::Expired { details, expired_at: at },
            (S::Pending { details }, Ev::Rejected { by, at, reason }) => {
                S::Rejected { details, review: Review { by, at }, reason }
            }
            (S::Pending { details }, Ev::Expired { at }) => S::Expired { details, expired_at: at },
            (S::Pending { details }, Ev::Withdrawn { by, at }) => {
                S::Withdrawn { details, withdrawal: Review { by, at } }
            }
            (S::Approved { details, review, .. }, Ev::Executed { replica, at }) => {
                S::Executing { details, review, claim: Claim { replica, at } }
            }
            (S::Executing { details, review, claim }, Ev::ResultCached { outcome, at }) => {
                S::Executed { details, review, claim, outcome, cached_at: at }
            }
            (unchanged, _) => {
                *self = unchanged;
                return false;
            }
        };
        true
    }

    /// Replays a history from the beginning.
    pub fn from_events(events: impl IntoIterator<Item = PermissionRequestEvent>) -> Self {
        let mut state = Self::default();
        for event in events {
            state.evolve(event);
        }
        state
    }
}

impl Aggregate for PermissionRequest {
    const TYPE: &'static str = "PermissionRequest";
    type Command = PermissionRequestCommand;
    type Event = PermissionRequestEvent;
    type Error = PermissionRequestError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.evolve(event);
    }
}
