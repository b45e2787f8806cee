//! `POST /mcp` and `POST /mcp/agents/{name}`: the MCP Streamable HTTP endpoint.

use std::convert::Infallible;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::admin::agents;
use crate::auth::{AuthenticatedAgent, Principal, Role};
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::mcp::jsonrpc::{self, error_body, INVALID_REQUEST};
use crate::mcp::{Caller, McpReply, RequestContext, IDEMPOTENCY_KEY_HEADER};
use crate::names::{Actor, ToolName};

/// Largest JSON-RPC message accepted.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// An agent calls with the tools baked into its token (current: the token's version is
/// checked against the database by the extractor).
fn agent_caller(token: AuthenticatedAgent) -> Caller {
    Caller {
        actor: Actor::Agent(token.name.clone()),
        agent: token.name,
        effective_tools: token.effective_tools,
        approval_required_tools: token.approval_required_tools,
        allowed_prompts: token.allowed_prompts,
        allowed_resources: token.allowed_resources,
    }
}

/// The MCP endpoint as a user (admin or higher) acting through an agent with that agent's
/// current policy, or an agent token of that agent.
#[utoipa::path(post, path = "/mcp/agents/{name}", tag = "mcp", params(("name" = String, Path), McpHeaders),
    request_body(content = Object, description = "One JSON-RPC message", content_type = "application/json"),
    responses(McpAnswers))]
pub async fn agent_endpoint(
    principal: Principal,
    State(state): State<AppState>,
    Path(agent): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return body_rejection(rejection),
    };
    let caller = match principal {
        Principal::Agent(token) if token.name == agent => Ok(agent_caller(token)),
        Principal::Agent(token) => Err(ApiError::Forbidden(format!(
            "this token belongs to agent {:?}; it cannot act as {agent:?}",
            token.name
        ))),
        Principal::User(user) if user.role >= Role::Admin => {
            // Boxed and bound with `let`: the query's future would otherwise be part of
            // every parked call's handler state.
            let policy = Box::pin(async {
                let name = agents::existing_name(&agent)?;
                agents::get(&state.pool, &name).await
            });
            match policy.await {
                // A person acting through an agent's path gets that agent's current policy.
                Ok(policy) => Ok(Caller {
                    actor: user.actor(),
                    agent: policy.name,
                    effective_tools: ToolName::strings(&policy.allowed_tools),
                    approval_required_tools: ToolName::strings(&policy.approval_required_tools),
                    allowed_prompts: policy.allowed_prompts,
                    allowed_resources: policy.allowed_resources,
                }),
                Err(error) => Err(ApiError::from(error)),
            }
        }
        Principal::User(user) => Err(ApiError::Forbidden(format!(
            "calling tools through an agent needs role admin or higher; you are {}",
            user.role
        ))),
    };
    match caller {
        Ok(caller) => serve(&state, &caller, headers, body).await,
        Err(error) => error.into_response(),
    }
}

/// The MCP Streamable HTTP endpoint, for an agent token (`POST /v1/agent-token`).
#[utoipa::path(post, path = "/mcp", tag = "mcp", params(McpHeaders),
    request_body(content = Object, description = "One JSON-RPC message", content_type = "application/json"),
    responses(McpAnswers))]
pub async fn endpoint(
    principal: Principal,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return body_rejection(rejection),
    };
    match principal {
        Principal::Agent(token) => serve(&state, &agent_caller(token), headers, body).await,
        Principal::User(_) => {
            ApiError::BadRequest("a user token must say which agent it acts as: use POST /mcp/agents/{name}".to_owned())
                .into_response()
        }
    }
}

/// Browsers may only reach the endpoint from the gateway's own origin (DNS-rebinding
/// protection, as the MCP transport requires).
fn origin_allowed(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else { return true };
    let public = state.settings.public_url.trim_end_matches('/');
    origin == public
        || ["http://127.0.0.1", "http://localhost", "http://[::1]"]
            .iter()
            .any(|local| origin == *local || origin.strip_prefix(local).is_some_and(|rest| rest.starts_with(':')))
}

/// Takes the headers and body by value so that a gated call, which may wait a long
/// time, does not hold them while it waits.
async fn serve(state: &AppState, caller: &Caller, headers: HeaderMap, body: Bytes) -> Response {
    if !origin_allowed(state, &headers) {
        return (StatusCode::FORBIDDEN, axum::Json(error_body(None, INVALID_REQUEST, "origin not allowed", None)))
            .into_response();
    }
    let message = match jsonrpc::parse(&body) {
        Ok(message) => message,
        Err(rejection) => {
            let status = if rejection.malformed { StatusCode::BAD_REQUEST } else { StatusCode::OK };
            return (status, axum::Json(rejection.body)).into_response();
        }
    };
    let context = request_context(&headers);
    drop((headers, body));
    match state.mcp.handle(caller, message, context).await {
        McpReply::Accepted => StatusCode::ACCEPTED.into_response(),
        McpReply::Deferred(response) => {
            // Headers now, the JSON-RPC response when it is known (chunked): the handler
            // and the middleware around it finish, and a parked call costs its
            // connection and this one future.
            let body =
                futures::stream::once(async move { Ok::<_, Infallible>(Bytes::from(response.await.to_string())) });
            ([(header::CONTENT_TYPE, "application/json")], axum::body::Body::from_stream(body)).into_response()
        }
        McpReply::Streamed(messages) => {
            // One SSE event per message; the response, last, ends the stream.
            use futures::StreamExt;
            let events = messages
                .map(|message| Ok::<_, Infallible>(Bytes::from(format!("event: message\ndata: {message}\n\n"))));
            (
                [(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")],
                axum::body::Body::from_stream(events),
            )
                .into_response()
        }
        McpReply::Refused { body } => (StatusCode::BAD_REQUEST, axum::Json(body)).into_response(),
        McpReply::Response { body, session } => {
            let mut response = axum::Json(body).into_response();
            if let Some(session) = session.and_then(|s| HeaderValue::from_str(&s).ok()) {
                response.headers_mut().insert("mcp-session-id", session);
            }
            response
        }
    }
}

/// The endpoint's inputs from the transport's headers.
fn request_context(headers: &HeaderMap) -> RequestContext {
    // Lossy: a key with bytes that are not UTF-8 is refused by the endpoint's own check
    // (visible ASCII only), with its JSON-RPC error.
    let text = |name: &str| headers.get(name).map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    RequestContext {
        protocol_version: headers.get("mcp-protocol-version").and_then(|v| v.to_str().ok()).map(str::to_owned),
        idempotency_key: text(IDEMPOTENCY_KEY_HEADER),
        trace_id: trace_id(headers),
        accepts_event_stream: headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|media| media.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("text/event-stream"))),
    }
}

/// The caller's trace id: W3C `traceparent`'s trace-id field (32 hex digits, not all
/// zero), else `X-Request-Id` (1 to 128 visible ASCII characters). Anything else is
/// ignored: it is stored in every event the call appends.
fn trace_id(headers: &HeaderMap) -> Option<String> {
    let traceparent = headers.get("traceparent").and_then(|v| v.to_str().ok()).and_then(|v| v.split('-').nth(1));
    if let Some(trace) = traceparent
        .filter(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()) && t.bytes().any(|b| b != b'0'))
    {
        return Some(trace.to_ascii_lowercase());
    }
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
}

/// A body that could not be read, as a JSON-RPC error: 413 for one over
/// `MAX_MESSAGE_BYTES`.
fn body_rejection(rejection: BytesRejection) -> Response {
    let status = rejection.status();
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!("message larger than {MAX_MESSAGE_BYTES} bytes")
    } else {
        format!("cannot read the request body: {}", rejection.body_text())
    };
    (status, axum::Json(error_body(None, INVALID_REQUEST, message, None))).into_response()
}

pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(endpoint))
        .routes(routes!(agent_endpoint))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_MESSAGE_BYTES))
}

/// The request headers the endpoint reads (for the OpenAPI document).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
struct McpHeaders {
    /// The protocol revision the client negotiated (after `initialize`).
    #[param(rename = "MCP-Protocol-Version")]
    protocol_version: Option<String>,
    /// A gated call's retry key: the same key is the same permission request.
    #[param(rename = "Idempotency-Key")]
    idempotency_key: Option<String>,
    /// W3C trace context; its trace id is stored with the events a call appends.
    #[param(rename = "traceparent")]
    traceparent: Option<String>,
}

/// What the endpoint answers (for the OpenAPI document).
struct McpAnswers;

impl utoipa::IntoResponses for McpAnswers {
    fn responses() -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::Response>> {
        use utoipa::openapi::{ContentBuilder, ObjectBuilder, ResponseBuilder, Type};
        let object = || ContentBuilder::new().schema(Some(ObjectBuilder::new())).build();
        let text = ContentBuilder::new().schema(Some(ObjectBuilder::new().schema_type(Type::String))).build();
        let answered = ResponseBuilder::new()
            .description(
                "The JSON-RPC response (a JSON-RPC error too); or, for a client that accepts \
                 `text/event-stream` and asked for progress or a task's status, an event stream \
                 whose last event is the response",
            )
            .content("application/json", object())
            .content("text/event-stream", text)
            .build();
        let accepted = ResponseBuilder::new().description("A notification or a response: accepted").build();
        let refused = ResponseBuilder::new()
            .description("Refused: not JSON-RPC, not authenticated, not allowed, too large, wrong media type")
            .content("application/json", object())
            .build();
        [("200", answered), ("202", accepted), ("4XX", refused)]
            .into_iter()
            .map(|(status, response)| (status.to_owned(), utoipa::openapi::RefOr::T(response)))
            .collect()
    }
}
