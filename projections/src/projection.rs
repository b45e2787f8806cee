//! What a projection is.

use async_trait::async_trait;
use sqlx::PgConnection;

use crate::log::replay::RequestEvent;
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

    /// A rebuild's faster path, if the projection has one: a fold over the whole log that
    /// keeps its state between batches, so no row is read back and each is written once.
    /// It must leave `table` exactly as [`apply`](Self::apply) over the same events would.
    fn replay(&self) -> Option<Box<dyn Replay>> {
        None
    }
}

/// A whole-log fold into an empty shadow table, for one rebuild (see
/// [`Projection::replay`]). State lives only as long as the rebuild.
///
/// It folds permission requests' events, already decoded (the log's one aggregate type;
/// decoding is done by the rebuild's reader, on the other core).
#[async_trait]
pub trait Replay: Send {
    /// Folds in the next events, in order; may write what can change no more.
    async fn fold(&mut self, conn: &mut PgConnection, table: &str, events: Vec<RequestEvent>) -> anyhow::Result<()>;

    /// Writes everything still held.
    async fn finish(self: Box<Self>, conn: &mut PgConnection, table: &str) -> anyhow::Result<()>;
}
