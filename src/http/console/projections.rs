//! Projections (viewer and up, for operators): where each read model stands, from
//! `alexandria_projections::projection_status`, the query behind `alexandria projections
//! status`. Rebuilding stays a command-line action (it replays the whole log); the page
//! says which command, as it does for skipping an event a projection cannot read.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;

use super::pages::{failure, render};
use super::session::ConsoleUser;
use super::view::{human_duration, Chrome, Section};
use crate::http::AppState;

#[derive(Template)]
#[template(path = "console/projections.html")]
pub struct ProjectionsPage {
    pub chrome: Chrome,
    pub projections: Vec<ProjectionRow>,
}

pub struct ProjectionRow {
    pub name: String,
    pub position: i64,
    pub lag: i64,
    pub updated: String,
    pub updated_ago: String,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    /// The position of the event it is stuck on because that event cannot be read.
    pub unreadable_position: Option<i64>,
    /// Which session leads it, in words; `None` when no replica runs it.
    pub leader: Option<String>,
    /// Whether `projections rebuild` may rebuild it. The notification outbox may not (its
    /// delivery state is not in the log; a rebuild would send every notice again).
    pub rebuildable: bool,
}

pub async fn page(user: ConsoleUser, State(state): State<AppState>) -> Response {
    let statuses = match alexandria_projections::projection_status(&state.pool, crate::notify::CHECKPOINTS_LED_BY).await
    {
        Ok(statuses) => statuses,
        Err(error) => return failure(error),
    };
    let now = Utc::now();
    let format = |at: chrono::DateTime<Utc>| at.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    let projections = statuses
        .into_iter()
        .map(|status| ProjectionRow {
            updated: format(status.updated_at),
            updated_ago: human_duration(now - status.updated_at),
            last_error_at: status.last_error_at.map(format),
            leader: status.leader.map(|leader| {
                let mut words = format!("PostgreSQL session {}", leader.pid);
                if let Some(address) = leader.client_address {
                    words.push_str(&format!(" from {address}"));
                }
                if let Some(name) = leader.application_name {
                    words.push_str(&format!(" ({name})"));
                }
                if let Some(since) = leader.since {
                    words.push_str(&format!(", leading for {}", human_duration(now - since)));
                }
                words
            }),
            rebuildable: alexandria_projections::by_name(&status.name).is_some(),
            name: status.name,
            position: status.position,
            lag: status.lag,
            last_error: status.last_error,
            unreadable_position: status.unreadable_position,
        })
        .collect();
    render(StatusCode::OK, &ProjectionsPage { chrome: Chrome::new(&user.0, Section::Projections), projections })
}
