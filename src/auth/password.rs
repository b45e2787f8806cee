//! Password hashing (argon2id with the crate's OWASP-recommended defaults) and the password
//! rules. Hashing is deliberately slow, so it runs on the blocking pool, never on the
//! async workers.

use std::sync::OnceLock;

use anyhow::Context;
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use base64::Engine;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};

/// Shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted, in bytes: nobody types more, and it bounds the work an
/// unauthenticated request can ask for.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Why a new password is refused, as a message for the person choosing it.
pub fn policy_violation(password: &str) -> Option<String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        Some(format!("password must be at least {MIN_PASSWORD_CHARS} characters"))
    } else if password.len() > MAX_PASSWORD_BYTES {
        Some(format!("password must be at most {MAX_PASSWORD_BYTES} bytes"))
    } else {
        None
    }
}

/// A random password for the bootstrap admin: 32 URL-safe characters (192 bits).
pub fn generate() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The argon2id PHC string for `password`, with a fresh random salt.
/// At most this many argon2 computations run at once: each takes 19 MiB and a blocking
/// thread, and without a bound 500 concurrent logins would take some 10 GiB.
pub const CONCURRENT_HASHES: usize = 8;
/// How long a login waits for a hashing slot before it is refused (429).
const HASHING_QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(CONCURRENT_HASHES);

/// A slot to hash or verify a password in, waiting a short while for one; `None` when
/// the gateway is already hashing all it may (the caller answers 429).
pub async fn hashing_slot() -> Option<tokio::sync::SemaphorePermit<'static>> {
    tokio::time::timeout(HASHING_QUEUE_WAIT, HASHING.acquire()).await.ok()?.ok()
}

pub async fn hash(password: SecretString) -> anyhow::Result<String> {
    // People setting passwords wait for a slot as long as it takes.
    let _slot = HASHING.acquire().await.context("the hashing slots are closed")?;
    tokio::task::spawn_blocking(move || hash_blocking(password.expose_secret()))
        .await
        .context("password hashing task failed")?
}

fn hash_blocking(password: &str) -> anyhow::Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|error| anyhow::anyhow!("cannot hash a password: {error}"))
}

/// Whether `password` matches `stored_hash`. With no stored hash (no such user) it checks
/// against a dummy hash anyway, so the answer takes as long whether or not the user exists.
pub async fn verify(password: SecretString, stored_hash: Option<String>) -> anyhow::Result<bool> {
    tokio::task::spawn_blocking(move || {
        let user_exists = stored_hash.is_some();
        let stored = match stored_hash {
            Some(stored) => stored,
            None => dummy_hash()?.to_owned(),
        };
        let matches = Argon2::default().verify_password(password.expose_secret().as_bytes(), stored.as_str()).is_ok();
        Ok(matches && user_exists)
    })
    .await
    .context("password verification task failed")?
}

fn dummy_hash() -> anyhow::Result<&'static str> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    if let Some(hash) = DUMMY.get() {
        return Ok(hash);
    }
    let hash = hash_blocking("not a password anybody has")?;
    Ok(DUMMY.get_or_init(|| hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_and_nothing_else() {
        let stored = hash("correct horse battery".into()).await.unwrap();
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(verify("correct horse battery".into(), Some(stored.clone())).await.unwrap());
        assert!(!verify("correct horse batterz".into(), Some(stored)).await.unwrap());
        assert!(!verify("not a password anybody has".into(), None).await.unwrap());
    }

    #[test]
    fn the_policy_names_the_rule_broken() {
        assert!(policy_violation("short").unwrap().contains("at least 12"));
        assert!(policy_violation(&"x".repeat(2000)).unwrap().contains("at most"));
        assert_eq!(policy_violation("twelve chars"), None);
    }
}
