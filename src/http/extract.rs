//! Extractors whose rejections are `ApiError`s, so a malformed body or query string gets
//! the same `{"error": {"code", "message"}}` shape as every other client error instead of
//! axum's plain-text rejection. Use these instead of `axum::Json` and `axum::extract::Query`.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::http::error::ApiError;
use crate::validation::{contains_nul, NUL_REFUSED};

/// A JSON request body. Bad JSON is 400, a wrong or missing `Content-Type` 415, a body of
/// the wrong shape (not an object, missing or unknown field, wrong type) 422 with serde's
/// message, which names the field, and text with a NUL character (which PostgreSQL cannot store) 400.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(request.headers()) {
            return Err(ApiError::UnsupportedMediaType(
                "send the body as JSON with `Content-Type: application/json`".to_owned(),
            ));
        }
        let body = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge("request body is too large".to_owned())
            } else {
                ApiError::BadRequest(format!("cannot read the request body: {}", rejection.body_text()))
            }
        })?;
        let Json(value) = Json::<T>::from_bytes(&body).map_err(json_rejection)?;
        // Every body this API takes is an object, but serde also builds a struct from an
        // array of its fields in order (`[null, null]`), which no client means.
        if body.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::Unprocessable("invalid request body: expected a JSON object".to_owned()));
        }
        // A NUL can only arrive escaped; only then is the body read a second time.
        if memchr_nul_escape(&body) && serde_json::from_slice::<Value>(&body).is_ok_and(|v| contains_nul(&v)) {
            return Err(ApiError::BadRequest(NUL_REFUSED.to_owned()));
        }
        Ok(ApiJson(value))
    }
}

/// `Content-Type: application/json` (or `application/*+json`), parameters allowed.
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()) else {
        return false;
    };
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Whether the raw JSON has a `\u0000` escape anywhere (it may be an escaped backslash
/// followed by `u0000`, which the caller rules out by parsing).
fn memchr_nul_escape(body: &[u8]) -> bool {
    body.windows(6).any(|window| window == b"\\u0000")
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let message = rejection.body_text();
    match rejection {
        JsonRejection::JsonDataError(_) => ApiError::Unprocessable(format!("invalid request body: {message}")),
        JsonRejection::JsonSyntaxError(_) => ApiError::BadRequest(format!("request body is not valid JSON: {message}")),
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::UnsupportedMediaType("send the body as JSON with `Content-Type: application/json`".to_owned())
        }
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge("request body is too large".to_owned())
        }
        _ => ApiError::BadRequest(format!("cannot read the request body: {message}")),
    }
}

/// A query string. Anything it cannot be deserialized from is 400 naming the parameter.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // A NUL can only arrive percent-encoded.
        if parts.uri.query().is_some_and(|query| query.to_ascii_lowercase().contains("%00")) {
            return Err(ApiError::BadRequest(format!("invalid query string: {NUL_REFUSED}")));
        }
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

fn query_rejection(rejection: QueryRejection) -> ApiError {
    ApiError::BadRequest(format!("invalid query string: {}", rejection.body_text()))
}

/// The client's IP address: the TCP peer. Behind a reverse proxy that is the proxy's
/// address (forwarding headers are not trusted: any client could forge them). `None` when
/// the router runs without connection info (in-process tests).
pub struct ClientAddress(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip())))
    }
}
