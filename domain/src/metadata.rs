//! Metadata stored with every event: who did it, on which replica, under which trace.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// `user:<name>`, `agent:<name>`, or `system:<component>`.
    pub actor: String,
    /// The replica (process) that appended the event.
    pub replica: String,
    /// The trace id of the request that caused the event.
    pub trace_id: String,
}

impl EventMetadata {
    pub fn new(actor: impl Into<String>, replica: impl Into<String>, trace_id: impl Into<String>) -> Self {
        Self { actor: actor.into(), replica: replica.into(), trace_id: trace_id.into() }
    }

    /// The string map cqrs-es stores as the event's metadata column.
    pub fn to_map(&self) -> HashMap<String, String> {
        HashMap::from([
            ("actor".to_owned(), self.actor.clone()),
            ("replica".to_owned(), self.replica.clone()),
            ("trace_id".to_owned(), self.trace_id.clone()),
        ])
    }
}
