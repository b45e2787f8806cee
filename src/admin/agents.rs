//! Agents and their tool policy. Every change bumps `permissions_version` (refusing every
//! token minted before it) and appends an `admin_audit` row in the same transaction.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool};

pub use super::agent_surface::{set_surface_list, set_surface_lists, SurfaceList};
use crate::audit_trail;
use crate::auth::Role;
use crate::names::{Actor, AgentName, ToolName};
use crate::validation::{check_approval_subset, normalize_tool_list};

/// The agent DTO: what every agent route returns.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Agent {
    pub name: String,
    pub description: String,
    pub allowed_tools: Vec<ToolName>,
    pub approval_required_tools: Vec<ToolName>,
    /// Prompts the agent may list and get, by the names agents see (none: no prompts).
    pub allowed_prompts: Vec<String>,
    /// URI patterns of the resources the agent may list, read and subscribe to; `*`
    /// stands for any run of characters (none: no resources).
    pub allowed_resources: Vec<String>,
    pub permissions_version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Agent {
    /// The policy as the audit trail records it.
    pub(super) fn policy(&self) -> Value {
        json!({
            "name": self.name,
            "description": self.description,
            "allowed_tools": self.allowed_tools,
            "approval_required_tools": self.approval_required_tools,
            "allowed_prompts": self.allowed_prompts,
            "allowed_resources": self.allowed_resources,
            "permissions_version": self.permissions_version,
        })
    }
}

pub(super) const AGENT_COLUMNS: &str = "name, description, allowed_tools, approval_required_tools, allowed_prompts, \
     allowed_resources, permissions_version, created_at, updated_at";

/// Longest description accepted, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1024;

#[derive(Debug, Clone)]
pub struct NewAgent {
    pub name: String,
    pub description: String,
    pub allowed_tools: Vec<String>,
    pub approval_required_tools: Vec<String>,
    pub allowed_prompts: Vec<String>,
    pub allowed_resources: Vec<String>,
}

/// Which of an agent's two tool lists a change replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolList {
    Allowed,
    ApprovalRequired,
}

impl ToolList {
    fn field(self) -> &'static str {
        match self {
            ToolList::Allowed => "allowed_tools",
            ToolList::ApprovalRequired => "approval_required_tools",
        }
    }

    fn audit_action(self) -> &'static str {
        match self {
            ToolList::Allowed => "agent.allowed_tools.set",
            ToolList::ApprovalRequired => "agent.approval_required_tools.set",
        }
    }
}

/// Why an agent change or lookup was refused.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Every problem with the input, joined.
    #[error("{0}")]
    Invalid(String),
    #[error("no agent named {0:?}")]
    NotFound(String),
    #[error("an agent named {0:?} already exists")]
    AlreadyExists(String),
    /// A token could not be signed (a broken key: nothing the caller can fix).
    #[error("cannot sign the agent token")]
    Signing(anyhow::Error),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The least role that may create, delete or change an agent's policy (reading it is the
/// caller's business: the JSON API lets admins, the console every signed-in user).
pub const MANAGER_ROLE: Role = Role::SuperAdmin;

type Result<T, E = AgentError> = std::result::Result<T, E>;

fn not_found(name: &AgentName) -> AgentError {
    AgentError::NotFound(name.to_string())
}

/// An agent name from a path or a request: one that breaks the naming rule names no
/// agent, so it is not found rather than invalid.
pub fn existing_name(raw: &str) -> Result<AgentName> {
    AgentName::parse(raw).map_err(|_| AgentError::NotFound(raw.to_owned()))
}

/// A new agent whose every field was checked.
struct ValidAgent {
    name: AgentName,
    description: String,
    allowed_tools: Vec<ToolName>,
    approval_required_tools: Vec<ToolName>,
    allowed_prompts: Vec<String>,
    allowed_resources: Vec<String>,
}

/// Checks every field and reports every problem at once.
fn validate_new(agent: NewAgent) -> Result<ValidAgent> {
    let mut problems = Vec::new();
    let name = AgentName::parse(&agent.name).map_err(|problem| problems.push(problem)).ok();
    if agent.description.chars().count() > MAX_DESCRIPTION_CHARS {
        problems.push(format!("description must be at most {MAX_DESCRIPTION_CHARS} characters"));
    }
    if agent.description.contains('\0') {
        problems.push("description must not contain NUL characters".to_owned());
    }
    let allowed = normalize_tool_list("allowed_tools", agent.allowed_tools).map_err(|p| problems.push(p)).ok();
    let approval = normalize_tool_list("approval_required_tools", agent.approval_required_tools)
        .map_err(|p| problems.push(p))
        .ok();
    if let (Some(allowed), Some(approval)) = (&allowed, &approval) {
        if let Err(problem) = check_approval_subset(allowed, approval) {
            problems.push(problem);
        }
    }
    let prompts = SurfaceList::Prompts.normalize(agent.allowed_prompts).map_err(|p| problems.push(p)).ok();
    let resources = SurfaceList::Resources.normalize(agent.allowed_resources).map_err(|p| problems.push(p)).ok();
    match (name, allowed, approval, prompts, resources) {
        (
            Some(name),
            Some(allowed_tools),
            Some(approval_required_tools),
            Some(allowed_prompts),
            Some(allowed_resources),
        ) if problems.is_empty() => Ok(ValidAgent {
            name,
            description: agent.description,
            allowed_tools,
            approval_required_tools,
            allowed_prompts,
            allowed_resources,
        }),
        _ => Err(AgentError::Invalid(problems.join("; "))),
    }
}

pub async fn create(pool: &PgPool, actor: &Actor, agent: NewAgent) -> Result<Agent> {
    let agent = validate_new(agent)?;
    let mut tx = pool.begin().await?;
    let created: Option<Agent> = sqlx::query_as(&format!(
        "INSERT INTO agents (name, description, allowed_tools, approval_required_tools, allowed_prompts,
             allowed_resources)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING RETURNING {AGENT_COLUMNS}"
    ))
    .bind(agent.name.as_str())
    .bind(&agent.description)
    .bind(&agent.allowed_tools)
    .bind(&agent.approval_required_tools)
    .bind(&agent.allowed_prompts)
    .bind(&agent.allowed_resources)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(created) = created else {
        return Err(AgentError::AlreadyExists(agent.name.to_string()));
    };
    audit_trail::record(&mut tx, actor, "agent.create", &created.name, None, Some(created.policy())).await?;
    tx.commit().await?;
    Ok(created)
}

pub async fn list(pool: &PgPool) -> Result<Vec<Agent>> {
    Ok(sqlx::query_as(&format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY name")).fetch_all(pool).await?)
}

pub async fn get(pool: &PgPool, name: &AgentName) -> Result<Agent> {
    sqlx::query_as(&format!("SELECT {AGENT_COLUMNS} FROM agents WHERE name = $1"))
        .bind(name.as_str())
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| not_found(name))
}

pub(super) async fn lock(conn: &mut PgConnection, name: &AgentName) -> Result<Agent> {
    sqlx::query_as(&format!("SELECT {AGENT_COLUMNS} FROM agents WHERE name = $1 FOR UPDATE"))
        .bind(name.as_str())
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| not_found(name))
}

/// Replaces one tool list and bumps the version, even when the list is unchanged: the
/// caller asked for tokens to be re-minted, and that is cheap and predictable.
pub async fn set_tools(
    pool: &PgPool,
    actor: &Actor,
    name: &AgentName,
    list: ToolList,
    tools: Vec<String>,
) -> Result<Agent> {
    let tools = normalize_tool_list(list.field(), tools).map_err(AgentError::Invalid)?;
    let change = match list {
        ToolList::Allowed => PolicyChange { allowed: Some(tools), approval: None },
        ToolList::ApprovalRequired => PolicyChange { allowed: None, approval: Some(tools) },
    };
    let hint = match list {
        ToolList::Allowed => "; remove them from approval_required_tools first",
        ToolList::ApprovalRequired => "; add them to allowed_tools first",
    };
    change_policy(pool, actor, name, change, hint, list.audit_action()).await
}

/// Replaces both tool lists at once (the console's picker edits them together), with one
/// version bump: checked as a whole, so moving a tool in or out of both lists needs no
/// particular order. Same rules and messages as [`set_tools`] and [`create`].
pub async fn set_policy(
    pool: &PgPool,
    actor: &Actor,
    name: &AgentName,
    allowed_tools: Vec<String>,
    approval_required_tools: Vec<String>,
) -> Result<Agent> {
    let mut problems = Vec::new();
    let allowed = normalize_tool_list(ToolList::Allowed.field(), allowed_tools).map_err(|p| problems.push(p)).ok();
    let approval = normalize_tool_list(ToolList::ApprovalRequired.field(), approval_required_tools)
        .map_err(|p| problems.push(p))
        .ok();
    let (Some(allowed), Some(approval)) = (allowed, approval) else {
        return Err(AgentError::Invalid(problems.join("; ")));
    };
    let change = PolicyChange { allowed: Some(allowed), approval: Some(approval) };
    change_policy(pool, actor, name, change, "", "agent.tools.set").await
}

/// The new lists of a policy change; `None` keeps the stored one.
struct PolicyChange {
    allowed: Option<Vec<ToolName>>,
    approval: Option<Vec<ToolName>>,
}

/// Applies a change under the agent's row lock: checks the subset rule against what the
/// lists become (`hint` appended to its message), bumps the version, records the audit row.
async fn change_policy(
    pool: &PgPool,
    actor: &Actor,
    name: &AgentName,
    change: PolicyChange,
    hint: &str,
    audit_action: &'static str,
) -> Result<Agent> {
    let mut tx = pool.begin().await?;
    let before = lock(&mut tx, name).await?;
    let allowed = change.allowed.as_ref().unwrap_or(&before.allowed_tools);
    let approval = change.approval.as_ref().unwrap_or(&before.approval_required_tools);
    if let Err(problem) = check_approval_subset(allowed, approval) {
        return Err(AgentError::Invalid(format!("{problem}{hint}")));
    }
    let after: Agent = sqlx::query_as(&format!(
        "UPDATE agents SET allowed_tools = $2, approval_required_tools = $3,
             permissions_version = nextval('agent_permissions_version_seq'), updated_at = now()
         WHERE name = $1 RETURNING {AGENT_COLUMNS}"
    ))
    .bind(name.as_str())
    .bind(allowed)
    .bind(approval)
    .fetch_one(&mut *tx)
    .await?;
    audit_trail::record(&mut tx, actor, audit_action, name.as_str(), Some(before.policy()), Some(after.policy()))
        .await?;
    tx.commit().await?;
    Ok(after)
}

pub async fn delete(pool: &PgPool, actor: &Actor, name: &AgentName) -> Result<()> {
    let mut tx = pool.begin().await?;
    let before = lock(&mut tx, name).await?;
    sqlx::query("DELETE FROM agents WHERE name = $1").bind(name.as_str()).execute(&mut *tx).await?;
    audit_trail::record(&mut tx, actor, "agent.delete", name.as_str(), Some(before.policy()), None).await?;
    tx.commit().await?;
    Ok(())
}

/// Records that `actor` minted a token for `agent` (not a policy change, but who holds
/// which agent's credentials is what an auditor asks next).
pub async fn record_token_minted(pool: &PgPool, actor: &Actor, agent: &str, minted: Value) -> Result<()> {
    let mut conn = pool.acquire().await?;
    audit_trail::record(&mut conn, actor, "agent_token.mint", agent, None, Some(minted)).await?;
    Ok(())
}
