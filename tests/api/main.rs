//! Integration tests against real PostgreSQL: every test gets a fresh database.

mod agents_admin;
mod audit;
mod auth_bootstrap;
mod auth_helpers;
mod auth_matrix;
mod auth_sessions;
mod client_matrix;
mod event_store;
mod gateway_concurrency;
mod gateway_crash;
mod gateway_helpers;
mod gateway_peers;
mod gateway_permissions;
mod gateway_protocol;
mod gateway_runbook;
mod helpers;
mod managed_pg;
mod matrix_clients;
mod metrics;
mod notifications;
mod peers;
mod projections;
mod runbook_auth;
mod serve_config;
mod upstream;
mod users_admin;
