//! HTTP routes, one module per area. Handlers take `ApiJson`/`ApiQuery` (never axum's
//! `Json`/`Query` extractors) and return `ApiResult`, so every client error has one shape.
//! Who may call a route is stated by its extractor: `Principal` (any user or an agent) or
//! `UserAtLeast<AnyUser | Viewer | Admin | SuperAdmin>`, or `AuditReader` (auditor or
//! super_admin: the audit evidence).

pub mod admin_audit;
pub mod agents;
pub mod audit_log;
pub mod auth;
pub mod health;
pub mod mcp;
pub mod mcp_servers;
pub mod notifications;
pub mod permissions;
pub mod users;
