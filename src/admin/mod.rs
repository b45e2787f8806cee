//! Relational admin data: agents and their tool policy (and their tokens), and users.
//! Every change writes its `audit_trail` row in its own transaction. `mcp_servers`: the
//! upstream registry's changes made by a person, with their audit rows.

mod agent_surface;
pub mod agent_tokens;
pub mod agents;
pub mod mcp_servers;
pub mod users;
