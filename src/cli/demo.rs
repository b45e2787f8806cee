//! `serve --demo`: the example filesystem server and `demo-agent`, so the runbook can be
//! walked on a fresh machine with nothing else installed. Idempotent: what exists is
//! left as it is.

use std::path::Path;

use anyhow::Context;

use sqlx::PgPool;

use crate::admin::agents::{self, AgentError, NewAgent};
use crate::names::{Actor, AgentName};
use crate::upstream::{TransportKind, UpstreamConfig, UpstreamError, UpstreamRegistry};

pub const DEMO_SERVER: &str = "demo-fs";
pub const DEMO_AGENT: &str = "demo-agent";
const DEMO_ACTOR: Actor = Actor::System("demo");

pub async fn set_up(
    upstreams: &UpstreamRegistry,
    pool: &PgPool,
    public_url: &str,
    data_dir: &Path,
) -> anyhow::Result<()> {
    let binary = std::env::current_exe()?.with_file_name("alexandria-example-fs");
    if !binary.is_file() {
        anyhow::bail!(
            "--demo needs the example server next to this binary ({}); build it with `cargo build --workspace`",
            binary.display()
        );
    }
    let root = std::path::absolute(data_dir.join("demo-files"))?;
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    let config = UpstreamConfig {
        name: DEMO_SERVER.to_owned(),
        transport: TransportKind::Stdio,
        command: Some(binary.display().to_string()),
        args: vec!["--root".to_owned(), root.display().to_string()],
        env: Default::default(),
        cwd: None,
        run_as: None,
        url: None,
        headers: Default::default(),
        tool_prefix: None,
    };
    match upstreams.register(config).await {
        Ok(_) => tracing::info!(server = DEMO_SERVER, root = %root.display(), "demo upstream registered"),
        Err(UpstreamError::AlreadyRegistered { .. }) => {}
        Err(error) => return Err(error).context("cannot register the demo upstream"),
    }
    let tools = ["write_file", "read_file", "list_directory", "echo"].map(str::to_owned).to_vec();
    let demo_agent = AgentName::parse(DEMO_AGENT).map_err(anyhow::Error::msg)?;
    match agents::get(pool, &demo_agent).await {
        Ok(_) => {}
        Err(AgentError::NotFound(_)) => {
            agents::create(
                pool,
                &DEMO_ACTOR,
                NewAgent {
                    name: DEMO_AGENT.to_owned(),
                    description: "Demo agent: the example filesystem tools; write_file needs approval".to_owned(),
                    allowed_tools: tools,
                    approval_required_tools: vec!["write_file".to_owned()],
                    allowed_prompts: Vec::new(),
                    allowed_resources: Vec::new(),
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("cannot create {DEMO_AGENT}: {e}"))?;
        }
        Err(error) => return Err(anyhow::anyhow!("cannot read {DEMO_AGENT}: {error}")),
    }
    let base = public_url;
    tracing::info!(
        "demo ready. Log in: ACCESS_TOKEN=$(curl -sS -X POST {base}/auth/login -H 'Content-Type: application/json' \
         -d '{{\"username\":\"admin\",\"password\":\"<password>\"}}' | jq -r .access_token); mint a token: \
         curl -sS -X POST {base}/v1/agent-token -H \"Authorization: Bearer $ACCESS_TOKEN\" \
         -H 'Content-Type: application/json' -d '{{\"agent\":\"{DEMO_AGENT}\"}}'; then POST {base}/mcp/agents/{DEMO_AGENT}"
    );
    Ok(())
}
