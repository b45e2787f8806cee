//! Who is named and who acts: parsed once where a name comes in, then passed as types
//! that cannot be swapped for one another (a user's name for an agent's, an actor for
//! a target) the way bare strings in a row can.

use std::fmt;

use serde::Serialize;

/// Names of users and agents: `[a-z0-9_-]{1,64}` (also a database domain).
pub fn is_principal_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// `Err` with a message when `name` is not a valid name for a `kind` ("agent", "user").
pub fn check_principal_name(kind: &str, name: &str) -> Result<(), String> {
    if is_principal_name(name) {
        Ok(())
    } else {
        Err(format!("{kind} name {name:?} is invalid: use 1 to 64 of a-z, 0-9, _ and -"))
    }
}

macro_rules! principal_name {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The name, if it follows the rule for principal names; else the message.
            pub fn parse(raw: &str) -> Result<Self, String> {
                check_principal_name($kind, raw).map(|()| $name(raw.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

principal_name!(
    /// A user's name.
    UserName,
    "user"
);
principal_name!(
    /// An agent's name.
    AgentName,
    "agent"
);

/// Longest tool name accepted (MCP's own recommendation).
pub const MAX_TOOL_NAME_CHARS: usize = 128;

/// A tool's name as agents' policies list it. Tool names are chosen by upstream servers,
/// so the rule is loose: 1 to 128 characters, none of them whitespace or control
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, sqlx::Type, utoipa::ToSchema)]
#[serde(transparent)]
#[sqlx(transparent)]
pub struct ToolName(String);

impl ToolName {
    /// The name, if it follows the rule.
    pub fn parse(raw: &str) -> Option<Self> {
        let chars = raw.chars().count();
        let valid =
            (1..=MAX_TOOL_NAME_CHARS).contains(&chars) && !raw.chars().any(|c| c.is_whitespace() || c.is_control());
        valid.then(|| ToolName(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The names as plain strings, for the wire formats that carry them (token claims, MCP).
    pub fn strings(names: &[ToolName]) -> Vec<String> {
        names.iter().map(|name| name.0.clone()).collect()
    }
}

impl fmt::Display for ToolName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who did something, as event metadata and the admin audit trail record it:
/// `user:<name>`, `agent:<name>` or `system:<component>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    User(String),
    Agent(String),
    /// Something the gateway did by itself: `"reconciler"`, `"bootstrap"`, ...
    System(&'static str),
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::User(name) => write!(f, "user:{name}"),
            Actor::Agent(name) => write!(f, "agent:{name}"),
            Actor::System(component) => write!(f, "system:{component}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_names_follow_the_pattern() {
        for good in ["a", "demo-agent", "x_1", &"a".repeat(64)] {
            assert!(is_principal_name(good), "{good}");
            assert_eq!(AgentName::parse(good).unwrap().as_str(), good);
        }
        for bad in ["", "Demo", "a b", "a.b", "é", &"a".repeat(65)] {
            assert!(!is_principal_name(bad), "{bad}");
            assert!(UserName::parse(bad).unwrap_err().starts_with("user name"), "{bad}");
        }
    }

    #[test]
    fn tool_names_are_loose_but_not_empty_or_spaced() {
        for good in ["echo", "fs.read_file", "Write-File", "ü", &"t".repeat(128)] {
            assert_eq!(ToolName::parse(good).map(|t| t.to_string()).as_deref(), Some(good));
        }
        for bad in ["", "a b", "tab\there", "line\n", &"t".repeat(129)] {
            assert!(ToolName::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn actors_read_as_the_audit_trail_records_them() {
        assert_eq!(Actor::User("ann".into()).to_string(), "user:ann");
        assert_eq!(Actor::Agent("demo-agent".into()).to_string(), "agent:demo-agent");
        assert_eq!(Actor::System("reconciler").to_string(), "system:reconciler");
    }
}
