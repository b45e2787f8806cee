//! Bearer tokens (`alexandria::auth::JwtKeys::verify`, every `Authorization` header).
//! The first byte picks what the rest is:
//! - 0: any text as a token: refused (the fuzzer does not know the key), never a panic;
//! - 1: claims JSON, signed with the key under the gateway's own header `{"alg":"HS256",
//!   "typ":"JWT"}`, so the claims' decoding and checks are what gets fuzzed;
//! - 2: a header and claims separated by 0xFF, both the fuzzer's, signed with the key.
//!
//! An accepted token had `alg` HS256 and is not expired (beyond the 5 s leeway), and its
//! claims signed again verify to the same claims.
#![no_main]

use alexandria::auth::jwt::Claims;
use alexandria::auth::JwtKeys;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;

const SECRET: &[u8] = b"the fuzzing key, at least thirty-two bytes long";
const HEADER: &[u8] = br#"{"alg":"HS256","typ":"JWT"}"#;

fn signed(header: &[u8], claims: &[u8]) -> String {
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let keys = JwtKeys::from_secret(SECRET).unwrap();
    let (token, header) = match mode % 3 {
        0 => {
            let token = String::from_utf8_lossy(rest);
            assert!(keys.verify(&token).is_err(), "an unsigned token was accepted: {token:?}");
            return;
        }
        1 => (signed(HEADER, rest), HEADER),
        _ => {
            let mut parts = rest.splitn(2, |&b| b == 0xff);
            let header = parts.next().unwrap_or_default();
            (signed(header, parts.next().unwrap_or_default()), header)
        }
    };
    let before = now();
    let Ok(claims) = keys.verify(&token) else { return };
    let header: serde_json::Value = serde_json::from_slice(header).expect("an accepted header is JSON");
    assert_eq!(header["alg"], "HS256", "accepted with another algorithm");
    let exp = match &claims {
        Claims::Access(c) => c.exp,
        Claims::Refresh(c) => c.exp,
        Claims::Agent(c) => c.exp,
    };
    assert!(exp >= before - 5, "an expired token was accepted (exp {exp}, now {before})");
    if exp > before + 60 {
        let again = keys.sign(&claims).expect("claims sign");
        assert_eq!(keys.verify(&again).expect("re-signed claims verify"), claims);
    }
});
