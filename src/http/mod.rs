//! The HTTP layer: the only part of the crate that knows axum. It adapts HTTP to the
//! services below it and back — extractors in (`extract`, `auth`), one error shape out
//! (`error::ApiError`, with a `From` for each service's error) — and serves the result
//! (`server`). Handlers hold no rules of their own: a rule lives in the service it belongs
//! to, so the JSON API and any other front end share it.

pub mod auth;
pub mod console;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod routes;
pub mod server;
mod state;

use axum::routing::get;
use axum::Router;
use tower_http::trace::TraceLayer;

pub use self::error::{ApiError, ApiResult};
pub use self::state::{AppState, HttpSettings};

/// Every route of the console, the API and the MCP endpoint, with the layers around them;
/// `/metrics` too unless it is served on an address of its own ([`metrics_router`]).
pub fn router(state: AppState, with_metrics: bool) -> Router {
    let router = Router::new()
        .merge(console::router(state.clone()))
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .merge(routes::auth::router())
        .merge(routes::users::router())
        .merge(routes::agents::router())
        .merge(routes::admin_audit::router())
        .merge(routes::permissions::router())
        .merge(routes::mcp_servers::router())
        .merge(routes::mcp::router())
        .merge(routes::notifications::router());
    let router = if with_metrics { router.route("/metrics", get(metrics::metrics_handler)) } else { router };
    router
        .route_layer(metrics::HttpMetricsLayer::new(state.metrics.clone()))
        // A client that sends its head and then trickles (or stalls) its body gets a 4xx
        // instead of holding a handler and a connection for ever.
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(server::BODY_READ_TIMEOUT))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// `/metrics` alone, for `ALEXANDRIA_METRICS_LISTEN`.
pub fn metrics_router(state: AppState) -> Router {
    Router::new().route("/metrics", get(metrics::metrics_handler)).layer(TraceLayer::new_for_http()).with_state(state)
}
