//! Role checks of console pages. The rule is the API's (`Principal::user_at_least`, the
//! check behind its `UserAtLeast<...>` extractors); the caller shows a refusal with
//! `pages::failure`: a 403 page that says which role is needed.

use super::session::ConsoleUser;
use crate::auth::{AuthError, AuthenticatedUser, Principal, Role};

/// The signed-in person if their role is at least `role`.
pub fn at_least(user: ConsoleUser, role: Role) -> Result<AuthenticatedUser, AuthError> {
    Principal::User(user.0).user_at_least(role)
}
