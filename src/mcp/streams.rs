//! Replies that stream, for clients that accept `text/event-stream`: notifications while
//! a request is in progress, then its response. Each stream is fed by a task of its own
//! that stops when the client hangs up; the work it reports on (the gate's wait, an
//! upstream call) runs in another task and never stops with it.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;
use uuid::Uuid;

use super::exchange::{DeferredResponse, McpReply, StreamedResponse};
use super::jsonrpc::{ProgressToken, Responder};
use super::tasks::{result_of_task, TaskProtocol, TaskStatus, Tasks};
use crate::approval::GateResponse;
use crate::names::Actor;

/// How often a waiting call reports progress: often enough that a client resetting its
/// timeout on progress never times out, rarely enough to be noise.
pub(super) fn progress_interval(wait: Duration) -> Duration {
    (wait / 6).clamp(Duration::from_millis(250), Duration::from_secs(5))
}

/// `answer` with `notifications/progress` ("waiting for approval, N s") every `every`
/// until it is ready.
pub(super) fn with_progress(token: ProgressToken, answer: DeferredResponse, every: Duration) -> StreamedResponse {
    let (messages, stream) = channel();
    tokio::spawn(async move {
        let started = Instant::now();
        let mut ticks = tokio::time::interval_at(started + every, every);
        let mut answer = answer;
        loop {
            tokio::select! {
                body = &mut answer => {
                    let _ = messages.send(body).await;
                    return;
                }
                _ = ticks.tick() => {
                    let waited = started.elapsed().as_secs_f64();
                    let progress = json!({
                        "jsonrpc": "2.0",
                        "method": "notifications/progress",
                        "params": {
                            "progressToken": token,
                            "progress": (waited * 1000.0).round() / 1000.0,
                            "message": format!("waiting for approval, {} s", waited.round() as u64),
                        },
                    });
                    if messages.send(progress).await.is_err() {
                        return;
                    }
                }
                _ = messages.closed() => return,
            }
        }
    });
    stream
}

/// `tasks/result` for one task: drives the request to its outcome (an approved one is
/// executed here, as a retry of the call would).
pub(super) struct Follow {
    pub(super) tasks: Tasks,
    pub(super) id: Uuid,
    pub(super) actor: Actor,
    pub(super) trace_id: String,
    pub(super) wait: Duration,
}

impl Follow {
    /// The outcome, in a task of its own: a client that hangs up must not cancel an
    /// upstream call mid-way, nor the caching of its result.
    fn spawn(&self) -> tokio::task::JoinHandle<GateResponse> {
        let gate = self.tasks.gate.clone();
        let (id, actor, trace_id, wait) = (self.id, self.actor.clone(), self.trace_id.clone(), self.wait);
        tokio::spawn(async move { gate.follow(id, &actor, &trace_id, wait).await })
    }

    pub(super) async fn answer(self, responder: &Responder) -> Value {
        let answer = self.spawn().await.unwrap_or_else(|error| GateResponse::Unavailable(error.to_string()));
        result_of_task(responder, self.id, answer)
    }

    /// The answer, preceded by a `notifications/tasks/status` for each change of the
    /// task's status or message while it is awaited.
    pub(super) fn with_status_notifications(self, responder: Responder) -> StreamedResponse {
        let (messages, stream) = channel();
        tokio::spawn(async move {
            let gate = self.tasks.gate.clone();
            let mut watch = gate.watch(self.id);
            let mut answer = self.spawn();
            let mut last_told: Option<(TaskStatus, String)> = None;
            loop {
                tokio::select! {
                    joined = &mut answer => {
                        let answer = joined.unwrap_or_else(|error| GateResponse::Unavailable(error.to_string()));
                        let _ = messages.send(result_of_task(&responder, self.id, answer)).await;
                        return;
                    }
                    _ = watch.changed() => {
                        let Ok(Some(state)) = gate.load(self.id).await else { continue };
                        let Some(view) = self.tasks.view(self.id, &state, TaskProtocol::Experimental) else { continue };
                        let now = (view.status, view.message.clone());
                        if last_told.as_ref() == Some(&now) {
                            continue;
                        }
                        last_told = Some(now);
                        let notification = json!({
                            "jsonrpc": "2.0",
                            "method": "notifications/tasks/status",
                            "params": view.to_json(TaskProtocol::Experimental, &responder),
                        });
                        if messages.send(notification).await.is_err() {
                            return;
                        }
                    }
                    _ = messages.closed() => return,
                }
            }
        });
        stream
    }
}

/// The reply to a pass-through call whose upstream may talk during it (`relay`'s
/// messages, see `approval::CallRelay`): a plain response when the call ends before
/// the upstream says anything; else a stream of those messages, in order, then the
/// response. The relay's channel closes only when the call is over (the upstream side
/// drops its end then), so nothing the upstream said comes after the response. A client
/// that hangs up drops the stream: the call, a task of its own, goes on.
pub(super) async fn relayed(
    call: tokio::task::JoinHandle<Value>,
    mut messages: mpsc::UnboundedReceiver<Value>,
    failed: Value,
) -> McpReply {
    let Some(first) = messages.recv().await else {
        return McpReply::response(call.await.unwrap_or(failed));
    };
    let rest = futures::stream::unfold(Some((messages, call, failed)), |state| async move {
        let (mut messages, call, failed) = state?;
        match messages.recv().await {
            Some(message) => Some((message, Some((messages, call, failed)))),
            None => Some((call.await.unwrap_or(failed), None)),
        }
    });
    McpReply::Streamed(Box::pin(futures::StreamExt::chain(futures::stream::once(async { first }), rest)))
}

/// A bounded channel whose receiving end is the reply's stream.
fn channel() -> (mpsc::Sender<Value>, StreamedResponse) {
    let (sender, receiver) = mpsc::channel(8);
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|message| (message, receiver))
    });
    (sender, Box::pin(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiting_call_reports_progress_a_few_times_within_its_wait() {
        assert_eq!(progress_interval(Duration::from_secs(30)), Duration::from_secs(5));
        assert_eq!(progress_interval(Duration::from_secs(3)), Duration::from_millis(500));
        assert_eq!(progress_interval(Duration::ZERO), Duration::from_millis(250));
    }
}
