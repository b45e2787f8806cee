//! Checking a chain: line by line, the first place where history diverges, and what
//! happened there as well as the lines can tell (no I/O: the CLI feeds it a file, the
//! live check the database).
//!
//! A line is first checked on its own ([`summarize`]: is its `hash` the hash of its
//! content after its own `prev_hash`?), which needs nothing from other lines and so runs
//! in parallel; then [`ChainVerifier::push`] checks, in order, that each line's
//! `prev_hash` is the hash of the line before it. Together that is the chain rule.

use std::collections::HashMap;

use ed25519_dalek::VerifyingKey;

use super::chain::{Hash, GENESIS};
use super::signing::Checkpoint;

mod line;
pub use line::{summarize, summarize_value, EventSummary, LineSeal, LineSummary};

/// What kind of change a divergence looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DivergenceKind {
    /// The event's content is not what was sealed.
    Edited,
    /// A sealed event is missing.
    Deleted,
    /// An event that was never sealed sits among sealed ones (or a line not of the chain).
    Inserted,
    /// Sealed events are out of their sealed order.
    Reordered,
    /// The log ends before a signed checkpoint's last event.
    Truncated,
    /// The chain at a signed checkpoint's place is not what was signed.
    CheckpointMismatch,
    /// A checkpoint whose signature does not verify with the trusted key.
    BadSignature,
    /// A line that is not an export line.
    Malformed,
}

impl DivergenceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DivergenceKind::Edited => "edited",
            DivergenceKind::Deleted => "deleted",
            DivergenceKind::Inserted => "inserted",
            DivergenceKind::Reordered => "reordered",
            DivergenceKind::Truncated => "truncated",
            DivergenceKind::CheckpointMismatch => "checkpoint mismatch",
            DivergenceKind::BadSignature => "bad checkpoint signature",
            DivergenceKind::Malformed => "malformed",
        }
    }
}

/// Where history diverges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    pub kind: DivergenceKind,
    /// The event's global position (an admin audit row's id), when one can be named.
    pub position: Option<i64>,
    /// The line (or row, live) where it was found.
    pub line: u64,
    pub detail: String,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.position {
            Some(position) => {
                write!(f, "position {position}: {} (line {}): {}", self.kind.as_str(), self.line, self.detail)
            }
            None => write!(f, "line {}: {}: {}", self.line, self.kind.as_str(), self.detail),
        }
    }
}

/// What a chain check found.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Lines that are events.
    pub events: u64,
    /// Sealed events checked (the chain's length).
    pub sealed: u64,
    /// Events after the last seal (not yet sealed, so not covered).
    pub unsealed: u64,
    pub head: Option<(i64, Hash)>,
    /// Checkpoints whose signature and place in the chain were checked.
    pub checkpoints_verified: u64,
    /// Checkpoints seen but not checked (no trusted public key given).
    pub checkpoints_unchecked: u64,
    /// The first divergence, if any.
    pub divergence: Option<Divergence>,
}

/// Checks lines in order. Feed it every line with [`push`](Self::push), then
/// [`finish`](Self::finish).
pub struct ChainVerifier {
    key: Option<VerifyingKey>,
    prev: Hash,
    seq: i64,
    last_position: Option<i64>,
    /// Checkpoints given apart from the lines, by seq: checked when the chain reaches them.
    expected: HashMap<i64, Vec<Checkpoint>>,
    first_unsealed: Option<EventSummary>,
    report: VerifyReport,
    /// The line where the chain broke, and every event line after it (to tell the kind).
    broken: Option<(EventSummary, Vec<EventSummary>)>,
}

impl ChainVerifier {
    /// `key`: the public key checkpoints must be signed with (without one, checkpoints are
    /// not checked). `checkpoints`: signed checkpoints held apart from the lines.
    pub fn new(key: Option<VerifyingKey>, checkpoints: Vec<Checkpoint>) -> Result<Self, Divergence> {
        let mut verifier = ChainVerifier {
            key,
            prev: GENESIS,
            seq: 0,
            last_position: None,
            expected: HashMap::new(),
            first_unsealed: None,
            report: VerifyReport::default(),
            broken: None,
        };
        for checkpoint in checkpoints {
            verifier.check_signature(&checkpoint, 0)?;
            verifier.expected.entry(checkpoint.seq).or_default().push(checkpoint);
        }
        Ok(verifier)
    }

    /// Records a divergence found outside the chain rule (a line that is not JSON).
    pub fn reject(&mut self, divergence: Divergence) {
        self.fail(divergence);
    }

    /// The place of the seal the chain broke before, if it broke.
    pub fn broken_at_seq(&self) -> Option<i64> {
        self.broken.as_ref().map(|_| self.seq + 1)
    }

    pub fn has_failed(&self) -> bool {
        self.report.divergence.is_some() || self.broken.is_some()
    }

    fn fail(&mut self, divergence: Divergence) {
        if !self.has_failed() {
            self.report.divergence = Some(divergence);
        }
    }

    fn check_signature(&mut self, checkpoint: &Checkpoint, line: u64) -> Result<(), Divergence> {
        let Some(key) = &self.key else {
            self.report.checkpoints_unchecked += 1;
            return Ok(());
        };
        checkpoint.verify(key).map_err(|error| Divergence {
            kind: DivergenceKind::BadSignature,
            position: Some(checkpoint.position),
            line,
            detail: format!("the checkpoint of seal {} is not trusted: {error}", checkpoint.seq),
        })
    }

    pub fn push(&mut self, summary: LineSummary) {
        match summary {
            LineSummary::Checkpoint(checkpoint) => self.push_checkpoint(*checkpoint),
            LineSummary::Event(event) => self.push_event(event),
        }
    }

    fn push_checkpoint(&mut self, checkpoint: Checkpoint) {
        if self.has_failed() {
            return;
        }
        let line = self.report.events + 1;
        if let Err(divergence) = self.check_signature(&checkpoint, line) {
            return self.fail(divergence);
        }
        if self.key.is_none() {
            return;
        }
        // A checkpoint line follows the event it covers.
        if checkpoint.seq != self.seq || checkpoint.hash != hex::encode(self.prev) {
            return self.fail(Divergence {
                kind: DivergenceKind::CheckpointMismatch,
                position: Some(checkpoint.position),
                line,
                detail: format!(
                    "the signed checkpoint says seal {} (position {}) has hash {}, the chain here is seal {} with {}",
                    checkpoint.seq,
                    checkpoint.position,
                    checkpoint.hash,
                    self.seq,
                    hex::encode(self.prev)
                ),
            });
        }
        self.report.checkpoints_verified += 1;
    }

    fn push_event(&mut self, event: EventSummary) {
        self.report.events += 1;
        if let Some((_, rest)) = &mut self.broken {
            rest.push(event);
            return;
        }
        if self.has_failed() {
            return;
        }
        let Some(seal) = event.seal else {
            self.report.unsealed += 1;
            self.first_unsealed.get_or_insert(event);
            return;
        };
        if let Some(unsealed) = self.first_unsealed.take() {
            return self.fail(Divergence {
                kind: DivergenceKind::Inserted,
                position: Some(unsealed.position),
                line: unsealed.line,
                detail: format!(
                    "this event was never sealed, yet sealed events follow it (position {})",
                    event.position
                ),
            });
        }
        if seal.prev_hash != self.prev || !seal.intact {
            self.broken = Some((event, Vec::new()));
            return;
        }
        self.prev = seal.hash;
        self.seq += 1;
        self.last_position = Some(event.position);
        self.report.sealed += 1;
        self.report.head = Some((event.position, seal.hash));
        for checkpoint in self.expected.remove(&self.seq).unwrap_or_default() {
            if checkpoint.hash != hex::encode(seal.hash) || checkpoint.position != event.position {
                return self.fail(Divergence {
                    kind: DivergenceKind::CheckpointMismatch,
                    position: Some(event.position),
                    line: event.line,
                    detail: format!(
                        "the signed checkpoint says seal {} is position {} with hash {}; the chain has position {} with {}: \
                         history up to here was rewritten, seals and all",
                        checkpoint.seq,
                        checkpoint.position,
                        checkpoint.hash,
                        event.position,
                        hex::encode(seal.hash)
                    ),
                });
            }
            self.report.checkpoints_verified += 1;
        }
    }

    /// The report. `missing_seal` names the position of the seal that follows the
    /// chain's last good one, when the caller can know it (live: from the seals table).
    pub fn finish(mut self, missing_seal: impl FnOnce(i64) -> Option<i64>) -> VerifyReport {
        if let Some((at, rest)) = self.broken.take() {
            let divergence = self.classify(at, &rest, missing_seal);
            self.fail(divergence);
        }
        if !self.has_failed() {
            if let Some(checkpoint) = self.expected.values().flatten().min_by_key(|c| c.seq) {
                let divergence = Divergence {
                    kind: DivergenceKind::Truncated,
                    position: Some(checkpoint.position),
                    line: self.report.events,
                    detail: format!(
                        "a signed checkpoint covers {} seals up to position {}, but the log's chain ends after {} \
                         (at position {})",
                        checkpoint.seq,
                        checkpoint.position,
                        self.seq,
                        self.last_position.map_or_else(|| "none".to_owned(), |p| p.to_string())
                    ),
                };
                self.fail(divergence);
            }
        }
        self.report
    }

    fn classify(
        &self,
        at: EventSummary,
        rest: &[EventSummary],
        missing_seal: impl FnOnce(i64) -> Option<i64>,
    ) -> Divergence {
        let after = self.last_position.map_or_else(|| "the start".to_owned(), |p| format!("position {p}"));
        let seal = at.seal.unwrap_or(LineSeal { prev_hash: GENESIS, hash: GENESIS, intact: false });
        let continues = |line: &EventSummary| line.seal.is_some_and(|s| s.prev_hash == self.prev);
        let divergence =
            |kind, position, detail: String| Divergence { kind, position: Some(position), line: at.line, detail };
        // Sealed after a line that comes later: moved.
        let belongs_later = at.seal.is_some_and(|seal| {
            seal.intact && rest.iter().any(|line| line.seal.is_some_and(|later| later.hash == seal.prev_hash))
        });
        if belongs_later {
            return divergence(
                DivergenceKind::Reordered,
                at.position,
                format!("sealed events are out of order: this one was sealed after an event that comes later, not after {after}"),
            );
        }
        if rest.first().is_some_and(continues) {
            return divergence(
                DivergenceKind::Inserted,
                at.position,
                format!("this event is not part of the sealed chain: the next line continues from {after}"),
            );
        }
        if seal.prev_hash == self.prev {
            return divergence(
                DivergenceKind::Edited,
                at.position,
                "its content is not what was sealed (its hash does not match)".to_owned(),
            );
        }
        if let Some(successor) = rest.iter().find(|line| continues(line)) {
            return divergence(
                DivergenceKind::Reordered,
                at.position,
                format!(
                    "sealed events are out of order: after {after} the chain continues with position {}, which comes later",
                    successor.position
                ),
            );
        }
        match missing_seal(self.seq + 1) {
            Some(missing) => Divergence {
                kind: DivergenceKind::Deleted,
                position: Some(missing),
                line: at.line,
                detail: format!("the event sealed as seal {} after {after} is missing", self.seq + 1),
            },
            None => divergence(
                DivergenceKind::Deleted,
                at.position,
                format!("an event sealed after {after} is missing before this one"),
            ),
        }
    }
}

#[cfg(test)]
mod tests;
