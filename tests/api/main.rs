//! Integration tests against real PostgreSQL: every test gets a fresh database.

mod audit;
mod event_store;
mod helpers;
mod managed_pg;
mod metrics;
mod notifications;
mod projections;
