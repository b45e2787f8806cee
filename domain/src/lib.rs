//! Alexandria's domain: the permission-request aggregate, its commands, events and errors.
//!
//! Everything here is pure: no database, network or clock. Time and identities come in
//! through commands, so every transition is a deterministic function of (state, command).

pub mod ids;
pub mod metadata;
pub mod permission_request;

pub use ids::{
    arguments_digest, canonical_json, derived_idempotency_key, request_id, write_canonical_json,
    write_canonical_object_without,
};
pub use metadata::EventMetadata;
pub use permission_request::{
    CallOutcome, Claim, PermissionRequest, PermissionRequestCommand, PermissionRequestError, PermissionRequestEvent,
    RequestDetails, RequestStatus, Review, REQUEST_TYPE_TOOL_CALL,
};
