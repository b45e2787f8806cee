//! The HTTP client of one Streamable HTTP upstream session: pooled keep-alive connections.
//!
//! rmcp's own client (`StreamableHttpClientTransport::from_config`) turns pooling off
//! (`pool_max_idle_per_host(0)`): a new TCP connection for every message, so a busy
//! gateway leaves thousands of sockets in TIME-WAIT and pays a TLS handshake per call to
//! an `https` upstream. rmcp did it to dodge a ~40 ms stall, a TCP delayed ACK on a
//! connection reused while the previous response's body was still unread. Both halves of
//! that are handled here instead:
//! - `TCP_NODELAY`: a request's headers and body never wait on Nagle for the peer's
//!   (delayed) ACK;
//! - a body not read to its end never goes back to the pool: hyper returns a connection
//!   to the pool only once its response body has been read to the end, and closes it when
//!   the body is dropped earlier. rmcp reads a JSON answer whole and drains a POST's SSE
//!   stream after its response (rmcp PR #790), so in the usual case the connection is
//!   reused, and in any other it is closed, never reused mid-body.
//!
//! `tests/api/upstream_pool.rs` counts the TCP connections 50 calls open (a handful) and
//! checks that no call stalls.

use std::time::Duration;

use reqwest::redirect::{Attempt, Policy};
use reqwest::StatusCode;

/// How long an idle connection stays in the pool. Under most servers' keep-alive limits
/// (Node: 5 s by default, uvicorn: 5 s, hyper: none), so the gateway is usually the one to
/// close and a request rarely meets a connection the server has just closed.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);
/// Idle connections kept per upstream host: enough for the concurrency a replica sends one
/// server; beyond it connections are closed after their call.
const POOL_MAX_IDLE_PER_HOST: usize = 256;
/// Longest wait for a TCP (and TLS) connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Keep-alive probes on idle connections, so a peer gone without a FIN is noticed.
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);
/// As rmcp's default client: redirects followed at most this many times.
const MAX_REDIRECTS: usize = 10;

/// A pooled client for one upstream session. Custom headers (credentials) are sent per
/// request by rmcp, so nothing of one server is ever sent to another.
pub(super) fn pooled() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        .tcp_nodelay(true)
        .tcp_keepalive(TCP_KEEPALIVE)
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(Policy::custom(same_origin_redirect))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// rmcp's redirect rule, kept: only a same-origin 307 or 308 is followed (they keep the
/// method and the JSON-RPC body; a 301-303 would turn the POST into a GET, and another
/// origin would receive the session id and the configured headers).
fn same_origin_redirect(attempt: Attempt) -> reqwest::redirect::Action {
    let keeps_body = matches!(attempt.status(), StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT);
    let same_origin = attempt.previous().first().is_some_and(|first| first.origin() == attempt.url().origin());
    if !keeps_body || !same_origin {
        attempt.stop()
    } else if attempt.previous().len() > MAX_REDIRECTS {
        attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
    } else {
        attempt.follow()
    }
}
