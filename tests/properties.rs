//! Property tests of the code that reads untrusted input: JSON-RPC framing, the tool
//! arguments' digest, JWT verification and upstream configurations. Each runs a few
//! hundred generated cases in the normal suite (`PROPTEST_CASES` raises it for a longer
//! run); a failing case is shrunk and printed.

use alexandria::auth::jwt::JwtKeys;
use alexandria::mcp::jsonrpc::{parse, ClientMessage};
use alexandria::upstream::UpstreamConfig;
use alexandria_domain::{arguments_digest, canonical_json};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// Any JSON value, a few levels deep, with keys and strings that include the awkward
/// characters (quotes, escapes, NUL, non-ASCII).
fn json_value() -> impl Strategy<Value = Value> {
    let text = "[a-z\"\\\\\u{0}é😀 ]{0,8}";
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        text.prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(text, inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The same object with its keys inserted in reverse order, at every level.
fn reordered(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut reversed = Map::new();
            for (key, item) in map.iter().rev() {
                reversed.insert(key.clone(), reordered(item));
            }
            Value::Object(reversed)
        }
        Value::Array(items) => Value::Array(items.iter().map(reordered).collect()),
        other => other.clone(),
    }
}

proptest! {
    // 256 cases (proptest's default), or PROPTEST_CASES.
    #![proptest_config(ProptestConfig::default())]

    /// Any bytes at all: an answer, never a panic; a refusal is a JSON-RPC error.
    #[test]
    fn any_bytes_parse_to_a_message_or_a_json_rpc_error(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Err(rejection) = parse(&bytes) {
            prop_assert_eq!(&rejection.body["jsonrpc"], "2.0");
            prop_assert!(rejection.body["error"]["code"].is_i64());
        }
    }

    /// Any JSON-RPC-shaped message with arbitrary params: an answer, never a panic; a
    /// request keeps its id.
    #[test]
    fn any_json_rpc_message_parses_or_is_refused_with_its_id(
        id in prop_oneof![any::<i64>().prop_map(|n| json!(n)), "[a-z0-9-]{1,12}".prop_map(Value::String)],
        method in prop_oneof![
            Just("tools/call"), Just("tools/list"), Just("initialize"), Just("tasks/get"),
            Just("tasks/list"), Just("tasks/cancel"), Just("ping"), Just("x/y"),
        ],
        params in json_value(),
    ) {
        let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        match parse(message.to_string().as_bytes()) {
            Ok(ClientMessage::Request(request)) => prop_assert_eq!(serde_json::to_value(&request.id).unwrap(), id),
            Ok(ClientMessage::NoAnswer | ClientMessage::Answer { .. }) => {
                prop_assert!(false, "a request with an id needs an answer")
            }
            Err(rejection) => prop_assert_eq!(&rejection.body["id"], &id),
        }
    }

    /// The digest that identifies a call's arguments ignores key order and nothing else,
    /// and the canonical text reads back as the same value (numbers included: serde_json's
    /// `float_roundtrip`, see `ids::tests::canonical_json_reads_back_as_the_same_numbers`).
    #[test]
    fn the_arguments_digest_ignores_key_order(value in json_value(), other in json_value()) {
        prop_assert_eq!(&serde_json::from_str::<Value>(&canonical_json(&value)).unwrap(), &value);
        prop_assert_eq!(arguments_digest(&value), arguments_digest(&reordered(&value)));
        prop_assert_eq!(canonical_json(&value), canonical_json(&reordered(&value)));
        if canonical_json(&value) != canonical_json(&other) {
            prop_assert_ne!(arguments_digest(&value), arguments_digest(&other));
        }
    }

    /// Any string as a bearer token: refused (or, never here, accepted), never a panic.
    #[test]
    fn any_string_is_verified_without_panicking(token in "[A-Za-z0-9._~+/=-]{0,300}|\\PC{0,64}") {
        let keys = JwtKeys::from_secret(b"a secret of at least thirty-two bytes!!").unwrap();
        prop_assert!(keys.verify(&token).is_err());
    }

    /// Any JSON as an upstream configuration: read and validated, or refused, never a panic.
    #[test]
    fn any_configuration_is_validated_without_panicking(
        value in json_value(),
        transport in prop_oneof![Just("stdio"), Just("streamable_http"), Just("sse")],
    ) {
        let mut config = match value {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        config.insert("name".into(), json!("p"));
        config.insert("transport".into(), json!(transport));
        if let Ok(config) = serde_json::from_value::<UpstreamConfig>(Value::Object(config)) {
            let _ = config.validate();
            let _ = serde_json::to_string(&config.redacted());
        }
    }
}
