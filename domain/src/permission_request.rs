//! The permission request: one gated tool call, from creation to its cached outcome.
//!
//! ```text
//! Created ──► Approved ──► Executed ──► ResultCached
//!    │
//!    ├──► Rejected
//!    ├──► Expired     (also from Approved, when the call was not run by its deadline)
//!    └──► Withdrawn   (the agent cancelled its own task while it was pending)
//! ```
//! `Executed` is the at-most-once claim: it is appended *before* the upstream call, so a
//! second claimer loses on optimistic concurrency and a crash mid-call leaves a request
//! whose outcome is unknown rather than one that may run twice.
//!
//! This file holds the vocabulary (commands, events, statuses, errors); `state` holds the
//! aggregate itself: its states, `decide` and `evolve`.

mod state;

pub use state::{Claim, PermissionRequest, RequestDetails, Review};

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const REQUEST_TYPE_TOOL_CALL: &str = "tool_call";
/// Longest rejection reason accepted, in characters.
pub const MAX_REASON_CHARS: usize = 1000;

/// What the upstream said when the approved call ran: a result (possibly `isError: true`,
/// which is still a result) or a JSON-RPC error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    Result(Value),
    Error { code: i64, message: String, data: Option<Value> },
}

/// Where a request stands. Each status is reached by exactly one event (see
/// [`PermissionRequestEvent::status_after`]); the wire strings (`as_str`) are part of the
/// API and the runbook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    Pending,
    Approved,
    Rejected,
    Expired,
    /// Claimed for execution; the upstream call is (or was) in flight, no result yet.
    Executing,
    /// Executed and its outcome cached.
    Executed,
    /// Withdrawn by the agent that asked (an MCP `tasks/cancel`) before anyone decided.
    Withdrawn,
}

impl RequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Pending => "pending",
            RequestStatus::Approved => "approved",
            RequestStatus::Rejected => "rejected",
            RequestStatus::Expired => "expired",
            RequestStatus::Executing => "executing",
            RequestStatus::Executed => "executed",
            RequestStatus::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => RequestStatus::Pending,
            "approved" => RequestStatus::Approved,
            "rejected" => RequestStatus::Rejected,
            "expired" => RequestStatus::Expired,
            "executing" => RequestStatus::Executing,
            "executed" => RequestStatus::Executed,
            "withdrawn" => RequestStatus::Withdrawn,
            _ => return None,
        })
    }

    /// Whether the request can change no more: decided against, expired, withdrawn, or
    /// executed with its outcome cached.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RequestStatus::Rejected | RequestStatus::Expired | RequestStatus::Executed | RequestStatus::Withdrawn
        )
    }

    pub const ALL: [RequestStatus; 7] = [
        RequestStatus::Pending,
        RequestStatus::Approved,
        RequestStatus::Rejected,
        RequestStatus::Expired,
        RequestStatus::Executing,
        RequestStatus::Executed,
        RequestStatus::Withdrawn,
    ];
}

impl std::fmt::Display for RequestStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum PermissionRequestCommand {
    Create {
        agent: String,
        tool: String,
        arguments: Value,
        idempotency_key: String,
        requested_by: String,
        at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    },
    Approve {
        by: String,
        at: DateTime<Utc>,
        /// The approved call must be claimed for execution before this instant, or it
        /// expires (the agent never came back for it).
        execute_by: DateTime<Utc>,
    },
    Reject {
        by: String,
        at: DateTime<Utc>,
        reason: String,
    },
    Expire {
        at: DateTime<Utc>,
    },
    /// The agent that asked takes its request back (MCP `tasks/cancel`).
    Withdraw {
        by: String,
        at: DateTime<Utc>,
    },
    ClaimExecution {
        replica: String,
        at: DateTime<Utc>,
    },
    CacheResult {
        outcome: CallOutcome,
        at: DateTime<Utc>,
    },
}

/// What happened to a request. Each event leads to one status:
///
/// | event          | status after |
/// |----------------|--------------|
/// | `Created`      | `pending`    |
/// | `Approved`     | `approved`   |
/// | `Rejected`     | `rejected`   |
/// | `Expired`      | `expired`    |
/// | `Executed`     | `executing`  |
/// | `ResultCached` | `executed`   |
/// | `Withdrawn`    | `withdrawn`  |
///
/// The two names differ at the end on purpose: the event `Executed` is the claim, appended
/// *before* the upstream call, so the request is `executing` until its outcome is cached
/// (`ResultCached`), and only then `executed`. Event names are stored in the log and
/// statuses are on the wire: neither can be renamed to match the other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PermissionRequestEvent {
    Created {
        request_type: String,
        agent: String,
        tool: String,
        arguments: Value,
        arguments_digest: String,
        idempotency_key: String,
        requested_by: String,
        at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    },
    Approved {
        by: String,
        at: DateTime<Utc>,
        /// Absent in approvals recorded before execution deadlines existed: no deadline.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        execute_by: Option<DateTime<Utc>>,
    },
    Rejected {
        by: String,
        at: DateTime<Utc>,
        reason: String,
    },
    Expired {
        at: DateTime<Utc>,
    },
    Executed {
        replica: String,
        at: DateTime<Utc>,
    },
    ResultCached {
        outcome: CallOutcome,
        at: DateTime<Utc>,
    },
    Withdrawn {
        by: String,
        at: DateTime<Utc>,
    },
}

impl PermissionRequestEvent {
    /// The short, stable name used in metrics, exports and the read model.
    pub fn name(&self) -> &'static str {
        match self {
            PermissionRequestEvent::Created { .. } => "Created",
            PermissionRequestEvent::Approved { .. } => "Approved",
            PermissionRequestEvent::Rejected { .. } => "Rejected",
            PermissionRequestEvent::Expired { .. } => "Expired",
            PermissionRequestEvent::Executed { .. } => "Executed",
            PermissionRequestEvent::ResultCached { .. } => "ResultCached",
            PermissionRequestEvent::Withdrawn { .. } => "Withdrawn",
        }
    }

    /// The status a request has right after this event (the table on the type).
    pub fn status_after(&self) -> RequestStatus {
        match self {
            PermissionRequestEvent::Created { .. } => RequestStatus::Pending,
            PermissionRequestEvent::Approved { .. } => RequestStatus::Approved,
            PermissionRequestEvent::Rejected { .. } => RequestStatus::Rejected,
            PermissionRequestEvent::Expired { .. } => RequestStatus::Expired,
            PermissionRequestEvent::Executed { .. } => RequestStatus::Executing,
            PermissionRequestEvent::ResultCached { .. } => RequestStatus::Executed,
            PermissionRequestEvent::Withdrawn { .. } => RequestStatus::Withdrawn,
        }
    }
}

impl DomainEvent for PermissionRequestEvent {
    fn event_type(&self) -> String {
        self.name().to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PermissionRequestError {
    #[error("permission request does not exist")]
    NotFound,
    #[error(
        "idempotency key {idempotency_key:?} was already used for tool {existing_tool:?} with other arguments; \
         use a new key for a different call"
    )]
    IdempotencyConflict { idempotency_key: String, existing_tool: String },
    #[error("permission request is {status}, not pending")]
    NotPending { status: RequestStatus },
    #[error("permission request expired at {expires_at}")]
    ApprovalWindowClosed { expires_at: DateTime<Utc> },
    #[error("permission request does not expire before {expires_at}")]
    NotYetExpired { expires_at: DateTime<Utc> },
    #[error("the approved call had to run before {execute_by}")]
    ExecutionWindowClosed { execute_by: DateTime<Utc> },
    #[error("permission request is {status}; only an approved request can be executed")]
    NotApproved { status: RequestStatus },
    #[error("permission request was already claimed for execution")]
    AlreadyClaimed,
    #[error("permission request has not been claimed for execution")]
    NotClaimed,
    #[error("permission request already has a cached result")]
    ResultAlreadyCached,
    #[error("a rejection needs a reason of 1 to {MAX_REASON_CHARS} characters, none of them NUL")]
    InvalidReason,
    #[error("{0} must not be empty")]
    Empty(&'static str),
}

#[cfg(test)]
mod tests;
