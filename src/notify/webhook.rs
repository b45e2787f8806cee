//! The webhook channel: a signed JSON POST per notice.
//!
//! The signature is HMAC-SHA256, keyed with the configured secret, over
//! `<timestamp>.<body>` (the exact bytes sent). The timestamp is signed too, so a receiver
//! that refuses old timestamps also refuses replays. `docs/NOTIFICATIONS.md` has the
//! receiver's recipe.

use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use sha2::Sha256;

use super::notice::{Links, RequestNotice};
use super::{Channel, DeliveryError, NoticeKind, Notifier};

/// Unix seconds when the delivery was signed.
pub const TIMESTAMP_HEADER: &str = "X-Alexandria-Timestamp";
/// `sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`.
pub const SIGNATURE_HEADER: &str = "X-Alexandria-Signature";
/// `permission_request.pending` or `permission_request.reviewed`.
pub const EVENT_HEADER: &str = "X-Alexandria-Event";
/// `<request id>/<kind>`: the same on every retry of one notice, so receivers can dedupe.
pub const DELIVERY_HEADER: &str = "X-Alexandria-Delivery";

/// `sha256=<hex>` for a body sent at `timestamp`.
pub fn signature(secret: &SecretString, timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The event name of a notice kind, in the body and the `X-Alexandria-Event` header.
pub fn event_name(kind: NoticeKind) -> &'static str {
    match kind {
        NoticeKind::Pending => "permission_request.pending",
        NoticeKind::Reviewed => "permission_request.reviewed",
    }
}

/// The JSON body of a delivery.
pub fn payload(kind: NoticeKind, notice: &RequestNotice, links: &Links) -> Value {
    json!({
        "event": event_name(kind),
        "id": notice.id,
        "request_type": notice.request_type,
        "agent": notice.agent,
        "tool": notice.tool,
        "arguments": notice.arguments,
        "status": notice.status,
        "requested_by": notice.requested_by,
        "created_at": notice.created_at,
        "expires_at": notice.expires_at,
        "reviewed_by": notice.reviewed_by,
        "reviewed_at": notice.reviewed_at,
        "reason": notice.reason,
        "approve_url": links.approve_url(notice.id),
        "api_approve_url": links.api_approve_url(notice.id),
        "request_url": links.request_url(notice.id),
        "test": notice.test,
    })
}

pub struct WebhookNotifier {
    url: String,
    secret: SecretString,
    client: reqwest::Client,
    links: Links,
    timeout: Duration,
}

impl WebhookNotifier {
    pub fn new(url: String, secret: SecretString, client: reqwest::Client, links: Links, timeout: Duration) -> Self {
        Self { url, secret, client, links, timeout }
    }

    async fn send(&self, kind: NoticeKind, notice: &RequestNotice) -> Result<(), DeliveryError> {
        // Serialising a `Value` cannot fail.
        let body = serde_json::to_vec(&payload(kind, notice, &self.links)).unwrap_or_default();
        let timestamp = Utc::now().timestamp();
        let sent = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, signature(&self.secret, timestamp, &body))
            .header(EVENT_HEADER, event_name(kind))
            .header(DELIVERY_HEADER, format!("{}/{}", notice.id, kind.as_str()))
            .body(body)
            .send()
            .await;
        DeliveryError::check(sent, self.timeout).await
    }
}

#[async_trait]
impl Notifier for WebhookNotifier {
    fn channel(&self) -> Channel {
        Channel::Webhook
    }

    async fn notify_pending(&self, notice: &RequestNotice) -> Result<(), DeliveryError> {
        self.send(NoticeKind::Pending, notice).await
    }

    async fn notify_reviewed(&self, notice: &RequestNotice) -> Result<(), DeliveryError> {
        self.send(NoticeKind::Reviewed, notice).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_vector() {
        // printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac 'topsecret-0123456789'
        let secret = SecretString::from("topsecret-0123456789".to_owned());
        assert_eq!(
            signature(&secret, 1_700_000_000, br#"{"a":1}"#),
            "sha256=626e5ba229f6bb6d3f4106bca9a65587340c1de8729475535aca9ac9323003ff"
        );
    }

    #[test]
    fn the_secret_does_not_debug_print() {
        let secret = SecretString::from("topsecret-0123456789".to_owned());
        assert!(!format!("{secret:?}").contains("topsecret"));
    }
}
