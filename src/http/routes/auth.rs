//! Sessions: `POST /auth/login`, `POST /auth/refresh`, `POST /auth/logout`, `GET /auth/me`,
//! and `PUT /auth/password` (a user changing their own password).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use secrecy::SecretString;

use crate::admin::users::{self, OwnPasswordChange};
use crate::auth::login::check_password;
use crate::auth::{sessions, Principal};
use crate::http::auth::{UserAtLeast, Viewer};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, ClientAddress};
use crate::http::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/login", post(login))
        .route("/auth/refresh", post(refresh))
        .route("/auth/logout", post(logout))
        .route("/auth/me", get(me))
        .route("/auth/password", put(change_own_password))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    username: String,
    password: SecretString,
}

async fn login(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    request: Result<ApiJson<LoginRequest>, ApiError>,
) -> ApiResult<Json<sessions::TokenResponse>> {
    let throttle = &state.settings.login_throttle;
    let request = match request {
        Ok(ApiJson(request)) => request,
        Err(error) => {
            crate::auth::login::record_unreadable_attempt(&state.pool, throttle, address).await?;
            return Err(error);
        }
    };
    let role = check_password(&state.pool, throttle, &request.username, request.password, address).await?;
    Ok(Json(sessions::start(&state.pool, &state.jwt, &request.username, role).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshRequest {
    refresh_token: String,
}

async fn refresh(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RefreshRequest>,
) -> ApiResult<Json<sessions::TokenResponse>> {
    Ok(Json(sessions::refresh(&state.pool, &state.jwt, &request.refresh_token).await?))
}

/// Ends the caller's session: its refresh token and every access token of it stop working.
async fn logout(State(state): State<AppState>, caller: UserAtLeast<Viewer>) -> ApiResult<StatusCode> {
    let mut conn = state.pool.acquire().await?;
    sessions::revoke_session(&mut conn, caller.session_id, "logout").await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who the bearer is: a user (name, current role) or an agent (its baked-in policy).
async fn me(caller: Principal) -> Json<Value> {
    Json(match caller {
        Principal::User(user) => json!({"type": "user", "username": user.name, "role": user.role}),
        Principal::Agent(agent) => json!({
            "type": "agent",
            "agent": agent.name,
            "effective_tools": agent.effective_tools,
            "approval_required_tools": agent.approval_required_tools,
            "permissions_version": agent.permissions_version,
        }),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangePasswordRequest {
    current_password: SecretString,
    new_password: SecretString,
}

/// Needs the current password (a stolen access token alone cannot take the account over);
/// wrong guesses count against the same throttle as logins. Ends the user's other sessions
/// and keeps this one. The rules are `admin::users::change_own_password`'s.
async fn change_own_password(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    caller: UserAtLeast<Viewer>,
    ApiJson(request): ApiJson<ChangePasswordRequest>,
) -> ApiResult<StatusCode> {
    let change = OwnPasswordChange {
        name: &caller.name,
        current_password: request.current_password,
        new_password: request.new_password,
        keep_session: Some(caller.session_id),
        address,
    };
    users::change_own_password(&state.pool, &state.settings.login_throttle, change).await?;
    Ok(StatusCode::NO_CONTENT)
}
