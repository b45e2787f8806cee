//! One line checked on its own: what it is, and whether its hash is its content's hash
//! after its own `prev_hash` (needs nothing from other lines, so it runs in parallel).

use serde_json::Value;

use super::{Divergence, DivergenceKind};
use crate::audit::chain::{canonical_line, link, parse_hash, Hash};
use crate::audit::signing::Checkpoint;

/// What one line says, once checked on its own.
#[derive(Debug, Clone)]
pub enum LineSummary {
    Event(EventSummary),
    Checkpoint(Box<Checkpoint>),
}

#[derive(Debug, Clone)]
pub struct EventSummary {
    /// 1-based line number (or row number, live).
    pub line: u64,
    pub position: i64,
    /// `None`: not sealed (yet).
    pub seal: Option<LineSeal>,
}

#[derive(Debug, Clone, Copy)]
pub struct LineSeal {
    pub prev_hash: Hash,
    pub hash: Hash,
    /// `hash` is the hash of the line's content after `prev_hash`.
    pub intact: bool,
}

/// Checks one line on its own. `scratch` is reused between calls.
pub fn summarize(line_number: u64, text: &str, scratch: &mut Vec<u8>) -> Result<LineSummary, Divergence> {
    let malformed =
        |why: String| Divergence { kind: DivergenceKind::Malformed, position: None, line: line_number, detail: why };
    let value: Value = serde_json::from_str(text).map_err(|error| malformed(format!("not JSON: {error}")))?;
    summarize_value(line_number, &value, scratch).map_err(malformed)
}

/// [`summarize`] of a parsed line.
pub fn summarize_value(line_number: u64, value: &Value, scratch: &mut Vec<u8>) -> Result<LineSummary, String> {
    if let Some(checkpoint) = value.get("checkpoint") {
        let checkpoint: Checkpoint =
            serde_json::from_value(checkpoint.clone()).map_err(|error| format!("not a checkpoint: {error}"))?;
        return Ok(LineSummary::Checkpoint(Box::new(checkpoint)));
    }
    let position = value
        .get("position")
        .or_else(|| value.get("id"))
        .and_then(Value::as_i64)
        .ok_or_else(|| "no integer `position`".to_owned())?;
    let hash_field = |name: &str| match value.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => parse_hash(text).map(Some).ok_or_else(|| format!("`{name}` is not 64 hex digits")),
        Some(_) => Err(format!("`{name}` is not a string")),
    };
    let seal = match (hash_field("prev_hash")?, hash_field("hash")?) {
        (Some(prev_hash), Some(hash)) => {
            scratch.clear();
            canonical_line(value, scratch);
            Some(LineSeal { prev_hash, hash, intact: link(&prev_hash, scratch) == hash })
        }
        (None, None) => None,
        _ => return Err("has one of `hash` and `prev_hash` without the other".to_owned()),
    };
    Ok(LineSummary::Event(EventSummary { line: line_number, position, seal }))
}
