//! The HTTP side of metrics: `GET /metrics`, and the layer that times every request.

use std::time::Instant;

use axum::extract::{MatchedPath, State};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::AppState;
use crate::metrics::Metrics;

/// `GET /metrics`.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses((status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain"),
        (status = 503, description = "The database cannot be read now", body = crate::http::error::ErrorBody)))]
pub async fn metrics_handler(State(state): State<AppState>) -> Response {
    match state.metrics.render(&state.pool).await {
        Ok(text) => {
            ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
        }
        Err(error) => {
            tracing::error!(%error, "cannot render the metrics");
            ApiError::Unavailable("metrics unavailable".to_owned()).into_response()
        }
    }
}

/// Layer recording each request's duration by route template, never the raw path (ids
/// in paths would explode the label set). The duration ends when the response body has
/// been sent (or abandoned), so a gated call that answers with a deferred body counts
/// its whole in-band wait.
///
/// A hand-written layer rather than `axum::middleware::from_fn`: its future is a few
/// words around the inner one, where `from_fn` boxes a kilobyte and a half per request,
/// which a parked gated call holds for as long as it waits.
#[derive(Clone)]
pub struct HttpMetricsLayer {
    metrics: Metrics,
}

impl HttpMetricsLayer {
    pub fn new(metrics: Metrics) -> Self {
        Self { metrics }
    }
}

impl<S> tower::Layer<S> for HttpMetricsLayer {
    type Service = HttpMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpMetrics { inner, metrics: self.metrics.clone() }
    }
}

#[derive(Clone)]
pub struct HttpMetrics<S> {
    inner: S,
    metrics: Metrics,
}

impl<S, B> tower::Service<axum::http::Request<B>> for HttpMetrics<S>
where
    S: tower::Service<axum::http::Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = TrackedResponse<S::Future>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        let timer = RequestTimer {
            metrics: self.metrics.clone(),
            method: request.method().clone(),
            route: request.extensions().get::<MatchedPath>().cloned(),
            status: None,
            started: Instant::now(),
        };
        TrackedResponse { inner: self.inner.call(request), timer: Some(timer) }
    }
}

pin_project_lite::pin_project! {
    pub struct TrackedResponse<F> {
        #[pin]
        inner: F,
        // Moved into the response body once there is a response.
        timer: Option<RequestTimer>,
    }
}

impl<F, E> std::future::Future for TrackedResponse<F>
where
    F: std::future::Future<Output = Result<Response, E>>,
{
    type Output = F::Output;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        std::task::Poll::Ready(result.map(|response| match this.timer.take() {
            Some(mut timer) => {
                timer.status = Some(response.status());
                response.map(|body| axum::body::Body::new(TimedBody { inner: body, _timer: timer }))
            }
            None => response,
        }))
    }
}

/// A response body that records its request's duration when it is dropped: after the
/// last byte was written, or when the client went away.
struct TimedBody {
    inner: axum::body::Body,
    _timer: RequestTimer,
}

impl http_body::Body for TimedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Records one request's duration when dropped, if it got as far as a response.
struct RequestTimer {
    metrics: Metrics,
    method: axum::http::Method,
    route: Option<MatchedPath>,
    /// `None` until the response exists: a request abandoned before it is not counted.
    status: Option<axum::http::StatusCode>,
    started: Instant,
}

impl Drop for RequestTimer {
    fn drop(&mut self) {
        let Some(status) = self.status else { return };
        let route = self.route.as_ref().map_or("unmatched", MatchedPath::as_str);
        self.metrics.http_request(self.method.as_str(), route, status.as_u16(), self.started.elapsed().as_secs_f64());
    }
}
