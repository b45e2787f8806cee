//! `GET /admin/notifications/config`, `PATCH /admin/notifications/config` and
//! `POST /admin/notifications/test`, all super_admin.
//!
//! These take the already-authenticated actor as a plain argument: the
//! router's auth extractor decides who may call them, these decide what happens.

use axum::Json;

use crate::http::error::ApiResult;
use crate::http::AppState;
use crate::names::Actor;
use crate::notify::{settings, test_configured_channels, SettingsPatch, SettingsView, TestReport};

/// The settings; the webhook secret only as `"set"` or `"unset"`.
pub async fn get_config(state: &AppState) -> ApiResult<Json<SettingsView>> {
    Ok(Json(settings::current(&state.pool).await?))
}

/// Applies a partial update (audited) and answers with the new settings. Refused (422,
/// nothing changed) when any field is invalid.
pub async fn patch_config(state: &AppState, actor: &Actor, patch: SettingsPatch) -> ApiResult<Json<SettingsView>> {
    Ok(Json(settings::update(&state.pool, actor, patch).await?.after))
}

/// Sends a synthetic pending notice and its review through every configured channel.
/// `{"ok": true}`, or `{"ok": false, "errors": [{"channel", "error"}]}`.
pub async fn test_notifications(state: &AppState, actor: &Actor) -> ApiResult<Json<TestReport>> {
    let settings = &state.settings;
    let report =
        test_configured_channels(&state.pool, &settings.public_url, &settings.notifier, &state.metrics, actor).await?;
    Ok(Json(report))
}

pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new().routes(routes!(show, patch)).routes(routes!(test))
}

use axum::extract::State;

use crate::http::auth::{SuperAdmin, UserAtLeast};
use crate::http::extract::ApiJson;
use crate::http::openapi::Refusals;

#[utoipa::path(get, path = "/admin/notifications/config", tag = "notifications",
    responses((status = 200, body = SettingsView), Refusals))]
async fn show(_admin: UserAtLeast<SuperAdmin>, State(state): State<AppState>) -> ApiResult<Json<SettingsView>> {
    get_config(&state).await
}

#[utoipa::path(patch, path = "/admin/notifications/config", tag = "notifications", request_body = SettingsPatch,
    responses((status = 200, body = SettingsView), Refusals))]
async fn patch(
    admin: UserAtLeast<SuperAdmin>,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SettingsPatch>,
) -> ApiResult<Json<SettingsView>> {
    patch_config(&state, &admin.actor(), body).await
}

#[utoipa::path(post, path = "/admin/notifications/test", tag = "notifications",
    responses((status = 200, body = TestReport), Refusals))]
async fn test(admin: UserAtLeast<SuperAdmin>, State(state): State<AppState>) -> ApiResult<Json<TestReport>> {
    test_notifications(&state, &admin.actor()).await
}
