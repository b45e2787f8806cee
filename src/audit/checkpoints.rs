//! `audit_checkpoints`: the signed checkpoints the sealer made, and where else they go.

use async_trait::async_trait;
use sqlx::{PgPool, Row};

use super::chain::hash_from_bytes;
use super::signing::Checkpoint;

/// Somewhere a checkpoint is copied to, outside the database (the webhook channel).
#[async_trait]
pub trait CheckpointSink: Send + Sync {
    /// Delivers one checkpoint; failures are the sink's to log (a checkpoint is in the
    /// database and the log output either way).
    async fn push(&self, checkpoint: &Checkpoint);
}

/// Stores a checkpoint; `false` when the chain already has one at that place.
pub async fn insert(pool: &PgPool, checkpoint: &Checkpoint) -> Result<bool, sqlx::Error> {
    let hash = hex::decode(&checkpoint.hash).unwrap_or_default();
    let inserted = sqlx::query(
        "INSERT INTO audit_checkpoints (chain, seq, position, hash, signed_at, public_key, signature) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (chain, seq) DO NOTHING",
    )
    .bind(&checkpoint.chain)
    .bind(checkpoint.seq)
    .bind(checkpoint.position)
    .bind(hash)
    .bind(&checkpoint.signed_at)
    .bind(&checkpoint.public_key)
    .bind(&checkpoint.signature)
    .execute(pool)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// The place of a chain's newest checkpoint (0: none yet).
pub async fn last_signed_seq(pool: &PgPool, chain: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COALESCE(max(seq), 0) FROM audit_checkpoints WHERE chain = $1")
        .bind(chain)
        .fetch_one(pool)
        .await
}

/// A chain's checkpoints, oldest first, those after `after_seq`, at most `limit`.
pub async fn list(pool: &PgPool, chain: &str, after_seq: i64, limit: i64) -> Result<Vec<Checkpoint>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT chain, seq, position, hash, signed_at, public_key, signature FROM audit_checkpoints \
         WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(chain)
    .bind(after_seq)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(from_row).collect()
}

/// The newest checkpoint of a chain.
pub async fn latest(pool: &PgPool, chain: &str) -> Result<Option<Checkpoint>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT chain, seq, position, hash, signed_at, public_key, signature FROM audit_checkpoints \
         WHERE chain = $1 ORDER BY seq DESC LIMIT 1",
    )
    .bind(chain)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Every checkpoint of a chain, oldest first, read in the caller's transaction.
pub async fn list_in(conn: &mut sqlx::PgConnection, chain: &str) -> Result<Vec<Checkpoint>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT chain, seq, position, hash, signed_at, public_key, signature FROM audit_checkpoints \
         WHERE chain = $1 ORDER BY seq",
    )
    .bind(chain)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(from_row).collect()
}

fn from_row(row: &sqlx::postgres::PgRow) -> Result<Checkpoint, sqlx::Error> {
    let hash: Vec<u8> = row.try_get("hash")?;
    Ok(Checkpoint {
        chain: row.try_get("chain")?,
        seq: row.try_get("seq")?,
        position: row.try_get("position")?,
        // A damaged row reads as a hash no chain has, so it fails verification.
        hash: hash_from_bytes(&hash).map(hex::encode).unwrap_or_else(|| hex::encode(&hash)),
        signed_at: row.try_get("signed_at")?,
        public_key: row.try_get("public_key")?,
        signature: row.try_get("signature")?,
    })
}
