//! `GET /console/events`: tells an open inbox when to refresh, as server-sent events.
//!
//! Fed by the process's one LISTEN connection (`EventListener`): NOTIFY reaches every
//! replica, so a request created or decided anywhere shows up everywhere. A stream holds
//! no database connection while it waits; after a change it asks the log where it is
//! (one short query) and waits, briefly and bounded, for the inbox's read model to have
//! applied it, so the refresh the event triggers sees the change. Each event's `id` is
//! the log's head `global_position` (never decreasing on a stream); a stream that starts
//! behind the head (a reconnect's `Last-Event-ID`, or the position the page was rendered
//! at, `?since=`) gets an event at once, so nothing that happened meanwhile is missed.

use std::convert::Infallible;
use std::time::Duration;

use alexandria_domain::PermissionRequest;
use alexandria_projections::LogChange;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use cqrs_es::Aggregate;
use futures::Stream;
use serde::Deserialize;
use sqlx::PgPool;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;
use tokio_util::sync::CancellationToken;

use super::session::ConsoleUser;
use crate::approval::queries;
use crate::http::AppState;

/// How long an event waits for the read model to catch up before it is sent anyway.
const READ_MODEL_WAIT: Duration = Duration::from_secs(2);
const READ_MODEL_POLL: Duration = Duration::from_millis(20);

struct Feed {
    changes: Receiver<LogChange>,
    pool: PgPool,
    shutdown: CancellationToken,
    /// The last position sent (or the client's `Last-Event-ID`).
    last_sent: Option<i64>,
    /// Whether the position the client already saw still has to be compared with the head.
    check_resume: bool,
}

#[derive(Deserialize)]
pub struct EventsQuery {
    /// The position the page was rendered at (`-1`: its read model was behind).
    since: Option<i64>,
}

pub async fn events(
    _user: ConsoleUser,
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    // A reconnect's Last-Event-ID is newer than the page's position.
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .or_else(|| query.ok().and_then(|Query(query)| query.since));
    let feed = Feed {
        // Subscribed before anything is read, so no change between the page's render and
        // this stream is lost.
        changes: state.listener.subscribe(),
        pool: state.pool.clone(),
        shutdown: state.shutdown.clone(),
        last_sent: last_event_id,
        check_resume: last_event_id.is_some(),
    };
    Sse::new(futures::stream::unfold(feed, next_event)).keep_alive(KeepAlive::default())
}

async fn next_event(mut feed: Feed) -> Option<(Result<Event, Infallible>, Feed)> {
    if std::mem::take(&mut feed.check_resume) {
        let seen = feed.last_sent.unwrap_or(0);
        if let Some(head) = settled_head(&feed.pool, &feed.shutdown).await {
            if head > seen {
                return Some((Ok(changed(&mut feed, head)), feed));
            }
        }
    }
    loop {
        let change = tokio::select! {
            _ = feed.shutdown.cancelled() => return None,
            change = feed.changes.recv() => change,
        };
        let relevant = match change {
            Ok(LogChange::Appended { aggregate_type, .. }) => aggregate_type == PermissionRequest::TYPE,
            // Missed notifications (a reconnect, or this stream fell behind): refresh.
            Ok(LogChange::Resync) | Err(RecvError::Lagged(_)) => true,
            Err(RecvError::Closed) => return None,
        };
        if !relevant {
            continue;
        }
        // Changes that arrived meanwhile are covered by this one event.
        while feed.changes.try_recv().is_ok() {}
        let head = settled_head(&feed.pool, &feed.shutdown).await?;
        return Some((Ok(changed(&mut feed, head)), feed));
    }
}

fn changed(feed: &mut Feed, head: i64) -> Event {
    let position = feed.last_sent.map_or(head, |last| last.max(head));
    feed.last_sent = Some(position);
    Event::default().event("changed").id(position.to_string()).data("requests")
}

/// The log's head once the read model has applied it (or `READ_MODEL_WAIT` passed);
/// `None` at shutdown. A database error is logged and reported as position 0, which
/// still makes the client refresh.
async fn settled_head(pool: &PgPool, shutdown: &CancellationToken) -> Option<i64> {
    let deadline = tokio::time::Instant::now() + READ_MODEL_WAIT;
    loop {
        match queries::log_head(pool).await {
            Ok((head, true)) => return Some(head),
            Ok((head, false)) if tokio::time::Instant::now() >= deadline => return Some(head),
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "console event stream cannot read the log head");
                return Some(0);
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(READ_MODEL_POLL) => {}
        }
    }
}
