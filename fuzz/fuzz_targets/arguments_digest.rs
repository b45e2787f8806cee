//! The digest of a call's arguments (`alexandria_domain::arguments_digest`, over
//! `canonical_json`): it decides whether a retried idempotency key names the same call.
//! For any JSON text:
//! - the canonical text is JSON for the same value, and canonicalising it again changes
//!   nothing;
//! - the digest is 64 hex digits and does not depend on key order;
//! - two values have one digest exactly when they are equal (input: two JSON texts
//!   separated by a 0xFF byte, which no JSON text contains);
//! - the derived idempotency key (no `X-Idempotency-Key` sent) follows the digest.
#![no_main]

use alexandria_domain::{arguments_digest, canonical_json, derived_idempotency_key};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

/// The same value with every object's keys inserted in reverse order.
fn reordered(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().rev().map(|(key, item)| (key.clone(), reordered(item))).collect::<Map<_, _>>())
        }
        Value::Array(items) => Value::Array(items.iter().map(reordered).collect()),
        other => other.clone(),
    }
}

fn check_one(value: &Value) -> String {
    let canonical = canonical_json(value);
    let reparsed: Value = serde_json::from_str(&canonical).expect("canonical JSON is JSON");
    assert_eq!(&reparsed, value, "canonical JSON {canonical} is another value");
    assert_eq!(canonical_json(&reparsed), canonical, "canonicalising twice changed the text");
    let digest = arguments_digest(value);
    assert!(digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_eq!(arguments_digest(&reordered(value)), digest);
    digest
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(2, |&b| b == 0xff);
    let Some(Ok(first)) = parts.next().map(serde_json::from_slice::<Value>) else { return };
    let digest = check_one(&first);
    if let Some(Ok(second)) = parts.next().map(serde_json::from_slice::<Value>) {
        let other = check_one(&second);
        assert_eq!(first == second, digest == other, "equal values must share a digest, and only they");
        assert_eq!(
            first == second,
            derived_idempotency_key("write_file", &first) == derived_idempotency_key("write_file", &second)
        );
    }
});
