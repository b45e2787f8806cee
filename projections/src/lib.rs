//! The read side: projections fed from the event log by a durable catch-up runner.
//!
//! cqrs-es' in-process query dispatch is not durable (a crash between commit and dispatch
//! loses the update), so nothing here relies on it. Instead every projection reads the
//! `events` table itself, in `(tx_id, global_position)` order, bounded by the oldest
//! running transaction, and stores its checkpoint in the same transaction as its rows.

pub mod backoff;
pub mod changes;
pub mod leadership;
pub mod log;
pub mod permission_requests;
pub mod projection;
pub mod rebuild;
pub mod runner;
pub mod status;

pub use backoff::{Backoff, Retries};
pub use changes::{EventListener, LogChange, PolicyNotice};
pub use leadership::{Leadership, LockHolder};
pub use log::{LogPosition, StoredEvent, UnreadableEvent};
pub use permission_requests::PermissionRequestsProjection;
pub use projection::{Projection, Replay};
pub use rebuild::{rebuild, rebuild_in_batches_of, RebuildProgress, RebuildSummary};
pub use runner::ProjectionRunner;
pub use status::{projection_status, ProjectionStatus};

/// Every projection this build knows, by name.
pub fn all() -> Vec<std::sync::Arc<dyn Projection>> {
    vec![std::sync::Arc::new(PermissionRequestsProjection)]
}

/// The projection called `name`, if it exists.
pub fn by_name(name: &str) -> Option<std::sync::Arc<dyn Projection>> {
    all().into_iter().find(|p| p.name() == name)
}
