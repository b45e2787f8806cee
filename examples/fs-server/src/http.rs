//! `--http ADDR`: the same server over MCP Streamable HTTP (stateless, JSON answers), for
//! the gateway's tests of HTTP upstreams and for `scripts/bench-compare.sh`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use crate::server::FsServer;

/// Serves `/mcp` (any path, in fact) on `addr` until the process is stopped. Prints
/// `LISTENING <port>` on stdout once the socket accepts connections (port 0 picks one).
pub async fn serve(server: FsServer, addr: SocketAddr) -> anyhow::Result<()> {
    let mut config = StreamableHttpServerConfig::default();
    // No sessions and plain JSON answers: the cheapest exchange the protocol allows, so
    // a benchmark measures the gateway in front, not this server.
    config.legacy_session_mode = false;
    config.json_response = true;
    let service = Arc::new(StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    ));
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    let port = listener.local_addr().context("the listening address")?.port();
    println!("LISTENING {port}");
    tracing::info!(%addr, port, "serving MCP over Streamable HTTP");
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait a little, keep serving.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = Arc::clone(&service);
        tokio::spawn(async move {
            let handler = service_fn(move |request| {
                let service = Arc::clone(&service);
                async move { Ok::<_, Infallible>(service.handle(request).await) }
            });
            if let Err(error) = http1::Builder::new().serve_connection(TokioIo::new(stream), handler).await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
}
