//! The sealer: one single-leader worker that extends both chains behind the snapshot
//! horizon and signs checkpoints. It never takes part in an append: writers only ever
//! insert into `events`/`admin_audit`, and the sealer reads what has settled.

use std::sync::Arc;
use std::time::Duration;

use alexandria_projections::backoff::Backoff;
use alexandria_projections::log::read_settled_batch;
use alexandria_projections::runner::{lock_checkpoint, lock_key, record_error, register, store_checkpoint};
use alexandria_projections::{EventListener, Leadership, LogPosition};
use chrono::{SecondsFormat, Utc};
use sqlx::{PgConnection, PgPool, Row};
use tokio_util::sync::CancellationToken;

use super::chain::{hash_from_bytes, line_hash, Hash, GENESIS};
use super::checkpoints::{self, CheckpointSink};
use super::log::{admin_lines, content_lines, ADMIN_AUDIT_CHAIN, EVENTS_CHAIN};
use super::signing::AuditKey;

/// The sealer's checkpoint row in `projection_checkpoints` (so `projections status` and
/// the projection lag metric show how far behind sealing is), and its lock's name.
pub const SEALER_NAME: &str = "event_seals";

/// When the sealer signs a checkpoint, and how it batches.
#[derive(Debug, Clone)]
pub struct SealerSettings {
    /// A checkpoint after this many new seals of a chain...
    pub checkpoint_every_seals: i64,
    /// ...or this long after the last one, whichever comes first (only if anything new
    /// was sealed).
    pub checkpoint_every: Duration,
    pub batch_size: i64,
    /// Fallback wake-up when notifications are lost; admin audit rows are found this way.
    pub poll_interval: Duration,
    /// Copy each checkpoint to the notification webhook (when one is configured).
    pub push_to_webhook: bool,
}

impl Default for SealerSettings {
    fn default() -> Self {
        SealerSettings {
            checkpoint_every_seals: 1000,
            checkpoint_every: Duration::from_secs(60),
            batch_size: 1000,
            poll_interval: Duration::from_secs(1),
            push_to_webhook: false,
        }
    }
}

/// The last seal of a chain: its place, the sealed row's position and its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: i64,
    pub position: i64,
    pub hash: Hash,
}

async fn head(conn: &mut PgConnection, chain: &str) -> Result<Option<ChainHead>, sqlx::Error> {
    let sql = match chain {
        ADMIN_AUDIT_CHAIN => "SELECT seq, audit_id AS position, hash FROM admin_audit_seals ORDER BY seq DESC LIMIT 1",
        _ => "SELECT seq, position, hash FROM event_seals ORDER BY seq DESC LIMIT 1",
    };
    let Some(row) = sqlx::query(sql).fetch_optional(&mut *conn).await? else { return Ok(None) };
    let hash: Vec<u8> = row.try_get("hash")?;
    let hash = hash_from_bytes(&hash).ok_or_else(|| sqlx::Error::Decode("a seal's hash is not 32 bytes".into()))?;
    Ok(Some(ChainHead { seq: row.try_get("seq")?, position: row.try_get("position")?, hash }))
}

/// The current head of a chain (`None`: nothing sealed yet).
pub async fn chain_head(pool: &PgPool, chain: &str) -> Result<Option<ChainHead>, sqlx::Error> {
    head(&mut *pool.acquire().await?, chain).await
}

/// Seals the next settled events, in one transaction with the sealer's checkpoint (whose
/// row lock serialises sealers). Returns how many it sealed and the new head.
pub async fn seal_event_batch(pool: &PgPool, batch_size: i64) -> anyhow::Result<(usize, Option<ChainHead>)> {
    let mut tx = pool.begin().await?;
    let checkpoint = lock_checkpoint(&mut tx, SEALER_NAME).await?;
    let events = read_settled_batch(&mut tx, checkpoint, batch_size).await?;
    let Some(last) = events.last().map(|event| event.position()) else {
        tx.rollback().await?;
        return Ok((0, None));
    };
    let lines = content_lines(&mut tx, &events).await?;
    let start = head(&mut tx, EVENTS_CHAIN).await?;
    let (mut seq, mut prev) = start.map_or((0, GENESIS), |head| (head.seq, head.hash));
    let (mut seqs, mut positions, mut prevs, mut hashes) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (event, line) in events.iter().zip(&lines) {
        let hash = line_hash(&prev, line);
        seq += 1;
        seqs.push(seq);
        positions.push(event.global_position);
        prevs.push(prev.to_vec());
        hashes.push(hash.to_vec());
        prev = hash;
    }
    sqlx::query(
        "INSERT INTO event_seals (seq, position, prev_hash, hash) \
         SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[])",
    )
    .bind(&seqs)
    .bind(&positions)
    .bind(&prevs)
    .bind(&hashes)
    .execute(&mut *tx)
    .await?;
    store_checkpoint(&mut tx, SEALER_NAME, last).await?;
    tx.commit().await?;
    Ok((events.len(), Some(ChainHead { seq, position: last.global_position, hash: prev })))
}

/// Seals the next settled admin audit rows. Serialised by a transaction-scoped advisory
/// lock; the chain's own head is its checkpoint.
pub async fn seal_admin_batch(pool: &PgPool, batch_size: i64) -> anyhow::Result<(usize, Option<ChainHead>)> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('alexandria.audit.admin_audit_seals'))")
        .execute(&mut *tx)
        .await?;
    let after: Option<(i64, i64)> =
        sqlx::query_as("SELECT tx_id::text::bigint, audit_id FROM admin_audit_seals ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
    let after = after.map_or(LogPosition::START, |(tx_id, id)| LogPosition { tx_id, global_position: id });
    let rows = admin_lines(&mut tx, after, batch_size, true).await?;
    if rows.is_empty() {
        tx.rollback().await?;
        return Ok((0, None));
    }
    let start = head(&mut tx, ADMIN_AUDIT_CHAIN).await?;
    let (mut seq, mut prev) = start.map_or((0, GENESIS), |head| (head.seq, head.hash));
    let (mut seqs, mut ids, mut tx_ids, mut prevs, mut hashes) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for row in &rows {
        let hash = line_hash(&prev, &row.line);
        seq += 1;
        seqs.push(seq);
        ids.push(row.at.global_position);
        tx_ids.push(row.at.tx_id.to_string());
        prevs.push(prev.to_vec());
        hashes.push(hash.to_vec());
        prev = hash;
    }
    sqlx::query(
        "INSERT INTO admin_audit_seals (seq, audit_id, tx_id, prev_hash, hash) \
         SELECT s, a, t::xid8, p, h FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::bytea[], $5::bytea[]) \
           AS u(s, a, t, p, h)",
    )
    .bind(&seqs)
    .bind(&ids)
    .bind(&tx_ids)
    .bind(&prevs)
    .bind(&hashes)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let position = rows.last().map_or(0, |row| row.at.global_position);
    Ok((rows.len(), Some(ChainHead { seq, position, hash: prev })))
}

/// Keeps both chains sealed and signs checkpoints, on one replica at a time.
pub struct Sealer {
    pub pool: PgPool,
    pub listener: Arc<EventListener>,
    pub key: Arc<AuditKey>,
    pub settings: SealerSettings,
    /// Where else each checkpoint goes (the webhook channel, when configured).
    pub sink: Option<Arc<dyn CheckpointSink>>,
}

/// A chain's checkpointing state in the leader.
struct Signed {
    chain: &'static str,
    seq: i64,
    at: tokio::time::Instant,
}

impl Sealer {
    pub async fn run(self, shutdown: CancellationToken) {
        let standby = self.settings.poll_interval * 5;
        Leadership::run_while_leading(&self.pool, &lock_key(SEALER_NAME), standby, &shutdown, |leadership| {
            self.lead(leadership, &shutdown)
        })
        .await
    }

    async fn lead(&self, mut leadership: Leadership, shutdown: &CancellationToken) -> Leadership {
        if let Err(error) = register(&self.pool, SEALER_NAME).await {
            tracing::warn!(%error, "cannot register the sealer's checkpoint");
        }
        let mut changes = self.listener.subscribe();
        let mut failures = Backoff::new(self.settings.poll_interval, Duration::from_secs(15)).retries();
        let mut signed = Vec::new();
        for chain in [EVENTS_CHAIN, ADMIN_AUDIT_CHAIN] {
            let seq = checkpoints::last_signed_seq(&self.pool, chain).await.unwrap_or(0);
            signed.push(Signed { chain, seq, at: tokio::time::Instant::now() });
        }
        let mut lock_checked = tokio::time::Instant::now();
        loop {
            // The leader's heartbeat, however busy (as every single-leader worker).
            if lock_checked.elapsed() >= Duration::from_secs(1) {
                lock_checked = tokio::time::Instant::now();
                if !leadership.is_held().await {
                    tracing::warn!("the sealer lost its lock connection");
                    return leadership;
                }
            }
            let nap = match self.round(&mut signed).await {
                Ok(true) => continue, // a full batch: more is waiting
                Ok(false) => {
                    failures.reset();
                    self.settings.poll_interval
                }
                Err(error) => {
                    tracing::error!(error = format!("{error:#}"), "sealing failed");
                    record_error(&self.pool, SEALER_NAME, &error).await;
                    failures.next_delay()
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return leadership,
                _ = changes.recv() => {}
                _ = tokio::time::sleep(nap) => {}
            }
        }
    }

    /// One batch of each chain, then any checkpoint due. `true` when a batch was full.
    async fn round(&self, signed: &mut [Signed]) -> anyhow::Result<bool> {
        let batch = self.settings.batch_size;
        let (events, events_head) = seal_event_batch(&self.pool, batch).await?;
        let (admin, admin_head) = seal_admin_batch(&self.pool, batch).await?;
        for state in signed.iter_mut() {
            let head = match state.chain {
                EVENTS_CHAIN => events_head,
                _ => admin_head,
            };
            let head = match head {
                Some(head) => Some(head),
                None if state.at.elapsed() >= self.settings.checkpoint_every => {
                    chain_head(&self.pool, state.chain).await?
                }
                None => None,
            };
            let Some(head) = head else { continue };
            let due = head.seq - state.seq >= self.settings.checkpoint_every_seals
                || (head.seq > state.seq && state.at.elapsed() >= self.settings.checkpoint_every);
            if due {
                self.checkpoint(state.chain, head).await?;
                state.seq = head.seq;
                state.at = tokio::time::Instant::now();
            }
        }
        Ok(events as i64 == batch || admin as i64 == batch)
    }

    async fn checkpoint(&self, chain: &'static str, head: ChainHead) -> anyhow::Result<()> {
        let signed_at = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
        let checkpoint = self.key.sign(chain, head.seq, head.position, &head.hash, signed_at);
        if !checkpoints::insert(&self.pool, &checkpoint).await? {
            return Ok(()); // another leader signed this place already
        }
        // A copy outside the database: the log output...
        tracing::info!(
            target: "alexandria::audit",
            checkpoint = %serde_json::to_string(&checkpoint).unwrap_or_default(),
            "signed audit checkpoint"
        );
        // ...and the webhook channel, when configured.
        // Spawned: a slow receiver never holds sealing up.
        if let Some(sink) = self.sink.clone() {
            tokio::spawn(async move { sink.push(&checkpoint).await });
        }
        Ok(())
    }
}
