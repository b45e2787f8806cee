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
pub mod openapi;
pub mod routes;
pub mod server;
mod state;

use axum::routing::get;
use axum::Router;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use self::error::{ApiError, ApiResult};
pub use self::routes::health::schema_wait_router;
pub use self::state::{AppState, HttpSettings};

/// Every route of the console, the API and the MCP endpoint, with the layers around them;
/// `/metrics` too unless it is served on an address of its own ([`metrics_router`]).
pub fn router(state: AppState, with_metrics: bool) -> Router {
    let (api, document) = api_router(with_metrics).split_for_parts();
    let document = axum::Json(document);
    api.merge(console::router(state.clone()))
        .route("/openapi.json", get(move || std::future::ready(document.clone())))
        .route_layer(metrics::HttpMetricsLayer::new(state.metrics.clone()))
        // A client that sends its head and then trickles (or stalls) its body gets a 4xx
        // instead of holding a handler and a connection for ever.
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(server::BODY_READ_TIMEOUT))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// The JSON API, the MCP endpoint and the operational routes, each with its OpenAPI
/// description (`openapi`): the document served at `/openapi.json` is made from exactly
/// the routes served.
pub fn api_router(with_metrics: bool) -> OpenApiRouter<AppState> {
    let router = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(routes::health::router())
        .merge(routes::auth::router())
        .merge(routes::users::router())
        .merge(routes::agents::router())
        .merge(routes::admin_audit::router())
        .merge(routes::audit_log::router())
        .merge(routes::permissions::router())
        .merge(routes::mcp_servers::router())
        .merge(routes::mcp::router())
        .merge(routes::notifications::router());
    if with_metrics {
        router.routes(utoipa_axum::routes!(metrics::metrics_handler))
    } else {
        router
    }
}

/// `/metrics` alone, for `ALEXANDRIA_METRICS_LISTEN`.
pub fn metrics_router(state: AppState) -> Router {
    Router::new().route("/metrics", get(metrics::metrics_handler)).layer(TraceLayer::new_for_http()).with_state(state)
}
