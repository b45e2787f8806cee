//! `GET /admin/notifications/config`, `PATCH /admin/notifications/config` and
//! `POST /admin/notifications/test`, all super_admin.
//!
//! These take the already-authenticated actor as a plain argument: the
//! router's auth extractor decides who may call them, these decide what happens.

use axum::Json;

use crate::http::error::{ApiError, ApiResult};
use crate::http::AppState;
use crate::names::Actor;
use crate::notify::settings::NotificationSettings;
use crate::notify::{send_test_notifications, DeliveryContext, SettingsPatch, SettingsView, TestReport};

/// The settings; the webhook secret only as `"set"` or `"unset"`.
pub async fn get_config(state: &AppState) -> ApiResult<Json<SettingsView>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(NotificationSettings::load(&mut conn).await?.view()))
}

/// Applies a partial update (audited) and answers with the new settings. Refused (422,
/// nothing changed) when any field is invalid.
pub async fn patch_config(state: &AppState, actor: &Actor, patch: SettingsPatch) -> ApiResult<Json<SettingsView>> {
    let mut tx = state.pool.begin().await?;
    let change = patch.apply(&mut tx, actor).await?;
    tx.commit().await?;
    // Field names only: a webhook URL can carry a token, and logs are not for secrets.
    let (before, after) = (change.audit_before(), change.audit_after());
    let mut changed: Vec<&str> = ["webhook_url", "webhook_secret", "alertmanager_url", "alertmanager_severity"]
        .into_iter()
        .filter(|field| before.get(field) != after.get(field))
        .collect();
    if change.secret_replaced {
        changed.push("webhook_secret");
    }
    tracing::info!(%actor, changed = ?changed, "notification settings changed");
    Ok(Json(change.after))
}

/// Sends a synthetic pending notice and its review through every configured channel.
/// `{"ok": true}`, or `{"ok": false, "errors": [{"channel", "error"}]}`.
pub async fn test_notifications(state: &AppState, actor: &Actor) -> ApiResult<Json<TestReport>> {
    let settings = NotificationSettings::load(&mut *state.pool.acquire().await?).await?;
    let options = &state.settings.notifier;
    let context = DeliveryContext::new(&state.settings.public_url, options.delivery_timeout, options.alert_validity)
        .map_err(ApiError::Internal)?;
    let report = send_test_notifications(&settings, &context, &state.metrics, actor).await;
    tracing::info!(%actor, ok = report.ok, "test notifications sent");
    Ok(Json(report))
}

pub fn router() -> axum::Router<AppState> {
    use axum::extract::State;
    use axum::routing::{get, post};

    use crate::http::auth::{SuperAdmin, UserAtLeast};
    use crate::http::extract::ApiJson;

    async fn show(_admin: UserAtLeast<SuperAdmin>, State(state): State<AppState>) -> ApiResult<Json<SettingsView>> {
        get_config(&state).await
    }
    async fn patch(
        admin: UserAtLeast<SuperAdmin>,
        State(state): State<AppState>,
        ApiJson(body): ApiJson<SettingsPatch>,
    ) -> ApiResult<Json<SettingsView>> {
        patch_config(&state, &admin.actor(), body).await
    }
    async fn test(admin: UserAtLeast<SuperAdmin>, State(state): State<AppState>) -> ApiResult<Json<TestReport>> {
        test_notifications(&state, &admin.actor()).await
    }
    axum::Router::new()
        .route("/admin/notifications/config", get(show).patch(patch))
        .route("/admin/notifications/test", post(test))
}
