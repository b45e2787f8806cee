//! Deterministic identities: request ids and idempotency keys.
//!
//! A gated call's request id is derived, not generated, so that two replicas receiving the
//! same first call at the same moment both target one aggregate and optimistic concurrency
//! lets exactly one `Created` win.

use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Namespace for request ids (UUIDv5). Fixed forever: changing it would re-key every
/// in-flight request.
const REQUEST_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6a1e_7c3b_52d4_4f0e_9a8b_a1ec_5a2d_0001);

/// The permission request id for `(agent, idempotency key)`.
pub fn request_id(agent: &str, idempotency_key: &str) -> Uuid {
    // Length-prefixing the agent makes the encoding injective: ("a", "b:c") and
    // ("a:b", "c") never share a name, whatever characters a key contains.
    let name = format!("{}:{agent}{idempotency_key}", agent.len());
    Uuid::new_v5(&REQUEST_ID_NAMESPACE, name.as_bytes())
}

/// JSON with object keys sorted at every level and no insignificant whitespace, so that
/// two semantically equal argument objects have one text and one digest. The audit chain
/// hashes export lines in this form too (docs/AUDIT.md defines it byte by byte).
pub fn canonical_json(value: &Value) -> String {
    let mut out = Vec::new();
    write_canonical_json(value, &mut out);
    // Only serde_json's own (UTF-8) output and ASCII punctuation were written.
    String::from_utf8(out).unwrap_or_default()
}

/// [`canonical_json`], appended to `out` (no allocation per value: the audit chain's
/// verifier canonicalises hundreds of thousands of lines a second). Keys are sorted by
/// their UTF-8 bytes (= by code point); strings and numbers are written as serde_json
/// writes them.
pub fn write_canonical_json(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => write_canonical_object_without(map, &[], out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical_json(item, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

/// The canonical JSON of an object without its top-level keys named in `skip` (the audit
/// chain leaves a line's own hashes out), appended to `out`.
pub fn write_canonical_object_without(map: &serde_json::Map<String, Value>, skip: &[&str], out: &mut Vec<u8>) {
    out.push(b'{');
    let mut keys: Vec<&String> = map.keys().filter(|key| !skip.contains(&key.as_str())).collect();
    // serde_json's map is a BTreeMap (sorted) unless `preserve_order` is on.
    if !keys.is_sorted() {
        keys.sort();
    }
    for (i, key) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_scalar(key, out);
        out.push(b':');
        if let Some(item) = map.get(key) {
            write_canonical_json(item, out);
        }
    }
    out.push(b'}');
}

fn write_scalar<T: serde::Serialize + ?Sized>(scalar: &T, out: &mut Vec<u8>) {
    // Writing a string, number, bool or null into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, scalar);
}

/// Hex SHA-256 of the canonical JSON of a call's arguments.
pub fn arguments_digest(arguments: &Value) -> String {
    hex::encode(Sha256::digest(canonical_json(arguments).as_bytes()))
}

/// The idempotency key used when a client sends no `X-Idempotency-Key`: the same tool with
/// the same arguments is the same request, so stock MCP clients still get exactly one.
pub fn derived_idempotency_key(tool: &str, arguments: &Value) -> String {
    let mut hasher = Sha256::new();
    hasher.update(tool.as_bytes());
    hasher.update([0u8]);
    hasher.update(canonical_json(arguments).as_bytes());
    format!("derived:{}", hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_id_is_stable_and_separates_agents_and_keys() {
        assert_eq!(request_id("a", "k"), request_id("a", "k"));
        assert_ne!(request_id("a", "k"), request_id("b", "k"));
        assert_ne!(request_id("a", "b\0c"), request_id("a\0b", "c"));
        assert_eq!(request_id("a", "k").get_version_num(), 5);
    }

    #[test]
    fn canonical_json_ignores_key_order_and_whitespace() {
        let a = json!({"b": 1, "a": {"y": [1, 2], "x": "s"}});
        let b: Value = serde_json::from_str(r#"{ "a": {"x":"s","y":[1,2]}, "b":1 }"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(canonical_json(&a), r#"{"a":{"x":"s","y":[1,2]},"b":1}"#);
        assert_eq!(arguments_digest(&a), arguments_digest(&b));
        assert_ne!(arguments_digest(&a), arguments_digest(&json!({"b": 2})));
    }

    /// Found by the `arguments_digest` fuzz target: serde_json's default float parser is
    /// not correctly rounded. It read 18446744073308144677758 as 1.8446744073308146e22
    /// (one bit off), whose canonical text then read back as 1.8446744073308144e22: the
    /// canonical text was another value, and a number in a call's arguments could change
    /// in its last bit on its way through the gateway (and through `jsonb`). The workspace
    /// turns on serde_json's `float_roundtrip` (correctly rounded parsing).
    #[test]
    fn canonical_json_reads_back_as_the_same_numbers() {
        for text in ["18446744073308144677758", "1.8446744073308146e22", "0.1", "-2.2250738585072014e-308", "1e308"] {
            let value: Value = serde_json::from_str(text).unwrap();
            let canonical = canonical_json(&value);
            assert_eq!(serde_json::from_str::<Value>(&canonical).unwrap(), value, "{text} -> {canonical}");
        }
        let read: Value = serde_json::from_str("18446744073308144677758").unwrap();
        assert_eq!(read, json!(1.8446744073308144e22_f64));
    }

    #[test]
    fn derived_key_depends_on_tool_and_arguments() {
        let args = json!({"path": "/x"});
        assert_eq!(derived_idempotency_key("t", &args), derived_idempotency_key("t", &args));
        assert_ne!(derived_idempotency_key("t", &args), derived_idempotency_key("u", &args));
        assert_ne!(derived_idempotency_key("t", &args), derived_idempotency_key("t", &json!({"path": "/y"})));
    }
}
