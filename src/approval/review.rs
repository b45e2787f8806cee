//! A person's decision on a permission request: approve, or reject with a reason. The
//! one implementation every front end (the JSON API, the console) calls.

use alexandria_domain::{EventMetadata, PermissionRequest, PermissionRequestCommand};
use chrono::Utc;
use uuid::Uuid;

use super::store::{CommandError, PermissionStore};
use crate::auth::Role;
use crate::names::Actor;

/// The least role that may decide (the JSON API's routes state it as `UserAtLeast<Admin>`).
pub const REVIEWER_ROLE: Role = Role::Admin;

/// What the reviewer decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Approve,
    /// The reason is shown to the agent (`denied: <reason>`); it must not be blank.
    Reject {
        reason: String,
    },
}

/// Records `reviewer`'s decision on request `id` and returns the state it produced
/// (read-your-write: the read model may not have caught up yet). A request decided by
/// someone else a moment earlier is refused with the domain's `NotPending`.
/// An approval gives the agent `execute_within` to come back and run the call; after it
/// the request expires.
pub async fn decide(
    store: &PermissionStore,
    replica_id: &str,
    id: Uuid,
    reviewer: &str,
    decision: Decision,
    execute_within: std::time::Duration,
) -> Result<PermissionRequest, CommandError> {
    let by = reviewer.to_owned();
    let at = Utc::now();
    let command = match decision {
        Decision::Approve => {
            let execute_by = at + chrono::Duration::from_std(execute_within).unwrap_or(chrono::Duration::days(1));
            PermissionRequestCommand::Approve { by, at, execute_by }
        }
        Decision::Reject { reason } => PermissionRequestCommand::Reject { by, at, reason },
    };
    let actor = Actor::User(reviewer.to_owned());
    let metadata = EventMetadata::new(actor.to_string(), replica_id, Uuid::new_v4().to_string());
    Ok(store.execute(id, command, &metadata).await?.state)
}
