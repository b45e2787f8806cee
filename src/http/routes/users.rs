//! User administration, all super_admin: `POST /admin/users`, `GET /admin/users`,
//! `PATCH /admin/users/{name}`, `POST /admin/users/{name}/password`,
//! `DELETE /admin/users/{name}`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{patch, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use secrecy::SecretString;

use crate::admin::users::{self, PasswordChange, User};
use crate::auth::Role;
use crate::http::auth::{SuperAdmin, UserAtLeast};
use crate::http::error::ApiResult;
use crate::http::extract::ApiJson;
use crate::http::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/users", post(create).get(list))
        .route("/admin/users/{name}", patch(set_role).delete(delete))
        .route("/admin/users/{name}/password", post(reset_password))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    username: String,
    password: SecretString,
    /// Least privilege unless asked for.
    #[serde(default = "default_role")]
    role: Role,
}

fn default_role() -> Role {
    Role::Viewer
}

async fn create(
    State(state): State<AppState>,
    caller: UserAtLeast<SuperAdmin>,
    ApiJson(request): ApiJson<CreateUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let user = users::create(&state.pool, &caller.actor(), &request.username, request.password, request.role).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

#[derive(Serialize)]
struct UserList {
    users: Vec<User>,
}

async fn list(State(state): State<AppState>, _caller: UserAtLeast<SuperAdmin>) -> ApiResult<Json<UserList>> {
    Ok(Json(UserList { users: users::list(&state.pool).await? }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetRole {
    role: Role,
}

async fn set_role(
    State(state): State<AppState>,
    caller: UserAtLeast<SuperAdmin>,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<SetRole>,
) -> ApiResult<Json<User>> {
    Ok(Json(users::set_role(&state.pool, &caller.actor(), &users::existing_name(&name)?, request.role).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetPassword {
    password: SecretString,
}

/// Sets a new password and ends all of that user's sessions.
async fn reset_password(
    State(state): State<AppState>,
    caller: UserAtLeast<SuperAdmin>,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<ResetPassword>,
) -> ApiResult<StatusCode> {
    let name = users::existing_name(&name)?;
    users::set_password(&state.pool, &caller.actor(), PasswordChange::Reset, &name, request.password, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete(
    State(state): State<AppState>,
    caller: UserAtLeast<SuperAdmin>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    users::delete(&state.pool, &caller.actor(), &users::existing_name(&name)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
