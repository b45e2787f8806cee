//! The console: the web UI for the people who approve, served by the same process at `/`.
//!
//! Server-rendered HTML (askama templates in `templates/console/`, checked at compile
//! time, escaping on) plus one small hand-written script and a stylesheet served from the
//! binary: nothing to build with another toolchain, nothing fetched from another origin
//! (air-gapped installs work), and every page works as plain forms before the script adds
//! keyboard moves and live updates. Handlers call the same services as the JSON API
//! (`auth::login`, `approval::review::decide`, `approval::queries`); the rules live there.
//!
//! - `session`: the cookie and the `ConsoleUser` extractor.
//! - `guard`: security headers on every response, and the same-origin check of every POST.
//! - `pages`: log in, sign out, error pages; `inbox`: the approvals inbox and decisions;
//!   `live`: the event stream that tells open inboxes to refresh.
//! - `agents` (+ `agents_view`): agents, their tool lists and tokens; `servers` (+
//!   `servers_view`): upstream MCP servers and their tools.
//! - `settings` (notifications), `users`, `account` (one's own password), `audit`,
//!   `projections`: the operators' pages.
//! - `request`: a request's page; `history`: every request, filtered and paged;
//!   `request_view`: their page structs and what helps a person decide.

mod account;
mod agent_surface;
mod agents;
mod agents_view;
mod assets;
mod audit;
mod audit_log;
mod guard;
mod history;
mod inbox;
mod live;
mod pages;
mod projections;
mod request;
mod request_view;
mod servers;
mod servers_view;
mod session;
mod settings;
mod users;
mod view;

use axum::routing::{get, post};
use axum::Router;

use super::AppState;

pub use live::InboxFeed;
pub use session::ConsoleUser;

/// For the templates: the digest in the assets' URLs.
pub fn assets_version() -> &'static str {
    assets::version()
}

/// The console's routes. Paths under `/console/` answer scripts (fragments, the event
/// stream, assets): an ended session gets 401 there, and a redirect to the login page
/// everywhere else.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(inbox::page))
        .route("/login", get(pages::login_form).post(pages::log_in))
        .route("/logout", post(pages::log_out))
        .route("/history", get(history::page))
        .route("/requests/{id}", get(request::page))
        .route("/requests/{id}/approve", post(inbox::approve))
        .route("/requests/{id}/reject", post(inbox::reject))
        .route("/agents", get(agents::list).post(agents::create))
        .route("/agents/{name}", get(agents::show))
        .route("/agents/{name}/tools", post(agents::set_tools))
        .route("/agents/{name}/surface", post(agent_surface::set_surface))
        .route("/agents/{name}/delete", post(agents::delete))
        .route("/agents/{name}/token", post(agents::mint_token))
        .route("/servers", get(servers::list).post(servers::register))
        .route("/servers/{name}", get(servers::show))
        .route("/servers/{name}/refresh", post(servers::refresh))
        .route("/servers/{name}/remove", post(servers::remove))
        .route("/settings/notifications", get(settings::page).post(settings::save))
        .route("/settings/notifications/test", post(settings::test))
        .route("/users", get(users::page).post(users::create))
        .route("/users/{name}/role", post(users::set_role))
        .route("/users/{name}/password", post(users::reset_password))
        .route("/users/{name}/delete", post(users::delete))
        .route("/account/password", get(account::page).post(account::change))
        .route("/audit", get(audit::page))
        .route("/projections", get(projections::page))
        .route("/audit-log", get(audit_log::page))
        .route("/audit-log/{file}", get(audit_log::download))
        .route("/console/inbox", get(inbox::fragment))
        .route("/console/events", get(live::events))
        .route("/console/assets/{name}", get(assets::serve))
        .layer(axum::middleware::from_fn_with_state(state, guard::same_origin_posts))
        .layer(axum::middleware::map_response(guard::security_headers))
}
