//! Liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` (liveness); `ready`, `migrations pending` or `database unavailable` (readiness).
    #[schema(value_type = String)]
    status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()), responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: the database answers and every migration is applied.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses((status = 200, description = "Ready", body = Health), (status = 503, description = "Not ready", body = Health)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    match crate::db::migrations_applied(&state.pool).await {
        Ok(true) => (StatusCode::OK, Json(Health { status: "ready" })),
        Ok(false) => (StatusCode::SERVICE_UNAVAILABLE, Json(Health { status: "migrations pending" })),
        Err(error) => {
            tracing::warn!(error = format!("{error:#}"), "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, Json(Health { status: "database unavailable" }))
        }
    }
}
