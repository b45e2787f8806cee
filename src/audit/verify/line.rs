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
    if let Some(summary) = summarize_as_written(line_number, text, scratch) {
        return Ok(summary);
    }
    let malformed =
        |why: String| Divergence { kind: DivergenceKind::Malformed, position: None, line: line_number, detail: why };
    let value: Value = serde_json::from_str(text).map_err(|error| malformed(format!("not JSON: {error}")))?;
    summarize_value(line_number, &value, scratch).map_err(malformed)
}

/// The fast path, for a line as the exporter wrote it: only the top level is parsed, and
/// the content's bytes are taken as they are (each value's text verbatim, keys in order).
/// If they hash to the line's `hash`, they are the sealed canonical bytes (SHA-256 has no
/// known collisions), so the line is intact. `None` for anything else — a line written
/// another way, edited, unsealed, a checkpoint — which the full check then reads.
fn summarize_as_written(line_number: u64, text: &str, scratch: &mut Vec<u8>) -> Option<LineSummary> {
    use std::collections::BTreeMap;

    use serde_json::value::RawValue;

    use crate::audit::chain::UNHASHED_FIELDS;

    let fields: BTreeMap<&str, &RawValue> = serde_json::from_str(text).ok()?;
    let hex = |name: &str| {
        fields.get(name).and_then(|raw| raw.get().strip_prefix('"')?.strip_suffix('"').and_then(parse_hash))
    };
    let (prev_hash, hash) = (hex("prev_hash")?, hex("hash")?);
    let position = fields.get("position").or_else(|| fields.get("id"))?.get().parse::<i64>().ok()?;
    scratch.clear();
    scratch.push(b'{');
    for (i, (key, raw)) in fields.iter().filter(|(key, _)| !UNHASHED_FIELDS.contains(key)).enumerate() {
        if i > 0 {
            scratch.push(b',');
        }
        scratch.push(b'"');
        scratch.extend_from_slice(key.as_bytes());
        scratch.extend_from_slice(b"\":");
        scratch.extend_from_slice(raw.get().as_bytes());
    }
    scratch.push(b'}');
    let seal = LineSeal { prev_hash, hash, intact: true };
    (link(&prev_hash, scratch) == hash).then_some(LineSummary::Event(EventSummary {
        line: line_number,
        position,
        seal: Some(seal),
    }))
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
