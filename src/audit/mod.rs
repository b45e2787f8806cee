//! The tamper-evident audit chain (docs/AUDIT.md): the event log and the admin audit
//! trail, each hashed line by line in projection order by a single-leader sealer, with
//! checkpoints signed by a key kept outside the database, so anyone holding an export and
//! the public key can tell whether history was changed.
//!
//! - `chain`: the chain rule and the canonical bytes (pure).
//! - `log`: each chain's lines as stored, with their seals.
//! - `sealer`: the worker that seals and signs checkpoints; never part of an append.
//! - `signing`: the key file, the signed bytes, signing and checking.
//! - `checkpoints`: the `audit_checkpoints` table and copies elsewhere (`CheckpointSink`).
//! - `push`: the copy on the webhook channel (`ALEXANDRIA_AUDIT_CHECKPOINT_WEBHOOK`).
//! - `export`: reading the log for an export, in chain order, in one snapshot.
//! - `verify`: checking lines in order, naming the first divergence (pure).
//! - `check`: `events verify` against a file or the database.

pub mod chain;
pub mod check;
pub mod checkpoints;
pub mod export;
pub mod log;
pub mod push;
pub mod sealer;
pub mod signing;
pub mod verify;

pub use check::{verify_file, verify_live};
pub use log::{ADMIN_AUDIT_CHAIN, EVENTS_CHAIN};
pub use sealer::{Sealer, SealerSettings, SEALER_NAME};
pub use signing::{AuditKey, Checkpoint};
pub use verify::{Divergence, DivergenceKind, VerifyReport};
