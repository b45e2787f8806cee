//! One error type for every HTTP route: a status, a stable machine code and a message a
//! person can act on. Internal details are logged, never sent.
//!
//! Services return errors of their own, which say what went wrong in their terms; the
//! `From` impls below are the one place those become HTTP statuses.

use alexandria_domain::PermissionRequestError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::admin::agents::AgentError;
use crate::admin::users::UserError;
use crate::approval::queries::QueryError;
use crate::approval::store::CommandError;
use crate::audit_trail::AuditError;
use crate::auth::AuthError;
use crate::notify::settings::SettingsError;
use crate::upstream::UpstreamError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{message}")]
    TooManyRequests { message: String, retry_after_secs: u64 },
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::Unprocessable(_) => "unprocessable",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        // Constraint violations are the client's doing (a duplicate, a dangling
        // reference); everything else is ours.
        if let sqlx::Error::Database(db) = &error {
            match db.code().as_deref() {
                Some("23505") => return ApiError::Conflict("that already exists".into()),
                Some("23503") => return ApiError::Unprocessable("that refers to something that does not exist".into()),
                Some("23514") | Some("23502") => {
                    return ApiError::Unprocessable("a value is out of range or missing".into())
                }
                _ => {}
            }
        }
        ApiError::Internal(error.into())
    }
}

impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> Self {
        use PermissionRequestError as E;
        match error {
            CommandError::Domain(E::NotFound) => ApiError::NotFound("no such permission request".to_owned()),
            CommandError::Domain(error @ (E::NotPending { .. } | E::ApprovalWindowClosed { .. })) => {
                ApiError::Conflict(error.to_string())
            }
            CommandError::Domain(error @ (E::InvalidReason | E::Empty(_))) => {
                ApiError::Unprocessable(error.to_string())
            }
            CommandError::Domain(error) => ApiError::Conflict(error.to_string()),
            CommandError::Conflict => ApiError::Conflict(CommandError::Conflict.to_string()),
            // A damaged log is ours to repair, not the client's: a 500 whose details (the
            // event's position, the skip command) go to the server's log, not the client.
            CommandError::Unreadable(error) => ApiError::Internal(error.into()),
            CommandError::Store(message) => ApiError::Internal(anyhow::anyhow!(message)),
        }
    }
}

impl From<AgentError> for ApiError {
    fn from(error: AgentError) -> Self {
        match error {
            AgentError::Invalid(_) => ApiError::Unprocessable(error.to_string()),
            AgentError::NotFound(_) => ApiError::NotFound(error.to_string()),
            AgentError::AlreadyExists(_) => ApiError::Conflict(error.to_string()),
            AgentError::Signing(cause) => ApiError::Internal(cause),
            AgentError::Database(error) => error.into(),
        }
    }
}

impl From<UserError> for ApiError {
    fn from(error: UserError) -> Self {
        match error {
            UserError::Invalid(_) => ApiError::Unprocessable(error.to_string()),
            UserError::NotFound(_) => ApiError::NotFound(error.to_string()),
            UserError::AlreadyExists(_) | UserError::LastSuperAdmin { .. } => ApiError::Conflict(error.to_string()),
            UserError::WrongCurrentPassword => ApiError::Forbidden(error.to_string()),
            UserError::Auth(error) => error.into(),
            UserError::Database(error) => error.into(),
            UserError::Internal(error) => ApiError::Internal(error),
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(error: QueryError) -> Self {
        match error {
            QueryError::InvalidFilter(message) => ApiError::BadRequest(message),
            QueryError::Database(error) => error.into(),
        }
    }
}

impl From<crate::audit::export::ExportError> for ApiError {
    fn from(error: crate::audit::export::ExportError) -> Self {
        use crate::audit::export::ExportError;
        match error {
            ExportError::NoSuchPosition(_) | ExportError::NegativePosition => ApiError::BadRequest(error.to_string()),
            ExportError::Database(error) => error.into(),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Unauthenticated(message) => ApiError::Unauthorized(message),
            AuthError::Forbidden(message) => ApiError::Forbidden(message),
            AuthError::Throttled { retry_after_secs } => {
                ApiError::TooManyRequests { message: error.to_string(), retry_after_secs }
            }
            AuthError::Database(error) => error.into(),
            AuthError::Internal(error) => ApiError::Internal(error),
        }
    }
}

impl From<AuditError> for ApiError {
    fn from(error: AuditError) -> Self {
        match error {
            AuditError::InvalidLimit => ApiError::BadRequest(error.to_string()),
            AuditError::Database(error) => error.into(),
        }
    }
}

impl From<SettingsError> for ApiError {
    fn from(error: SettingsError) -> Self {
        match error {
            SettingsError::Invalid(_) => ApiError::Unprocessable(error.to_string()),
            SettingsError::Database(error) => error.into(),
            SettingsError::Internal(error) => ApiError::Internal(error),
        }
    }
}

impl From<UpstreamError> for ApiError {
    fn from(error: UpstreamError) -> Self {
        match error {
            UpstreamError::InvalidConfig(_) | UpstreamError::DuplicateTool { .. } | UpstreamError::Connect { .. } => {
                ApiError::Unprocessable(error.to_string())
            }
            UpstreamError::AlreadyRegistered { .. } => ApiError::Conflict(error.to_string()),
            UpstreamError::ServerNotFound { .. } | UpstreamError::ToolNotFound { .. } => {
                ApiError::NotFound(error.to_string())
            }
            UpstreamError::Unavailable { .. }
            | UpstreamError::Rpc { .. }
            | UpstreamError::Transport { .. }
            | UpstreamError::Timeout { .. }
            | UpstreamError::Unsupported { .. }
            | UpstreamError::ShuttingDown => ApiError::Unavailable(error.to_string()),
            UpstreamError::Database(db) => ApiError::from(db),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Internal(error) = &self {
            tracing::error!(error = format!("{error:#}"), "internal error");
        }
        let body = Json(ErrorBody { error: ErrorDetail { code: self.code(), message: self.to_string() } });
        let mut response = (status, body).into_response();
        if let ApiError::TooManyRequests { retry_after_secs, .. } = &self {
            if let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        if let ApiError::Unauthorized(_) = &self {
            // RFC 6750: tell the client which scheme it should authenticate with.
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The body of every error answer: `{"error": {"code", "message"}}`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable: `bad_request`, `unauthorized`, `forbidden`,
    /// `not_found`, `conflict`, `unprocessable`, `too_many_requests`, ...
    #[schema(value_type = String, example = "not_found")]
    code: &'static str,
    /// What went wrong, for a person.
    message: String,
}
