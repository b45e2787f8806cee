//! `alexandria events verify`: checking a chain from an export file or from the database.

use std::io::Read;
use std::path::Path;

use alexandria_projections::LogPosition;
use anyhow::Context;
use ed25519_dalek::VerifyingKey;
use sqlx::PgPool;

use super::checkpoints;
use super::export::begin_snapshot;
use super::log::{admin_lines, event_lines, sealed_position, ChainLine, ADMIN_AUDIT_CHAIN, EVENTS_CHAIN};
use super::signing::Checkpoint;
use super::verify::{summarize, summarize_value, ChainVerifier, Divergence, DivergenceKind, VerifyReport};

/// Bytes read per round; each round's lines are split between the threads.
const BLOCK_BYTES: usize = 16 << 20;

/// A verifier, or (when a checkpoint given to it is not trusted) the report that says so.
fn start(key: Option<VerifyingKey>, checkpoints: Vec<Checkpoint>) -> Result<ChainVerifier, Box<VerifyReport>> {
    ChainVerifier::new(key, checkpoints)
        .map_err(|divergence| Box::new(VerifyReport { divergence: Some(divergence), ..Default::default() }))
}

/// Checks an export file. The file is read in blocks of whole lines; each block's lines
/// are checked on their own in parallel (one thread per core), then linked in order.
/// `checkpoints` are held apart from the file; those of `chain` are checked (the file is
/// that chain's export: the event log's or the admin audit trail's).
pub fn verify_file(
    path: &Path,
    chain: &str,
    key: Option<VerifyingKey>,
    checkpoints: Vec<Checkpoint>,
    mut on_progress: impl FnMut(u64),
) -> anyhow::Result<VerifyReport> {
    let mut file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut verifier = match start(key, checkpoints.into_iter().filter(|c| c.chain == chain).collect()) {
        Ok(verifier) => verifier,
        Err(report) => return Ok(*report),
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 16);
    let mut block: Vec<u8> = Vec::with_capacity(BLOCK_BYTES + (1 << 20));
    let mut first_line = 1u64;
    let mut at_end = false;
    while !at_end {
        // Fill the block, then keep its whole lines; the rest starts the next block.
        let want = BLOCK_BYTES.max(block.len()) as u64;
        let read = (&mut file)
            .take(want)
            .read_to_end(&mut block)
            .with_context(|| format!("cannot read {}", path.display()))?;
        at_end = read == 0;
        let whole = if at_end { block.len() } else { memchr::memrchr(b'\n', &block).map_or(0, |i| i + 1) };
        let mut lines: Vec<&[u8]> = Vec::with_capacity(whole / 256);
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', &block[..whole]) {
            lines.push(&block[start..end]);
            start = end + 1;
        }
        if start < whole {
            lines.push(&block[start..whole]);
        }
        let lines = &lines[..];
        let per_thread = lines.len().div_ceil(threads).max(1);
        let summaries: Vec<Vec<_>> = std::thread::scope(|scope| {
            let handles: Vec<_> = lines
                .chunks(per_thread)
                .enumerate()
                .map(|(part, chunk)| {
                    let base = first_line + (part * per_thread) as u64;
                    scope.spawn(move || {
                        let mut scratch = Vec::with_capacity(1024);
                        chunk
                            .iter()
                            .enumerate()
                            .filter(|(_, bytes)| !bytes.trim_ascii().is_empty())
                            .map(|(i, bytes)| match std::str::from_utf8(bytes) {
                                Ok(text) => summarize(base + i as u64, text.trim_end(), &mut scratch),
                                Err(_) => Err(Divergence {
                                    kind: DivergenceKind::Malformed,
                                    position: None,
                                    line: base + i as u64,
                                    detail: "not UTF-8".to_owned(),
                                }),
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().map(|handle| handle.join().unwrap_or_default()).collect()
        });
        for summary in summaries.into_iter().flatten() {
            match summary {
                Ok(summary) => verifier.push(summary),
                Err(divergence) => verifier.reject(divergence),
            }
        }
        first_line += lines.len() as u64;
        on_progress(first_line - 1);
        block.drain(..whole);
    }
    Ok(verifier.finish(|_| None))
}

/// Both chains checked against the database, in one snapshot: the event log and the
/// admin audit trail, each against its stored seals and checkpoints (and `extra`
/// checkpoints held apart).
pub async fn verify_live(
    pool: &PgPool,
    key: Option<VerifyingKey>,
    extra: Vec<Checkpoint>,
    mut on_progress: impl FnMut(u64),
) -> anyhow::Result<[(&'static str, VerifyReport); 2]> {
    let mut tx = begin_snapshot(pool).await?;
    let mut reports = Vec::new();
    let mut done = 0u64;
    for chain in [EVENTS_CHAIN, ADMIN_AUDIT_CHAIN] {
        let mut known = checkpoints::list_in(&mut tx, chain).await?;
        known.extend(extra.iter().filter(|c| c.chain == chain).cloned());
        let mut verifier = match start(key, dedup(known)) {
            Ok(verifier) => verifier,
            Err(report) => {
                reports.push((chain, *report));
                continue;
            }
        };
        let mut after = LogPosition::START;
        let mut row = 0u64;
        let mut scratch = Vec::with_capacity(1024);
        loop {
            let batch: Vec<ChainLine> = match chain {
                EVENTS_CHAIN => event_lines(&mut tx, after, 5000).await?,
                _ => admin_lines(&mut tx, after, 5000, false).await?,
            };
            let Some(last) = batch.last() else { break };
            after = last.at;
            for line in &batch {
                row += 1;
                match summarize_value(row, &line.line, &mut scratch) {
                    Ok(summary) => verifier.push(summary),
                    Err(why) => verifier.reject(Divergence {
                        kind: DivergenceKind::Malformed,
                        position: Some(line.at.global_position),
                        line: row,
                        detail: why,
                    }),
                }
            }
            done += batch.len() as u64;
            on_progress(done);
        }
        let missing = match verifier.broken_at_seq() {
            Some(seq) => sealed_position(&mut tx, chain, seq).await?,
            None => None,
        };
        reports.push((chain, verifier.finish(|_| missing)));
    }
    tx.rollback().await?;
    let mut reports = reports.into_iter();
    match (reports.next(), reports.next()) {
        (Some(events), Some(admin)) => Ok([events, admin]),
        _ => anyhow::bail!("both chains are checked"),
    }
}

fn dedup(mut checkpoints: Vec<Checkpoint>) -> Vec<Checkpoint> {
    checkpoints.sort_by_key(|c| c.seq);
    checkpoints.dedup();
    checkpoints
}
