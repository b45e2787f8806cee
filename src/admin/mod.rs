//! Relational admin data: agents and their tool policy, and users. Every change writes
//! its `audit_trail` row in its own transaction.

pub mod agents;
pub mod users;
