//! Permission requests, the heart of the product: `store` appends the aggregate's events
//! (the only writer of `events`), `gate` turns a gated `tools/call` into a request and
//! waits for its outcome, `review` records a person's decision, `queries` shows requests
//! as the admin API returns them, `argument_diff` what changed since an earlier call, `relay` an upstream's messages
//! to the client during a call, `relay_record` the record of the requests it asked.

pub mod argument_diff;
pub mod gate;
pub mod queries;
mod relay;
pub mod relay_record;
pub mod review;
pub mod store;

pub use gate::{Gate, GateResponse, GateSettings, GatedCall, ToolExecutor};
pub use relay::{AskError, CallRelay, ClientAnswers};
pub use relay_record::{CallOrigin, RelayRecorder};
pub use store::{CommandError, PermissionStore};
