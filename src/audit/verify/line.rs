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

/// The fast path, for a line as the exporter wrote it: one pass over the top level, which
/// copies every field but the chain's own verbatim (each value's text as it is, keys in
/// the order written). If those bytes hash to the line's `hash` after its `prev_hash`,
/// they are the sealed canonical bytes (SHA-256 has no known collisions), so the line is
/// intact; nested values need not even be validated, since the canonical bytes were
/// valid JSON when they were sealed. `None` for anything else — whitespace, escaped keys,
/// keys out of order, an edit, an unsealed line, a checkpoint — which the full check
/// ([`summarize_value`]) then reads.
fn summarize_as_written(line_number: u64, text: &str, scratch: &mut Vec<u8>) -> Option<LineSummary> {
    let bytes = text.as_bytes();
    if bytes.first() != Some(&b'{') || bytes.get(1) == Some(&b'}') {
        return None;
    }
    let mut at = 1;
    let (mut prev_hash, mut hash, mut position, mut id) = (None, None, None, None);
    scratch.clear();
    scratch.push(b'{');
    loop {
        let field_start = at;
        if bytes.get(at) != Some(&b'"') {
            return None;
        }
        let key_end = at + 1 + memchr::memchr2(b'"', b'\\', &bytes[at + 1..])?;
        if bytes[key_end] != b'"' {
            return None;
        }
        let key = &bytes[at + 1..key_end];
        at = key_end + 1;
        if bytes.get(at) != Some(&b':') {
            return None;
        }
        let value_start = at + 1;
        at = skip_value(bytes, value_start)?;
        let value = &bytes[value_start..at];
        match key {
            b"hash" if hash.is_none() => hash = Some(quoted_hash(value)?),
            b"prev_hash" if prev_hash.is_none() => prev_hash = Some(quoted_hash(value)?),
            b"hash" | b"prev_hash" | b"unreadable" => return None,
            _ => {
                match key {
                    b"position" => position = std::str::from_utf8(value).ok()?.parse::<i64>().ok(),
                    b"id" => id = std::str::from_utf8(value).ok()?.parse::<i64>().ok(),
                    _ => {}
                }
                if scratch.len() > 1 {
                    scratch.push(b',');
                }
                scratch.extend_from_slice(&bytes[field_start..at]);
            }
        }
        match bytes.get(at) {
            Some(b',') => at += 1,
            Some(b'}') if at + 1 == bytes.len() => break,
            _ => return None,
        }
    }
    scratch.push(b'}');
    let (prev_hash, hash, position) = (prev_hash?, hash?, position.or(id)?);
    let seal = LineSeal { prev_hash, hash, intact: true };
    (link(&prev_hash, scratch) == hash).then_some(LineSummary::Event(EventSummary {
        line: line_number,
        position,
        seal: Some(seal),
    }))
}

/// The end of the JSON value that starts at `at` (structure only: strings, nesting and
/// scalars are delimited, not validated).
fn skip_value(bytes: &[u8], at: usize) -> Option<usize> {
    match bytes.get(at)? {
        b'"' => skip_string(bytes, at),
        b'{' | b'[' => {
            let (mut depth, mut i) = (0usize, at);
            loop {
                match bytes.get(i)? {
                    b'"' => {
                        i = skip_string(bytes, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => Some(at + bytes[at..].iter().position(|&b| b == b',' || b == b'}')?),
    }
}

/// The end of the string whose opening quote is at `at`.
fn skip_string(bytes: &[u8], at: usize) -> Option<usize> {
    let mut i = at + 1;
    loop {
        let found = i + memchr::memchr2(b'"', b'\\', bytes.get(i..)?)?;
        if bytes[found] == b'"' {
            return Some(found + 1);
        }
        i = found + 2;
    }
}

/// `"<64 hex digits>"`.
fn quoted_hash(value: &[u8]) -> Option<Hash> {
    let inner = value.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    parse_hash(std::str::from_utf8(inner).ok()?)
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::audit::chain::{attach, line_hash, GENESIS};

    fn sealed(line: serde_json::Value) -> String {
        let mut line = line;
        let hash = line_hash(&GENESIS, &line);
        attach(&mut line, &GENESIS, &hash);
        serde_json::to_string(&line).unwrap()
    }

    fn fast(text: &str) -> bool {
        summarize_as_written(1, text, &mut Vec::new()).is_some()
    }

    #[test]
    fn the_fast_path_reads_nesting_escapes_and_lookalike_keys_as_the_full_check_does() {
        let text = sealed(json!({
            "position": 7,
            "payload": {"hash": "not the chain's", "quote": "a \"}\" and a \\ and ]}{", "list": [{"x": [1, {}]}, "]"]},
            "metadata": null,
        }));
        assert!(fast(&text), "{text}");
        match summarize(1, &text, &mut Vec::new()).unwrap() {
            LineSummary::Event(event) => assert_eq!((event.position, event.seal.unwrap().intact), (7, true)),
            LineSummary::Checkpoint(_) => panic!("an event"),
        }
        // Anything else goes to the full check, which decides.
        let edited = text.replace("]}{", "]}}");
        assert!(!fast(&edited));
        let full = |text: &str| match summarize(1, text, &mut Vec::new()) {
            Ok(LineSummary::Event(event)) => event.seal.map(|seal| seal.intact),
            _ => None,
        };
        assert_eq!(full(&edited), Some(false));
        let duplicated = text.replacen("{\"hash\":", "{\"hash\":\"00\",\"hash\":", 1);
        assert!(!fast(&duplicated));
        let spaced = text.replacen("\"metadata\":null", "\"metadata\": null", 1);
        assert!(!fast(&spaced));
        assert_eq!(full(&spaced), Some(true));
        assert!(!fast(&format!("{text} ")));
        assert!(!fast(&text[..text.len() - 1]));
    }
}
