//! Request ids (`alexandria_domain::request_id`, UUIDv5 of agent and idempotency key; the
//! key is whatever the client sent in `X-Idempotency-Key`): two (agent, key) pairs share
//! an id exactly when they are the same pair, whatever characters they hold (the
//! length-prefixed encoding is injective). Input: four UTF-8 strings separated by 0xFF.
#![no_main]

use alexandria_domain::request_id;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parts: Vec<&str> = match data.split(|&b| b == 0xff).map(std::str::from_utf8).collect() {
        Ok(parts) => parts,
        Err(_) => return,
    };
    let [agent, key, other_agent, other_key] = parts[..] else { return };
    let id = request_id(agent, key);
    assert_eq!(id.get_version_num(), 5);
    assert_eq!(id, request_id(agent, key));
    assert_eq!((agent, key) == (other_agent, other_key), id == request_id(other_agent, other_key));
});
