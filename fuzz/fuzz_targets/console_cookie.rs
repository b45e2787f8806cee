//! The console's session cookie value (`alexandria::auth::console_session::
//! ConsoleCredential::parse`, `<session id>.<secret>` from the `Cookie` header): any text
//! is refused or read, never a panic; a value that is read is a session id and a
//! 43-character base64url secret taken as sent, and the cookie value it gives back parses
//! to the same credential.
#![no_main]

use alexandria::auth::console_session::ConsoleCredential;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = std::str::from_utf8(data) else { return };
    let Some(credential) = ConsoleCredential::parse(value) else { return };
    let cookie = credential.cookie_value();
    let (id, secret) = cookie.split_once('.').expect("id.secret");
    assert_eq!(id, credential.session_id.hyphenated().to_string());
    assert!(secret.len() == 43 && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert!(value.ends_with(&format!(".{secret}")), "the secret is not the one sent");
    let again = ConsoleCredential::parse(&cookie).expect("its own cookie value parses");
    assert_eq!(again.session_id, credential.session_id);
    assert_eq!(again.cookie_value(), cookie);
});
