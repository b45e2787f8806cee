//! The HTTP API's OpenAPI 3.1 document, served at `GET /openapi.json`.
//!
//! It is not written by hand: each route is registered with `utoipa_axum::routes!`, which
//! takes the handler's `#[utoipa::path]` description and its axum route from one
//! declaration, so a route cannot exist without its description or the other way round
//! (`tests/api/openapi.rs` checks the document against the live server, and schemathesis
//! checks every answer against it). The console's HTML pages are not part of it.

use std::collections::BTreeMap;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi, PartialSchema};

use super::error::ErrorBody;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Alexandria",
        description = "An MCP gateway where chosen tools need a person's approval, call by call. \
                       Every route needs `Authorization: Bearer <token>` unless it says otherwise: \
                       a user's access token from `POST /auth/login`, or for `/mcp` an agent token \
                       from `POST /v1/agent-token`.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerToken),
    security(("bearer" = [])),
    tags(
        (name = "auth", description = "Sessions: log in, refresh, log out, who am I"),
        (name = "users", description = "User accounts (super_admin)"),
        (name = "agents", description = "Agents, their tool policies and tokens"),
        (name = "permissions", description = "Permission requests: the approvers' inbox"),
        (name = "mcp-servers", description = "Upstream MCP servers"),
        (name = "notifications", description = "Webhook and Alertmanager notification settings"),
        (name = "audit", description = "The admin audit trail"),
        (name = "mcp", description = "The MCP Streamable HTTP endpoint (JSON-RPC)"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
pub struct ApiDoc;

/// The `bearer` security scheme every protected route names.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// Every refusal of a JSON API route: a 4xx whose body says why (`ApiError`). Listed in a
/// route's `responses(...)` after its successes.
pub struct Refusals;

impl utoipa::IntoResponses for Refusals {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let refused = ResponseBuilder::new()
            .description("Refused: `error.code` says what kind of refusal, `error.message` why")
            .content("application/json", ContentBuilder::new().schema(Some(ErrorBody::schema())).build())
            .build();
        BTreeMap::from([("4XX".to_owned(), RefOr::T(refused))])
    }
}
