//! Registering and removing upstream MCP servers on behalf of a person (`/admin/mcp-servers`
//! and the console): the registry's change and its `admin_audit` row, in one transaction.
//! Only the redacted configuration is recorded: header and env values may be credentials.

use crate::auth::Role;
use crate::names::Actor;
use crate::upstream::{UpstreamConfig, UpstreamError, UpstreamRegistry, UpstreamStatus};

/// The least role that may register or remove a server.
pub const MANAGER_ROLE: Role = Role::SuperAdmin;
/// The least role that may ask a server for its tool list again.
pub const REFRESHER_ROLE: Role = Role::Admin;

pub async fn register(
    registry: &UpstreamRegistry,
    actor: &Actor,
    config: UpstreamConfig,
) -> Result<UpstreamStatus, UpstreamError> {
    registry.register_by(config, Some(actor)).await
}

pub async fn remove(registry: &UpstreamRegistry, actor: &Actor, name: &str) -> Result<(), UpstreamError> {
    registry.remove_by(name, Some(actor)).await
}
