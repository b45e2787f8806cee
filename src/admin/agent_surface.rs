//! An agent's policy beyond tools (issue 15): the prompts it may list and get, and the
//! resource URI patterns it may list, read and subscribe to. Empty by default (fail
//! closed). A change replaces the whole list, bumps `permissions_version` (every token
//! minted before stops working) and writes its audit row, in one transaction.

use sqlx::PgPool;

use super::agents::{lock, Agent, AgentError, AGENT_COLUMNS};
use crate::audit_trail;
use crate::names::{Actor, AgentName};
use crate::validation::MAX_URL_CHARS;

/// Longest prompt name accepted, in characters.
pub const MAX_PROMPT_NAME_CHARS: usize = 128;

/// Which list of an agent's surface policy a change replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SurfaceList {
    Prompts,
    Resources,
}

impl SurfaceList {
    pub fn field(self) -> &'static str {
        match self {
            SurfaceList::Prompts => "allowed_prompts",
            SurfaceList::Resources => "allowed_resources",
        }
    }

    fn audit_action(self) -> &'static str {
        match self {
            SurfaceList::Prompts => "agent.allowed_prompts.set",
            SurfaceList::Resources => "agent.allowed_resources.set",
        }
    }

    /// The list without duplicates, in the order given, or the message naming every
    /// invalid entry: a prompt name is 1 to 128 characters, a URI pattern 1 to 2048,
    /// neither with whitespace or control characters.
    pub fn normalize(self, items: Vec<String>) -> Result<Vec<String>, String> {
        let (max, what) = match self {
            SurfaceList::Prompts => (MAX_PROMPT_NAME_CHARS, "prompt name"),
            SurfaceList::Resources => (MAX_URL_CHARS, "resource URI pattern"),
        };
        let valid = |item: &String| {
            (1..=max).contains(&item.chars().count()) && !item.chars().any(|c| c.is_whitespace() || c.is_control())
        };
        let invalid: Vec<&String> = items.iter().filter(|item| !valid(item)).collect();
        if !invalid.is_empty() {
            return Err(format!(
                "{} has invalid entries {invalid:?}: a {what} is 1 to {max} characters without whitespace",
                self.field()
            ));
        }
        let mut unique: Vec<String> = Vec::with_capacity(items.len());
        for item in items {
            if !unique.contains(&item) {
                unique.push(item);
            }
        }
        Ok(unique)
    }
}

/// Replaces one list and bumps the version (even when unchanged, like a tool list).
pub async fn set_surface_list(
    pool: &PgPool,
    actor: &Actor,
    name: &AgentName,
    list: SurfaceList,
    items: Vec<String>,
) -> Result<Agent, AgentError> {
    let items = list.normalize(items).map_err(AgentError::Invalid)?;
    let (prompts, resources) = match list {
        SurfaceList::Prompts => (Some(items), None),
        SurfaceList::Resources => (None, Some(items)),
    };
    change(pool, actor, name, prompts, resources, list.audit_action()).await
}

/// Replaces both lists at once (the console edits them together), with one version bump;
/// every problem of both is reported.
pub async fn set_surface_lists(
    pool: &PgPool,
    actor: &Actor,
    name: &AgentName,
    prompts: Vec<String>,
    resources: Vec<String>,
) -> Result<Agent, AgentError> {
    let prompts = SurfaceList::Prompts.normalize(prompts);
    let resources = SurfaceList::Resources.normalize(resources);
    match (prompts, resources) {
        (Ok(prompts), Ok(resources)) => {
            change(pool, actor, name, Some(prompts), Some(resources), "agent.surface.set").await
        }
        (prompts, resources) => {
            let problems: Vec<String> = [prompts.err(), resources.err()].into_iter().flatten().collect();
            Err(AgentError::Invalid(problems.join("; ")))
        }
    }
}

/// Under the agent's row lock: the new lists (`None` keeps the stored one), the version
/// bump, the audit row.
async fn change(
    pool: &PgPool,
    actor: &Actor,
    name: &AgentName,
    prompts: Option<Vec<String>>,
    resources: Option<Vec<String>>,
    audit_action: &'static str,
) -> Result<Agent, AgentError> {
    let mut tx = pool.begin().await?;
    let before = lock(&mut tx, name).await?;
    let after: Agent = sqlx::query_as(&format!(
        "UPDATE agents SET allowed_prompts = $2, allowed_resources = $3,
             permissions_version = nextval('agent_permissions_version_seq'), updated_at = now()
         WHERE name = $1 RETURNING {AGENT_COLUMNS}"
    ))
    .bind(name.as_str())
    .bind(prompts.as_ref().unwrap_or(&before.allowed_prompts))
    .bind(resources.as_ref().unwrap_or(&before.allowed_resources))
    .fetch_one(&mut *tx)
    .await?;
    audit_trail::record(&mut tx, actor, audit_action, name.as_str(), Some(before.policy()), Some(after.policy()))
        .await?;
    tx.commit().await?;
    Ok(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_deduplicated_and_checked_entry_by_entry() {
        let prompts = SurfaceList::Prompts.normalize(vec!["a".into(), "b".into(), "a".into()]);
        assert_eq!(prompts, Ok(vec!["a".to_owned(), "b".to_owned()]));
        let bad = SurfaceList::Resources.normalize(vec!["test://*".into(), "has space".into(), String::new()]);
        let message = bad.expect_err("invalid entries");
        assert!(message.contains("allowed_resources") && message.contains("has space"), "{message}");
    }
}
