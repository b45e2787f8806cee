//! What a notification says about a request, and the links it carries.

use alexandria_domain::{PermissionRequestEvent, RequestStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// A permission request as a notice describes it: the facts from `Created`, plus the
/// decision once there is one. Stored in the outbox row, so a notice is sent as it was
/// when its event happened, however late it goes out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestNotice {
    pub id: Uuid,
    pub request_type: String,
    pub agent: String,
    pub tool: String,
    pub arguments: Value,
    /// `pending`, `approved`, `rejected` or `expired`.
    pub status: String,
    pub requested_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    #[serde(default)]
    pub reviewed_by: Option<String>,
    /// When it was approved, rejected or expired.
    #[serde(default)]
    pub reviewed_at: Option<DateTime<Utc>>,
    /// The rejection reason.
    #[serde(default)]
    pub reason: Option<String>,
    /// A synthetic notice from `POST /admin/notifications/test`, about no real request.
    #[serde(default)]
    pub test: bool,
}

/// How a request ended, as the notice reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    pub status: RequestStatus,
    pub by: Option<String>,
    pub at: DateTime<Utc>,
    pub reason: Option<String>,
}

impl Review {
    /// The review an event records, if it is one (approve, reject, expire, withdraw).
    pub fn from_event(event: &PermissionRequestEvent) -> Option<Review> {
        use PermissionRequestEvent as Ev;
        Some(match event {
            Ev::Approved { by, at, .. } => {
                Review { status: RequestStatus::Approved, by: Some(by.clone()), at: *at, reason: None }
            }
            Ev::Rejected { by, at, reason } => {
                Review { status: RequestStatus::Rejected, by: Some(by.clone()), at: *at, reason: Some(reason.clone()) }
            }
            Ev::Expired { at } => Review { status: RequestStatus::Expired, by: None, at: *at, reason: None },
            Ev::Withdrawn { by, at } => {
                Review { status: RequestStatus::Withdrawn, by: Some(by.clone()), at: *at, reason: None }
            }
            _ => return None,
        })
    }
}

impl RequestNotice {
    /// The pending notice of a `Created` event.
    pub fn from_created(id: Uuid, event: &PermissionRequestEvent) -> Option<RequestNotice> {
        let PermissionRequestEvent::Created {
            request_type, agent, tool, arguments, requested_by, at, expires_at, ..
        } = event
        else {
            return None;
        };
        Some(RequestNotice {
            id,
            request_type: request_type.clone(),
            agent: agent.clone(),
            tool: tool.clone(),
            arguments: arguments.clone(),
            status: RequestStatus::Pending.as_str().to_owned(),
            requested_by: requested_by.clone(),
            created_at: *at,
            expires_at: *expires_at,
            reviewed_by: None,
            reviewed_at: None,
            reason: None,
            test: false,
        })
    }

    /// The same request, decided.
    pub fn reviewed(mut self, review: &Review) -> RequestNotice {
        self.status = review.status.as_str().to_owned();
        self.reviewed_by = review.by.clone();
        self.reviewed_at = Some(review.at);
        self.reason = review.reason.clone();
        self
    }

    /// A notice about no real request, for `POST /admin/notifications/test`.
    pub fn synthetic(now: DateTime<Utc>) -> RequestNotice {
        RequestNotice {
            id: Uuid::new_v4(),
            request_type: alexandria_domain::REQUEST_TYPE_TOOL_CALL.to_owned(),
            agent: "alexandria".to_owned(),
            tool: "notification_test".to_owned(),
            arguments: serde_json::json!({}),
            status: RequestStatus::Pending.as_str().to_owned(),
            requested_by: "system:notification-test".to_owned(),
            created_at: now,
            expires_at: now + chrono::Duration::minutes(5),
            reviewed_by: None,
            reviewed_at: None,
            reason: None,
            test: true,
        }
    }

    /// Arguments as compact JSON, cut to `max_chars` (alert annotations are for people,
    /// the webhook carries them whole).
    pub fn arguments_preview(&self, max_chars: usize) -> String {
        let text = self.arguments.to_string();
        if text.chars().count() <= max_chars {
            return text;
        }
        let mut cut: String = text.chars().take(max_chars.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// Links into Alexandria, under `ALEXANDRIA_PUBLIC_URL`.
#[derive(Debug, Clone)]
pub struct Links {
    public_url: String,
}

impl Links {
    pub fn new(public_url: &str) -> Self {
        Links { public_url: public_url.trim_end_matches('/').to_owned() }
    }

    /// The request in the admin API (`GET`).
    pub fn request_url(&self, id: Uuid) -> String {
        format!("{}/admin/permissions/{id}", self.public_url)
    }

    /// Where a person decides it: the request's page in the console (a browser link; an
    /// admin who is not signed in logs in first and lands there).
    pub fn approve_url(&self, id: Uuid) -> String {
        format!("{}/requests/{id}", self.public_url)
    }

    /// Where a program approves it (`POST`, admin bearer token): what `approve_url` was
    /// before the console had a page per request.
    pub fn api_approve_url(&self, id: Uuid) -> String {
        format!("{}/admin/permissions/{id}/approve", self.public_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arguments_preview_cuts_long_arguments_only() {
        let mut notice = RequestNotice::synthetic(Utc::now());
        notice.arguments = json!({"a": 1});
        assert_eq!(notice.arguments_preview(100), r#"{"a":1}"#);
        notice.arguments = json!({"content": "x".repeat(50)});
        let preview = notice.arguments_preview(20);
        assert_eq!(preview.chars().count(), 20);
        assert!(preview.ends_with('…'));
    }

    #[test]
    fn links_do_not_double_slashes() {
        let id = Uuid::nil();
        let links = Links::new("https://gw.example/");
        assert_eq!(links.approve_url(id), format!("https://gw.example/requests/{id}"));
        assert_eq!(links.api_approve_url(id), format!("https://gw.example/admin/permissions/{id}/approve"));
        assert_eq!(links.request_url(id), format!("https://gw.example/admin/permissions/{id}"));
    }
}
