//! Sessions: `POST /auth/login`, `POST /auth/refresh`, `POST /auth/logout`, `GET /auth/me`,
//! and `PUT /auth/password` (a user changing their own password).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use secrecy::SecretString;

use crate::admin::users::{self, OwnPasswordChange};
use crate::auth::login::check_password;
use crate::auth::{sessions, Principal, Role};
use crate::http::auth::{AnyUser, UserAtLeast};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, ClientAddress};
use crate::http::openapi::Refusals;
use crate::http::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(change_own_password))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    username: String,
    #[schema(value_type = String, format = Password)]
    password: SecretString,
}

/// Runbook Step 1. Failed attempts are throttled per user name and per client address.
#[utoipa::path(post, path = "/auth/login", tag = "auth", security(()), request_body = LoginRequest,
    responses((status = 200, body = sessions::TokenResponse), Refusals))]
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RefreshRequest {
    refresh_token: String,
}

/// A new token pair for a refresh token, which is used up (reusing one ends its session).
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", security(()), request_body = RefreshRequest,
    responses((status = 200, body = sessions::TokenResponse), Refusals))]
async fn refresh(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RefreshRequest>,
) -> ApiResult<Json<sessions::TokenResponse>> {
    Ok(Json(sessions::refresh(&state.pool, &state.jwt, &request.refresh_token).await?))
}

/// Ends the caller's session: its refresh token and every access token of it stop working.
#[utoipa::path(post, path = "/auth/logout", tag = "auth",
    responses((status = 204, description = "Session ended"), Refusals))]
async fn logout(State(state): State<AppState>, caller: UserAtLeast<AnyUser>) -> ApiResult<StatusCode> {
    let mut conn = state.pool.acquire().await?;
    sessions::revoke_session(&mut conn, caller.session_id, "logout").await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /auth/me`'s answer.
#[derive(Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Me {
    User {
        username: String,
        role: Role,
    },
    /// The policy baked into the agent's token.
    Agent {
        agent: String,
        effective_tools: Vec<String>,
        approval_required_tools: Vec<String>,
        permissions_version: i64,
    },
}

/// Who the bearer is: a user (name, current role) or an agent (its baked-in policy).
#[utoipa::path(get, path = "/auth/me", tag = "auth", responses((status = 200, body = Me), Refusals))]
async fn me(caller: Principal) -> Json<Me> {
    Json(match caller {
        Principal::User(user) => Me::User { username: user.name, role: user.role },
        Principal::Agent(agent) => Me::Agent {
            agent: agent.name,
            effective_tools: agent.effective_tools,
            approval_required_tools: agent.approval_required_tools,
            permissions_version: agent.permissions_version,
        },
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ChangePasswordRequest {
    #[schema(value_type = String, format = Password)]
    current_password: SecretString,
    #[schema(value_type = String, format = Password)]
    new_password: SecretString,
}

/// Needs the current password (a stolen access token alone cannot take the account over);
/// wrong guesses count against the same throttle as logins. Ends the user's other sessions
/// and keeps this one. The rules are `admin::users::change_own_password`'s.
#[utoipa::path(put, path = "/auth/password", tag = "auth", request_body = ChangePasswordRequest,
    responses((status = 204, description = "Password changed"), Refusals))]
async fn change_own_password(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    caller: UserAtLeast<AnyUser>,
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
