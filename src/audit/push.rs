//! Copies of checkpoints on the webhook channel (`ALEXANDRIA_AUDIT_CHECKPOINT_WEBHOOK`,
//! off by default): each signed checkpoint is POSTed to the configured webhook, signed
//! like a notice (docs/NOTIFICATIONS.md), as event `audit.checkpoint`. One attempt each:
//! a missed copy is not retried (the checkpoint is in the database and the log output,
//! and the next one covers it).

use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use serde_json::json;
use sqlx::PgPool;

use super::checkpoints::CheckpointSink;
use super::signing::Checkpoint;
use crate::notify::settings::NotificationSettings;
use crate::notify::webhook::{signature, DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};

/// The `X-Alexandria-Event` of a checkpoint copy.
pub const CHECKPOINT_EVENT: &str = "audit.checkpoint";

pub struct WebhookCheckpoints {
    pool: PgPool,
    client: reqwest::Client,
    timeout: Duration,
}

impl WebhookCheckpoints {
    pub fn new(pool: PgPool, timeout: Duration) -> Self {
        WebhookCheckpoints { pool, client: reqwest::Client::new(), timeout }
    }

    async fn send(&self, checkpoint: &Checkpoint) -> anyhow::Result<bool> {
        let settings = NotificationSettings::load(&mut *self.pool.acquire().await?).await?;
        let (Some(url), Some(secret)) = (settings.webhook_url, settings.webhook_secret) else {
            return Ok(false); // no webhook configured: nothing to copy to
        };
        // Serialising a `Value` cannot fail.
        let body =
            serde_json::to_vec(&json!({"event": CHECKPOINT_EVENT, "checkpoint": checkpoint})).unwrap_or_default();
        let timestamp = Utc::now().timestamp();
        let response = self
            .client
            .post(&url)
            .timeout(self.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, signature(&secret, timestamp, &body))
            .header(EVENT_HEADER, CHECKPOINT_EVENT)
            .header(DELIVERY_HEADER, format!("audit/{}/{}", checkpoint.chain, checkpoint.seq))
            .body(body)
            .send()
            .await?;
        if !response.status().is_success() {
            anyhow::bail!("the webhook answered {}", response.status());
        }
        Ok(true)
    }
}

#[async_trait]
impl CheckpointSink for WebhookCheckpoints {
    async fn push(&self, checkpoint: &Checkpoint) {
        match self.send(checkpoint).await {
            Ok(true) => {
                tracing::debug!(chain = %checkpoint.chain, seq = checkpoint.seq, "checkpoint sent to the webhook")
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(
                chain = %checkpoint.chain,
                seq = checkpoint.seq,
                error = format!("{error:#}"),
                "could not send a checkpoint to the webhook"
            ),
        }
    }
}
