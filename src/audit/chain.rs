//! The chain rule, with no I/O: which bytes of a line are hashed and how a link is made
//! (docs/AUDIT.md states the same byte by byte, for verifiers that are not this binary).

use alexandria_domain::{write_canonical_json, write_canonical_object_without};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// The `prev_hash` of a chain's first line.
pub const GENESIS: Hash = [0; 32];

/// Fields of a line that are not hashed: the chain's own, and `unreadable` (this build's
/// explanation of a row it cannot read, which a later build may word differently; the
/// row's raw text is in `raw_payload`/`raw_metadata` and is hashed).
pub const UNHASHED_FIELDS: [&str; 3] = ["hash", "prev_hash", "unreadable"];

/// `SHA-256(prev_hash ‖ canonical bytes)`.
pub fn link(prev: &Hash, canonical: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(canonical);
    hasher.finalize().into()
}

/// The canonical bytes of a line: the line without [`UNHASHED_FIELDS`], as canonical JSON,
/// appended to `out`.
pub fn canonical_line(line: &Value, out: &mut Vec<u8>) {
    match line {
        Value::Object(map) => write_canonical_object_without(map, &UNHASHED_FIELDS, out),
        other => write_canonical_json(other, out),
    }
}

/// The hash of `line` following `prev`.
pub fn line_hash(prev: &Hash, line: &Value) -> Hash {
    let mut canonical = Vec::with_capacity(512);
    canonical_line(line, &mut canonical);
    link(prev, &canonical)
}

/// Adds a line's chain fields (lowercase hex).
pub fn attach(line: &mut Value, prev: &Hash, hash: &Hash) {
    if let Value::Object(map) = line {
        map.insert("prev_hash".to_owned(), Value::String(hex::encode(prev)));
        map.insert("hash".to_owned(), Value::String(hex::encode(hash)));
    }
}

/// A hash from 64 hex digits (either case).
pub fn parse_hash(text: &str) -> Option<Hash> {
    fn nibble(digit: u8) -> Option<u8> {
        match digit {
            b'0'..=b'9' => Some(digit - b'0'),
            b'a'..=b'f' => Some(digit - b'a' + 10),
            b'A'..=b'F' => Some(digit - b'A' + 10),
            _ => None,
        }
    }
    let digits = text.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut hash = [0u8; 32];
    for (byte, pair) in hash.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(hash)
}

/// A hash from a database `bytea` (32 bytes; anything else is damage).
pub fn hash_from_bytes(bytes: &[u8]) -> Option<Hash> {
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_chain_fields_and_the_reason_are_not_hashed_and_key_order_does_not_matter() {
        let line = json!({"position": 1, "payload": {"b": 1.5e-7, "a": "é\n"}});
        let mut with_chain = line.clone();
        attach(&mut with_chain, &GENESIS, &[7; 32]);
        with_chain["unreadable"] = json!("why");
        assert_eq!(line_hash(&GENESIS, &line), line_hash(&GENESIS, &with_chain));
        let mut bytes = Vec::new();
        canonical_line(&with_chain, &mut bytes);
        assert_eq!(String::from_utf8(bytes).unwrap(), "{\"payload\":{\"a\":\"é\\n\",\"b\":1.5e-7},\"position\":1}");
        assert_ne!(line_hash(&GENESIS, &line), line_hash(&[1; 32], &line));
    }

    #[test]
    fn hashes_read_back_from_hex() {
        let hash = link(&GENESIS, b"x");
        assert_eq!(parse_hash(&hex::encode(hash)), Some(hash));
        assert_eq!(parse_hash("00"), None);
        assert_eq!(parse_hash(&"zz".repeat(32)), None);
    }
}
