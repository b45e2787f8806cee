//! Example upstream MCP server for Alexandria: file tools over stdio (or Streamable HTTP
//! with `--http`), confined to a root directory. Used by the runbook demo, by the gateway's
//! integration tests and by `scripts/bench-compare.sh`.

mod http;
mod sandbox;
mod server;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use rmcp::service::ServerInitializeError;
use rmcp::transport::stdio;
use rmcp::ServiceExt as _;
use tracing_subscriber::EnvFilter;

use crate::sandbox::Sandbox;
use crate::server::FsServer;

/// MCP server (stdio) offering write_file, read_file, list_directory and echo, all confined
/// to one root directory.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Directory the tools operate in (created if missing). Client paths, absolute or
    /// relative, are resolved inside it.
    #[arg(long, env = "FS_SERVER_ROOT", default_value = ".")]
    root: PathBuf,

    /// Append the tool name of every tools/call to this file, one line per call.
    #[arg(long, env = "FS_SERVER_CALL_LOG")]
    call_log: Option<PathBuf>,

    /// Serve MCP over Streamable HTTP on this address (e.g. 127.0.0.1:0) instead of stdio;
    /// prints `LISTENING <port>` on stdout once listening.
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // stdout carries the protocol, so every log line must go to stderr.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();

    let args = Args::parse();
    let sandbox =
        Sandbox::open(&args.root).with_context(|| format!("cannot use {} as root directory", args.root.display()))?;
    if let Some(addr) = args.http {
        return http::serve(FsServer::new(sandbox, args.call_log), addr).await;
    }
    tracing::info!(root = %sandbox.root().display(), call_log = ?args.call_log, "serving MCP on stdio");

    let service = match FsServer::new(sandbox, args.call_log).serve(stdio()).await {
        Ok(service) => service,
        // A client that hangs up before the handshake (a health probe, a cancelled start)
        // ends the session like any other close, so it is not reported as a failure.
        Err(ServerInitializeError::ConnectionClosed(during)) => {
            tracing::info!(%during, "stdin closed before the MCP handshake completed");
            return Ok(());
        }
        Err(e) => return Err(e).context("MCP initialization failed"),
    };
    // Returns once the client closes stdin (or the transport fails).
    let reason = service.waiting().await.context("MCP service failed")?;
    tracing::info!(?reason, "MCP session ended");
    Ok(())
}
