//! What a projection is.

use async_trait::async_trait;
use sqlx::PgConnection;

use crate::log::StoredEvent;

/// A read model built from the event log.
///
/// `apply` must be a function of (current rows, events): the runner calls it inside the
/// transaction that also advances the checkpoint, and a rebuild calls it on a shadow copy
/// of the table, so it must write only to `table` and keep no state of its own.
#[async_trait]
pub trait Projection: Send + Sync + 'static {
    /// Stable name: the checkpoint key and the CLI argument.
    fn name(&self) -> &'static str;

    /// The table it owns, as created by the migrations.
    fn table(&self) -> &'static str;

    /// Applies a batch of events, in order, to `table` (the live table or a rebuild's
    /// shadow copy of it).
    async fn apply(&self, conn: &mut PgConnection, table: &str, events: &[StoredEvent]) -> anyhow::Result<()>;
}
