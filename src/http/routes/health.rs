//! Liveness and readiness, and the router a replica serves while its database's schema is
//! older than the binary (it must not serve anything else until `alexandria migrate` ran).

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use sqlx::PgPool;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::db::SchemaStatus;
use crate::http::{ApiError, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` (liveness); `ready`, `migrations pending`, `starting` or `database unavailable`
    /// (readiness).
    #[schema(value_type = String)]
    status: &'static str,
    /// Why, when the schema is not the one this binary was built for (which migrations
    /// are missing, or that the database is newer and this replica serves on).
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()), responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok", detail: None })
}

/// Readiness: the database answers and every migration this binary knows is applied.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses((status = 200, description = "Ready", body = Health), (status = 503, description = "Not ready", body = Health)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    readiness(&state.pool).await
}

async fn readiness(pool: &PgPool) -> (StatusCode, Json<Health>) {
    match crate::db::schema_status(pool).await {
        Ok(status @ SchemaStatus::Behind { .. }) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(Health { status: "migrations pending", detail: status.describe() }))
        }
        Ok(status) => (StatusCode::OK, Json(Health { status: "ready", detail: status.describe() })),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, Json(Health { status: "database unavailable", detail: None }))
        }
    }
}

/// What a replica serves while it waits for the schema: `/healthz` (it is alive),
/// `/readyz` (503, naming the missing migrations) and 503 for everything else.
///
/// Every answer closes its connection: when the schema is migrated the listener passes
/// to the serving router, while the connections this one accepted finish on their own
/// (shutting them down would cut a request on its way); a kept-alive connection would
/// go on reaching this router. A probe costs a handshake; nothing else is served here.
pub fn schema_wait_router(pool: PgPool, reason: String) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(|State(pool): State<PgPool>| async move { waiting_readiness(&pool).await }))
        .fallback(move || {
            let reason = reason.clone();
            async move { not_ready(reason) }
        })
        .layer(axum::middleware::map_response(close_connection))
        .with_state(pool)
}

async fn close_connection(mut response: Response) -> Response {
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Never ready while waiting: once the schema is migrated, this process still has to start
/// serving (within the wait's poll interval).
async fn waiting_readiness(pool: &PgPool) -> (StatusCode, Json<Health>) {
    match readiness(pool).await {
        (StatusCode::OK, _) => {
            let detail = Some("the database schema is migrated; this replica starts serving in a moment".to_owned());
            (StatusCode::SERVICE_UNAVAILABLE, Json(Health { status: "starting", detail }))
        }
        not_ready => not_ready,
    }
}

fn not_ready(reason: String) -> Response {
    ApiError::Unavailable(format!("not serving yet: {reason}")).into_response()
}
