//! User administration, all super_admin: `POST /admin/users`, `GET /admin/users`,
//! `PATCH /admin/users/{name}`, `POST /admin/users/{name}/password`,
//! `DELETE /admin/users/{name}`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use secrecy::SecretString;

use crate::admin::users::{self, PasswordChange, User};
use crate::auth::Role;
use crate::http::auth::{SuperAdmin, UserAtLeast};
use crate::http::error::ApiResult;
use crate::http::extract::ApiJson;
use crate::http::openapi::Refusals;
use crate::http::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create, list)).routes(routes!(set_role, delete)).routes(routes!(reset_password))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    username: String,
    #[schema(value_type = String, format = Password)]
    password: SecretString,
    /// Least privilege unless asked for.
    #[serde(default = "default_role")]
    role: Role,
}

fn default_role() -> Role {
    Role::Viewer
}

#[utoipa::path(post, path = "/admin/users", tag = "users", request_body = CreateUser,
    responses((status = 201, description = "Created", body = User), Refusals))]
async fn create(
    State(state): State<AppState>,
    caller: UserAtLeast<SuperAdmin>,
    ApiJson(request): ApiJson<CreateUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let user = users::create(&state.pool, &caller.actor(), &request.username, request.password, request.role).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

#[derive(Serialize, ToSchema)]
struct UserList {
    users: Vec<User>,
}

#[utoipa::path(get, path = "/admin/users", tag = "users", responses((status = 200, body = UserList), Refusals))]
async fn list(State(state): State<AppState>, _caller: UserAtLeast<SuperAdmin>) -> ApiResult<Json<UserList>> {
    Ok(Json(UserList { users: users::list(&state.pool).await? }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SetRole {
    role: Role,
}

#[utoipa::path(patch, path = "/admin/users/{name}", tag = "users", request_body = SetRole,
    params(("name" = String, Path)), responses((status = 200, body = User), Refusals))]
async fn set_role(
    State(state): State<AppState>,
    caller: UserAtLeast<SuperAdmin>,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<SetRole>,
) -> ApiResult<Json<User>> {
    Ok(Json(users::set_role(&state.pool, &caller.actor(), &users::existing_name(&name)?, request.role).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ResetPassword {
    #[schema(value_type = String, format = Password)]
    password: SecretString,
}

/// Sets a new password and ends all of that user's sessions.
#[utoipa::path(post, path = "/admin/users/{name}/password", tag = "users", request_body = ResetPassword,
    params(("name" = String, Path)), responses((status = 204, description = "Password set"), Refusals))]
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

#[utoipa::path(delete, path = "/admin/users/{name}", tag = "users",
    params(("name" = String, Path)), responses((status = 204, description = "Deleted"), Refusals))]
async fn delete(
    State(state): State<AppState>,
    caller: UserAtLeast<SuperAdmin>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    users::delete(&state.pool, &caller.actor(), &users::existing_name(&name)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
