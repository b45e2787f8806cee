//! Relational admin data: agents and their tool policy, users, and the admin audit trail
//! that every change to them writes in its own transaction.

pub mod agents;
pub mod audit_trail;
pub mod users;
