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
/// the rebuild's reader decodes them, on the other core), and writes nothing itself: the
/// rebuild streams what it returns into the shadow table through one `COPY`, so that
/// PostgreSQL stores rows while the next events are folded.
pub trait Replay: Send {
    /// The `COPY ... FROM STDIN` statement its output is written with.
    fn copy_statement(&self, table: &str) -> String;

    /// Folds in the next events, in order; returns `COPY` data for rows that can change
    /// no more (often none yet).
    fn fold(&mut self, events: Vec<RequestEvent>) -> anyhow::Result<Vec<u8>>;

    /// The `COPY` data still held, up to the end of the data.
    fn finish(self: Box<Self>) -> anyhow::Result<Vec<u8>>;
}
