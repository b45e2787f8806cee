//! Role checks of console pages. The rule is the API's (`Principal::user_at_least`, the
//! check behind its `UserAtLeast<...>` extractors); refused is a 403 page that says which
//! role is needed.

use axum::response::Response;

use super::pages::failure;
use super::session::ConsoleUser;
use crate::auth::{AuthenticatedUser, Principal, Role};

/// The signed-in person if their role is at least `role`, else the 403 page.
pub fn at_least(user: ConsoleUser, role: Role) -> Result<AuthenticatedUser, Response> {
    Principal::User(user.0).user_at_least(role).map_err(failure)
}
