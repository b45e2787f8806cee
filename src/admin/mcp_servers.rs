//! Registering and removing upstream MCP servers on behalf of a person (`/admin/mcp-servers`
//! and the console): the registry's change, then its `admin_audit` row. Only the redacted
//! configuration is recorded: header and env values may be credentials.

use sqlx::PgPool;

use crate::audit_trail;
use crate::auth::Role;
use crate::names::Actor;
use crate::upstream::{UpstreamConfig, UpstreamError, UpstreamRegistry, UpstreamStatus};

/// The least role that may register or remove a server.
pub const MANAGER_ROLE: Role = Role::SuperAdmin;
/// The least role that may ask a server for its tool list again.
pub const REFRESHER_ROLE: Role = Role::Admin;

pub async fn register(
    pool: &PgPool,
    registry: &UpstreamRegistry,
    actor: &Actor,
    config: UpstreamConfig,
) -> Result<UpstreamStatus, UpstreamError> {
    let status = registry.register(config).await?;
    let after = serde_json::to_value(&status.config).ok();
    let mut conn = pool.acquire().await?;
    audit_trail::record(&mut conn, actor, "mcp_server.register", &status.name, None, after).await?;
    Ok(status)
}

pub async fn remove(
    pool: &PgPool,
    registry: &UpstreamRegistry,
    actor: &Actor,
    name: &str,
) -> Result<(), UpstreamError> {
    let before = registry.get(name)?;
    registry.remove(name).await?;
    let before = serde_json::to_value(&before.config).ok();
    let mut conn = pool.acquire().await?;
    audit_trail::record(&mut conn, actor, "mcp_server.delete", name, before, None).await?;
    Ok(())
}
