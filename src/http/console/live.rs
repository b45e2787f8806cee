//! `GET /console/events`: tells an open inbox when to refresh, as server-sent events.
//!
//! Fed by the process's one LISTEN connection (`EventListener`): NOTIFY reaches every
//! replica, so a request created or decided anywhere shows up everywhere. One task per
//! process (`InboxFeed`, started by the first stream) turns changes into log positions:
//! after a change to a permission request it asks the log where it is (one short query,
//! however many consoles are open) and waits, briefly and bounded, for the inbox's read
//! model to have applied it, so the refresh the event triggers sees the change; then it
//! publishes the position on a watch channel. A stream holds no database connection and
//! makes no query: it sends an event whenever the published position passes the last
//! one it sent. Each event's `id` is that position (never decreasing on a stream); a
//! stream that starts behind (a reconnect's `Last-Event-ID`, or the position the page was
//! rendered at, `?since=`) gets an event as soon as the feed knows the head.

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use alexandria_domain::PermissionRequest;
use alexandria_projections::LogChange;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use cqrs_es::Aggregate;
use serde::Deserialize;
use sqlx::PgPool;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::session::ConsoleUser;
use crate::approval::queries;
use crate::http::AppState;

/// How long an event waits for the read model to catch up before it is sent anyway.
const READ_MODEL_WAIT: Duration = Duration::from_secs(2);
const READ_MODEL_POLL: Duration = Duration::from_millis(20);
/// How long the feed waits before asking again when the log cannot be read.
const HEAD_RETRY: Duration = Duration::from_secs(1);

/// The log's head as the inbox sees it, shared by every open stream of this process:
/// `None` until the feed has read it once.
#[derive(Clone, Default)]
pub struct InboxFeed(Arc<OnceLock<watch::Receiver<Option<i64>>>>);

impl InboxFeed {
    /// The published head, starting the feed's task on first use (a process nobody opens
    /// a console on never runs it). The task ends at shutdown.
    fn subscribe(&self, state: &AppState) -> watch::Receiver<Option<i64>> {
        self.0
            .get_or_init(|| {
                let (head, receiver) = watch::channel(None);
                // Subscribed before the first read, so no change after it is missed.
                let changes = state.listener.subscribe();
                tokio::spawn(publish_heads(changes, state.pool.clone(), state.shutdown.clone(), head));
                receiver
            })
            .clone()
    }
}

/// The feed's task: the head once at start, then after every change to a permission
/// request (changes that arrive meanwhile are covered by the same read).
async fn publish_heads(
    mut changes: Receiver<LogChange>,
    pool: PgPool,
    shutdown: CancellationToken,
    head: watch::Sender<Option<i64>>,
) {
    loop {
        let Some(position) = settled_head(&pool, &shutdown).await else { return };
        head.send_if_modified(|published| {
            let newer = published.is_none_or(|published| position > published);
            if newer {
                *published = Some(position);
            }
            newer
        });
        loop {
            let change = tokio::select! {
                _ = shutdown.cancelled() => return,
                change = changes.recv() => change,
            };
            match change {
                Ok(LogChange::Appended { aggregate_type, .. }) if aggregate_type == PermissionRequest::TYPE => break,
                Ok(LogChange::Appended { .. }) => {}
                // Missed notifications (the listener reconnected, or this task fell behind).
                Ok(LogChange::Resync) | Err(RecvError::Lagged(_)) => break,
                Err(RecvError::Closed) => return,
            }
        }
        while changes.try_recv().is_ok() {}
    }
}

/// The log's head once the read model has applied it (or `READ_MODEL_WAIT` passed);
/// `None` at shutdown. A database error is logged and the read retried.
async fn settled_head(pool: &PgPool, shutdown: &CancellationToken) -> Option<i64> {
    let deadline = tokio::time::Instant::now() + READ_MODEL_WAIT;
    loop {
        let pause = match queries::log_head(pool).await {
            Ok((head, true)) => return Some(head),
            Ok((head, false)) if tokio::time::Instant::now() >= deadline => return Some(head),
            Ok(_) => READ_MODEL_POLL,
            Err(error) => {
                tracing::warn!(%error, "the console's feed cannot read the log head; retrying");
                HEAD_RETRY
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

#[derive(Deserialize)]
pub struct EventsQuery {
    /// The position the page was rendered at (`-1`: its read model was behind).
    since: Option<i64>,
}

/// One open console's stream.
struct Stream {
    head: watch::Receiver<Option<i64>>,
    shutdown: CancellationToken,
    /// The last position sent (or the client's `Last-Event-ID` / the page's `since`).
    last_sent: Option<i64>,
}

pub async fn events(
    _user: ConsoleUser,
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Sse<impl futures::Stream<Item = Result<Event, Infallible>>> {
    // A reconnect's Last-Event-ID is newer than the page's position.
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .or_else(|| query.ok().and_then(|Query(query)| query.since));
    let mut head = state.inbox_feed.subscribe(&state);
    // Without a position the stream reports what happens from now on: from the head the
    // feed knows, or (its first read still under way) the head read once here.
    let last_sent = match last_event_id.or_else(|| *head.borrow_and_update()) {
        Some(position) => Some(position),
        None => queries::log_head(&state.pool).await.map(|(head, _)| head).ok(),
    };
    let stream = Stream { head, shutdown: state.shutdown.clone(), last_sent };
    Sse::new(futures::stream::unfold(stream, next_event)).keep_alive(KeepAlive::default())
}

async fn next_event(mut stream: Stream) -> Option<(Result<Event, Infallible>, Stream)> {
    loop {
        let head = *stream.head.borrow_and_update();
        if let Some(head) = head.filter(|&head| stream.last_sent.is_none_or(|last| head > last)) {
            stream.last_sent = Some(head);
            let event = Event::default().event("changed").id(head.to_string()).data("requests");
            return Some((Ok(event), stream));
        }
        tokio::select! {
            _ = stream.shutdown.cancelled() => return None,
            changed = stream.head.changed() => changed.ok()?,
        }
    }
}
