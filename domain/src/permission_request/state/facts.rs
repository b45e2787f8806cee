//! What a request's state says: its facts, read without matching on the states.

use chrono::{DateTime, Utc};

use super::{CallOutcome, Claim, PermissionRequest, RequestDetails, RequestStatus, Review};

impl PermissionRequest {
    /// The facts fixed at creation; `None` before `Created`.
    pub fn details(&self) -> Option<&RequestDetails> {
        use PermissionRequest as S;
        match self {
            S::New => None,
            S::Pending { details }
            | S::Approved { details, .. }
            | S::Rejected { details, .. }
            | S::Expired { details, .. }
            | S::Executing { details, .. }
            | S::Executed { details, .. }
            | S::Withdrawn { details, .. } => Some(details),
        }
    }

    /// `None` before `Created`.
    pub fn status(&self) -> Option<RequestStatus> {
        use PermissionRequest as S;
        Some(match self {
            S::New => return None,
            S::Pending { .. } => RequestStatus::Pending,
            S::Approved { .. } => RequestStatus::Approved,
            S::Rejected { .. } => RequestStatus::Rejected,
            S::Expired { .. } => RequestStatus::Expired,
            S::Executing { .. } => RequestStatus::Executing,
            S::Executed { .. } => RequestStatus::Executed,
            S::Withdrawn { .. } => RequestStatus::Withdrawn,
        })
    }

    /// The approval or rejection, once decided (an expired request has none).
    pub fn review(&self) -> Option<&Review> {
        use PermissionRequest as S;
        match self {
            S::Approved { review, .. }
            | S::Rejected { review, .. }
            | S::Executing { review, .. }
            | S::Executed { review, .. } => Some(review),
            S::New | S::Pending { .. } | S::Expired { .. } | S::Withdrawn { .. } => None,
        }
    }

    /// Who withdrew the request, and when.
    pub fn withdrawal(&self) -> Option<&Review> {
        match self {
            PermissionRequest::Withdrawn { withdrawal, .. } => Some(withdrawal),
            _ => None,
        }
    }

    /// When the request last changed: the time its latest event records.
    pub fn last_changed_at(&self) -> Option<DateTime<Utc>> {
        use PermissionRequest as S;
        Some(match self {
            S::New => return None,
            S::Pending { details } => details.created_at,
            S::Approved { review, .. } | S::Rejected { review, .. } => review.at,
            S::Expired { expired_at, .. } => *expired_at,
            S::Withdrawn { withdrawal, .. } => withdrawal.at,
            S::Executing { claim, .. } => claim.at,
            S::Executed { cached_at, .. } => *cached_at,
        })
    }

    /// An approved request's execution deadline, if it has one.
    pub fn execute_by(&self) -> Option<DateTime<Utc>> {
        match self {
            PermissionRequest::Approved { execute_by, .. } => *execute_by,
            _ => None,
        }
    }

    /// The rejection's reason.
    pub fn reason(&self) -> Option<&str> {
        match self {
            PermissionRequest::Rejected { reason, .. } => Some(reason),
            _ => None,
        }
    }

    pub fn expired_at(&self) -> Option<DateTime<Utc>> {
        match self {
            PermissionRequest::Expired { expired_at, .. } => Some(*expired_at),
            _ => None,
        }
    }

    /// The execution claim, once claimed.
    pub fn claim(&self) -> Option<&Claim> {
        match self {
            PermissionRequest::Executing { claim, .. } | PermissionRequest::Executed { claim, .. } => Some(claim),
            _ => None,
        }
    }

    /// The cached outcome of the executed call.
    pub fn outcome(&self) -> Option<&CallOutcome> {
        match self {
            PermissionRequest::Executed { outcome, .. } => Some(outcome),
            _ => None,
        }
    }

    /// The cached outcome, taken out of the state (results can be large).
    pub fn into_outcome(self) -> Option<CallOutcome> {
        match self {
            PermissionRequest::Executed { outcome, .. } => Some(outcome),
            _ => None,
        }
    }

    /// When the outcome was cached.
    pub fn result_cached_at(&self) -> Option<DateTime<Utc>> {
        match self {
            PermissionRequest::Executed { cached_at, .. } => Some(*cached_at),
            _ => None,
        }
    }
}
