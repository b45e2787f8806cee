//! Accepting connections and serving HTTP/1.1 on them, with graceful shutdown.
//!
//! What `axum::serve` does, with the connection settings a gateway of parked calls
//! needs and `axum::serve` does not expose:
//!
//! - **Half-close.** While a response is pending, hyper by default keeps reading the
//!   socket to notice a client hanging up, and that read grows the connection's read
//!   buffer from 8 to 16 KiB. A gated call parks for up to 30 s and ten thousand of
//!   them may wait at once, so that read costs 80 MB. A client that hangs up loses
//!   nothing by not being noticed: the gate runs in its own task whatever the
//!   connection does (DESIGN: not cancelled by a disconnect), and the connection is
//!   closed when its answer cannot be written, within the wait.
//! - **`TCP_NODELAY`**, so a small response is not held back by Nagle's algorithm.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// How long a client may take to send a request's head before the connection is closed.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client may take to send a request's body (the router's layer).
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// File descriptors kept back from client connections: the database pool, upstream
/// connections and child processes, the listeners, log and key files.
const RESERVED_DESCRIPTORS: u64 = 1_024;

/// Most client connections served at once: what the open-files limit allows after
/// [`RESERVED_DESCRIPTORS`] (at least 64). Beyond it, new connections wait in the listen
/// backlog instead of failing `accept` with "too many open files". `main` raises the
/// soft limit to the hard one; raise the hard one (`LimitNOFILE=`, `ulimit -Hn`, the
/// container runtime's `nofile`) to park more calls on one replica.
pub fn connection_limit() -> usize {
    let open_files = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(RESERVED_DESCRIPTORS + 64, |(soft, _)| soft);
    usize::try_from(open_files.saturating_sub(RESERVED_DESCRIPTORS).max(64)).unwrap_or(usize::MAX)
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then stops accepting, lets
/// every connection finish its in-flight request, and returns when all have closed.
pub async fn serve(listener: TcpListener, app: Router, shutdown: CancellationToken) {
    let connections = TaskTracker::new();
    accept_until(&listener, app, &shutdown, &shutdown, &connections).await;
    // Closed at once: new connections are refused (a client tries another replica)
    // rather than queued while the in-flight requests finish.
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// Serves `app` on `listener` until `stop`, then hands the listener back open for the
/// next router: connections that arrive meanwhile wait in the backlog instead of being
/// refused (a replica waiting for its schema, then serving).
///
/// The connections already accepted are not shut down at the hand-over, only at
/// `shutdown` (the process's): a graceful shutdown closes a connection hyper has not read
/// a request from yet, and the client, whose request is on its way, sees the connection
/// cut instead of an answer. They finish on their own: `app` must close each connection
/// after one answer (`Connection: close`), or a keep-alive client would go on talking
/// to the old router.
pub async fn serve_then_hand_over(
    listener: TcpListener,
    app: Router,
    stop: CancellationToken,
    shutdown: CancellationToken,
) -> TcpListener {
    let connections = TaskTracker::new();
    accept_until(&listener, app, &stop, &shutdown, &connections).await;
    listener
}

/// Accepts until `stop`; each connection is shut down gracefully at `connection_shutdown`.
async fn accept_until(
    listener: &TcpListener,
    app: Router,
    stop: &CancellationToken,
    connection_shutdown: &CancellationToken,
    connections: &TaskTracker,
) {
    let slots =
        std::sync::Arc::new(tokio::sync::Semaphore::new(connection_limit().min(tokio::sync::Semaphore::MAX_PERMITS)));
    loop {
        // A free slot first: at the cap, connections queue in the kernel's backlog rather
        // than each costing a task, buffers and a file descriptor here.
        let slot = tokio::select! {
            slot = std::sync::Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            _ = stop.cancelled() => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors or a connection reset before accept: keep
                    // serving the connections we have, and accept again shortly.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                        _ = stop.cancelled() => break,
                    }
                }
            },
            _ = stop.cancelled() => break,
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let connection = serve_connection(stream, remote, app.clone(), connection_shutdown.clone());
        connections.spawn(async move {
            connection.await;
            drop(slot);
        });
    }
}

async fn serve_connection(stream: tokio::net::TcpStream, remote: SocketAddr, app: Router, shutdown: CancellationToken) {
    let service = app.map_request(move |request: hyper::Request<Incoming>| {
        let mut request = request.map(axum::body::Body::new);
        request.extensions_mut().insert(ConnectInfo(remote));
        request
    });
    let service = TowerToHyperService::new(service);
    let connection = hyper::server::conn::http1::Builder::new()
        .half_close(true)
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, %remote, "connection ended with an error");
            }
            return;
        }
        _ = shutdown.cancelled() => {}
    }
    // Finish the request in flight (the gate answers parked calls at shutdown), then close.
    connection.as_mut().graceful_shutdown();
    if let Err(error) = connection.await {
        tracing::debug!(%error, %remote, "connection ended with an error");
    }
}
